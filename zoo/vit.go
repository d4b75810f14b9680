package zoo

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"sync"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/nn"
	"github.com/sslzoo/sslzoo/tensor"
)

// ViTConfig describes a Vision Transformer with timm's layout: a class
// token, learned absolute position embeddings and pre-norm blocks. Zero
// values pick the defaults noted on each field.
type ViTConfig struct {
	// ImageSize is the (square) training image size; the position table
	// holds (ImageSize/PatchSize)^2 entries. 0 means 224.
	ImageSize int
	// PatchSize is the side of a square patch; 0 means 16.
	PatchSize int
	// InChannels is the number of input channels; 0 means 3.
	InChannels int
	// Dim, Depth and Heads are the embedding width, the number of blocks and
	// the number of attention heads (Dim must divide by Heads).
	Dim, Depth, Heads int
	// MLPRatio sizes the MLP hidden layer as Dim*MLPRatio; 0 means 4.
	MLPRatio float64
	// Pool is "cls" (the default: final norm, then the class token),
	// "mean" (average of the patch tokens, then fc_norm), as timm names
	// them for global_pool "token" and "avg", or "norm-mean" (final norm
	// over every token, then the average of the patch tokens: timm's "avg"
	// with fc_norm=False). "norm-mean" keeps the "cls" state dict, so one
	// set of weights (an MAE encoder's) can be embedded either way.
	Pool string
	// NumClasses sizes the head; 0 drops it and Forward returns the pooled
	// features.
	NumClasses int
	// Eps is the LayerNorm epsilon; 0 means 1e-6 (timm's ViTs).
	Eps float32
}

func (c ViTConfig) withDefaults() (ViTConfig, error) {
	if c.ImageSize == 0 {
		c.ImageSize = 224
	}
	if c.PatchSize == 0 {
		c.PatchSize = 16
	}
	if c.InChannels == 0 {
		c.InChannels = 3
	}
	if c.MLPRatio == 0 {
		c.MLPRatio = 4
	}
	if c.Pool == "" {
		c.Pool = "cls"
	}
	if c.Eps == 0 {
		c.Eps = 1e-6
	}
	switch {
	case c.PatchSize < 1 || c.ImageSize < c.PatchSize || c.ImageSize%c.PatchSize != 0:
		return c, fmt.Errorf("vit: image size %d is not a positive multiple of patch size %d", c.ImageSize, c.PatchSize)
	case c.InChannels < 1:
		return c, fmt.Errorf("vit: %d input channels", c.InChannels)
	case c.Dim < 1 || c.Depth < 0 || c.Heads < 1 || c.Dim%c.Heads != 0:
		return c, fmt.Errorf("vit: dim %d, depth %d, heads %d: need dim > 0 divisible by heads > 0", c.Dim, c.Depth, c.Heads)
	case !(c.MLPRatio > 0) || math.IsInf(c.MLPRatio, 0) || int(float64(c.Dim)*c.MLPRatio) < 1:
		return c, fmt.Errorf("vit: MLP ratio %g", c.MLPRatio)
	case c.Pool != "cls" && c.Pool != "mean" && c.Pool != "norm-mean":
		return c, fmt.Errorf("vit: pool %q not supported (\"cls\", \"mean\" or \"norm-mean\")", c.Pool)
	case c.NumClasses < 0:
		return c, fmt.Errorf("vit: %d classes", c.NumClasses)
	case !(c.Eps > 0):
		return c, fmt.Errorf("vit: LayerNorm epsilon %g", c.Eps)
	}
	return c, nil
}

// Grid is the patch grid side at the training image size.
func (c ViTConfig) Grid() int { return c.ImageSize / c.PatchSize }

