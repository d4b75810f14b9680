package main

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/sslzoo/sslzoo/internal/filehash"

	"github.com/sslzoo/sslzoo/export"
	"github.com/sslzoo/sslzoo/zoo"
)

// runExportHF exports a Hugging Face BERT folder: its sizes come from
// config.json, so any BERT shape loads, not only the registry's.
func runExportHF(w io.Writer, o exportOptions) error {
	fail := func(err error) error { return fmt.Errorf("sslzoo export: --hf: %w", err) }
	if _, err := os.Stat(filepath.Join(o.HF, "config.json")); err != nil {
		return fail(fmt.Errorf("%s is not a Hugging Face model folder: %w", o.HF, err))
	}
	hf, err := zoo.LoadHFBERT(o.HF)
	if err != nil {
		return fail(err)
	}
	cfg := hf.Model.Config
	seq := o.Seq
	if seq == 0 {
		seq = min(export.DefaultSeq, cfg.MaxPositions)
	}
	if seq > cfg.MaxPositions {
		return fail(fmt.Errorf("--seq %d exceeds the model's %d positions (config.json max_position_embeddings)", seq, cfg.MaxPositions))
	}
	if seq < 3 {
		return fail(fmt.Errorf("--seq %d leaves no room for [CLS] text [SEP]", seq))
	}
	wpath := filepath.Join(o.HF, "model.safetensors")
	sum, err := filehash.SHA256(wpath)
	if err != nil {
		return fail(err)
	}
	hdr, err := safetensorsMetadata(wpath)
	if err != nil {
		return fail(err)
	}
	name := "hf-bert-" + filepath.Base(filepath.Clean(o.HF))
	meta := export.Metadata{
		Version: buildVersion(), WeightsSHA256: sum, Backbone: name,
		Method: hdr["sslzoo.method"],
	}
	if meta.Method == "" && hf.Model.MLM != nil {
		meta.Method = "mlm"
	}
	b, err := export.NewBackbone(name, hf.Model, export.BackboneOptions{Seq: seq, Pool: o.Pool, Metadata: meta, Tokenizer: hf.Tokenizer})
	if err != nil {
		return fail(err)
	}
	if err := export.Export(b.Spec, o.Out, export.SaveOptions{}); err != nil {
		return fail(err)
	}
	return describeModel(w, o.Out)
}

// safetensorsMetadata reads only the __metadata__ of a safetensors header,
// without loading the tensors a second time.
func safetensorsMetadata(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var n uint64
	if err := binary.Read(f, binary.LittleEndian, &n); err != nil {
		return nil, fmt.Errorf("%s: header length: %w", path, err)
	}
	if n > 100<<20 {
		return nil, fmt.Errorf("%s: header of %d bytes is not safetensors", path, n)
	}
	raw := make([]byte, n)
	if _, err := io.ReadFull(f, raw); err != nil {
		return nil, fmt.Errorf("%s: header: %w", path, err)
	}
	var h struct {
		Meta map[string]string `json:"__metadata__"`
	}
	if err := json.Unmarshal(raw, &h); err != nil {
		return nil, fmt.Errorf("%s: header: %w", path, err)
	}
	return h.Meta, nil
}
