#!/usr/bin/python3
"""Write small BERT checkpoints in the Hugging Face layout, and PyTorch's
outputs for them, for the importer test (zoo TestLoadHFBERT*).

Run with Debian's torch: /usr/bin/python3 scripts/gen_hf_bert.py

transformers is not installed, so the modules below rebuild Hugging Face's
BERT (modeling_bert: BertModel, BertForMaskedLM) with the same module tree,
hence the same state_dict names and shapes, and the same computation in
eval mode (post-norm layers, exact GELU, additive attention mask of the
dtype's most negative value). Folders written under zoo/testdata/:

  hf_bert_mlm/    BertForMaskedLM: "bert." prefix, no pooler, cls.predictions
                  head; the tied decoder weight and bias left out of the
                  file as save_pretrained does. F32.
  hf_bert_model/  BertModel with pooler, no prefix, with the legacy
                  embeddings.position_ids int64 buffer older checkpoints
                  carry, and weights stored as F16.

Each holds config.json (keys sorted, indent 2, as PretrainedConfig writes
it), model.safetensors, vocab.txt, tokenizer_config.json, and
expected.safetensors with the inputs (input_ids, attention_mask,
token_type_ids, int64) and outputs (last_hidden_state, pooler_output or
logits) computed in float64 from the stored (rounded) weights.

The MLM golden script (gen_mlm_golden.py) imports the modules from here.
"""
import json
import math
import os
import struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

VOCAB = ["[PAD]", "[unused0]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "light", "of", "rays", "is",
         "refracted", "by", "prism", "a", "colour", "play", "##ing", "##s", "##ed", "and", "glass", ".", ",",
         "newton", "opt", "##ick", "white", "red", "blue", "sun", "water", "in", "to", "from", "reflect",
         "##ion", "bodies", "motion", "!"]


class Cfg:
    def __init__(self, **kw):
        self.vocab_size = len(VOCAB)
        self.hidden_size = 16
        self.num_hidden_layers = 2
        self.num_attention_heads = 4
        self.intermediate_size = 24
        self.max_position_embeddings = 32
        self.type_vocab_size = 2
        self.layer_norm_eps = 1e-12
        self.pad_token_id = 0
        self.__dict__.update(kw)

    def to_json(self, arch):
        # The fields and formatting of PretrainedConfig.to_json_string for a
        # BertConfig (use_diff=True keeps every non-default plus these).
        d = {
            "architectures": [arch],
            "attention_probs_dropout_prob": 0.1,
            "classifier_dropout": None,
            "hidden_act": "gelu",
            "hidden_dropout_prob": 0.1,
            "hidden_size": self.hidden_size,
            "initializer_range": 0.02,
            "intermediate_size": self.intermediate_size,
            "layer_norm_eps": self.layer_norm_eps,
            "max_position_embeddings": self.max_position_embeddings,
            "model_type": "bert",
            "num_attention_heads": self.num_attention_heads,
            "num_hidden_layers": self.num_hidden_layers,
            "pad_token_id": self.pad_token_id,
            "position_embedding_type": "absolute",
            "torch_dtype": "float32",
            "transformers_version": "4.35.2",
            "type_vocab_size": self.type_vocab_size,
            "use_cache": True,
            "vocab_size": self.vocab_size,
        }
        return json.dumps(d, indent=2, sort_keys=True) + "\n"


class BertEmbeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.word_embeddings = nn.Embedding(c.vocab_size, c.hidden_size, padding_idx=c.pad_token_id)
        self.position_embeddings = nn.Embedding(c.max_position_embeddings, c.hidden_size)
        self.token_type_embeddings = nn.Embedding(c.type_vocab_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(0.0)
        self.register_buffer("position_ids", torch.arange(c.max_position_embeddings).expand((1, -1)), persistent=False)

    def forward(self, ids, types):
        pos = self.position_ids[:, : ids.shape[1]]
        x = self.word_embeddings(ids) + self.token_type_embeddings(types) + self.position_embeddings(pos)
        return self.dropout(self.LayerNorm(x))


class BertSelfAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.heads = c.num_attention_heads
        self.head_size = c.hidden_size // c.num_attention_heads
        self.query = nn.Linear(c.hidden_size, c.hidden_size)
        self.key = nn.Linear(c.hidden_size, c.hidden_size)
        self.value = nn.Linear(c.hidden_size, c.hidden_size)
        self.dropout = nn.Dropout(0.0)

    def split(self, x):
        b, t, _ = x.shape
        return x.view(b, t, self.heads, self.head_size).permute(0, 2, 1, 3)

    def forward(self, x, mask):
        q, k, v = self.split(self.query(x)), self.split(self.key(x)), self.split(self.value(x))
        s = q @ k.transpose(-1, -2) / math.sqrt(self.head_size) + mask
        ctx = self.dropout(s.softmax(dim=-1)) @ v
        b, _, t, _ = ctx.shape
        return ctx.permute(0, 2, 1, 3).reshape(b, t, -1)


class BertSelfOutput(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(0.0)

    def forward(self, h, inp):
        return self.LayerNorm(self.dropout(self.dense(h)) + inp)


class BertAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.self = BertSelfAttention(c)
        self.output = BertSelfOutput(c)

    def forward(self, x, mask):
        return self.output(self.self(x, mask), x)


class BertIntermediate(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.intermediate_size)

    def forward(self, x):
        return F.gelu(self.dense(x))


class BertOutput(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c.intermediate_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(0.0)

    def forward(self, h, inp):
        return self.LayerNorm(self.dropout(self.dense(h)) + inp)


class BertLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.attention = BertAttention(c)
        self.intermediate = BertIntermediate(c)
        self.output = BertOutput(c)

    def forward(self, x, mask):
        a = self.attention(x, mask)
        return self.output(self.intermediate(a), a)


class BertEncoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.layer = nn.ModuleList([BertLayer(c) for _ in range(c.num_hidden_layers)])

    def forward(self, x, mask):
        for l in self.layer:
            x = l(x, mask)
        return x


class BertPooler(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.hidden_size)

    def forward(self, x):
        return torch.tanh(self.dense(x[:, 0]))


class BertModel(nn.Module):
    def __init__(self, c, add_pooling_layer=True):
        super().__init__()
        self.embeddings = BertEmbeddings(c)
        self.encoder = BertEncoder(c)
        self.pooler = BertPooler(c) if add_pooling_layer else None

    def forward(self, ids, mask, types):
        ext = (1.0 - mask[:, None, None, :].to(torch.get_default_dtype())) * torch.finfo(torch.get_default_dtype()).min
        h = self.encoder(self.embeddings(ids, types), ext)
        return h, (self.pooler(h) if self.pooler is not None else None)


class BertPredictionHeadTransform(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, x):
        return self.LayerNorm(F.gelu(self.dense(x)))


class BertLMPredictionHead(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.transform = BertPredictionHeadTransform(c)
        self.decoder = nn.Linear(c.hidden_size, c.vocab_size, bias=False)
        self.bias = nn.Parameter(torch.zeros(c.vocab_size))
        self.decoder.bias = self.bias

    def forward(self, x):
        return self.decoder(self.transform(x))


class BertOnlyMLMHead(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.predictions = BertLMPredictionHead(c)

    def forward(self, x):
        return self.predictions(x)


class BertForMaskedLM(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.bert = BertModel(c, add_pooling_layer=False)
        self.cls = BertOnlyMLMHead(c)
        self.cls.predictions.decoder.weight = self.bert.embeddings.word_embeddings.weight

    def forward(self, ids, mask, types, labels=None):
        h, _ = self.bert(ids, mask, types)
        logits = self.cls(h)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.view(-1, logits.shape[-1]), labels.view(-1), ignore_index=-100)
        return loss, logits, h


def randomize(module, gen):
    """Random weights of a trained-looking scale, rounded to float32."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            base = 1.0 if name.endswith("LayerNorm.weight") else 0.0
            p.copy_(torch.randn(p.shape, generator=gen) * (0.1 if base else 0.4) + base)
            p.copy_(p.float().double())


def write_safetensors(path, tensors, metadata=None):
    header, blobs, off = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        dt = {np.dtype(np.int64): "I64", np.dtype(np.float16): "F16"}.get(a.dtype, "F32")
        if dt == "F32":
            a = a.astype(np.float32)
        raw = a.astype(a.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def write_tokenizer(d):
    with open(os.path.join(d, "vocab.txt"), "w") as f:
        f.write("\n".join(VOCAB) + "\n")
    tc = {"clean_up_tokenization_spaces": True, "cls_token": "[CLS]", "do_lower_case": True, "mask_token": "[MASK]",
          "model_max_length": 32, "pad_token": "[PAD]", "sep_token": "[SEP]", "strip_accents": None,
          "tokenize_chinese_chars": True, "tokenizer_class": "BertTokenizer", "unk_token": "[UNK]"}
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        f.write(json.dumps(tc, indent=2, sort_keys=True) + "\n")


# "The light of the Sun is refracted by a prism, playing!" by hand with the
# WordPiece algorithm over VOCAB, then a second, shorter sentence padded.
SENTENCE = "The light of the Sun is refracted by a prism, playing!"
SENTENCE_IDS = [3, 6, 7, 8, 6, 30, 10, 11, 12, 14, 13, 23, 16, 17, 39, 4]


def inputs():
    ids = [SENTENCE_IDS, [3, 24, 25, 26, 18, 4] + [0] * 10]
    mask = [[1] * 16, [1] * 6 + [0] * 10]
    types = [[0] * 16, [0] * 3 + [1] * 3 + [0] * 10]
    return (torch.tensor(ids, dtype=torch.int64), torch.tensor(mask, dtype=torch.int64),
            torch.tensor(types, dtype=torch.int64))


def main():
    torch.set_default_dtype(torch.float64)
    gen = torch.Generator().manual_seed(7)
    ids, mask, types = inputs()
    common = {"input_ids": ids.numpy(), "attention_mask": mask.numpy(), "token_type_ids": types.numpy()}

    # BertForMaskedLM, F32, tied decoder left out.
    c = Cfg()
    m = BertForMaskedLM(c).eval()
    randomize(m, gen)
    d = os.path.join(ROOT, "zoo", "testdata", "hf_bert_mlm")
    os.makedirs(d, exist_ok=True)
    sd = {k: v.numpy() for k, v in m.state_dict().items()
          if k not in ("cls.predictions.decoder.weight", "cls.predictions.decoder.bias")}
    write_safetensors(os.path.join(d, "model.safetensors"), sd, {"format": "pt"})
    with open(os.path.join(d, "config.json"), "w") as f:
        f.write(c.to_json("BertForMaskedLM"))
    write_tokenizer(d)
    with torch.no_grad():
        _, logits, h = m(ids, mask, types)
    write_safetensors(os.path.join(d, "expected.safetensors"),
                      dict(common, last_hidden_state=h.numpy(), logits=logits.numpy()))

    # BertModel with pooler, F16 weights, legacy position_ids buffer.
    c = Cfg(num_hidden_layers=1, intermediate_size=20, layer_norm_eps=1e-7)
    m = BertModel(c).eval()
    randomize(m, gen)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(p.half().double())
    d = os.path.join(ROOT, "zoo", "testdata", "hf_bert_model")
    os.makedirs(d, exist_ok=True)
    sd = {k: v.numpy().astype(np.float16) for k, v in m.state_dict().items()}
    sd["embeddings.position_ids"] = np.arange(c.max_position_embeddings, dtype=np.int64).reshape(1, -1)
    write_safetensors(os.path.join(d, "model.safetensors"), sd, {"format": "pt"})
    with open(os.path.join(d, "config.json"), "w") as f:
        f.write(c.to_json("BertModel"))
    write_tokenizer(d)
    with torch.no_grad():
        h, pooled = m(ids, mask, types)
    write_safetensors(os.path.join(d, "expected.safetensors"),
                      dict(common, last_hidden_state=h.numpy(), pooler_output=pooled.numpy()))
    print("wrote", os.path.join(ROOT, "zoo", "testdata", "hf_bert_mlm"), "and hf_bert_model")


if __name__ == "__main__":
    main()
