// Package ckptimport turns the checkpoints that self-supervised learning
// projects publish (torchvision, MoCo v2 and v3, SwAV, DINO, MAE,
// solo-learn, Hugging Face BERT) into the safetensors files of sslzoo's
// backbones: the backbone's tensors under sslzoo's (PyTorch) names, in
// float32, with the exact zoo.Spec recorded in the metadata so that the
// file alone rebuilds the model (zoo.SpecFromMetadata).
//
// Each format knows where its project keeps the backbone (a nested dict, a
// key prefix), which heads to drop, and the facts its weights do not show
// (MoCo v3's ViTs have 12 attention heads where DINO's ViT-S has 6;
// solo-learn pads its CIFAR conv1 by 2). The rest of the architecture is
// read off the tensor shapes, and every tensor is checked against the
// backbone sslzoo builds before anything is written.
package ckptimport

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/sslzoo/sslzoo/internal/filehash"

	"github.com/sslzoo/sslzoo/nn"
	"github.com/sslzoo/sslzoo/tensor"
	"github.com/sslzoo/sslzoo/weights"
	"github.com/sslzoo/sslzoo/zoo"
)

// Formats are the checkpoint layouts Import reads, by --format name.
var Formats = []string{"torchvision", "moco-v2", "moco-v3", "swav", "dino", "mae", "solo-learn", "hf-bert"}

// Metadata keys Import records besides zoo.ArchConfigKey.
const (
	MetaMethod       = "sslzoo.method"
	MetaBackbone     = "sslzoo.backbone"
	MetaEmbeddingDim = "sslzoo.embedding_dim"
	// MetaSource is {"file": base name, "sha256": hex} of the checkpoint.
	MetaSource = "sslzoo.source"
	// MetaFormat is the Import format, e.g. "moco-v3".
	MetaFormat = "sslzoo.format"
)

// Options are Import's parameters.
type Options struct {
	// Format is one of Formats.
	Format string
	// Arch is a registered architecture (zoo.ArchNames) to load into; ""
	// infers it from the checkpoint. Tensors that disagree with it are
	// refused, naming the first.
	Arch string
	// Heads sets a ViT's attention heads where the format cannot tell them
	// (widths that are not one of its project's published sizes); 0 uses
	// the format's rule.
	Heads int
}

// Result is an imported backbone.
type Result struct {
	// Spec is the exact backbone the state belongs to.
	Spec zoo.Spec
	// State is the backbone's state_dict: float tensors as F32, BatchNorm
	// counters as I64 scalars.
	State map[string]*weights.Tensor
	// Meta is the safetensors metadata Write stores.
	Meta map[string]string
	// Dropped names what of the checkpoint was left out: tensor groups
	// such as "module.encoder_k.* (320 tensors)" and entries such as
	// checkpoint["optimizer"].
	Dropped []string
	// From says where the backbone was, e.g. `checkpoint["state_dict"],
	// prefix "module.encoder_q."`.
	From string
	// Container is "zip", "legacy" (pre-1.6 torch.save) or "safetensors".
	Container string
	// EmbeddingDim is the width of the backbone's embedding.
	EmbeddingDim int
	// Notes are facts applied that the tensors alone do not show.
	Notes []string
}

// Import reads the checkpoint at path in the given format (one of
// Formats). arch is a registered architecture name, or "" to infer it.
func Import(path, format, arch string) (*Result, error) {
	return ImportWith(path, Options{Format: format, Arch: arch})
}

// ImportWith is Import with every option.
func ImportWith(path string, o Options) (*Result, error) {
	res, err := importWith(path, o)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", o.Format, err)
	}
	return res, nil
}

