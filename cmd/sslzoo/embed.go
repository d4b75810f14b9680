package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/sslzoo/sslzoo/internal/npy"
	"github.com/sslzoo/sslzoo/onnxrt"
	"github.com/sslzoo/sslzoo/tensor"
)

func embedCommand() *cli.Command {
	return &cli.Command{
		Name:  "embed",
		Usage: "embed image files (or a .npy tensor, or texts) with a zoo model or an ONNX file",
		UsageText: "sslzoo embed MODEL FILE|DIR|GLOB... --out F.npy|F.jsonl [--engine ort|go|auto] [--batch B] [--on-decode-error fail|skip]\n" +
			"  example: sslzoo embed simclr-resnet18-fmnist photos/ --out embeddings.jsonl\n" +
			"sslzoo embed --model F.onnx|NAME --input X.npy --out Y.npy\n" +
			"sslzoo embed --model F.onnx --engine ort|go|auto --input X.npy --out Y.npy [--batch B] [--workers W] [--threads N] [--device cpu|cuda[:N]]\n" +
			"sslzoo embed MODEL|--model bert.onnx --text \"a sentence\" [--text ...] [--text-file F] [--vocab vocab.txt|DIR] --out Y.npy|Y.jsonl [--engine ort|go|auto]\n" +
			"  example: sslzoo embed mlm-bert-tiny-brown --text \"The jury praised the city.\" --out text.jsonl",
		Description: "MODEL is a zoo name (pulled and exported on first use; see sslzoo list) or an .onnx file with\n" +
			"sslzoo.preprocess metadata. Folders are walked recursively in lexical order; png, jpeg, gif, bmp, webp\n" +
			"and tiff are read by content. Each image is converted, resized, cropped and normalised as the model's\n" +
			"metadata says (torchvision's eval transform). .jsonl rows are {\"file\", \"embedding\"} ({\"text\", ...} for texts); .npy rows\n" +
			"come in the same order. A file that does not decode stops the run with nothing written, unless\n" +
			"--on-decode-error skip, which warns and leaves it out.\n" +
			"X.npy holds the model's first input with its batch axis first: float32 pixels for image models,\n" +
			"int64 token ids for text models (int32 is widened; float64 is refused rather than rounded).\n" +
			"A text model's attention_mask comes from --mask M.npy, or else is derived from the ids:\n" +
			"1 where the id is not the padding id (0, or the pad_id in the model's sslzoo.text metadata).\n" +
			"The rows run in batches of --batch, --workers at a time; the output named by --output (default \"embedding\", else the\n" +
			"first) is written atomically to Y.npy.\n" +
			"With --text (repeatable) and/or --text-file (one text per line) a text model's inputs are tokenized in Go:\n" +
			"[CLS] text [SEP], padded to the model's exported length; longer texts are truncated with a warning.\n" +
			"Empty text embeds [CLS] [SEP]; invalid UTF-8 bytes are dropped. The vocabulary is --vocab (vocab.txt or a\n" +
			"Hugging Face folder), else the one the model carries (sslzoo.vocab metadata), else vocab.txt beside the\n" +
			"model; settings come from the model's sslzoo.tokenizer metadata, whose vocab sha256 must match.\n" +
			"  example: sslzoo embed mlm-bert-tiny-brown --text \"a sentence\" --out y.npy",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "model", Usage: "ONNX `FILE`"},
			&cli.StringFlag{Name: "engine", Value: "auto", Usage: "ort (ONNX Runtime), go (sslzoo's engine) or auto (ort when its library loads)"},
			&cli.StringFlag{Name: "input", Usage: "input .npy `FILE`"},
			&cli.StringSliceFlag{Name: "text", Usage: "a `TEXT` to embed with a text model (repeatable)"},
			&cli.StringFlag{Name: "text-file", Usage: "`FILE` of texts, one per line"},
			&cli.StringFlag{Name: "vocab", Usage: "vocab.txt `FILE` or Hugging Face folder for --text (default: the one the model carries, else vocab.txt beside it)"},
			&cli.StringFlag{Name: "mask", Usage: "attention mask .npy `FILE` for text models (default: ids != pad id)"},
			&cli.StringFlag{Name: "out", Usage: "output .npy `FILE`"},
			&cli.StringFlag{Name: "output", Usage: "model output `NAME` to write (default embedding, else the first)"},
			&cli.IntFlag{Name: "batch", Value: 64, Usage: "rows per run (0: all at once)"},
			&cli.IntFlag{Name: "threads", Usage: "threads per run (0: the engine's default)"},
			&cli.IntFlag{Name: "workers", Value: 1, Usage: "batches run at once on the one loaded model"},
			&cli.StringFlag{Name: "device", Value: "cpu", Usage: "cpu, cuda or cuda:N (ONNX Runtime only)"},
			&cli.StringFlag{Name: "on-decode-error", Value: "fail", Usage: "image files that do not decode: fail (stop, write nothing) or skip (warn, leave out)"},
		},
		Action: func(c *cli.Context) error {
			o := embedOptions{
				Model: c.String("model"), Engine: c.String("engine"), Input: c.String("input"), Mask: c.String("mask"),
				Out: c.String("out"), Output: c.String("output"), Batch: c.Int("batch"), Threads: c.Int("threads"), Workers: c.Int("workers"),
				Device: c.String("device"), Texts: c.StringSlice("text"), TextFile: c.String("text-file"), Vocab: c.String("vocab"),
				OnDecodeError: c.String("on-decode-error"), errw: c.App.ErrWriter,
			}
			tensorInput := len(o.Texts) > 0 || o.TextFile != "" || o.Input != ""
			if c.NArg() > 0 && o.Model != "" {
				return usagef("sslzoo embed: give the model once, as --model or as the first argument")
			}
			if c.NArg() == 1 && tensorInput {
				o.Model = c.Args().First() // sslzoo embed NAME --text ...
			} else if c.NArg() > 0 {
				if c.NArg() == 1 {
					return usagef("sslzoo embed: name the image files or folders to embed after %s", c.Args().First())
				}
				return runEmbedImages(c.Context, c.App.Writer, c.App.ErrWriter, o, c.Args().First(), c.Args().Tail())
			}
			if o.Model != "" && !strings.HasSuffix(o.Model, ".onnx") {
				path, err := resolveModel(c.Context, o.Model, c.App.ErrWriter)
				if err != nil {
					return err
				}
				o.Model = path
			}
			return runEmbed(c.App.Writer, o)
		},
	}
}

