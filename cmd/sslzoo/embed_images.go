package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/sslzoo/sslzoo"
	"github.com/sslzoo/sslzoo/data/preprocess"
	"github.com/sslzoo/sslzoo/onnxrt"
)

// progressFrom is the number of images past which embed shows a bar.
const progressFrom = 300

// resolveModel turns MODEL (a zoo name or an .onnx path) into an ONNX
// file, pulling and exporting a zoo entry on first use.
func resolveModel(ctx context.Context, model string, errw io.Writer) (string, error) {
	if !isZooName(model) {
		return model, nil
	}
	path, err := sslzoo.ModelPath(ctx, model, &sslzoo.Options{Progress: errw})
	if err != nil {
		return "", pullFailure(err)
	}
	return path, nil
}

// runEmbedImages embeds image files (and folders, globs) with an image
// model, in input order, and writes .npy rows or .jsonl records.
func runEmbedImages(ctx context.Context, w, errw io.Writer, o embedOptions, model string, args []string) error {
	const name = "sslzoo embed"
	fail := func(err error) error { return fmt.Errorf("%s: %w", name, err) }
	ext := strings.ToLower(filepath.Ext(o.Out))
	switch {
	case o.Out == "":
		return usagef("%s: --out F.npy or F.jsonl is required", name)
	case ext != ".npy" && ext != ".jsonl":
		return usagef("%s: --out %s: want a .npy or .jsonl file", name, o.Out)
	case o.Input != "" || o.Mask != "" || len(o.Texts) > 0 || o.TextFile != "":
		return usagef("%s: image files replace --input, --mask and --text; give one kind of input", name)
	case o.Batch < 0 || o.Threads < 0:
		return usagef("%s: --batch and --threads must not be negative", name)
	}
	policy, err := preprocess.ParseErrorPolicy(o.OnDecodeError)
	if err != nil {
		return usagef("%s: --on-decode-error: %v", name, err)
	}
	if err := checkOutDir(o.Out); err != nil {
		return err
	}
	paths, err := preprocess.ExpandInputs(args)
	if err != nil {
		return fail(err)
	}
	path, err := resolveModel(ctx, model, errw)
	if err != nil {
		return err
	}
	enc, err := sslzoo.Open(path, &sslzoo.Options{Engine: o.Engine, Threads: o.Threads, Device: o.Device})
	if err != nil {
		return fail(err)
	}
	defer enc.Close()

	var bar *progressbar.ProgressBar
	if len(paths) >= progressFrom && errw != nil {
		bar = progressbar.NewOptions(len(paths), progressbar.OptionSetWriter(errw), progressbar.OptionSetDescription("embed"),
			progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionSetItsString("img"),
			progressbar.OptionSetWidth(30), progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(errw) }))
	}
	warn := func(i int, p string, err error) {
		if bar != nil {
			bar.Clear()
		}
		fmt.Fprintf(errw, "warning: skipping %s: %v\n", p, err)
	}
	start := time.Now()
	var rows [][]float32
	var kept []int
	batch := o.Batch
	if batch == 0 {
		batch = preprocess.DefaultBatchSize
	}
	for b, err := range preprocess.Files(ctx, paths, enc.Preprocess(), preprocess.Options{BatchSize: batch, OnError: policy, Warn: warn}) {
		if err != nil {
			if bar != nil {
				bar.Clear()
			}
			return fail(fmt.Errorf("%w (nothing written; --on-decode-error skip leaves bad files out)", err))
		}
		r, err := enc.EmbedTensor(b.Data, len(b.Indices))
		if err != nil {
			return fail(err)
		}
		rows = append(rows, r...)
		kept = append(kept, b.Indices...)
		if bar != nil {
			bar.Set(kept[len(kept)-1] + 1)
		}
	}
	if bar != nil {
		bar.Finish()
	}
	if len(rows) == 0 {
		return fail(fmt.Errorf("no image could be read"))
	}
	dim := len(rows[0])
	names := make([]string, len(rows))
	for i := range rows {
		names[i] = paths[kept[i]]
	}
	err = writeEmbeddings(o.Out, "file", names, rows)
	if err != nil {
		return fail(err)
	}
	engine := "go engine"
	if _, ok := enc.Engine().(*onnxrt.Session); ok {
		engine = "onnxruntime " + onnxrt.Version()
	}
	secs := time.Since(start).Seconds()
	fmt.Fprintf(w, "embedded %d of %d images with %s (%s) in %.2fs (%.0f images/s): %d x %d\n", len(rows), len(paths),
		filepath.Base(path), engine, secs, float64(len(rows))/secs, len(rows), dim)
	fmt.Fprintln(w, o.Out)
	return nil
}
