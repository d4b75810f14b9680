package main

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/sslzoo/sslzoo/data"
	"github.com/sslzoo/sslzoo/data/augment"
	"github.com/sslzoo/sslzoo/tensor"
	"github.com/sslzoo/sslzoo/zoo/ssl"
)

func colorizeCommand() *cli.Command {
	return &cli.Command{
		Name:      "colorize",
		Usage:     "colour grey versions of images with a Colorization checkpoint; writes original / grey / colourised PNGs",
		ArgsUsage: "[IMAGE...]",
		Description: "Loads a Colorization training checkpoint (OUT/checkpoint.safetensors of 'sslzoo train colorization',\n" +
			"which holds the colour head; final.safetensors holds only the backbone), takes each image's lightness,\n" +
			"predicts its colours (the annealed mean of the 262 ab bins at --temperature) and writes DIR/NAME.png\n" +
			"for every image (original | grey | colourised side by side) and DIR/grid.png with all of them in three\n" +
			"rows. Image files are resized and centre-cropped to the run's size as 'sslzoo embed' does; without\n" +
			"files, the first --n test images of --data (default: the run's) are used.\n\n" +
			"Example:\n" +
			"   sslzoo colorize --checkpoint runs/col/checkpoint.safetensors --data emoji --n 16 --out colour/",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "checkpoint", Usage: "Colorization training checkpoint (required)"},
			&cli.StringFlag{Name: "data", Usage: "image data when no files are given (default: the run's)"},
			&cli.IntFlag{Name: "n", Value: 8, Usage: "images of --data to colour"},
			&cli.Float64Flag{Name: "temperature", Value: ssl.AnnealTemperature, Usage: "annealed-mean temperature (1: the mean, towards 0: the mode)"},
			&cli.IntFlag{Name: "scale", Value: 2, Usage: "pixels per image pixel in the PNGs"},
			&cli.StringFlag{Name: "out", Value: "colorize", Usage: "folder to write the PNGs into"},
		},
		Action: func(c *cli.Context) error {
			return runColorize(c.Context, colorizeOptions{Checkpoint: c.String("checkpoint"), Data: c.String("data"),
				Files: c.Args().Slice(), N: c.Int("n"), Temperature: c.Float64("temperature"), Scale: c.Int("scale"),
				Out: c.String("out")}, c.App.Writer)
		},
	}
}

type colorizeOptions struct {
	Checkpoint, Data, Out string
	Files                 []string
	N, Scale              int
	Temperature           float64
}

func runColorize(ctx context.Context, o colorizeOptions, stdout io.Writer) error {
	switch {
	case o.Checkpoint == "":
		return usagef("sslzoo colorize: --checkpoint is required")
	case o.N < 1 || o.N > 256:
		return usagef("sslzoo colorize: --n %d outside [1, 256]", o.N)
	case len(o.Files) > 256:
		return usagef("sslzoo colorize: %d images; at most 256 a call", len(o.Files))
	case o.Scale < 1 || o.Scale > 32:
		return usagef("sslzoo colorize: --scale %d outside [1, 32]", o.Scale)
	case !(o.Temperature > 0 && o.Temperature <= 1):
		return usagef("sslzoo colorize: --temperature %g outside (0, 1]", o.Temperature)
	}
	m, spec, err := ssl.LoadColorizationCheckpoint(o.Checkpoint)
	if err != nil {
		return fmt.Errorf("sslzoo colorize: %w", err)
	}
	var images *tensor.Tensor
	var names []string
	if len(o.Files) > 0 {
		images, names, err = colorizeFiles(spec, o.Files)
	} else {
		images, names, err = colorizeData(ctx, spec, o.Data, o.N)
	}
	if err != nil {
		return fmt.Errorf("sslzoo colorize: %w", err)
	}
	colour, grey, err := m.Colorize(images, o.Temperature)
	if err != nil {
		return fmt.Errorf("sslzoo colorize: %w", err)
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return fmt.Errorf("sslzoo colorize: %w", err)
	}
	rows := []*tensor.Tensor{images, grey, colour}
	for i, name := range names {
		one := make([]*tensor.Tensor, 3)
		for r, t := range rows {
			one[r] = imageOf(t, i)
		}
		if err := writePNG(filepath.Join(o.Out, name), imageGrid([][]*tensor.Tensor{one}, o.Scale)); err != nil {
			return fmt.Errorf("sslzoo colorize: %w", err)
		}
	}
	cols := make([][]*tensor.Tensor, 3)
	for r, t := range rows {
		for i := range names {
			cols[r] = append(cols[r], imageOf(t, i))
		}
	}
	if err := writePNG(filepath.Join(o.Out, "grid.png"), imageGrid(cols, o.Scale)); err != nil {
		return fmt.Errorf("sslzoo colorize: %w", err)
	}
	fmt.Fprintf(stdout, "wrote %d images and grid.png (rows: original, grey, colourised) to %s\n", len(names), o.Out)
	return nil
}

