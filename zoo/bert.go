package zoo

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/nn"
	"github.com/sslzoo/sslzoo/tensor"
)

// BERTConfig describes a BERT encoder as Hugging Face's BertConfig does.
// Zero values of the fields marked so pick defaults; dropout rates are
// taken as given (0 is a valid rate).
type BERTConfig struct {
	VocabSize int // 0 means 30522 (bert-base-uncased)
	Hidden    int // hidden size
	Layers    int // number of encoder layers
	Heads     int // attention heads; Hidden must divide by it
	// Intermediate is the feed-forward width; 0 means 4*Hidden.
	Intermediate int
	// MaxPositions is the position table size; 0 means 512.
	MaxPositions int
	// TypeVocabSize is the number of segment (token type) ids; 0 means 2.
	TypeVocabSize int
	// PadTokenID is the padding id, whose word-embedding row gets no
	// gradient from the lookup (PyTorch's padding_idx).
	PadTokenID int
	// Eps is the LayerNorm epsilon; 0 means 1e-12.
	Eps float32
	// HiddenDropout and AttentionDropout are hidden_dropout_prob and
	// attention_probs_dropout_prob (0.1 in the published models).
	HiddenDropout, AttentionDropout float32
	// Pooler adds bert.pooler (tanh dense on the first token).
	Pooler bool
	// MLMHead adds the masked-language-model head cls.predictions, whose
	// decoder shares the word embedding matrix.
	MLMHead bool
}

func (c BERTConfig) withDefaults() (BERTConfig, error) {
	if c.VocabSize == 0 {
		c.VocabSize = 30522
	}
	if c.Intermediate == 0 {
		c.Intermediate = 4 * c.Hidden
	}
	if c.MaxPositions == 0 {
		c.MaxPositions = 512
	}
	if c.TypeVocabSize == 0 {
		c.TypeVocabSize = 2
	}
	if c.Eps == 0 {
		c.Eps = 1e-12
	}
	switch {
	case c.VocabSize < 1 || c.MaxPositions < 1 || c.TypeVocabSize < 1:
		return c, fmt.Errorf("bert: vocabulary %d, positions %d, token types %d must be positive", c.VocabSize, c.MaxPositions, c.TypeVocabSize)
	case c.Hidden < 1 || c.Layers < 0 || c.Heads < 1 || c.Hidden%c.Heads != 0 || c.Intermediate < 1:
		return c, fmt.Errorf("bert: hidden %d, layers %d, heads %d, intermediate %d: need hidden > 0 divisible by heads > 0", c.Hidden, c.Layers, c.Heads, c.Intermediate)
	case c.PadTokenID < 0 || c.PadTokenID >= c.VocabSize:
		return c, fmt.Errorf("bert: pad token id %d outside the vocabulary of %d", c.PadTokenID, c.VocabSize)
	case !(c.Eps > 0):
		return c, fmt.Errorf("bert: LayerNorm epsilon %g", c.Eps)
	case !(c.HiddenDropout >= 0 && c.HiddenDropout < 1) || !(c.AttentionDropout >= 0 && c.AttentionDropout < 1):
		return c, fmt.Errorf("bert: dropout rates %g and %g must lie in [0, 1)", c.HiddenDropout, c.AttentionDropout)
	}
	return c, nil
}

// BERT is a Hugging Face BERT encoder: token + position + segment
// embeddings, post-norm layers with exact GELU, and optionally the pooler
// and the MLM head.
//
// State names follow Hugging Face. Without the MLM head they are
// BertModel's (embeddings.word_embeddings.weight, encoder.layer.0...,
// pooler.dense...). With it they are BertForMaskedLM's: the encoder under
// "bert." and the head under "cls.predictions." (transform.dense,
// transform.LayerNorm, bias). The decoder weight is the word embedding
// matrix itself, so it appears once, as in Hugging Face's safetensors files.
type BERT struct {
	Config     BERTConfig
	Embeddings *BERTEmbeddings
	Layers     []*BERTLayer
	Pooler     *nn.Linear // pooler.dense; nil without Config.Pooler
	MLM        *MLMHead   // nil without Config.MLMHead

	training bool
	rng      *rand.Rand
}

// BERTInput is a batch of token sequences, each slice [Batch*Seq] row-major.
type BERTInput struct {
	Batch, Seq int
	IDs        []int
	// TokenTypes are segment ids; nil means all 0.
	TokenTypes []int
	// Mask is 1 for real tokens and 0 for padding; nil attends everywhere.
	Mask []int
}

// BERTOutput holds the encoder's results.
type BERTOutput struct {
	Sequence *autograd.Var // last hidden states [Batch, Seq, Hidden]
	Pooled   *autograd.Var // pooler output [Batch, Hidden], or nil
}

