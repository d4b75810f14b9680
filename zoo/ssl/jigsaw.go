package ssl

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/nn"
	"github.com/sslzoo/sslzoo/tensor"
	"github.com/sslzoo/sslzoo/zoo"
)

// DefaultJigsawPermutations is the size of Jigsaw's permutation set when
// none is given.
const DefaultJigsawPermutations = 100

// The paper cuts 64-px tiles from 75-px cells (a 225-px crop), so a tile
// spans 64/75 of its cell and the rest is the random gap.
const jigsawTileNum, jigsawTileDen = 64, 75

// jigsawStream separates the PCG streams of the permutation set's first
// draw and of the per-step tiling draws (whose stream is the step).
const jigsawStream = 0x6a6967736177 // "jigsaw"

// JigsawConfig configures Jigsaw (Noroozi & Favaro 2016, "Unsupervised
// Learning of Visual Representations by Solving Jigsaw Puzzles").
type JigsawConfig struct {
	// Permutations is the number of puzzle classes: the size of the
	// maximal-Hamming-distance set (MaxHammingPermutations) the classifier
	// tells apart (100; the paper compares 100 to 1000).
	Permutations int
	// Seed picks the set's first permutation and, with the step number,
	// every step's grid offsets, tile jitter and puzzle draws. The method
	// keeps it in its state ("puzzle_seed"), beside the set itself
	// ("permutations"), so a restored checkpoint draws as the saved run.
	Seed uint64
	// Size is the side of the crops Step expects; Tile the side of the
	// tiles. A crop is cut into a 3x3 grid of Size/3-px cells (at a random
	// offset when 3 does not divide Size) and a Tile-px tile is taken at a
	// random place in each cell, so neighbouring tiles are parted by random
	// gaps. Tile 0 means the paper's 64/75 of a cell, rounded down to a
	// multiple of a ViT's patch size.
	Size, Tile int
	// HiddenDim is the classifier's hidden width (4096, the paper's fc7).
	HiddenDim int
	Optim     OptimConfig
}

// DefaultJigsawConfig is the paper's recipe for crops of side size: SGD
// with momentum 0.9 at 0.01*batch/256, weight decay 5e-4 (the reference
// implementation's), no warmup, and a cosine decay to 0 in place of the
// paper's step decay; 100 permutations; a classifier of one hidden layer
// of 4096 (BatchNorm, ReLU) over the nine concatenated tile features. The
// caller sets Seed.
func DefaultJigsawConfig(size, batch, stepsPerEpoch, epochs int) JigsawConfig {
	return JigsawConfig{
		Permutations: DefaultJigsawPermutations, Size: size, HiddenDim: 4096,
		Optim: OptimConfig{Name: "sgd", LR: scaleLR(0.01, batch), Momentum: 0.9, WeightDecay: 5e-4,
			TotalSteps: epochs * stepsPerEpoch},
	}
}

// jigsawTileRule is what a backbone needs of a tile: at least min pixels
// a side, in multiples of step.
func jigsawTileRule(backbone Encoder) (min, step int, what string) {
	switch b := backbone.(type) {
	case *zoo.ViT:
		p := b.Config.PatchSize
		return 2 * p, p, fmt.Sprintf("a ViT needs tiles of at least 2x2 of its %d-px patches", p)
	case *zoo.ResNet:
		if b.Config.Stem == "imagenet" {
			// The stem's stride 4 leaves a 2x2 map to the first stage.
			return 8, 1, "a ResNet with the ImageNet stem needs tiles of at least 8 px"
		}
	}
	return 4, 1, "tiles need at least 4 px"
}

// jigsawTileFor is the paper's tile side for crops of side size: 64/75 of a
// cell, rounded down to a multiple of step.
func jigsawTileFor(size, step int) int {
	t := size / 3 * jigsawTileNum / jigsawTileDen
	return t - t%step
}

