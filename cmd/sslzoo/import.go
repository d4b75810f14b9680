package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/sslzoo/sslzoo/weights/ckptimport"
	"github.com/sslzoo/sslzoo/zoo"
)

func importCommand() *cli.Command {
	return &cli.Command{
		Name:  "import",
		Usage: "convert a published PyTorch checkpoint into an sslzoo backbone (safetensors)",
		UsageText: "sslzoo import --format " + strings.Join(ckptimport.Formats, "|") +
			" [--arch A] [--heads N] CKPT --out F.safetensors",
		Description: "CKPT is a torch.save file (.pth, .pth.tar, .ckpt, .bin; zip or the pre-1.6 legacy format) or a\n" +
			"safetensors file, in the layout its project publishes; for hf-bert, a model folder or its\n" +
			"pytorch_model.bin / model.safetensors with config.json beside it. Nothing in the file is executed:\n" +
			"pickles naming anything but tensors and plain data are refused.\n" +
			"The backbone is kept (heads, momentum encoders, decoders and optimizer state are dropped) and its\n" +
			"architecture is read off the tensor shapes plus what the project's code fixes (MoCo v3's ViTs have 12\n" +
			"heads; solo-learn pads its CIFAR conv1 by 2). --arch names a registered architecture instead, and\n" +
			"tensors that disagree with it are refused. A ViT whose width is not one of its project's published\n" +
			"sizes needs --heads; a BERT without config.json needs --arch. The exact configuration is recorded\n" +
			"as " + zoo.ArchConfigKey + ", so export and eval rebuild the backbone from the file alone.\n" +
			"Flags may come before or after CKPT. The output folder must exist; the file is written atomically,\n" +
			"and its path is the last line printed.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "format", Usage: "checkpoint layout: " + strings.Join(ckptimport.Formats, ", ")},
			&cli.StringFlag{Name: "arch", Usage: "registered architecture to load into (default: inferred from the checkpoint)"},
			&cli.IntFlag{Name: "heads", Usage: "ViT attention heads, where the format cannot tell them"},
			&cli.StringFlag{Name: "out", Usage: "output `FILE`.safetensors"},
		},
		Action: func(c *cli.Context) error {
			o := importOptions{Format: c.String("format"), Arch: c.String("arch"), Heads: c.Int("heads"), Out: c.String("out")}
			set := map[string]bool{}
			for _, n := range []string{"format", "arch", "heads", "out"} {
				set[n] = c.IsSet(n)
			}
			if err := o.parseArgs(c.Args().Slice(), set); err != nil {
				return err
			}
			return runImport(c.App.Writer, o)
		},
	}
}

type importOptions struct {
	Format, Arch string
	Heads        int
	Out, Ckpt    string
}

// parseArgs takes CKPT and any flags still after it: urfave/cli stops
// parsing flags at the first positional argument. (run's flagsFirst now
// moves them ahead for every command; this keeps import working on its
// own, e.g. when the command is run without that reordering.)
func (o *importOptions) parseArgs(args []string, set map[string]bool) error {
	if len(args) == 0 {
		return nil
	}
	o.Ckpt = args[0]
	fs := flag.NewFlagSet("sslzoo import", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	format := fs.String("format", "", "")
	arch := fs.String("arch", "", "")
	heads := fs.Int("heads", 0, "")
	out := fs.String("out", "", "")
	if err := fs.Parse(args[1:]); err != nil {
		return usagef("sslzoo import: %v (run 'sslzoo import --help')", err)
	}
	if fs.NArg() > 0 {
		return usagef("sslzoo import: unexpected argument %q (one checkpoint at a time)", fs.Arg(0))
	}
	var err error
	fs.Visit(func(f *flag.Flag) {
		if set[f.Name] {
			err = usagef("sslzoo import: --%s given twice", f.Name)
		}
		switch f.Name {
		case "format":
			o.Format = *format
		case "arch":
			o.Arch = *arch
		case "heads":
			o.Heads = *heads
		case "out":
			o.Out = *out
		}
	})
	return err
}

func runImport(w io.Writer, o importOptions) error {
	switch {
	case o.Format == "":
		return usagef("sslzoo import: name the checkpoint layout with --format (%s)", strings.Join(ckptimport.Formats, ", "))
	case o.Ckpt == "":
		return usagef("sslzoo import: name the checkpoint file (sslzoo import --format %s CKPT --out F.safetensors)", o.Format)
	case o.Out == "":
		return usagef("sslzoo import: --out F.safetensors is required")
	case o.Heads < 0:
		return usagef("sslzoo import: --heads must be positive")
	}
	if dir := filepath.Dir(o.Out); dir != "" {
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			return usagef("sslzoo import: --out %s: folder %s does not exist (create it first)", o.Out, dir)
		}
	}
	if a, b := filepath.Clean(o.Out), filepath.Clean(o.Ckpt); a == b {
		return usagef("sslzoo import: --out %s would overwrite the checkpoint", o.Out)
	}
	res, err := ckptimport.ImportWith(o.Ckpt, ckptimport.Options{Format: o.Format, Arch: o.Arch, Heads: o.Heads})
	if err != nil {
		return fmt.Errorf("sslzoo %w", err)
	}
	if err := ckptimport.Write(res, o.Out); err != nil {
		return fmt.Errorf("sslzoo import: %w", err)
	}
	var bytes int
	for _, t := range res.State {
		bytes += len(t.Data)
	}
	fmt.Fprintf(w, "imported %s checkpoint %s (%s)\n", o.Format, filepath.Base(o.Ckpt), res.Container)
	fmt.Fprintf(w, "  backbone   %s (%s)\n", res.Spec.Name, describeImported(res.Spec))
	fmt.Fprintf(w, "  from       %s\n", res.From)
	fmt.Fprintf(w, "  tensors    %d (%s)\n", len(res.State), humanBytes(int64(bytes)))
	if len(res.Dropped) > 0 {
		fmt.Fprintf(w, "  dropped    %s\n", strings.Join(res.Dropped, ", "))
	}
	fmt.Fprintf(w, "  embedding  %d\n", res.EmbeddingDim)
	for _, n := range res.Notes {
		fmt.Fprintf(w, "  note       %s\n", n)
	}
	fmt.Fprintln(w, o.Out)
	return nil
}

// describeImported spells out the parts of a configuration that names
// alone do not show.
func describeImported(s zoo.Spec) string {
	switch s.Family {
	case "resnet":
		c := s.ResNet
		d := fmt.Sprintf("ResNet-%d, %s stem, width %g", c.Depth, c.Stem, c.Width)
		if c.StemPadding != 0 {
			d += fmt.Sprintf(", conv1 padding %d", c.StemPadding)
		}
		return d
	case "vit":
		c := s.ViT
		return fmt.Sprintf("ViT dim %d, depth %d, %d heads, patch %d, image %d, %s pooling", c.Dim, c.Depth, c.Heads, c.PatchSize, c.ImageSize, c.Pool)
	case "bert":
		c := s.BERT
		return fmt.Sprintf("BERT %d layers, hidden %d, %d heads, vocabulary %d", c.Layers, c.Hidden, c.Heads, c.VocabSize)
	}
	return s.Family
}