// ViT is a Vision Transformer with timm's state_dict names: patch_embed.proj,
// cls_token, pos_embed, blocks.N.*, norm (or fc_norm), head.
//
// Inputs of another size than Config.ImageSize (any multiple of the patch
// size, square or not) get the patch part of the position table resized by
// bicubic interpolation with align_corners=False and no antialiasing. That
// is MAE's interpolate_pos_embed, and timm's resample_abs_pos_embed when
// upsampling (timm antialiases when shrinking; sslzoo does not, so the ONNX
// graph can reproduce it with plain matmuls).
type ViT struct {
	Config     ViTConfig
	PatchEmbed *nn.Conv2d // patch_embed.proj
	ClsToken   *autograd.Var
	PosEmbed   *autograd.Var
	Blocks     []*ViTBlock
	// Norm is the final LayerNorm for Pool "cls" and "norm-mean"; FCNorm
	// the one after pooling for Pool "mean". Exactly one is set.
	Norm, FCNorm *nn.LayerNorm
	// Head is nil when Config.NumClasses is 0.
	Head *nn.Linear

	mu     sync.Mutex
	resize map[[2]int]*autograd.Var // bicubic matrices by (from, to)
}

// NewViT builds a ViT initialised as timm does by default: position
// embeddings and Linear weights truncated-normal with std 0.02, Linear
// biases 0, class token normal with std 1e-6, LayerNorms 1 and 0, the patch
// projection with PyTorch's Conv2d default.
func NewViT(cfg ViTConfig, rng *rand.Rand) (*ViT, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	d, p, g := cfg.Dim, cfg.PatchSize, cfg.Grid()
	m := &ViT{
		Config:     cfg,
		PatchEmbed: nn.NewConv2d(cfg.InChannels, d, p, autograd.ConvParams{StrideH: p, StrideW: p}, true, rng),
		ClsToken:   autograd.NewParam("cls_token", tensor.New(1, 1, d)),
		PosEmbed:   autograd.NewParam("pos_embed", tensor.New(1, 1+g*g, d)),
	}
	nn.TruncNormal(m.PosEmbed.Value, 0, 0.02, -2, 2, rng)
	nn.Normal(m.ClsToken.Value, 0, 1e-6, rng)
	hidden := int(float64(d) * cfg.MLPRatio)
	for range cfg.Depth {
		m.Blocks = append(m.Blocks, newViTBlock(d, hidden, cfg.Heads, cfg.Eps, rng))
	}
	if cfg.Pool != "mean" {
		m.Norm = nn.NewLayerNorm(d, cfg.Eps)
	} else {
		m.FCNorm = nn.NewLayerNorm(d, cfg.Eps)
	}
	if cfg.NumClasses > 0 {
		m.Head = nn.NewLinear(d, cfg.NumClasses, true, rng)
	}
	linears := []*nn.Linear{m.Head}
	for _, b := range m.Blocks {
		linears = append(linears, b.QKV, b.Proj, b.FC1, b.FC2)
	}
	for _, l := range linears {
		if l != nil {
			nn.TruncNormal(l.Weight.Value, 0, 0.02, -2, 2, rng)
			l.Bias.Value.Zero()
		}
	}
	return m, nil
}

// FeatureDim is the width of the pooled features (Dim).
func (m *ViT) FeatureDim() int { return m.Config.Dim }

// OutputDim is the width of Forward's output: NumClasses, or Dim without a
// head.
func (m *ViT) OutputDim() int {
	if m.Head != nil {
		return m.Config.NumClasses
	}
	return m.Config.Dim
}

// Embed maps images [B, C, H, W] to tokens [B, 1+N, Dim]: the class token
// followed by the N patch embeddings, position embeddings added (resized
// when H, W differ from the training size).
func (m *ViT) Embed(tp *autograd.Tape, x *autograd.Var) *autograd.Var {
	s := x.Shape()
	p := m.Config.PatchSize
	if len(s) != 4 || s[1] != m.Config.InChannels || s[2] < p || s[3] < p || s[2]%p != 0 || s[3]%p != 0 {
		autograd.Failf("ViT", "input shape %v, want [B, %d, H, W] with H and W multiples of the patch size %d",
			s, m.Config.InChannels, p)
	}
	b, d, gh, gw := s[0], m.Config.Dim, s[2]/p, s[3]/p
	patches := m.PatchEmbed.Forward(tp, x) // [B, D, gh, gw]
	patches = tp.Transpose(tp.Reshape(patches, b, d, gh*gw), 0, 2, 1)
	// Broadcast the class token over the batch by adding it to zeros.
	cls := tp.Add(autograd.Const(tp.AllocZeroed(b, 1, d)), m.ClsToken)
	tokens := tp.Concat([]*autograd.Var{cls, patches}, 1)
	return tp.Add(tokens, m.posEmbed(tp, gh, gw))
}