type embedOptions struct {
	Model, Engine, Input, Mask, Out, Output string
	Batch, Threads, Workers                 int
	Device                                  string
	Texts                                   []string
	TextFile, Vocab                         string
	OnDecodeError                           string
	errw                                    io.Writer
}

func runEmbed(w io.Writer, o embedOptions) error {
	const name = "sslzoo embed"
	textMode := len(o.Texts) > 0 || o.TextFile != ""
	switch {
	case textMode && (o.Input != "" || o.Mask != ""):
		return usagef("%s: --text and --text-file replace --input and --mask; give one or the other", name)
	case !textMode && o.Vocab != "":
		return usagef("%s: --vocab goes with --text or --text-file", name)
	case textMode:
		o.Input = "-" // checked below as present; the texts are the input
	}
	for _, f := range []struct{ flag, v string }{{"model", o.Model}, {"input", o.Input}, {"out", o.Out}} {
		if f.v == "" {
			return usagef("%s: --%s is required", name, f.flag)
		}
	}
	switch ext := filepath.Ext(o.Out); {
	case ext == ".jsonl" && !textMode:
		return usagef("%s: --out %s: .jsonl records name their text or file; a tensor --input writes .npy", name, o.Out)
	case ext != ".npy" && ext != ".jsonl":
		return usagef("%s: --out %s: want a .npy or .jsonl file", name, o.Out)
	}
	switch o.Engine {
	case onnxrt.EngineORT, onnxrt.EngineGo, onnxrt.EngineAuto:
	default:
		return usagef("%s: --engine %q: want ort, go or auto", name, o.Engine)
	}
	if o.Batch < 0 || o.Threads < 0 {
		return usagef("%s: --batch and --threads must not be negative", name)
	}
	if o.Workers < 1 {
		return usagef("%s: --workers must be at least 1", name)
	}
	dev, err := onnxrt.ParseDevice(o.Device)
	if err != nil {
		return usagef("%s: --device: %v", name, err)
	}
	if dev.CUDA && o.Engine == onnxrt.EngineGo {
		return usagef("%s: --device %v needs --engine ort: the Go engine runs on the CPU", name, dev)
	}
	fail := func(err error) error { return fmt.Errorf("%s: %w", name, err) }
	if _, err := os.Stat(o.Model); err != nil {
		return fail(fmt.Errorf("--model: %w", err))
	}
	kind := o.Engine
	if kind == onnxrt.EngineAuto {
		kind = onnxrt.EngineGo
		if onnxrt.Available() == nil {
			kind = onnxrt.EngineORT
		} else if dev.CUDA {
			return fail(fmt.Errorf("--device %v needs ONNX Runtime: %v", dev, onnxrt.Available()))
		}
	}
	if kind == onnxrt.EngineGo && o.Threads > 0 {
		// The Go engine's kernels split work over GOMAXPROCS goroutines.
		// Restored afterwards: run is also called in-process (tests).
		defer goruntime.GOMAXPROCS(goruntime.GOMAXPROCS(o.Threads))
		if prev := tensor.BLASThreads(); prev > 0 {
			defer tensor.SetBLASThreads(prev)
		}
		tensor.SetBLASThreads(o.Threads)
	}
	eng, err := onnxrt.OpenEngine(o.Model, kind, onnxrt.Options{IntraOpThreads: o.Threads, Device: dev})
	if err != nil {
		return fail(err)
	}
	defer eng.Close()
	var (
		inputs []*onnxrt.Tensor
		texts  []string
	)
	if textMode {
		warn := o.errw
		if warn == nil {
			warn = io.Discard
		}
		inputs, texts, err = textInputs(eng, o, warn)
	} else {
		inputs, err = embedInputs(eng, o)
	}
	if err != nil {
		var u usageError
		if errors.As(err, &u) {
			return err
		}
		return fail(err)
	}
	outs := eng.Outputs()
	pick := -1
	for i, v := range outs {
		if v.Name == o.Output || (o.Output == "" && v.Name == "embedding") {
			pick = i
		}
	}
	if pick < 0 {
		if o.Output != "" {
			var names []string
			for _, v := range outs {
				names = append(names, v.Name)
			}
			return usagef("%s: the model has no output %q (outputs: %s)", name, o.Output, strings.Join(names, ", "))
		}
		pick = 0
	}
	start := time.Now()
	res, err := (&onnxrt.Batcher{Engine: eng, Size: o.Batch, Workers: o.Workers}).Run(inputs...)
	if err != nil {
		return fail(err)
	}
	y := res[pick]
	if filepath.Ext(o.Out) == ".jsonl" {
		err = writeTextRows(o.Out, texts, y)
	} else {
		err = writeTensor(o.Out, outs[pick].Name, y)
	}
	if err != nil {
		return fail(err)
	}
	engine := "go engine"
	if kind == onnxrt.EngineORT {
		engine = "onnxruntime " + onnxrt.Version() + " on " + dev.String()
	}
	fmt.Fprintf(w, "wrote %s: %s %v %v (%s, %d rows in %.3fs)\n", o.Out, outs[pick].Name, y.DType, y.Shape, engine,
		inputs[0].Shape[0], time.Since(start).Seconds())
	return nil
}