// NewBERT builds a BERT initialised as Hugging Face does: Linear and
// Embedding weights normal with std 0.02 (the padding row zero), biases 0,
// LayerNorms 1 and 0. rng also drives dropout in training mode.
func NewBERT(cfg BERTConfig, rng *rand.Rand) (*BERT, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	h := cfg.Hidden
	m := &BERT{Config: cfg, rng: rng, training: true}
	m.Embeddings = &BERTEmbeddings{
		Word:      nn.NewEmbedding(cfg.VocabSize, h, rng),
		Position:  nn.NewEmbedding(cfg.MaxPositions, h, rng),
		TokenType: nn.NewEmbedding(cfg.TypeVocabSize, h, rng),
		LayerNorm: nn.NewLayerNorm(h, cfg.Eps),
	}
	var linears []*nn.Linear
	for range cfg.Layers {
		l := &BERTLayer{
			Query:         nn.NewLinear(h, h, true, rng),
			Key:           nn.NewLinear(h, h, true, rng),
			Value:         nn.NewLinear(h, h, true, rng),
			AttnOut:       nn.NewLinear(h, h, true, rng),
			AttnNorm:      nn.NewLayerNorm(h, cfg.Eps),
			Intermediate:  nn.NewLinear(h, cfg.Intermediate, true, rng),
			Output:        nn.NewLinear(cfg.Intermediate, h, true, rng),
			OutNorm:       nn.NewLayerNorm(h, cfg.Eps),
			heads:         cfg.Heads,
			hiddenDropout: cfg.HiddenDropout,
			attnDropout:   cfg.AttentionDropout,
			training:      true,
			rng:           rng,
		}
		m.Layers = append(m.Layers, l)
		linears = append(linears, l.Query, l.Key, l.Value, l.AttnOut, l.Intermediate, l.Output)
	}
	if cfg.Pooler {
		m.Pooler = nn.NewLinear(h, h, true, rng)
		linears = append(linears, m.Pooler)
	}
	if cfg.MLMHead {
		m.MLM = &MLMHead{
			Dense:     nn.NewLinear(h, h, true, rng),
			LayerNorm: nn.NewLayerNorm(h, cfg.Eps),
			Bias:      autograd.NewParam("cls.predictions.bias", tensor.New(cfg.VocabSize)),
			word:      m.Embeddings.Word,
		}
		linears = append(linears, m.MLM.Dense)
	}
	for _, l := range linears {
		nn.Normal(l.Weight.Value, 0, 0.02, rng)
		l.Bias.Value.Zero()
	}
	for _, e := range []*nn.Embedding{m.Embeddings.Word, m.Embeddings.Position, m.Embeddings.TokenType} {
		nn.Normal(e.Weight.Value, 0, 0.02, rng)
	}
	w := m.Embeddings.Word.Weight.Value
	clear(w.Data[cfg.PadTokenID*h : (cfg.PadTokenID+1)*h])
	return m, nil
}

// FeatureDim is the hidden size.
func (m *BERT) FeatureDim() int { return m.Config.Hidden }

// check validates a batch against the configuration.
func (m *BERT) check(in BERTInput) {
	n := in.Batch * in.Seq
	switch {
	case in.Batch < 1 || in.Seq < 1:
		autograd.Failf("BERT", "batch %d x sequence %d", in.Batch, in.Seq)
	case in.Seq > m.Config.MaxPositions:
		autograd.Failf("BERT", "sequence length %d exceeds the %d positions", in.Seq, m.Config.MaxPositions)
	case len(in.IDs) != n:
		autograd.Failf("BERT", "%d token ids for batch %d x sequence %d", len(in.IDs), in.Batch, in.Seq)
	case in.TokenTypes != nil && len(in.TokenTypes) != n:
		autograd.Failf("BERT", "%d token type ids for batch %d x sequence %d", len(in.TokenTypes), in.Batch, in.Seq)
	case in.Mask != nil && len(in.Mask) != n:
		autograd.Failf("BERT", "%d attention mask values for batch %d x sequence %d", len(in.Mask), in.Batch, in.Seq)
	}
	for i, id := range in.IDs {
		if id < 0 || id >= m.Config.VocabSize {
			autograd.Failf("BERT", "token id %d at %d outside the vocabulary of %d", id, i, m.Config.VocabSize)
		}
	}
	for i, t := range in.TokenTypes {
		if t < 0 || t >= m.Config.TypeVocabSize {
			autograd.Failf("BERT", "token type id %d at %d outside [0, %d)", t, i, m.Config.TypeVocabSize)
		}
	}
}

