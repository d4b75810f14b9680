package main

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math/rand/v2"

	"github.com/urfave/cli/v2"

	"github.com/sslzoo/sslzoo/data"
	"github.com/sslzoo/sslzoo/internal/atomicfile"
	"github.com/sslzoo/sslzoo/tensor"
	"github.com/sslzoo/sslzoo/zoo/ssl"
)

func reconstructCommand() *cli.Command {
	return &cli.Command{
		Name:  "reconstruct",
		Usage: "draw MAE reconstructions as a PNG grid (original / masked / reconstruction)",
		Description: "Loads an MAE training checkpoint (OUT/checkpoint.safetensors of 'sslzoo train mae', which holds\n" +
			"the decoder; final.safetensors holds only the encoder), masks the first --n test images at the\n" +
			"run's mask ratio and writes a PNG with one column per image: the original, the visible patches\n" +
			"(hidden ones grey), and the reconstruction (visible patches as given, hidden ones as predicted,\n" +
			"un-normalised with each patch's own statistics when the run used norm_pix_loss).",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "checkpoint", Usage: "MAE checkpoint (required)"},
			&cli.StringFlag{Name: "data", Usage: "image data (default: the run's)"},
			&cli.IntFlag{Name: "n", Value: 8, Usage: "images to show"},
			&cli.IntFlag{Name: "scale", Value: 4, Usage: "pixels per image pixel in the PNG"},
			&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "seed for the masks"},
			&cli.StringFlag{Name: "out", Value: "reconstruct.png", Usage: "PNG file to write"},
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			return runReconstruct(c.Context, reconstructOptions{Checkpoint: c.String("checkpoint"), Data: c.String("data"),
				N: c.Int("n"), Scale: c.Int("scale"), Seed: c.Uint64("seed"), Out: c.String("out")}, c.App.Writer)
		},
	}
}

type reconstructOptions struct {
	Checkpoint, Data, Out string
	N, Scale              int
	Seed                  uint64
}

func runReconstruct(ctx context.Context, o reconstructOptions, stdout io.Writer) error {
	switch {
	case o.Checkpoint == "":
		return usagef("sslzoo reconstruct: --checkpoint is required")
	case o.N < 1 || o.N > 256:
		return usagef("sslzoo reconstruct: --n %d outside [1, 256]", o.N)
	case o.Scale < 1 || o.Scale > 32:
		return usagef("sslzoo reconstruct: --scale %d outside [1, 32]", o.Scale)
	}
	m, spec, err := ssl.LoadMAECheckpoint(o.Checkpoint)
	if err != nil {
		return fmt.Errorf("sslzoo reconstruct: %w", err)
	}
	dataSpec := o.Data
	if dataSpec == "" {
		dataSpec = spec.Data
	}
	ds, err := data.Open(ctx, dataSpec, data.OpenOptions{Train: false})
	if err != nil {
		return fmt.Errorf("sslzoo reconstruct: --data %s: %w", dataSpec, err)
	}
	n := min(o.N, ds.Len())
	if n == 0 {
		return fmt.Errorf("sslzoo reconstruct: --data %s holds no images", dataSpec)
	}
	channels, toRGB := ssl.ImageChannels(ds)
	if toRGB {
		channels = 3
	}
	if channels != spec.InChannels {
		return fmt.Errorf("sslzoo reconstruct: --data %s has %d channels, the model %d", dataSpec, channels, spec.InChannels)
	}
	tf := spec.EvalTransform(toRGB)
	s := spec.Size
	batch := tensor.New(n, spec.InChannels, s, s)
	for i := range n {
		img, _, err := ds.Get(i)
		if err != nil {
			return fmt.Errorf("sslzoo reconstruct: image %d: %w", i, err)
		}
		if img, err = tf.Apply(img, nil); err != nil {
			return fmt.Errorf("sslzoo reconstruct: image %d: %w", i, err)
		}
		copy(batch.Data[i*spec.InChannels*s*s:], img.Pix)
	}
	p := m.Encoder.Config.PatchSize
	g := s / p
	noise := make([]float32, n*g*g)
	rng := rand.New(rand.NewPCG(o.Seed, 0x6d6165))
	for i := range noise {
		noise[i] = rng.Float32()
	}
	pred, mk, err := m.Reconstruct(batch, noise)
	if err != nil {
		return fmt.Errorf("sslzoo reconstruct: %w", err)
	}
	grid := reconstructionGrid(batch, pred, mk, spec, p, o.Scale)
	if err := writePNG(o.Out, grid); err != nil {
		return fmt.Errorf("sslzoo reconstruct: %w", err)
	}
	fmt.Fprintf(stdout, "wrote %s: %d images, %d of %d patches hidden each (rows: original, masked, reconstruction)\n",
		o.Out, n, g*g-mk.Keep, g*g)
	return nil
}

// reconstructionGrid lays out three rows of n cells (original, visible
// patches on grey, reconstruction) with a 2-pixel gap, each pixel drawn
// scale x scale, after undoing the normalisation.
func reconstructionGrid(orig, pred *tensor.Tensor, mk ssl.MAEMasking, spec ssl.TrainSpec, p, scale int) *image.NRGBA {
	n, c, s := orig.Shape[0], orig.Shape[1], orig.Shape[2]
	g := s / p
	const gap = 2
	cell := s*scale + gap
	out := image.NewNRGBA(image.Rect(0, 0, n*cell+gap, 3*cell+gap))
	for i := range out.Pix {
		out.Pix[i] = 255
	}
	pixel := func(t *tensor.Tensor, b, ch, y, x int) float64 {
		v := float64(t.Data[((b*c+ch)*s+y)*s+x])
		if ch < len(spec.Std) {
			v = v*spec.Std[ch] + spec.Mean[ch]
		}
		return v
	}
	to8 := func(v float64) uint8 { return uint8(min(255, max(0, v*255+0.5))) }
	for b := range n {
		for row := range 3 {
			for y := range s {
				for x := range s {
					hidden := mk.Mask[b*g*g+(y/p)*g+x/p] == 1
					var rgb [3]uint8
					for k := range 3 {
						ch := min(k, c-1)
						var v float64
						switch {
						case row == 0 || !hidden:
							v = pixel(orig, b, ch, y, x)
						case row == 1:
							v = 0.5
						default:
							v = pixel(pred, b, ch, y, x)
						}
						rgb[k] = to8(v)
					}
					col := color.NRGBA{rgb[0], rgb[1], rgb[2], 255}
					for dy := range scale {
						for dx := range scale {
							out.SetNRGBA(gap+b*cell+x*scale+dx, gap+row*cell+y*scale+dy, col)
						}
					}
				}
			}
		}
	}
	return out
}

// writePNG writes img atomically.
func writePNG(path string, img image.Image) error {
	return atomicfile.Write(path, func(w io.Writer) error { return png.Encode(w, img) })
}