// jigsawTile checks a crop size and tile side against the backbone (tile
// 0: the paper's) and returns the tile side. Its error names the minimum
// image size.
func jigsawTile(size, tile int, backbone Encoder) (int, error) {
	lo, step, what := jigsawTileRule(backbone)
	fits := func(s, t int) bool { return t >= lo && t%step == 0 && s/3 > t }
	if tile == 0 {
		if t := jigsawTileFor(size, step); fits(size, t) {
			return t, nil
		}
		minSize := size + 1
		for !fits(minSize, jigsawTileFor(minSize, step)) {
			minSize++
		}
		return 0, fmt.Errorf("jigsaw: %d-px images are too small for the 3x3 grid of tiles with gaps (%s); the minimum image size is %d px",
			size, what, minSize)
	}
	if tile < lo || tile%step != 0 {
		return 0, fmt.Errorf("jigsaw: %d-px tiles: %s (multiples of %d)", tile, what, step)
	}
	if !fits(size, tile) {
		return 0, fmt.Errorf("jigsaw: %d-px images are too small for a 3x3 grid of %d-px tiles with gaps; the minimum image size is %d px",
			size, tile, 3*(tile+1))
	}
	return tile, nil
}

// Jigsaw trains an encoder to solve jigsaw puzzles: the nine tiles of a
// crop, shuffled by one of a fixed set of permutations, go through the
// encoder one by one (a siamese trunk with shared weights), and a
// classifier over their concatenated features names the permutation.
//
// Its loss is the mean over the batch of each image's cross-entropy, so
// under data parallelism averaging the gradients of equal-sized rank
// batches gives the global batch's gradient exactly: nothing is gathered.
// Each rank takes its rows' puzzles from the global batch's draws.
type Jigsaw struct {
	Config     JigsawConfig
	Encoder    Encoder
	Classifier Head
	parts
	opt nn.Optimizer
	// perms is the permutation set, [Permutations, 9] (tile indices as
	// floats, so it saves with the state); seed the draws' seed. Both are
	// state buffers.
	perms *tensor.Tensor
	seed  int64
}

// NewJigsaw wraps backbone with the puzzle classifier, chooses the
// permutation set and builds the optimizer. A crop too small for the
// grid of tiles the backbone needs is an error naming the minimum size.
func NewJigsaw(cfg JigsawConfig, backbone Encoder, rng *rand.Rand) (*Jigsaw, error) {
	if cfg.HiddenDim < 1 {
		return nil, fmt.Errorf("jigsaw: classifier hidden width %d must be positive", cfg.HiddenDim)
	}
	tile, err := jigsawTile(cfg.Size, cfg.Tile, backbone)
	if err != nil {
		return nil, err
	}
	cfg.Tile = tile
	first := rand.New(rand.NewPCG(cfg.Seed, jigsawStream)).IntN(NumTilePermutations)
	set, err := MaxHammingPermutations(cfg.Permutations, first)
	if err != nil {
		return nil, err
	}
	cls, err := newMLPHead([]int{JigsawTiles * backbone.FeatureDim(), cfg.HiddenDim, cfg.Permutations}, true, rng)
	if err != nil {
		return nil, fmt.Errorf("jigsaw: classifier: %w", err)
	}
	m := &Jigsaw{Config: cfg, Encoder: backbone, Classifier: cls, perms: tensor.New(len(set), JigsawTiles), seed: int64(cfg.Seed)}
	for i, p := range set {
		for j, v := range p {
			m.perms.Data[i*JigsawTiles+j] = float32(v)
		}
	}
	m.list = []part{{"backbone", backbone, true}, {"classifier", cls, true}}
	m.buffers = func(prefix string, s *nn.State) {
		s.Buffers = append(s.Buffers, nn.Buffer{Name: nn.Join(prefix, "permutations"), T: m.perms},
			nn.Buffer{Name: nn.Join(prefix, "puzzle_seed"), Count: &m.seed})
	}
	if m.opt, err = cfg.Optim.build(m.trainable()); err != nil {
		return nil, fmt.Errorf("jigsaw: %w", err)
	}
	m.SetTraining(true)
	return m, nil
}