// writeTensor writes an output as .npy.
func writeTensor(out, name string, y *onnxrt.Tensor) error {
	a := &npy.Array{Shape: y.Shape, Data: y.Data}
	switch y.DType {
	case onnxrt.Float32:
		a.DType = npy.Float32
	case onnxrt.Int64:
		a.DType = npy.Int64
	default:
		return fmt.Errorf("output %s is %v; .npy output supports float32 and int64", name, y.DType)
	}
	return npy.WriteFile(out, a)
}

// writeTextRows writes a [texts, dim] float32 output as .jsonl records
// {"text", "embedding"}, in the order of the texts.
func writeTextRows(out string, texts []string, y *onnxrt.Tensor) error {
	data, ok := y.Data.([]float32)
	if !ok || len(y.Shape) != 2 || y.Shape[0] != len(texts) {
		return fmt.Errorf("output %v %v is not one float32 row per text; write .npy instead", y.DType, y.Shape)
	}
	rows := make([][]float32, len(texts))
	for i := range rows {
		rows[i] = data[i*y.Shape[1] : (i+1)*y.Shape[1]]
	}
	return writeEmbeddings(out, "text", texts, rows)
}

// embedInputs reads --input (and --mask) and checks them against the
// model's inputs: the element type, the rank and every static dimension.
func embedInputs(eng onnxrt.Engine, o embedOptions) ([]*onnxrt.Tensor, error) {
	ins := eng.Inputs()
	x, err := readInput(o.Input, ins[0])
	if err != nil {
		return nil, err
	}
	if len(x.Shape) == 0 || x.Shape[0] == 0 {
		return nil, fmt.Errorf("--input %s: shape %v has no rows (the batch axis comes first)", o.Input, x.Shape)
	}
	switch len(ins) {
	case 1:
		if o.Mask != "" {
			return nil, usagef("sslzoo embed: --mask: the model has one input (%v), no attention mask", ins[0])
		}
		return []*onnxrt.Tensor{x}, nil
	case 2:
		if ins[1].DType != onnxrt.Int64 {
			return nil, fmt.Errorf("the model's second input %v is not an int64 attention mask; sslzoo embed feeds one tensor, or ids and a mask", ins[1])
		}
		var mask *onnxrt.Tensor
		if o.Mask != "" {
			if mask, err = readInput(o.Mask, ins[1]); err != nil {
				return nil, err
			}
			if !slices.Equal(mask.Shape, x.Shape) {
				return nil, fmt.Errorf("--mask %s has shape %v, --input has %v", o.Mask, mask.Shape, x.Shape)
			}
		} else {
			ids, ok := x.Data.([]int64)
			if !ok {
				return nil, fmt.Errorf("--input %s: a mask can only be derived from int64 ids", o.Input)
			}
			pad := padID(eng.Metadata())
			m := make([]int64, len(ids))
			for i, id := range ids {
				if id != pad {
					m[i] = 1
				}
			}
			mask = onnxrt.NewTensor(x.Shape, m)
		}
		return []*onnxrt.Tensor{x, mask}, nil
	}
	return nil, fmt.Errorf("the model takes %d inputs (%v); sslzoo embed feeds one tensor, or ids and a mask", len(ins), ins)
}

