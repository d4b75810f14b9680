package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/sslzoo/sslzoo"
	"github.com/sslzoo/sslzoo/data"
	"github.com/sslzoo/sslzoo/export"
	"github.com/sslzoo/sslzoo/onnxrt"
	"github.com/sslzoo/sslzoo/serve/triton"
	"github.com/sslzoo/sslzoo/zoo"
)

func exportCommand() *cli.Command {
	return &cli.Command{
		Name:  "export",
		Usage: "export a backbone to ONNX (opset 17, dynamic batch axis)",
		UsageText: "sslzoo export NAME --out F.onnx [--raw-pixels]          (a zoo model, pulled on demand; see sslzoo list)\n" +
			"sslzoo export NAME --out F.onnx --quantize int8 [--calibrate 256] [--calibration-data SPEC]   (a QDQ int8 model)\n" +
			"sslzoo export NAME --triton DIR [--max-batch 32] [--instances 1]   (a Triton model repository entry)\n" +
			"sslzoo export --arch resnet18-cifar|resnet50|vit-tiny|bert-mini|... [--weights F.safetensors] [--seed S] [--pool cls|mean] --out F.onnx\n" +
			"sslzoo export --hf DIR [--seq N] [--pool cls|mean] --out F.onnx\n" +
			"sslzoo export --weights MAEDIR/checkpoint.safetensors --graph reconstruct --out F.onnx",
		Description: "NAME is a zoo entry: the file records its name, version and weights sha256 (sslzoo.name,\n" +
			"sslzoo.entry_version, sslzoo.weights_sha256) and the preprocessing (sslzoo.preprocess).\n" +
			"--raw-pixels makes the graph take uint8 pixels [batch, H, W, C] at the model's size and do the scale and\n" +
			"normalisation inside: a caller that has decoded and resized an image needs nothing else.\n" +
			"Without --weights the backbone is randomly initialised from --seed. With --weights the file may be\n" +
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
			"mask [batch, patches] (1 = hidden) in, the decoder's per-patch pixels pred out (see sslzoo.mae metadata).\n" +
			"--triton DIR writes DIR/MODEL/1/model.onnx and DIR/MODEL/config.pbtxt for Triton's onnxruntime backend\n" +
			"(platform onnxruntime_onnx, dynamic batching up to --max-batch, --instances CPU instances, the sslzoo.*\n" +
			"metadata such as the preprocessing as parameters). MODEL is NAME, else --triton-name, else the\n" +
			"architecture. Start Triton with: tritonserver --model-repository DIR\n" +
			"--quantize int8 writes a QDQ model (QuantizeLinear/DequantizeLinear around float ops, opset >= 13):\n" +
			"Conv, MatMul and Gemm weights int8 per output channel, their activations uint8 per tensor, with ranges\n" +
			"measured on the first --calibrate images of the entry's data set (its training split; --calibration-data\n" +
			"picks another, as --data takes it), preprocessed as the entry says. ONNX Runtime runs it on its int8\n" +
			"kernels; the Go engine runs it too, in float. Zoo image entries only.\n" +
			"Example: sslzoo export simclr-resnet18-fmnist --triton models\n" +
			"Example: sslzoo export byol-resnet18-fmnist --quantize int8 --calibrate 256 --out byol-int8.onnx",
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
			&cli.BoolFlag{Name: "raw-pixels", Usage: "take uint8 [batch, H, W, C] pixels; scale and normalise inside the graph"},
			&cli.StringFlag{Name: "triton", Usage: "write a Triton model repository entry under `DIR` instead of --out"},
			&cli.StringFlag{Name: "triton-name", Usage: "the Triton model name (default: the zoo NAME, else the architecture)"},
			&cli.IntFlag{Name: "max-batch", Value: triton.DefaultMaxBatchSize, Usage: "--triton: max_batch_size of the dynamic batcher"},
			&cli.IntFlag{Name: "instances", Value: 1, Usage: "--triton: CPU model instances (instance_group count)"},
			&cli.StringFlag{Name: "quantize", Usage: "int8: write a QDQ int8 model (static, calibrated; zoo image entries)"},
			&cli.IntFlag{Name: "calibrate", Value: sslzoo.DefaultCalibrationImages, Usage: "--quantize: calibrate on the first `N` images of the data set"},
			&cli.StringFlag{Name: "calibration-data", Usage: "--quantize: calibration data set `SPEC` (" + data.DatasetSpecs + "; default: the entry's)"},
		},
		Action: func(c *cli.Context) error {
			o := exportOptions{
				Arch: c.String("arch"), Weights: c.String("weights"), Prefix: c.String("prefix"), Seed: c.Uint64("seed"),
				ImageSize: c.Int("image-size"), Seq: c.Int("seq"), Out: c.String("out"),
				Pool: c.String("pool"), HF: c.String("hf"), Graph: c.String("graph"), RawPixels: c.Bool("raw-pixels"),
				prefixSet: c.IsSet("prefix"),
				Triton:    c.String("triton"), TritonName: c.String("triton-name"),
				TritonOptions: triton.Options{MaxBatchSize: c.Int("max-batch"), Instances: c.Int("instances")},
				ctx:           c.Context,
				Quantize:      c.String("quantize"),
				Int8:          sslzoo.Int8Options{Calibrate: c.Int("calibrate"), Data: c.String("calibration-data")},
			}
			if err := checkQuantizeFlags(c, o); err != nil {
				return err
			}
			if o.Triton == "" && (c.IsSet("triton-name") || c.IsSet("max-batch") || c.IsSet("instances")) {
				return usagef("sslzoo export: --triton-name, --max-batch and --instances shape a Triton entry; add --triton DIR")
			}
			switch {
			case c.NArg() > 1:
				return usagef("sslzoo export: one model name at a time, got %q", c.Args().Slice())
			case c.NArg() == 1:
				if o.Weights != "" || o.HF != "" || o.Arch != "" {
					return usagef("sslzoo export: a zoo name brings its own weights and architecture; leave out --weights, --hf and --arch")
				}
				if err := checkOutDir(o.Out); err != nil {
					return err
				}
				if o.TritonName == "" {
					o.TritonName = c.Args().First()
				}
				e, err := zoo.Lookup(c.Args().First())
				if err != nil {
					return err
				}
				if o.Weights, err = sslzoo.Pull(c.Context, e.Name, &sslzoo.Options{Progress: c.App.ErrWriter}); err != nil {
					return pullFailure(err)
				}
				o.Entry = &e
			}
			return runExport(c.App.Writer, o)
		},
	}
}

