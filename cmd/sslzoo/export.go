package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/sslzoo/sslzoo/export"
	"github.com/sslzoo/sslzoo/nn"
	ortruntime "github.com/sslzoo/sslzoo/runtime"
	"github.com/sslzoo/sslzoo/weights"
	"github.com/sslzoo/sslzoo/zoo"
	"github.com/sslzoo/sslzoo/zoo/ssl"
)

func exportCommand() *cli.Command {
	return &cli.Command{
		Name:  "export",
		Usage: "export a backbone to ONNX (opset 17, dynamic batch axis)",
		UsageText: "sslzoo export --arch resnet18-cifar|resnet50|vit-tiny|bert-mini|... [--weights F.safetensors] [--seed S] [--pool cls|mean] --out F.onnx\n" +
			"sslzoo export --hf DIR [--seq N] [--pool cls|mean] --out F.onnx\n" +
			"sslzoo export --weights MAEDIR/checkpoint.safetensors --graph reconstruct --out F.onnx",
		Description: "Without --weights the backbone is randomly initialised from --seed. With --weights the file may be\n" +
			"a plain state_dict, a `sslzoo train` result (its sslzoo.train metadata rebuilds the backbone, so --arch\n" +
			"may be left out) or a checkpoint whose backbone sits under a prefix such as \"backbone.\" (found\n" +
			"automatically when only one prefix fits; else name it with --prefix).\n" +
			"Image backbones take pixel_values [batch, C, H, W] float32 and return embedding; BERTs take int64\n" +
			"input_ids and attention_mask [batch, --seq] and return embedding (the [CLS] hidden state) and\n" +
			"last_hidden_state. The file is written atomically.\n" +
			"--pool picks a ViT's or BERT's embedding: cls (the class token after the final norm; BERT's [CLS]\n" +
			"hidden state) or mean (the mean of the normalised patch tokens; BERT's mean over attention_mask 1).\n" +
			"The default is the ViT's own pooling and BERT's cls; the choice is recorded as sslzoo.pooling.\n" +
			"An MAE result (sslzoo train mae: DIR/final.safetensors) exports its ViT encoder over all patches.\n" +
			"--hf DIR reads a Hugging Face BERT folder (config.json, model.safetensors, vocab.txt; e.g. written by\n" +
			"sslzoo train mlm) and records its tokenizer (vocab sha256, lower-casing, max length) as sslzoo.tokenizer.\n" +
			"--graph reconstruct exports an MAE training checkpoint's masked reconstruction: pixel_values and a float32\n" +
			"mask [batch, patches] (1 = hidden) in, the decoder's per-patch pixels pred out (see sslzoo.mae metadata).",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "arch", Usage: "architecture (" + strings.Join(zoo.ArchNames(), ", ") + ")"},
			&cli.StringFlag{Name: "weights", Usage: "safetensors `FILE` to load (default: random initialisation)"},
			&cli.StringFlag{Name: "prefix", Usage: "take the backbone's tensors from under this key `PREFIX` of --weights"},
			&cli.Uint64Flag{Name: "seed", Usage: "random initialisation seed"},
			&cli.IntFlag{Name: "image-size", Usage: "ResNet input size (default 32 for the CIFAR stem, else 224; ViTs use their training size)"},
			&cli.IntFlag{Name: "seq", Usage: "BERT sequence length (default 128)"},
			&cli.StringFlag{Name: "pool", Usage: "ViT/BERT embedding pooling: cls or mean (default: the model's own; BERT: cls)"},
			&cli.StringFlag{Name: "graph", Value: "embed", Usage: "embed (the backbone's embedding) or reconstruct (an MAE checkpoint's masked reconstruction)"},
			&cli.StringFlag{Name: "hf", Usage: "Hugging Face BERT `DIR` (config.json, model.safetensors, vocab.txt) to export"},
			&cli.StringFlag{Name: "out", Usage: "output `FILE`.onnx"},
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			return runExport(c.App.Writer, exportOptions{
				Arch: c.String("arch"), Weights: c.String("weights"), Prefix: c.String("prefix"), Seed: c.Uint64("seed"),
				ImageSize: c.Int("image-size"), Seq: c.Int("seq"), Out: c.String("out"),
				Pool: c.String("pool"), HF: c.String("hf"), Graph: c.String("graph"),
				prefixSet: c.IsSet("prefix"),
			})
		},
	}
}

type exportOptions struct {
	Arch, Weights, Prefix string
	Seed                  uint64
	ImageSize, Seq        int
	Out                   string
	Pool, HF, Graph       string
	prefixSet             bool
}