// colorizeFiles reads image files as sRGB in [0, 1], resized and cropped
// to the run's size by the embedding preprocessing without its
// normalisation. Each output is named after its file, made unique.
func colorizeFiles(spec ssl.TrainSpec, files []string) (*tensor.Tensor, []string, error) {
	pre := spec.Preprocess()
	pre.Mean, pre.Std = []float64{0, 0, 0}, []float64{1, 1, 1}
	s := spec.Size
	out := tensor.New(len(files), 3, s, s)
	seen := map[string]int{}
	names := make([]string, len(files))
	for i, f := range files {
		px, err := pre.File(f)
		if err != nil {
			return nil, nil, err
		}
		copy(out.Data[i*3*s*s:], px)
		base := strings.TrimSuffix(filepath.Base(f), filepath.Ext(f))
		if seen[base]++; seen[base] > 1 {
			base = fmt.Sprintf("%s-%d", base, seen[base])
		}
		names[i] = base + ".png"
	}
	return out, names, nil
}

// colorizeData takes the first n test images of dataSpec (the run's when
// empty), resized to the run's size, as sRGB in [0, 1].
func colorizeData(ctx context.Context, spec ssl.TrainSpec, dataSpec string, n int) (*tensor.Tensor, []string, error) {
	if dataSpec == "" {
		dataSpec = spec.Data
	}
	ds, err := data.Open(ctx, dataSpec, data.OpenOptions{Train: false})
	if err != nil {
		return nil, nil, fmt.Errorf("--data %s: %w", dataSpec, err)
	}
	n = min(n, ds.Len())
	if n == 0 {
		return nil, nil, fmt.Errorf("--data %s holds no images", dataSpec)
	}
	ch, toRGB := ssl.ImageChannels(ds)
	if ch != 3 && !toRGB {
		return nil, nil, fmt.Errorf("--data %s holds grey images; colorize needs colour ones to compare with", dataSpec)
	}
	var tf augment.Transform = augment.Eval(spec.Size, nil)
	if toRGB {
		tf = augment.Compose{augment.ToRGB{}, tf}
	}
	s := spec.Size
	out := tensor.New(n, 3, s, s)
	names := make([]string, n)
	for i := range n {
		img, _, err := ds.Get(i)
		if err != nil {
			return nil, nil, fmt.Errorf("image %d: %w", i, err)
		}
		if img, err = tf.Apply(img, nil); err != nil {
			return nil, nil, fmt.Errorf("image %d: %w", i, err)
		}
		copy(out.Data[i*3*s*s:], img.Pix)
		names[i] = fmt.Sprintf("image-%03d.png", i)
	}
	return out, names, nil
}

// imageOf is image i of a batch [N, 3, H, W].
func imageOf(t *tensor.Tensor, i int) *tensor.Tensor {
	per := t.Shape[1] * t.Shape[2] * t.Shape[3]
	return &tensor.Tensor{Shape: t.Shape[1:], Data: t.Data[i*per : (i+1)*per]}
}

// imageGrid lays out rows of [3, H, W] sRGB images in [0, 1] on white, a
// 2-pixel gap between cells, each pixel drawn scale x scale.
func imageGrid(rows [][]*tensor.Tensor, scale int) *image.NRGBA {
	const gap = 2
	h, w := rows[0][0].Shape[1], rows[0][0].Shape[2]
	ch, cw := h*scale+gap, w*scale+gap
	cols := 0
	for _, r := range rows {
		cols = max(cols, len(r))
	}
	out := image.NewNRGBA(image.Rect(0, 0, cols*cw+gap, len(rows)*ch+gap))
	for i := range out.Pix {
		out.Pix[i] = 255
	}
	to8 := func(v float32) uint8 { return uint8(min(255, max(0, v*255+0.5))) }
	for r, row := range rows {
		for c, t := range row {
			for y := range h {
				for x := range w {
					p := y*w + x
					col := color.NRGBA{to8(t.Data[p]), to8(t.Data[h*w+p]), to8(t.Data[2*h*w+p]), 255}
					for dy := range scale {
						for dx := range scale {
							out.SetNRGBA(gap+c*cw+x*scale+dx, gap+r*ch+y*scale+dy, col)
						}
					}
				}
			}
		}
	}
	return out
}