type exportOptions struct {
	Arch, Weights, Prefix string
	Seed                  uint64
	ImageSize, Seq        int
	Out                   string
	Pool, HF, Graph       string
	RawPixels             bool
	Entry                 *zoo.Entry // set when the model came by zoo name
	prefixSet             bool
	// Triton, when set, is a model repository to write into instead of Out.
	Triton, TritonName string
	TritonOptions      triton.Options
	ctx                context.Context // the command's, for the calibration data
	// Quantize is "" or "int8"; Int8 shapes the latter.
	Quantize string
	Int8     sslzoo.Int8Options
}

// checkQuantizeFlags refuses --quantize and --calibrate where they cannot
// apply, before anything is pulled.
func checkQuantizeFlags(c *cli.Context, o exportOptions) error {
	if o.Quantize == "" {
		if c.IsSet("calibrate") || c.IsSet("calibration-data") {
			return usagef("sslzoo export: --calibrate and --calibration-data go with --quantize int8")
		}
		return nil
	}
	switch {
	case o.Quantize != "int8":
		return usagef("sslzoo export: --quantize %q: want int8", o.Quantize)
	case o.Int8.Calibrate < 1:
		return usagef("sslzoo export: --calibrate %d: want at least 1 image", o.Int8.Calibrate)
	case c.NArg() != 1:
		return usagef("sslzoo export: --quantize int8 calibrates on a zoo entry's data set; name the entry (sslzoo list)")
	case o.Triton != "" || o.Graph != "embed" || o.RawPixels:
		return usagef("sslzoo export: --quantize int8 writes a plain embedding model; leave out --triton, --graph and --raw-pixels")
	}
	return nil
}

func runExport(w io.Writer, o exportOptions) error {
	if o.Triton != "" {
		return runExportTriton(w, o)
	}
	fail := func(err error) error { return fmt.Errorf("sslzoo export: %w", err) }
	if o.Out == "" {
		return usagef("sslzoo export: --out is required")
	}
	if err := checkOutDir(o.Out); err != nil {
		return fmt.Errorf("sslzoo export: %w", err)
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
	eo := sslzoo.ExportOptions{Arch: o.Arch, Prefix: o.Prefix, PrefixSet: o.prefixSet,
		Seed: o.Seed, ImageSize: o.ImageSize, Seq: o.Seq, Pool: o.Pool, RawPixels: o.RawPixels, Version: buildVersion(), Entry: o.Entry}
	if o.Quantize != "" {
		ctx := o.ctx
		if ctx == nil {
			ctx = context.Background()
		}
		r, err := sslzoo.ExportInt8(ctx, o.Weights, o.Out, eo, o.Int8)
		if err != nil {
			return fail(err)
		}
		fmt.Fprintf(w, "quantized %d Conv/MatMul/Gemm nodes to int8, calibrated on %d images of %s\n", r.Nodes, r.Images, r.Data)
		return describeModel(w, o.Out)
	}
	if err := sslzoo.ExportWeights(o.Weights, o.Out, eo); err != nil {
		return fail(err)
	}
	return describeModel(w, o.Out)
}

// describeModel prints what a written model takes and returns.
func describeModel(w io.Writer, path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	info, err := onnxrt.ReadModelInfoFile(path)
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