func importWith(path string, o Options) (*Result, error) {
	if !slices.Contains(Formats, o.Format) {
		return nil, fmt.Errorf("unknown format %q (one of %s)", o.Format, strings.Join(Formats, ", "))
	}
	if o.Heads < 0 {
		return nil, fmt.Errorf("heads %d must be positive", o.Heads)
	}
	if o.Format == "hf-bert" {
		return importBERT(path, o)
	}
	in, err := openInput(path)
	if err != nil {
		return nil, err
	}
	defer in.close()
	sel, err := layouts[o.Format](in)
	if err != nil {
		return nil, layoutError(in, o.Format, err.Error())
	}
	family, err := detectFamily(sel.backbone)
	if err != nil {
		return nil, fmt.Errorf("%s, %s: %w", path, sel.where(), err)
	}
	if !slices.Contains(sel.families, family) {
		return nil, fmt.Errorf("%s, %s: a %s backbone, but %s publishes only %s backbones", path, sel.where(), family, o.Format, strings.Join(sel.families, " and "))
	}
	spec, notes, err := chooseSpec(family, sel, o)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	res, err := assemble(path, spec, sel.backbone, o.Arch)
	if err != nil {
		return nil, err
	}
	used := map[string]bool{}
	for n := range res.State {
		used[sel.prefix+n] = true
	}
	res.Notes = append(notes, res.Notes...)
	res.Dropped = append(droppedGroups(sel.sd, used), sel.skipped...)
	res.From, res.Container = sel.where(), in.container
	if err := res.finish(path, o.Format, sel.method); err != nil {
		return nil, err
	}
	return res, nil
}

func (s *selection) where() string {
	if s.prefix == "" {
		return s.from
	}
	return fmt.Sprintf("%s, prefix %q", s.from, s.prefix)
}

// chooseSpec infers the configuration, or takes the named one, and applies
// the format's facts.
func chooseSpec(family string, sel *selection, o Options) (zoo.Spec, []string, error) {
	var notes []string
	var spec zoo.Spec
	if o.Arch != "" {
		var err error
		if spec, err = zoo.Arch(o.Arch); err != nil {
			return spec, nil, err
		}
		if spec.Family != family {
			return spec, nil, fmt.Errorf("--arch %s is a %s, but the checkpoint holds a %s backbone", o.Arch, spec.Family, family)
		}
	} else {
		spec.Family = family
	}
	switch family {
	case "resnet":
		if o.Heads != 0 {
			return spec, nil, fmt.Errorf("--heads is for ViTs; this is a ResNet")
		}
		if o.Arch == "" {
			c, n, err := inferResNet(sel.backbone, sel.cifarPad)
			if err != nil {
				return spec, nil, fmt.Errorf("%s: %w", sel.where(), err)
			}
			spec.ResNet, notes = c, n
		} else if spec.ResNet.Stem == "cifar" && sel.cifarPad > 0 && spec.ResNet.StemPadding == 0 {
			spec.ResNet.StemPadding = sel.cifarPad
			notes = append(notes, fmt.Sprintf("conv1 padding %d: the project's CIFAR stem (%s pads by 1)", sel.cifarPad, o.Arch))
		}
	case "vit":
		if o.Arch == "" {
			c, err := inferViT(sel.backbone)
			if err != nil {
				return spec, nil, fmt.Errorf("%s: %w", sel.where(), err)
			}
			spec.ViT = c
		}
		dim := spec.ViT.Dim
		switch h := sel.heads.lookup(dim); {
		case o.Heads > 0:
			if dim%o.Heads != 0 {
				return spec, nil, fmt.Errorf("--heads %d does not divide the ViT width %d", o.Heads, dim)
			}
			spec.ViT.Heads = o.Heads
		case h > 0:
			if o.Arch != "" && h != spec.ViT.Heads {
				notes = append(notes, fmt.Sprintf("%d attention heads, as %s (--arch %s has %d)", h, sel.heads.source, o.Arch, spec.ViT.Heads))
			} else if sel.heads.fixed > 0 {
				notes = append(notes, fmt.Sprintf("%d attention heads, as %s", h, sel.heads.source))
			}
			spec.ViT.Heads = h
		case o.Arch == "":
			return spec, nil, fmt.Errorf("%s: %s", sel.where(), sel.heads.explain(dim))
		}
	}
	spec.Name = specName(spec)
	return spec, notes, nil
}

