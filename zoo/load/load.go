// Package load turns a weights file into the backbone it was made for.
// It reads what sslzoo writes (train results and checkpoints, import
// results: the exact architecture under sslzoo.arch_config, or the older
// sslzoo.train run spec) and plain state_dicts given an architecture name,
// with the backbone found at the top level or under a prefix. export,
// eval, embed and the zoo API all load through it, so a file means the
// same model everywhere.
package load

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/sslzoo/sslzoo/data/text"
	"github.com/sslzoo/sslzoo/internal/filehash"

	"github.com/sslzoo/sslzoo/data/preprocess"
	"github.com/sslzoo/sslzoo/nn"
	"github.com/sslzoo/sslzoo/weights"
	"github.com/sslzoo/sslzoo/zoo"
	"github.com/sslzoo/sslzoo/zoo/ssl"
)

// Options adjust File.
type Options struct {
	// Arch names the architecture of a plain state_dict. For a file that
	// records its own, a different Arch is refused.
	Arch string
	// Prefix takes the backbone's tensors from under this key prefix;
	// PrefixSet says Prefix was given (it may be "").
	Prefix    string
	PrefixSet bool
	// Seed initialises the backbone before its weights are loaded.
	Seed uint64
}

// Backbone is a loaded model and what its file says about it.
type Backbone struct {
	Model      zoo.Backbone
	Spec       zoo.Spec // the exact architecture built
	Metadata   map[string]string
	SHA256     string           // of the file
	Method     string           // sslzoo.method, "" when not recorded
	Preprocess *preprocess.Spec // nil when the file records none
	ImageSize  int              // the training image size, 0 when not recorded
	// Tokenizer is a text backbone's, when the file records its vocabulary.
	Tokenizer *text.Tokenizer
}

// File builds the backbone a weights file holds and loads its tensors.
func File(path string, opts Options) (*Backbone, error) {
	f, err := weights.Read(path)
	if err != nil {
		return nil, err
	}
	sum, err := filehash.SHA256(path)
	if err != nil {
		return nil, err
	}
	b := &Backbone{Metadata: f.Metadata, SHA256: sum, Method: f.Metadata[ssl.MetaMethod]}
	spec, found, err := recordedSpec(f.Metadata)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	switch {
	case found && opts.Arch != "" && opts.Arch != spec.Name:
		return nil, fmt.Errorf("%s holds a %s backbone, not --arch %s (its metadata records the architecture; leave out --arch)", path, spec.Name, opts.Arch)
	case !found && opts.Arch == "":
		return nil, fmt.Errorf("%s records no architecture (no %s metadata): name one (%s)", path, zoo.ArchConfigKey, strings.Join(zoo.ArchNames(), ", "))
	case !found:
		if spec, err = zoo.Arch(opts.Arch); err != nil {
			return nil, err
		}
	}
	if found {
		if err := fitsFile(spec, f); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	m, err := spec.Build(rand.New(rand.NewPCG(opts.Seed, 0x6c6f6164)))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := loadInto(m, f, opts.Prefix, opts.PrefixSet); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	b.Model, b.Spec = m, spec
	switch tok, err := text.FromMetadata(f.Metadata); {
	case err == nil:
		b.Tokenizer = tok
	case !errors.Is(err, text.ErrNoVocab):
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if raw := f.Metadata[ssl.MetaTrain]; raw != "" || f.Metadata[ssl.CheckpointMetaTrain] != "" {
		if raw == "" {
			raw = f.Metadata[ssl.CheckpointMetaTrain]
		}
		var ts ssl.TrainSpec
		if json.Unmarshal([]byte(raw), &ts) == nil {
			b.ImageSize = ts.Size
			if b.Method == "" {
				b.Method = ts.Method
			}
			// Checkpoints keep only the run spec; it implies the rest.
			p := ts.Preprocess()
			b.Preprocess = &p
		}
	}
	if raw := f.Metadata[ssl.MetaPreprocess]; raw != "" {
		var p preprocess.Spec
		if err := json.Unmarshal([]byte(raw), &p); err != nil {
			return nil, fmt.Errorf("%s: bad %s metadata: %w", path, ssl.MetaPreprocess, err)
		}
		p.Normalize()
		b.Preprocess = &p
	}
	return b, nil
}

// recordedSpec is the architecture a file records: sslzoo.arch_config
// (final weights, imports), its checkpoint twin, or, in files written
// before that key, the architecture a train run spec implies.
func recordedSpec(meta map[string]string) (zoo.Spec, bool, error) {
	for _, key := range []string{zoo.ArchConfigKey, ssl.CheckpointMetaArchConfig} {
		if raw, ok := meta[key]; ok {
			s, err := zoo.ParseSpec(raw)
			return s, err == nil, err
		}
	}
	raw := meta[ssl.MetaTrain]
	if raw == "" {
		raw = meta[ssl.CheckpointMetaTrain]
	}
	if raw == "" {
		return zoo.Spec{}, false, nil
	}
	var ts ssl.TrainSpec
	if err := json.Unmarshal([]byte(raw), &ts); err != nil {
		return zoo.Spec{}, false, fmt.Errorf("bad %s metadata: %w", ssl.MetaTrain, err)
	}
	s, err := ts.ArchSpec()
	return s, err == nil, err
}

// fitsFile refuses an architecture recorded in f's metadata that is far
// larger than the tensors f holds, before anything is allocated: every
// value the backbone builds must come from the file, so only a corrupt or
// hostile configuration asks for more (a few bytes of JSON can describe a
// ViT of terabytes). The slack covers scalars the count leaves out.
func fitsFile(spec zoo.Spec, f *weights.File) error {
	need, err := spec.Values()
	if err != nil {
		return err
	}
	held := 0.0
	for _, t := range f.Tensors {
		held += float64(t.Numel())
	}
	if need > 2*held+1<<16 {
		return fmt.Errorf("its metadata describes a %s %s of %.3g values, but the file holds %.0f: the recorded architecture is corrupt; re-export the weights",
			spec.Family, spec.Name, need, held)
	}
	return nil
}

// loadInto loads m's state from f: under prefix when set, else at the top
// level, else under the one prefix that holds every one of m's names
// (a checkpoint's "backbone.", a DataParallel "module.").
func loadInto(m zoo.Backbone, f *weights.File, prefix string, prefixSet bool) error {
	s := nn.StateOf(m)
	var names []string
	for _, p := range s.Params {
		names = append(names, p.Name)
	}
	for _, b := range s.Buffers {
		names = append(names, b.Name)
	}
	fits := func(p string) bool {
		for _, n := range names {
			if _, ok := f.Tensors[p+n]; !ok {
				return false
			}
		}
		return true
	}
	if !prefixSet && !fits("") {
		var found []string
		for k := range f.Tensors {
			if p, ok := strings.CutSuffix(k, names[0]); ok && p != "" && !slices.Contains(found, p) && fits(p) {
				found = append(found, p)
			}
		}
		slices.Sort(found)
		switch len(found) {
		case 0: // LoadState below lists what is missing
		case 1:
			prefix = found[0]
		default:
			return fmt.Errorf("several prefixes hold a whole backbone (%s); choose one with --prefix", strings.Join(found, ", "))
		}
	}
	sub := map[string]*weights.Tensor{}
	for k, t := range f.Tensors {
		if rest, ok := strings.CutPrefix(k, prefix); ok && slices.Contains(names, rest) {
			// Keys beyond the backbone (heads, optimizer state, a
			// decoder) are ignored; every backbone key must be there.
			sub[rest] = t
		}
	}
	return nn.LoadState(m, sub, true)
}