// posEmbed returns the position table for a gh x gw patch grid, [1, 1+gh*gw, D].
func (m *ViT) posEmbed(tp *autograd.Tape, gh, gw int) *autograd.Var {
	g := m.Config.Grid()
	if gh == g && gw == g {
		return m.PosEmbed
	}
	d := m.Config.Dim
	cls := tp.Slice(m.PosEmbed, 1, 0, 1)
	grid := tp.Reshape(tp.Slice(m.PosEmbed, 1, 1, 1+g*g), g, g*d) // rows, (cols, D)
	if gh != g {
		grid = tp.MatMul(m.resizeMatrix(g, gh, false), grid) // [gh, g*D]
	}
	if gw != g {
		// Bring the column axis last, resize it, and put it back.
		cols := tp.Transpose(tp.Reshape(grid, gh, g, d), 0, 2, 1) // [gh, D, g]
		cols = tp.MatMul(cols, m.resizeMatrix(g, gw, true))       // [gh, D, gw]
		grid = tp.Transpose(cols, 0, 2, 1)                        // [gh, gw, D]
	}
	grid = tp.Reshape(grid, 1, gh*gw, d)
	return tp.Concat([]*autograd.Var{cls, grid}, 1)
}

// resizeMatrix returns the bicubic matrix [to, from], or its transpose
// [from, to] when transposed, as a constant shared across calls.
func (m *ViT) resizeMatrix(from, to int, transposed bool) *autograd.Var {
	m.mu.Lock()
	defer m.mu.Unlock()
	key := [2]int{from, to}
	if transposed {
		key = [2]int{-from, -to}
	}
	if v, ok := m.resize[key]; ok {
		return v
	}
	w := bicubicMatrix(from, to)
	var t *tensor.Tensor
	if transposed {
		t = tensor.New(from, to)
		for i := range to {
			for j := range from {
				t.Data[j*to+i] = w[i*from+j]
			}
		}
	} else {
		t = tensor.FromSlice(w, to, from)
	}
	if m.resize == nil {
		m.resize = map[[2]int]*autograd.Var{}
	}
	v := autograd.Const(t)
	m.resize[key] = v
	return v
}

// Encode runs the transformer blocks over tokens [B, T, Dim] (no final
// norm).
func (m *ViT) Encode(tp *autograd.Tape, tokens *autograd.Var) *autograd.Var {
	for _, b := range m.Blocks {
		tokens = b.Forward(tp, tokens)
	}
	return tokens
}

// Features maps images to pooled, normalised features [B, Dim].
func (m *ViT) Features(tp *autograd.Tape, x *autograd.Var) *autograd.Var {
	if m.Config.Pool == "mean" {
		h := m.Encode(tp, m.Embed(tp, x))
		return m.FCNorm.Forward(tp, tp.Mean(tp.Slice(h, 1, 1, h.Shape()[1]), []int{1}, false))
	}
	return m.NormPooled(tp, x, m.Config.Pool)
}

// FeatureMap is the patch tokens after the final norm (when the ViT has
// one) on their grid, [N, Dim, H/PatchSize, W/PatchSize]: what dense heads
// (Colorization's) predict from.
func (m *ViT) FeatureMap(tp *autograd.Tape, x *autograd.Var) *autograd.Var {
	s, p, d := x.Shape(), m.Config.PatchSize, m.Config.Dim
	h := m.Encode(tp, m.Embed(tp, x))
	if m.Norm != nil {
		h = m.Norm.Forward(tp, h)
	}
	gh, gw := s[2]/p, s[3]/p
	patches := tp.Slice(h, 1, 1, 1+gh*gw) // [N, gh*gw, D]
	return tp.Reshape(tp.Transpose(patches, 0, 2, 1), s[0], d, gh, gw)
}

// NormPooled pools the tokens after the final norm, as pool says: "cls"
// (the class token) or "norm-mean" (the mean of the patch tokens),
// whatever the ViT's own Pool. It needs Norm, so a ViT built with Pool
// "mean" has only its own Features.
func (m *ViT) NormPooled(tp *autograd.Tape, x *autograd.Var, pool string) *autograd.Var {
	h := m.Norm.Forward(tp, m.Encode(tp, m.Embed(tp, x)))
	if pool == "cls" {
		return tp.Reshape(tp.Slice(h, 1, 0, 1), h.Shape()[0], m.Config.Dim)
	}
	return tp.Mean(tp.Slice(h, 1, 1, h.Shape()[1]), []int{1}, false)
}