func runExport(w io.Writer, o exportOptions) error {
	fail := func(err error) error { return fmt.Errorf("sslzoo export: %w", err) }
	if o.Out == "" {
		return usagef("sslzoo export: --out is required")
	}
	if o.ImageSize < 0 || o.Seq < 0 {
		return usagef("sslzoo export: --image-size and --seq must be positive")
	}
	if err := export.CheckPool(o.Pool); err != nil {
		return usagef("sslzoo export: --pool: %v", err)
	}
	switch o.Graph {
	case "", "embed":
	case "reconstruct":
		if o.Weights == "" || o.HF != "" || o.Pool != "" {
			return usagef("sslzoo export: --graph reconstruct needs --weights (an MAE checkpoint.safetensors) and takes no --hf or --pool")
		}
		return runExportMAEReconstruction(w, o)
	default:
		return usagef("sslzoo export: --graph %q: want embed or reconstruct", o.Graph)
	}
	if o.HF != "" {
		if o.Arch != "" || o.Weights != "" || o.prefixSet {
			return usagef("sslzoo export: --hf takes the model from its folder; leave out --arch, --weights and --prefix")
		}
		return runExportHF(w, o)
	}
	if o.Arch == "" && o.Weights == "" {
		return usagef("sslzoo export: name the architecture with --arch (%s)", strings.Join(zoo.ArchNames(), ", "))
	}
	meta := export.Metadata{Version: buildVersion()}
	rng := rand.New(rand.NewPCG(o.Seed, 0x6578706f7274))
	var (
		m    zoo.Backbone
		name = o.Arch
		f    *weights.File
	)
	if o.Weights != "" {
		var err error
		if f, err = weights.Read(o.Weights); err != nil {
			return fail(err)
		}
		sum, err := fileSHA256(o.Weights)
		if err != nil {
			return fail(err)
		}
		meta.WeightsSHA256 = sum
		meta.Method = f.Metadata["sslzoo.method"]
		// A `sslzoo train` result says how to rebuild its backbone (width,
		// channels, image size), which --arch alone cannot.
		raw := f.Metadata[ssl.MetaTrain]
		if raw == "" {
			raw = f.Metadata[ssl.CheckpointMetaTrain]
		}
		if raw != "" {
			var spec ssl.TrainSpec
			if err := json.Unmarshal([]byte(raw), &spec); err != nil {
				return fail(fmt.Errorf("%s: bad %s metadata: %w", o.Weights, ssl.MetaTrain, err))
			}
			if o.Arch != "" && o.Arch != spec.Arch {
				return fail(fmt.Errorf("%s holds a %s backbone, not --arch %s", o.Weights, spec.Arch, o.Arch))
			}
			enc, err := spec.NewBackbone(rng)
			if err != nil {
				return fail(fmt.Errorf("%s: %w", o.Weights, err))
			}
			bb, ok := enc.(zoo.Backbone)
			if !ok {
				return fail(fmt.Errorf("%s: a %T backbone cannot be exported", o.Weights, enc))
			}
			m, name = bb, spec.Arch
			if meta.Method == "" {
				meta.Method = spec.Method
			}
			if o.ImageSize == 0 {
				o.ImageSize = spec.Size
			}
			if pp := f.Metadata[ssl.MetaPreprocess]; pp != "" {
				var p export.Preprocess
				if err := json.Unmarshal([]byte(pp), &p); err == nil {
					if p.Crop == "" {
						p.Crop = "none"
					}
					meta.Preprocess = &p
				}
			}
		}
	}
	if m == nil {
		spec, err := zoo.Arch(o.Arch)
		if err != nil {
			return usagef("sslzoo export: --arch: %v", err)
		}
		if m, err = spec.Build(rng); err != nil {
			return fail(err)
		}
	}
	if f != nil {
		if err := loadBackbone(m, f, o.Prefix, o.prefixSet); err != nil {
			return fail(fmt.Errorf("%s: %w", o.Weights, err))
		}
	}
	b, err := export.NewBackbone(name, m, export.BackboneOptions{ImageSize: o.ImageSize, Seq: o.Seq, Pool: o.Pool, Metadata: meta})
	if err != nil {
		return fail(err)
	}
	if err := export.Export(b.Spec, o.Out, export.SaveOptions{}); err != nil {
		return fail(err)
	}
	return describeModel(w, o.Out)
}

// loadBackbone loads m's state from f. The tensors are taken under prefix
// (when set), else at the top level, else under the one prefix that holds
// every one of m's names.
func loadBackbone(m zoo.Backbone, f *weights.File, prefix string, prefixSet bool) error {
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
		if rest, ok := strings.CutPrefix(k, prefix); ok {
			sub[rest] = t
		}
	}
	// Keys beyond the backbone (heads, optimizer state, a decoder) are
	// ignored; every backbone key must be there.
	for k := range sub {
		if !slices.Contains(names, k) {
			delete(sub, k)
		}
	}
	return nn.LoadState(m, sub, true)
}

// describeModel prints what a written model takes and returns.
func describeModel(w io.Writer, path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	info, err := ortruntime.ReadModelInfoFile(path)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "wrote %s (%s)\n", path, humanBytes(fi.Size()))
	for _, v := range info.Inputs {
		fmt.Fprintf(w, "  input  %v\n", v)
	}
	for _, v := range info.Outputs {
		fmt.Fprintf(w, "  output %v\n", v)
	}
	return nil
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

func fileSHA256(path string) (string, error) {
	fh, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer fh.Close()
	h := sha256.New()
	if _, err := io.Copy(h, fh); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// buildVersion is sslzoo's version for file metadata: the module version
// when built from a release, else "devel" with the commit when known.
func buildVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	v := "devel"
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if rev != "" {
		v += "+" + rev[:min(12, len(rev))] + dirty
	}
	return v
}
