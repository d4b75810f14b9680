#!/usr/bin/python3
"""Write zoo/mlm/testdata/mlm_golden.safetensors: PyTorch reference values
for sslzoo's BERT masked-language-model loss, its gradients and one
training step.

Run with Debian's torch: /usr/bin/python3 scripts/gen_mlm_golden.py
(the Go test TestMLMGolden reads the file).

The model is the Hugging Face-structured BertForMaskedLM of gen_hf_bert.py
(tied decoder, padding_idx on the word embeddings, dropout 0) at vocabulary
40, hidden 16, 2 layers, 4 heads, intermediate 24. Fixed ids, attention
mask and labels (-100 except at the masked positions) give the loss
F.cross_entropy(logits, labels, ignore_index=-100) and the gradient of
every parameter. Then one step as Hugging Face's Trainer takes it:
clip_grad_norm_(1.0), AdamW (lr 1e-3, betas 0.9/0.999, eps 1e-8, weight
decay 0.01 except biases and LayerNorm weights). Float64 from float32
weights.

Stored: param.<name> (before), in.input_ids / in.attention_mask /
in.labels (int64), out.loss, grad.<name>, out.grad_norm, step.<name>
(after the step).
"""
import importlib.util
import os

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("gen_hf_bert", os.path.join(HERE, "gen_hf_bert.py"))
hf = importlib.util.module_from_spec(spec)
spec.loader.exec_module(hf)

OUT = os.path.join(HERE, "..", "zoo", "mlm", "testdata", "mlm_golden.safetensors")


def main():
    torch.set_default_dtype(torch.float64)
    gen = torch.Generator().manual_seed(11)
    c = hf.Cfg()
    m = hf.BertForMaskedLM(c)
    hf.randomize(m, gen)
    ids = torch.tensor([[3, 6, 5, 8, 6, 30, 10, 5, 12, 4],
                        [3, 24, 5, 26, 18, 4, 0, 0, 0, 0]], dtype=torch.int64)
    mask = (ids != 0).to(torch.int64)
    labels = torch.full_like(ids, -100)
    # [MASK] positions, one random replacement (30 standing for "light")
    # and one unchanged token, as the 80/10/10 rule produces them.
    for (b, t, y) in [(0, 2, 7), (0, 7, 11), (0, 5, 7), (1, 2, 25), (1, 4, 18)]:
        labels[b, t] = y
    out = {"in.input_ids": ids.numpy(), "in.attention_mask": mask.numpy(), "in.labels": labels.numpy()}
    sd = {k: v for k, v in m.state_dict().items() if k not in ("cls.predictions.decoder.weight", "cls.predictions.decoder.bias")}
    for k, v in sd.items():
        out["param." + k] = v.numpy().copy()

    loss, _, _ = m(ids, mask, torch.zeros_like(ids), labels)
    loss.backward()
    out["out.loss"] = loss.detach().numpy().reshape(())
    named = dict(m.named_parameters())
    for k in sd:
        out["grad." + k] = named[k].grad.numpy().copy()

    decay = [p for n, p in m.named_parameters() if not (n.endswith(".bias") or n.endswith("LayerNorm.weight"))]
    no_decay = [p for n, p in m.named_parameters() if n.endswith(".bias") or n.endswith("LayerNorm.weight")]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    norm = torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
    out["out.grad_norm"] = norm.detach().numpy().reshape(())
    opt.step()
    for k in sd:
        out["step." + k] = named[k].detach().numpy().copy()
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    hf.write_safetensors(OUT, out)
    print("wrote", OUT, "loss", float(out["out.loss"]), "grad norm", float(out["out.grad_norm"]))


if __name__ == "__main__":
    main()
