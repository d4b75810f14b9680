// Package sslzoo is the zoo as a Go library: pull a named encoder, embed
// images with it, export it to ONNX.
//
//	enc, err := sslzoo.Load(ctx, "simclr-resnet18-fmnist", nil)
//	...
//	vecs, err := enc.EmbedImages(images) // one []float32 per image.Image
//
// Names come from the compiled-in manifest (zoo.Entries; `sslzoo list`).
// Weights land in the cache (weights/cache: $SSLZOO_CACHE, else
// $XDG_CACHE_HOME/sslzoo, else ~/.cache/sslzoo); bundled entries are
// copied there from the binary itself, so nothing needs the network.
// Inference runs the exported ONNX graph on ONNX Runtime or on sslzoo's
// Go engine, with the preprocessing recorded in the model's metadata.
package sslzoo

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/sslzoo/sslzoo/internal/filehash"

	"github.com/sslzoo/sslzoo/weights"
	"github.com/sslzoo/sslzoo/weights/cache"
	"github.com/sslzoo/sslzoo/weights/ckptimport"
	"github.com/sslzoo/sslzoo/zoo"
	"github.com/sslzoo/sslzoo/zoo/bundled"
)

// Options adjust Pull and Load. The zero value (or nil) reads the cache
// settings from the environment and runs on ONNX Runtime when its library
// loads, else on the Go engine.
type Options struct {
	// Cache to pull into; nil means cache.New() (the environment's).
	Cache *cache.Cache
	// Progress receives download progress bars when Cache is nil.
	Progress io.Writer
	// NoBundled skips the copy inside the binary (to prove a download).
	NoBundled bool
	// Engine is "ort", "go" or "auto" (the default).
	Engine string
	// Threads caps ONNX Runtime's threads per run (0: its default).
	Threads int
	// Device is "cpu" (the default), "cuda" or "cuda:N"; ONNX Runtime only.
	Device string
	// Vocab is a text model's vocabulary (a vocab.txt or a tokenizer
	// folder) when its file records none.
	Vocab string
}

func (o *Options) orDefault() *Options {
	if o == nil {
		return &Options{}
	}
	return o
}

func (o *Options) cache() (*cache.Cache, error) {
	if o.Cache != nil {
		return o.Cache, nil
	}
	c, err := cache.New()
	if err != nil {
		return nil, err
	}
	c.Progress = o.Progress
	return c, nil
}

// Pull makes sure a zoo entry's weights are in the cache, verified, and
// returns the path of its sslzoo safetensors file.
func Pull(ctx context.Context, name string, opts *Options) (string, error) {
	o := opts.orDefault()
	e, err := zoo.Lookup(name)
	if err != nil {
		return "", err
	}
	c, err := o.cache()
	if err != nil {
		return "", err
	}
	req := cache.Request{Name: e.Name, File: e.File, Size: e.Size, SHA256: e.SHA256, URLs: e.URLs, NoBundled: o.NoBundled}
	if req.SHA256 == "" {
		req.SHA256 = e.SHA256Prefix
	}
	req.Unpinned = req.SHA256 == "" && !e.Verified
	if e.Bundled && bundled.Has(e.Name, e.File) {
		req.Bundled = func() (io.ReadCloser, error) { return bundled.Open(e.Name, e.File) }
	}
	path, err := c.Pull(ctx, req)
	if err != nil {
		return "", err
	}
	if e.Format == "" {
		return path, nil
	}
	return importPulled(e, path)
}

// importPulled turns a downloaded official checkpoint into sslzoo
// safetensors beside it (NAME.safetensors), once: a later pull finds the
// imported file recording the raw file's sha256 and keeps it.
func importPulled(e zoo.Entry, raw string) (string, error) {
	out := filepath.Join(filepath.Dir(raw), e.Name+".safetensors")
	sum, err := filehash.SHA256(raw)
	if err != nil {
		return "", err
	}
	if f, err := weights.Read(out); err == nil && strings.Contains(f.Metadata[ckptimport.MetaSource], sum) {
		return out, nil
	}
	res, err := ckptimport.Import(raw, e.Format, e.Arch)
	if err != nil {
		return "", fmt.Errorf("sslzoo: import %s: %w", e.Name, err)
	}
	if err := ckptimport.Write(res, out); err != nil {
		return "", fmt.Errorf("sslzoo: import %s: %w", e.Name, err)
	}
	return out, nil
}