// Forward encodes a batch. Padding (Mask 0) is excluded from attention by
// adding the most negative float32 to its attention scores, as Hugging Face
// does.
func (m *BERT) Forward(tp *autograd.Tape, in BERTInput) BERTOutput {
	m.check(in)
	x := m.Embeddings.forward(tp, in, m.Config, m.training, m.rng)
	var mask *autograd.Var
	if in.Mask != nil {
		t := tp.Alloc(in.Batch, 1, 1, in.Seq)
		for i, v := range in.Mask {
			t.Data[i] = 0
			if v == 0 {
				t.Data[i] = -math.MaxFloat32
			}
		}
		mask = autograd.Const(t)
	}
	for _, l := range m.Layers {
		x = l.Forward(tp, x, mask)
	}
	out := BERTOutput{Sequence: x}
	if m.Pooler != nil {
		first := tp.Reshape(tp.Slice(x, 1, 0, 1), in.Batch, m.Config.Hidden)
		out.Pooled = tp.Tanh(m.Pooler.Forward(tp, first))
	}
	return out
}

// MLMLogits applies the MLM head to hidden states [..., Hidden] (e.g. only
// the masked positions) and returns vocabulary logits [..., VocabSize].
func (m *BERT) MLMLogits(tp *autograd.Tape, hidden *autograd.Var) *autograd.Var {
	if m.MLM == nil {
		autograd.Failf("BERT", "model built without the MLM head (BERTConfig.MLMHead)")
	}
	return m.MLM.Forward(tp, hidden)
}

// CollectState implements nn.Module with Hugging Face's names.
func (m *BERT) CollectState(prefix string, s *nn.State) {
	enc := prefix
	if m.MLM != nil {
		enc = nn.Join(prefix, "bert")
	}
	m.Embeddings.CollectState(nn.Join(enc, "embeddings"), s)
	for i, l := range m.Layers {
		l.CollectState(nn.Join(enc, "encoder.layer."+strconv.Itoa(i)), s)
	}
	if m.Pooler != nil {
		m.Pooler.CollectState(nn.Join(enc, "pooler.dense"), s)
	}
	if m.MLM != nil {
		m.MLM.CollectState(nn.Join(prefix, "cls.predictions"), s)
	}
}

// SetTraining implements nn.Module: dropout is active in training mode
// (the default, as in PyTorch).
func (m *BERT) SetTraining(on bool) {
	m.training = on
	for _, l := range m.Layers {
		l.SetTraining(on)
	}
}

// BERTEmbeddings sums word, position and token type embeddings, then
// normalises (embeddings.word_embeddings, .position_embeddings,
// .token_type_embeddings, .LayerNorm).
type BERTEmbeddings struct {
	Word, Position, TokenType *nn.Embedding
	LayerNorm                 *nn.LayerNorm
}

// forward embeds a checked batch into [Batch, Seq, Hidden].
func (e *BERTEmbeddings) forward(tp *autograd.Tape, in BERTInput, cfg BERTConfig, training bool, rng *rand.Rand) *autograd.Var {
	b, t := in.Batch, in.Seq
	x := tp.Embedding(e.Word.Weight, in.IDs, []int{b, t})
	x = e.stopPadGrad(tp, x, in.IDs, cfg.PadTokenID)
	types := in.TokenTypes
	if types == nil {
		types = make([]int, b*t)
	}
	x = tp.Add(x, tp.Embedding(e.TokenType.Weight, types, []int{b, t}))
	pos := make([]int, t)
	for i := range pos {
		pos[i] = i
	}
	x = tp.Add(x, tp.Embedding(e.Position.Weight, pos, []int{1, t}))
	return tp.Dropout(e.LayerNorm.Forward(tp, x), cfg.HiddenDropout, training, rng)
}

// stopPadGrad keeps the value of looked-up embeddings but blocks their
// gradient at padding tokens, so the padding row learns nothing from the
// lookup (PyTorch's padding_idx). It computes x*keep + detach(x)*(1-keep),
// which is x exactly.
func (e *BERTEmbeddings) stopPadGrad(tp *autograd.Tape, x *autograd.Var, ids []int, pad int) *autograd.Var {
	if !x.RequiresGrad() {
		return x
	}
	hasPad := false
	for _, id := range ids {
		hasPad = hasPad || id == pad
	}
	if !hasPad {
		return x
	}
	keep := tp.Alloc(len(ids)/x.Shape()[1], x.Shape()[1], 1)
	drop := tp.Alloc(keep.Shape...)
	for i, id := range ids {
		keep.Data[i], drop.Data[i] = 1, 0
		if id == pad {
			keep.Data[i], drop.Data[i] = 0, 1
		}
	}
	return tp.Add(tp.Mul(x, autograd.Const(keep)), tp.Mul(tp.Detach(x), autograd.Const(drop)))
}