// assemble checks the checkpoint's tensors against the backbone spec
// builds, in the backbone's own order, and converts them: floats to F32,
// counters to I64. A missing num_batches_tracked (torchvision's older
// releases have none) is filled with 0, which eval mode never reads.
func assemble(path string, spec zoo.Spec, tensors map[string]ref, arch string) (*Result, error) {
	m, err := spec.Build(rand.New(rand.NewPCG(0, 0)))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	target := spec.Name
	if arch != "" {
		target = "--arch " + arch
	}
	st := nn.StateOf(m)
	type slot struct {
		name    string
		shape   []int
		counter bool
	}
	var slots []slot
	for _, p := range st.Params {
		slots = append(slots, slot{p.Name, p.Var.Value.Shape, false})
	}
	for _, b := range st.Buffers {
		if b.Count != nil {
			slots = append(slots, slot{b.Name, nil, true})
		} else {
			slots = append(slots, slot{b.Name, b.T.Shape, false})
		}
	}
	want := map[string]bool{}
	for _, s := range slots {
		want[s.name] = true
		r, ok := tensors[s.name]
		switch {
		case !ok && s.counter:
		case !ok:
			return nil, fmt.Errorf("%s: the checkpoint has no tensor %s, which %s needs (shape %v)", path, s.name, target, s.shape)
		case s.counter && len(r.shape) > 1 || s.counter && tensor.Numel(r.shape) != 1:
			return nil, fmt.Errorf("%s: tensor %s: checkpoint shape %v, %s holds a scalar counter", path, s.name, r.shape, target)
		case !s.counter && !slices.Equal(r.shape, s.shape):
			return nil, fmt.Errorf("%s: tensor %s: checkpoint shape %v, %s shape %v", path, s.name, r.shape, target, s.shape)
		}
	}
	for _, n := range sortedKeys(tensors) {
		if !want[n] {
			return nil, fmt.Errorf("%s: the checkpoint's tensor %s (shape %v) has no place in %s (%s)", path, n, tensors[n].shape, target, describeSpec(spec))
		}
	}
	res := &Result{Spec: spec, State: map[string]*weights.Tensor{}, EmbeddingDim: m.FeatureDim()}
	filled := 0
	for _, s := range slots {
		r, ok := tensors[s.name]
		if !ok {
			res.State[s.name], _ = weights.FromInt64([]int{}, []int64{0})
			filled++
			continue
		}
		t, err := r.read()
		if err != nil {
			return nil, fmt.Errorf("%s: tensor %s: %w", path, s.name, err)
		}
		if s.counter {
			v, err := t.Int64()
			if err != nil {
				return nil, fmt.Errorf("%s: tensor %s: %w", path, s.name, err)
			}
			res.State[s.name], _ = weights.FromInt64([]int{}, v[:1])
			continue
		}
		if !t.DType.IsFloat() {
			return nil, fmt.Errorf("%s: tensor %s is %s, want a float type", path, s.name, t.DType)
		}
		f, err := t.Float32()
		if err != nil {
			return nil, fmt.Errorf("%s: tensor %s: %w", path, s.name, err)
		}
		res.State[s.name] = weights.FromFloat32(f)
	}
	if filled > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("%s without num_batches_tracked: set to 0 (unused in eval mode)", plural(filled, "BatchNorm")))
	}
	// The final proof: the state loads into the backbone, strictly.
	if err := nn.LoadState(m, res.State, true); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return res, nil
}

// finish records the metadata.
func (r *Result) finish(path, format, method string) error {
	sum, err := filehash.SHA256(path)
	if err != nil {
		return err
	}
	src, _ := json.Marshal(map[string]string{"file": filepath.Base(path), "sha256": sum})
	r.Meta = map[string]string{
		"format":          "pt", // what transformers' safetensors loader expects
		zoo.ArchConfigKey: r.Spec.ConfigJSON(),
		MetaBackbone:      r.Spec.Name,
		MetaEmbeddingDim:  strconv.Itoa(r.EmbeddingDim),
		MetaSource:        string(src),
		MetaFormat:        format,
	}
	if method != "" {
		r.Meta[MetaMethod] = method
	}
	return nil
}

// Write stores the result as a safetensors file with its metadata,
// atomically. The folder must exist.
func Write(res *Result, out string) error {
	if res == nil || res.State == nil {
		return fmt.Errorf("write %s: no imported state", out)
	}
	if fi, err := os.Stat(filepath.Dir(out)); err != nil || !fi.IsDir() {
		return fmt.Errorf("write %s: folder %s does not exist", out, filepath.Dir(out))
	}
	return weights.Write(out, res.State, res.Meta)
}