func (m *Jigsaw) Name() string            { return "jigsaw" }
func (m *Jigsaw) Backbone() Encoder       { return m.Encoder }
func (m *Jigsaw) Optimizer() nn.Optimizer { return m.opt }
func (m *Jigsaw) Configuration() any      { return m.Config }
func (m *Jigsaw) Schedule() OptimConfig   { return m.Config.Optim }

// Permutations returns the permutation set: row i lists, for each input
// position of puzzle class i, the grid cell (row-major) whose tile it
// shows.
func (m *Jigsaw) Permutations() ([][JigsawTiles]int, error) {
	s := m.perms.Shape
	if len(s) != 2 || s[1] != JigsawTiles || s[0] != m.Config.Permutations {
		return nil, fmt.Errorf("jigsaw: permutation set of shape %v, want [%d, %d]", s, m.Config.Permutations, JigsawTiles)
	}
	out := make([][JigsawTiles]int, s[0])
	for i := range out {
		var seen [JigsawTiles]bool
		for j := range JigsawTiles {
			v := m.perms.Data[i*JigsawTiles+j]
			k := int(v)
			if float32(k) != v || k < 0 || k >= JigsawTiles || seen[k] {
				return nil, fmt.Errorf("jigsaw: permutation %d %v is not an order of the 9 tiles", i, m.perms.Data[i*JigsawTiles:(i+1)*JigsawTiles])
			}
			seen[k] = true
			out[i][j] = k
		}
	}
	return out, nil
}

// jigsawDraw is the random part of one image's puzzle.
type jigsawDraw struct {
	// Top and Left place the grid in the crop.
	Top, Left int
	// Jitter is the offset (dy, dx) of cell j's tile inside the cell.
	Jitter [JigsawTiles][2]int
	// Label is the permutation's index.
	Label int
}

// drawPuzzles draws the puzzles of n crops of h x w pixels, from the
// step's own stream so a resumed run draws as an uninterrupted one.
func (m *Jigsaw) drawPuzzles(n, h, w int) []jigsawDraw {
	rng := rand.New(rand.NewPCG(uint64(m.seed), uint64(m.steps)))
	ch, cw, t := h/3, w/3, m.Config.Tile
	out := make([]jigsawDraw, n)
	for i := range out {
		d := &out[i]
		d.Top, d.Left = rng.IntN(h-3*ch+1), rng.IntN(w-3*cw+1)
		for j := range d.Jitter {
			d.Jitter[j] = [2]int{rng.IntN(ch - t + 1), rng.IntN(cw - t + 1)}
		}
		d.Label = rng.IntN(m.Config.Permutations)
	}
	return out
}

// cutPuzzles writes the shuffled tiles of the crops v [N, C, H, W] into
// dst [9N, C, tile, tile], image by image: row 9n+k is the tile of cell
// perms[label][k] of image n, each channel of each tile normalised by its
// own mean and standard deviation (unbiased; a flat channel is only
// centred), as the reference implementation does. It returns the labels.
func cutPuzzles(dst, v *tensor.Tensor, draws []jigsawDraw, perms [][JigsawTiles]int, tile int) []int {
	n, c, h, w := v.Shape[0], v.Shape[1], v.Shape[2], v.Shape[3]
	ch, cw, tt := h/3, w/3, tile*tile
	labels := make([]int, n)
	tensor.Parallel(n, JigsawTiles*c*tt*8, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			d := draws[i]
			labels[i] = d.Label
			for k, cell := range perms[d.Label] {
				y0 := d.Top + cell/3*ch + d.Jitter[cell][0]
				x0 := d.Left + cell%3*cw + d.Jitter[cell][1]
				for ci := range c {
					src := v.Data[((i*c+ci)*h+y0)*w+x0:]
					out := dst.Data[((i*JigsawTiles+k)*c+ci)*tt:][:tt]
					var sum float64
					for y := range tile {
						for x, p := range src[y*w : y*w+tile] {
							out[y*tile+x] = p
							sum += float64(p)
						}
					}
					mean := sum / float64(tt)
					var ss float64
					for _, p := range out {
						ss += (float64(p) - mean) * (float64(p) - mean)
					}
					std := math.Sqrt(ss / float64(tt-1))
					if std == 0 {
						std = 1
					}
					for j, p := range out {
						out[j] = float32((float64(p) - mean) / std)
					}
				}
			}
		}
	})
	return labels
}