// padID reads the padding id from the model's sslzoo.text metadata (0
// when absent, BERT's [PAD]).
func padID(meta map[string]string) int64 {
	var t struct {
		PadID int64 `json:"pad_id"`
	}
	if json.Unmarshal([]byte(meta["sslzoo.text"]), &t) != nil {
		return 0
	}
	return t.PadID
}

// readInput reads a .npy file for one model input, converting int32 to
// int64 (lossless) and refusing any other type mismatch.
func readInput(path string, vi onnxrt.ValueInfo) (*onnxrt.Tensor, error) {
	a, err := npy.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var t *onnxrt.Tensor
	switch d := a.Data.(type) {
	case []float32:
		t = onnxrt.NewTensor(a.Shape, d)
	case []int64:
		t = onnxrt.NewTensor(a.Shape, d)
	case []int32:
		if vi.DType == onnxrt.Int64 {
			w := make([]int64, len(d))
			for i, v := range d {
				w[i] = int64(v)
			}
			t = onnxrt.NewTensor(a.Shape, w)
		}
	}
	if t == nil || t.DType != vi.DType {
		hint := ""
		switch vi.DType {
		case onnxrt.Float32:
			hint = " (convert with x.astype(np.float32))"
		case onnxrt.Int64:
			hint = " (convert with x.astype(np.int64))"
		}
		return nil, fmt.Errorf("%s holds %s; the model's input %s wants %v%s", path, a.DType, vi.Name, vi.DType, hint)
	}
	if vi.Shape != nil {
		ok := len(vi.Shape) == len(t.Shape)
		for i := 0; ok && i < len(t.Shape); i++ {
			ok = vi.Shape[i] < 0 || vi.Shape[i] == t.Shape[i]
		}
		if !ok {
			return nil, fmt.Errorf("%s has shape %v; the model's input is %v", path, t.Shape, vi)
		}
	}
	return t, nil
}
