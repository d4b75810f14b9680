package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/sslzoo/sslzoo/onnxrt"
	"github.com/sslzoo/sslzoo/serve/triton"
)

// runExportTriton exports the embedding graph into a Triton model
// repository: the model first, then its config.pbtxt, so that a Triton
// polling the repository never sees a config without its model.
func runExportTriton(w io.Writer, o exportOptions) error {
	switch {
	case o.Out != "":
		return usagef("sslzoo export: --triton DIR places the model at DIR/MODEL/%s; leave out --out", triton.ModelFile)
	case o.Graph != "" && o.Graph != "embed":
		return usagef("sslzoo export: --triton serves the embedding graph; leave out --graph %s", o.Graph)
	}
	if st, err := os.Stat(o.Triton); err != nil || !st.IsDir() {
		return usagef("sslzoo export: --triton %s: not a folder (create it first)", o.Triton)
	}
	name := o.TritonName
	if name == "" {
		name = o.Arch
	}
	if name == "" {
		return usagef("sslzoo export: name the Triton model with --triton-name")
	}
	if err := triton.CheckName(name); err != nil {
		return usagef("sslzoo export: --triton-name: %v", err)
	}
	if o.TritonOptions.MaxBatchSize < 1 || o.TritonOptions.Instances < 1 {
		return usagef("sslzoo export: --max-batch %d and --instances %d must be at least 1", o.TritonOptions.MaxBatchSize, o.TritonOptions.Instances)
	}
	root := o.Triton
	dir := triton.ModelDir(root, name)
	if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(triton.ModelFile)), 0o755); err != nil {
		return fmt.Errorf("sslzoo export: %w", err)
	}
	o.Out, o.Triton = filepath.Join(dir, triton.ModelFile), ""
	if err := runExport(w, o); err != nil {
		return err
	}
	info, err := onnxrt.ReadModelInfoFile(o.Out)
	if err != nil {
		return fmt.Errorf("sslzoo export: %w", err)
	}
	cfg, err := triton.ConfigFor(name, info, o.TritonOptions)
	if err != nil {
		return fmt.Errorf("sslzoo export: %w", err)
	}
	if err := triton.WriteConfig(root, cfg); err != nil {
		return fmt.Errorf("sslzoo export: %w", err)
	}
	fmt.Fprintf(w, "wrote %s (max_batch_size %d, %d CPU instance(s))\nserve it with: tritonserver --model-repository %s\n",
		filepath.Join(dir, "config.pbtxt"), cfg.MaxBatchSize, cfg.Instances, root)
	return nil
}
