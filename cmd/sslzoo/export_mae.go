package main

import (
	"fmt"
	"io"

	"github.com/sslzoo/sslzoo/internal/filehash"

	"github.com/sslzoo/sslzoo/export"
	"github.com/sslzoo/sslzoo/export/maegraph"
	"github.com/sslzoo/sslzoo/zoo/ssl"
)

// runExportMAEReconstruction exports the masked-reconstruction graph of an
// MAE training checkpoint (encoder and decoder).
func runExportMAEReconstruction(w io.Writer, o exportOptions) error {
	fail := func(err error) error { return fmt.Errorf("sslzoo export: --graph reconstruct: %w", err) }
	m, spec, err := ssl.LoadMAECheckpoint(o.Weights)
	if err != nil {
		return fail(err)
	}
	sum, err := filehash.SHA256(o.Weights)
	if err != nil {
		return fail(err)
	}
	meta := export.Metadata{Method: "mae", Backbone: spec.Arch, Version: buildVersion(), WeightsSHA256: sum}
	s, err := maegraph.Reconstruction(spec.Arch+"-mae-reconstruction", m, meta)
	if err != nil {
		return fail(err)
	}
	if err := export.Export(s, o.Out, export.SaveOptions{}); err != nil {
		return fail(err)
	}
	return describeModel(w, o.Out)
}