// Forward maps images to logits [B, NumClasses], or to the pooled features
// without a head.
func (m *ViT) Forward(tp *autograd.Tape, x *autograd.Var) *autograd.Var {
	h := m.Features(tp, x)
	if m.Head != nil {
		h = m.Head.Forward(tp, h)
	}
	return h
}

// CollectState implements nn.Module with timm's names.
func (m *ViT) CollectState(prefix string, s *nn.State) {
	s.Params = append(s.Params, nn.Param{Name: nn.Join(prefix, "cls_token"), Var: m.ClsToken})
	s.Params = append(s.Params, nn.Param{Name: nn.Join(prefix, "pos_embed"), Var: m.PosEmbed})
	m.PatchEmbed.CollectState(nn.Join(prefix, "patch_embed.proj"), s)
	for i, b := range m.Blocks {
		b.CollectState(nn.Join(prefix, "blocks."+strconv.Itoa(i)), s)
	}
	if m.Norm != nil {
		m.Norm.CollectState(nn.Join(prefix, "norm"), s)
	}
	if m.FCNorm != nil {
		m.FCNorm.CollectState(nn.Join(prefix, "fc_norm"), s)
	}
	if m.Head != nil {
		m.Head.CollectState(nn.Join(prefix, "head"), s)
	}
}

// SetTraining implements nn.Module. A ViT has no dropout or batch
// statistics, so both modes compute the same thing.
func (m *ViT) SetTraining(bool) {}

// ViTBlock is a pre-norm transformer block:
// x + attn(norm1(x)), then + mlp(norm2(x)).
type ViTBlock struct {
	Norm1, Norm2 *nn.LayerNorm
	QKV, Proj    *nn.Linear // attn.qkv, attn.proj
	FC1, FC2     *nn.Linear // mlp.fc1, mlp.fc2
	Heads        int
}

func newViTBlock(dim, hidden, heads int, eps float32, rng *rand.Rand) *ViTBlock {
	return &ViTBlock{
		Norm1: nn.NewLayerNorm(dim, eps),
		QKV:   nn.NewLinear(dim, 3*dim, true, rng),
		Proj:  nn.NewLinear(dim, dim, true, rng),
		Norm2: nn.NewLayerNorm(dim, eps),
		FC1:   nn.NewLinear(dim, hidden, true, rng),
		FC2:   nn.NewLinear(hidden, dim, true, rng),
		Heads: heads,
	}
}

// Forward applies the block to tokens [B, T, D].
func (b *ViTBlock) Forward(tp *autograd.Tape, x *autograd.Var) *autograd.Var {
	d := x.Shape()[2]
	qkv := b.QKV.Forward(tp, b.Norm1.Forward(tp, x)) // [B, T, 3D]: q, k, v side by side
	q, k, v := tp.Slice(qkv, 2, 0, d), tp.Slice(qkv, 2, d, 2*d), tp.Slice(qkv, 2, 2*d, 3*d)
	x = tp.Add(x, b.Proj.Forward(tp, nn.Attention(tp, q, k, v, b.Heads, nil)))
	h := b.FC2.Forward(tp, tp.GELU(b.FC1.Forward(tp, b.Norm2.Forward(tp, x))))
	return tp.Add(x, h)
}

// CollectState implements nn.Module.
func (b *ViTBlock) CollectState(prefix string, s *nn.State) {
	b.Norm1.CollectState(nn.Join(prefix, "norm1"), s)
	b.QKV.CollectState(nn.Join(prefix, "attn.qkv"), s)
	b.Proj.CollectState(nn.Join(prefix, "attn.proj"), s)
	b.Norm2.CollectState(nn.Join(prefix, "norm2"), s)
	b.FC1.CollectState(nn.Join(prefix, "mlp.fc1"), s)
	b.FC2.CollectState(nn.Join(prefix, "mlp.fc2"), s)
}

// SetTraining implements nn.Module.
func (b *ViTBlock) SetTraining(bool) {}