// CollectState implements nn.Module.
func (e *BERTEmbeddings) CollectState(prefix string, s *nn.State) {
	e.Word.CollectState(nn.Join(prefix, "word_embeddings"), s)
	e.Position.CollectState(nn.Join(prefix, "position_embeddings"), s)
	e.TokenType.CollectState(nn.Join(prefix, "token_type_embeddings"), s)
	e.LayerNorm.CollectState(nn.Join(prefix, "LayerNorm"), s)
}

// SetTraining implements nn.Module.
func (e *BERTEmbeddings) SetTraining(bool) {}

// BERTLayer is one post-norm encoder layer:
// a = LN(x + drop(dense(attn(x)))), out = LN(a + drop(dense(gelu(dense(a))))).
type BERTLayer struct {
	Query, Key, Value *nn.Linear    // attention.self.query/key/value
	AttnOut           *nn.Linear    // attention.output.dense
	AttnNorm          *nn.LayerNorm // attention.output.LayerNorm
	Intermediate      *nn.Linear    // intermediate.dense
	Output            *nn.Linear    // output.dense
	OutNorm           *nn.LayerNorm // output.LayerNorm

	heads                      int
	hiddenDropout, attnDropout float32
	training                   bool
	rng                        *rand.Rand
}

// Forward applies the layer to [B, T, H] with an optional additive mask
// [B, 1, 1, T].
func (l *BERTLayer) Forward(tp *autograd.Tape, x, mask *autograd.Var) *autograd.Var {
	training := l.training
	q, k, v := l.Query.Forward(tp, x), l.Key.Forward(tp, x), l.Value.Forward(tp, x)
	ctx := nn.AttentionDropout(tp, q, k, v, l.heads, mask, l.attnDropout, training, l.rng)
	a := l.AttnNorm.Forward(tp, tp.Add(tp.Dropout(l.AttnOut.Forward(tp, ctx), l.hiddenDropout, training, l.rng), x))
	h := l.Output.Forward(tp, tp.GELU(l.Intermediate.Forward(tp, a)))
	return l.OutNorm.Forward(tp, tp.Add(tp.Dropout(h, l.hiddenDropout, training, l.rng), a))
}

// CollectState implements nn.Module.
func (l *BERTLayer) CollectState(prefix string, s *nn.State) {
	l.Query.CollectState(nn.Join(prefix, "attention.self.query"), s)
	l.Key.CollectState(nn.Join(prefix, "attention.self.key"), s)
	l.Value.CollectState(nn.Join(prefix, "attention.self.value"), s)
	l.AttnOut.CollectState(nn.Join(prefix, "attention.output.dense"), s)
	l.AttnNorm.CollectState(nn.Join(prefix, "attention.output.LayerNorm"), s)
	l.Intermediate.CollectState(nn.Join(prefix, "intermediate.dense"), s)
	l.Output.CollectState(nn.Join(prefix, "output.dense"), s)
	l.OutNorm.CollectState(nn.Join(prefix, "output.LayerNorm"), s)
}

// SetTraining implements nn.Module: dropout is active in training mode.
func (l *BERTLayer) SetTraining(on bool) { l.training = on }

// MLMHead is cls.predictions: dense, GELU, LayerNorm, then a decoder that
// reuses the word embedding matrix, plus its own bias.
type MLMHead struct {
	Dense     *nn.Linear    // transform.dense
	LayerNorm *nn.LayerNorm // transform.LayerNorm
	Bias      *autograd.Var // bias [VocabSize]

	word *nn.Embedding
}

// Forward maps hidden states [..., H] to logits [..., VocabSize].
func (h *MLMHead) Forward(tp *autograd.Tape, x *autograd.Var) *autograd.Var {
	x = h.LayerNorm.Forward(tp, tp.GELU(h.Dense.Forward(tp, x)))
	return tp.Linear(x, h.word.Weight, h.Bias)
}

// CollectState implements nn.Module. The tied decoder weight is not listed
// again.
func (h *MLMHead) CollectState(prefix string, s *nn.State) {
	h.Dense.CollectState(nn.Join(prefix, "transform.dense"), s)
	h.LayerNorm.CollectState(nn.Join(prefix, "transform.LayerNorm"), s)
	s.Params = append(s.Params, nn.Param{Name: nn.Join(prefix, "bias"), Var: h.Bias})
}

// SetTraining implements nn.Module.
func (h *MLMHead) SetTraining(bool) {}