// JigsawLoss is the puzzle loss: features [9N, D] are the encoder's
// features of the tiles, nine per image in input order (row 9n+k is
// position k of image n); the nine of an image are concatenated into one
// [9D] row, the classifier scores them [N, Permutations], and the loss is
// the mean cross-entropy against labels.
func JigsawLoss(tp *autograd.Tape, features *autograd.Var, classifier Head, labels []int) *autograd.Var {
	s := features.Shape()
	if len(s) != 2 || s[0] != JigsawTiles*len(labels) {
		autograd.Failf("JigsawLoss", "features shape %v for %d puzzles: want [%d, D]", s, len(labels), JigsawTiles*len(labels))
	}
	x := tp.Reshape(features, len(labels), JigsawTiles*s[1])
	return tp.CrossEntropy(classifier.Forward(tp, x), labels)
}

// Step runs one Jigsaw iteration on one view, the crops [N, C, H, W]: it
// cuts each into a shuffled puzzle, encodes all 9N tiles as one batch (so
// BatchNorm sees every tile of the batch) and trains the encoder and the
// classifier on naming the permutations.
func (m *Jigsaw) Step(tp *autograd.Tape, views []*tensor.Tensor) (float32, error) {
	if err := checkViews("jigsaw", views, 1, true); err != nil {
		return 0, err
	}
	v := views[0]
	h, w := v.Shape[2], v.Shape[3]
	if t := m.Config.Tile; h/3 <= t || w/3 <= t {
		return 0, fmt.Errorf("jigsaw: %dx%d-px crops are too small for a 3x3 grid of %d-px tiles with gaps; the minimum image size is %d px",
			h, w, t, 3*(t+1))
	}
	// On several ranks, rank r takes its rows' puzzles from the global
	// batch's draws, as one process would have drawn them.
	n := v.Shape[0]
	rank, size := m.ranks()
	return m.step(tp, v, m.drawPuzzles(n*size, h, w)[rank*n:(rank+1)*n])
}

// step is Step with the puzzles drawn (the golden test gives PyTorch's).
func (m *Jigsaw) step(tp *autograd.Tape, v *tensor.Tensor, draws []jigsawDraw) (float32, error) {
	perms, err := m.Permutations()
	if err != nil {
		return 0, err
	}
	n, c, t := v.Shape[0], v.Shape[1], m.Config.Tile
	h, w := v.Shape[2], v.Shape[3]
	if len(draws) != n {
		return 0, fmt.Errorf("jigsaw: %d puzzles for %d crops", len(draws), n)
	}
	for i, d := range draws {
		ok := d.Label >= 0 && d.Label < len(perms) && d.Top >= 0 && d.Left >= 0 && d.Top+3*(h/3) <= h && d.Left+3*(w/3) <= w
		for _, j := range d.Jitter {
			ok = ok && j[0] >= 0 && j[1] >= 0 && j[0]+t <= h/3 && j[1]+t <= w/3
		}
		if !ok {
			return 0, fmt.Errorf("jigsaw: puzzle %d %+v does not fit %dx%d-px crops with %d-px tiles and %d permutations", i, d, h, w, t, len(perms))
		}
	}
	return runStep(tp, "jigsaw", &m.parts, m.opt, m.Config.Optim, func() (*autograd.Var, error) {
		tiles := tp.Alloc(JigsawTiles*n, c, t, t)
		labels := cutPuzzles(tiles, v, draws, perms, t)
		feats := m.Encoder.Features(tp, autograd.Const(tiles))
		return JigsawLoss(tp, feats, m.Classifier, labels), nil
	}, m.opt.Step)
}
