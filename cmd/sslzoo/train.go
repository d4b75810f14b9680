package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/sslzoo/sslzoo/data"
	"github.com/sslzoo/sslzoo/dist"
	"github.com/sslzoo/sslzoo/internal/progress"
	"github.com/sslzoo/sslzoo/zoo"
	"github.com/sslzoo/sslzoo/zoo/ssl"
)

// trainMethods are the two-view (and multi-crop) methods `sslzoo train`
// runs; mae (ViTs only) and mlm (text) have subcommands of their own.
var trainMethods = []string{"simclr", "mocov2", "mocov3", "byol", "swav", "barlow", "vicreg", "simsiam", "dino", "jigsaw", "colorization", "deepcluster", "deepclusterv2"}

// maeUsage is the one-line description of `sslzoo train mae`.
const maeUsage = "MAE: ViT encoder on 25% of the patches, light decoder, pixel loss on the hidden ones, AdamW + warmup-cosine"

func trainCommand() *cli.Command {
	flags := []cli.Flag{
		&cli.StringFlag{Name: "data", Value: "fashion-mnist", Usage: "training data: " + data.DatasetSpecs},
		&cli.StringFlag{Name: "arch", Value: "resnet18-cifar", Usage: "backbone architecture"},
		&cli.Float64Flag{Name: "width", Value: 0.5, Usage: "ResNet width multiplier"},
		&cli.IntFlag{Name: "size", Value: 32, Usage: "training image size (pixels per side)"},
		&cli.IntFlag{Name: "epochs", Value: 10, Usage: "training epochs"},
		&cli.IntFlag{Name: "batch", Value: 256, Usage: "images per step"},
		&cli.StringFlag{Name: "out", Usage: "output folder (required)"},
		&cli.StringFlag{Name: "resume", Usage: "continue from this checkpoint (same flags as the run that wrote it)"},
		&cli.IntFlag{Name: "knn-every", Value: 1, Usage: "online kNN monitor every N epochs (0: off)"},
		&cli.IntFlag{Name: "knn-bank", Value: 2000, Usage: "monitor: labelled training images in the kNN bank"},
		&cli.IntFlag{Name: "knn-query", Value: 1000, Usage: "monitor: held-out test images classified"},
		&cli.IntFlag{Name: "checkpoint-every", Value: 1, Usage: "save OUT/checkpoint.safetensors every N epochs (0: only at the end and on Ctrl-C)"},
		&cli.IntFlag{Name: "log-every", Value: 50, Usage: "append a metrics.jsonl record every N steps"},
		&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "seed for weights, shuffling and augmentation"},
		&cli.StringFlag{Name: "recipe", Value: ssl.RecipePaper, Usage: "hyperparameters: paper (the method's ImageNet recipe) or cifar (solo-learn's CIFAR-10 recipe for small images; ResNets)"},
		&cli.Float64Flag{Name: "lr", Usage: "peak learning rate (default: the recipe's, scaled to the batch)"},
		&cli.IntFlag{Name: "limit", Usage: "train on the first N images only (0: all)"},
		&cli.IntFlag{Name: "queue", Usage: "MoCo v2 queue length (default: 65536 for large sets, else 4096)"},
		&cli.IntFlag{Name: "local-crops", Value: 4, Usage: "SwAV, DINO and DeepCluster v2 local crops per image"},
		&cli.IntFlag{Name: "permutations", Value: ssl.DefaultJigsawPermutations, Usage: "Jigsaw: puzzle classes, a maximal-Hamming-distance set of tile orders (2 to 10000)"},
		&cli.IntFlag{Name: "clusters", Usage: "DeepCluster: k of the k-means; DeepCluster v2: prototypes per head (default: 100, or a tenth of a set under 1000 images; v2's cifar recipe 3000)"},
		&cli.StringFlag{Name: "pool", Usage: "ViT embedding: cls (class token after the final norm) or mean (average of the normalised patch tokens); MAE's loss ignores it (default: cls)"},
		&cli.IntFlag{Name: "workers", Usage: "data loading goroutines (0: one per CPU)"},
		&cli.Int64Flag{Name: "steps", Usage: "stop after N optimizer steps, with the checkpoint and final weights written (0: all epochs; the schedule stays the epochs')"},
		&cli.StringFlag{Name: "on-decode-error", Value: "fail", Usage: "image folder files that fail to decode: fail (stop) or skip (warn and leave out)"},
	}
	action := func(c *cli.Context) error {
		if err := noArgs(c); err != nil {
			return err
		}
		o := trainOptions{
			Method: c.Command.Name, Data: c.String("data"), Arch: c.String("arch"), Width: c.Float64("width"),
			Size: c.Int("size"), Epochs: c.Int("epochs"), Batch: c.Int("batch"), Out: c.String("out"),
			Resume: c.String("resume"), KNNEvery: c.Int("knn-every"), KNNBank: c.Int("knn-bank"),
			KNNQuery: c.Int("knn-query"), CheckpointEvery: c.Int("checkpoint-every"), LogEvery: c.Int("log-every"),
			Seed: c.Uint64("seed"), Recipe: c.String("recipe"), LR: c.Float64("lr"), Limit: c.Int("limit"), Queue: c.Int("queue"),
			LocalCrops: c.Int("local-crops"), Permutations: c.Int("permutations"), Clusters: c.Int("clusters"), Pool: c.String("pool"), Workers: c.Int("workers"), OnDecodeError: c.String("on-decode-error"),
			Steps: c.Int64("steps"),
		}
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		defer signal.Stop(sig)
		t := &trainer{opts: o, stdout: c.App.Writer, stderr: c.App.ErrWriter, interrupt: sig}
		return t.run(c.Context)
	}
	usage := map[string]string{
		"simclr":        "SimCLR: NT-Xent on two views, projection head with BN, LARS + warmup-cosine",
		"mocov2":        "MoCo v2: momentum encoder, queue of negatives, InfoNCE, SGD + cosine",
		"mocov3":        "MoCo v3: no queue, predictor, symmetric loss, cosine momentum",
		"byol":          "BYOL: online/target networks, predictor, normalised MSE, EMA 0.996 -> 1",
		"swav":          "SwAV: prototypes, Sinkhorn-Knopp, swapped prediction, multi-crop",
		"barlow":        "Barlow Twins: cross-correlation of two views to the identity, lambda 5e-3, LARS + warmup-cosine",
		"vicreg":        "VICReg: invariance + variance + covariance terms (25/25/1), expander, LARS + warmup-cosine",
		"simsiam":       "SimSiam: predictor, stop-gradient, negative cosine, no momentum encoder, SGD + cosine",
		"dino":          "DINO: self-distillation from an EMA teacher, centring and sharpening, multi-crop, AdamW (ViT) or SGD (ResNet)",
		"jigsaw":        "Jigsaw: 3x3 tiles with random gaps, shuffled by one of --permutations max-Hamming orders, shared trunk, classifier, SGD + cosine",
		"colorization":  "Colorization: predict the ab colours of a grey image as 262 Lab bins, class-rebalanced cross-entropy, AdamW + cosine (colour data: --data emoji)",
		"deepcluster":   "DeepCluster: k-means (--clusters, default 100, a tenth of a set under 1000 images; 20 iterations) of the PCA-whitened features every epoch, classifier on the pseudo-labels, uniform sampling over clusters, SGD",
		"deepclusterv2": "DeepCluster v2: spherical k-means (3 heads of --clusters each, default 100 (3000 with --recipe cifar), at most a tenth of the set; 10 iterations) of a memory bank of the global crops' embeddings every epoch, the centroids as prototypes, cross-entropy on the pseudo-labels, multi-crop, LARS + warmup-cosine",
	}
	var subs []*cli.Command
	for _, m := range trainMethods {
		subs = append(subs, &cli.Command{Name: m, Usage: usage[m], Flags: flags, Action: action})
	}
	subs = append(subs, &cli.Command{Name: "mae", Usage: maeUsage, Flags: flags, Action: action}) // ViTs only
	subs = append(subs, trainMLMCommand())                                                        // text: cmd/sslzoo/train_mlm.go
	return &cli.Command{
		Name:      "train",
		Usage:     "pretrain an image encoder with a self-supervised method",
		ArgsUsage: "METHOD [flags]",
		Description: "METHOD is one of " + strings.Join(trainMethods, ", ") + " ('sslzoo train simclr --help' lists the flags).\n" +
			"Writes OUT/final.safetensors (backbone weights; the run's config in the metadata),\n" +
			"OUT/metrics.jsonl and OUT/checkpoint.safetensors. Ctrl-C saves a checkpoint; --resume continues it.\n" +
			"28x28 grey data (mnist, fashion-mnist) stays one channel and is resampled to --size (32).\n" +
			"Data-parallel: 'mpirun -np K sslzoo train METHOD ...' (a binary built with -tags mpi, as make build does\n" +
			"where mpicc is installed); --batch is the global batch, and rank 0 alone prints and writes OUT.",
		Subcommands: subs,
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("sslzoo train: unknown method %q (known: %s)", c.Args().First(), strings.Join(trainMethods, ", "))
			}
			return usagef("sslzoo train: name a method (%s)", strings.Join(trainMethods, ", "))
		},
	}
}

// trainOptions are the command's flags.
type trainOptions struct {
	Method, Data, Arch          string
	Width                       float64
	Size, Epochs, Batch         int
	Out, Resume                 string
	KNNEvery, KNNBank, KNNQuery int
	CheckpointEvery, LogEvery   int
	Seed                        uint64
	Recipe                      string
	LR                          float64
	Limit, Queue, LocalCrops    int
	Permutations, Clusters      int
	Pool                        string
	Workers                     int
	OnDecodeError               string
	Steps                       int64
	// ProgressEvery is the interval of plain progress lines off a
	// terminal (0: 30 s).
	ProgressEvery time.Duration
}

func (o trainOptions) validate() error {
	known := o.Method == "mae" // ViTs only
	for _, m := range trainMethods {
		known = known || m == o.Method
	}
	switch {
	case !known:
		return usagef("sslzoo train: unknown method %q (known: %s)", o.Method, strings.Join(trainMethods, ", "))
	case o.Out == "":
		return usagef("sslzoo train: --out is required (the folder for final.safetensors, metrics.jsonl, checkpoints)")
	case o.Epochs < 1:
		return usagef("sslzoo train: --epochs %d must be at least 1", o.Epochs)
	case o.Batch < 2:
		return usagef("sslzoo train: --batch %d must be at least 2 (BatchNorm and contrastive losses need pairs)", o.Batch)
	case !(o.Width > 0) || math.IsInf(o.Width, 0):
		return usagef("sslzoo train: --width %g must be positive", o.Width)
	case o.Size < 8:
		return usagef("sslzoo train: --size %d must be at least 8", o.Size)
	case o.KNNEvery < 0 || o.KNNBank < 1 || o.KNNQuery < 1:
		return usagef("sslzoo train: --knn-every %d must be >= 0 and --knn-bank %d, --knn-query %d positive", o.KNNEvery, o.KNNBank, o.KNNQuery)
	case o.CheckpointEvery < 0 || o.LogEvery < 1:
		return usagef("sslzoo train: --checkpoint-every %d must be >= 0 and --log-every %d positive", o.CheckpointEvery, o.LogEvery)
	case o.LR < 0 || math.IsNaN(o.LR) || math.IsInf(o.LR, 0):
		return usagef("sslzoo train: --lr %g must be a positive number (or 0 for the recipe)", o.LR)
	case o.Steps < 0:
		return usagef("sslzoo train: --steps %d must not be negative", o.Steps)
	case o.Limit < 0 || o.Queue < 0 || o.Workers < 0:
		return usagef("sslzoo train: --limit, --queue and --workers must not be negative")
	case o.Pool != "" && o.Pool != ssl.PoolCLS && o.Pool != ssl.PoolMean:
		return usagef("sslzoo train: --pool %q: want %s or %s", o.Pool, ssl.PoolCLS, ssl.PoolMean)
	case o.LocalCrops < 0:
		return usagef("sslzoo train: --local-crops %d must not be negative", o.LocalCrops)
	case o.Clusters < 0:
		return usagef("sslzoo train: --clusters %d must not be negative (0 for the default)", o.Clusters)
	case o.Clusters > 0 && o.Method != "deepcluster" && o.Method != "deepclusterv2":
		return usagef("sslzoo train %s: --clusters sets DeepCluster's k-means; %s has none", o.Method, o.Method)
	case o.Method == "jigsaw" && (o.Permutations < 2 || o.Permutations > ssl.MaxJigsawPermutations):
		return usagef("sslzoo train: --permutations %d: want 2 to %d", o.Permutations, ssl.MaxJigsawPermutations)
	case !slices.Contains(ssl.Recipes, o.Recipe) && o.Recipe != "":
		return usagef("sslzoo train: unknown --recipe %q (known: %s)", o.Recipe, strings.Join(ssl.Recipes, ", "))
	case o.Method == "mae" && o.Recipe == ssl.RecipeCIFAR:
		return usagef("sslzoo train mae: --recipe %s covers the contrastive and clustering methods; MAE has the paper's recipe only", ssl.RecipeCIFAR)
	}
	if _, err := data.ParseDecodePolicy(o.OnDecodeError); err != nil {
		return usagef("sslzoo train: --on-decode-error: %v", err)
	}
	if _, err := zoo.Arch(o.Arch); err != nil {
		return usagef("sslzoo train: --arch: %v", err)
	}
	return nil
}

// trainer runs one `sslzoo train` invocation: it opens the data, hands
// the run to ssl.Train and prints its progress.
type trainer struct {
	opts           trainOptions
	stdout, stderr io.Writer
	// interrupt delivers Ctrl-C / SIGTERM; ssl.Train checks it between
	// steps, saves a checkpoint and stops.
	interrupt <-chan os.Signal
	// afterStep runs after every step (tests use it to send signals).
	afterStep func(step int64)

	errMu sync.Mutex // one writer at a time on stderr: the bar, warnings
}

// warn prints a warning line; the loader calls it from its goroutines.
func (t *trainer) warn(err error) {
	t.errMu.Lock()
	defer t.errMu.Unlock()
	fmt.Fprintf(t.stderr, "warning: %v\n", err)
}

func (t *trainer) run(ctx context.Context) (err error) {
	o := t.opts
	if err := o.validate(); err != nil {
		return err
	}
	world, err := dist.Init()
	if err != nil {
		return fmt.Errorf("sslzoo train: %w", err)
	}
	defer world.Finalize()
	// A rank that fails before ssl.Train (which ends the job itself on a
	// failure of one rank) would leave the others waiting for it.
	inTrain := false
	defer func() {
		if err != nil && !inTrain {
			world.Abort(err)
		}
	}()
	if world.Rank() > 0 {
		// One voice: rank 0 prints the run; the others only report errors.
		t.stdout = io.Discard
	}
	policy, _ := data.ParseDecodePolicy(o.OnDecodeError)
	train, err := data.Open(ctx, o.Data, data.OpenOptions{Train: true, OnDecodeError: policy, Warn: t.warn})
	if err != nil {
		return fmt.Errorf("sslzoo train: --data %s: %w", o.Data, err)
	}
	// ssl.Train checks these too; here they can name the flags.
	n := train.Len()
	if o.Limit > 0 {
		n = min(n, o.Limit)
	}
	if n == 0 {
		return fmt.Errorf("sslzoo train: --data %s holds no images", o.Data)
	}
	if n < o.Batch {
		return fmt.Errorf("sslzoo train: --data %s has %d images, fewer than one batch of %d (lower --batch)", o.Data, n, o.Batch)
	}
	cfg := ssl.TrainConfig{
		Method: o.Method, Data: o.Data, Arch: o.Arch, Width: o.Width, Size: o.Size, Epochs: o.Epochs, Batch: o.Batch,
		Seed: o.Seed, Recipe: o.Recipe, LR: o.LR, Limit: o.Limit, Queue: o.Queue, LocalCrops: o.LocalCrops, Permutations: o.Permutations, Clusters: o.Clusters, Pool: o.Pool,
		Workers: o.Workers, Out: o.Out, Resume: o.Resume, CheckpointEvery: o.CheckpointEvery, LogEvery: o.LogEvery,
		Interrupt: t.interrupt, Warn: t.warn, World: world, MaxSteps: o.Steps,
	}
	if o.KNNEvery > 0 {
		test, err := data.Open(ctx, o.Data, data.OpenOptions{Train: false, OnDecodeError: policy, Warn: t.warn})
		if err != nil {
			return fmt.Errorf("sslzoo train: kNN monitor: %w", err)
		}
		if test.Len() == 0 {
			return fmt.Errorf("sslzoo train: kNN monitor: --data %s has no test images", o.Data)
		}
		cfg.KNN = &ssl.KNNMonitor{Test: test, Every: o.KNNEvery, Bank: o.KNNBank, Query: o.KNNQuery}
	}

	var (
		bar    *progress.Bar
		tStart time.Time
		ended  bool // the bar printed its last line
	)
	locked := func(f func()) {
		t.errMu.Lock()
		defer t.errMu.Unlock()
		f()
	}
	defer func() {
		if err != nil && bar != nil {
			// The error line must not share the terminal line of the bar.
			locked(bar.Clear)
		}
	}()
	end := func(step int64) {
		bar.Done(time.Now(), int(step), "done in "+progress.FormatDuration(time.Since(tStart)))
		ended = true
	}
	hooks := ssl.TrainHooks{
		Start: func(s ssl.TrainStart) {
			arch := o.Arch
			if strings.HasPrefix(o.Arch, "resnet") {
				arch = fmt.Sprintf("%s width %g", o.Arch, o.Width) // --width only shapes ResNets
			}
			fmt.Fprintf(t.stdout, "%s on %s (%d images, %d steps/epoch, %d epochs), %s, %d channel(s) at %dx%d, batch %d, %s recipe, %s lr %.4g\n",
				o.Method, o.Data, s.Images, s.StepsPerEpoch, o.Epochs, arch, s.Spec.InChannels, o.Size, o.Size, o.Batch,
				cmp.Or(o.Recipe, ssl.RecipePaper), ssl.OptimizerName(s.Method), s.Method.Schedule().LR)
			fmt.Fprintf(t.stdout, "world size %d (%s)\n", s.WorldSize, world.Backend())
			if s.StartStep > 0 {
				fmt.Fprintf(t.stdout, "resuming from %s at step %d (epoch %d)\n", o.Resume, s.StartStep, s.StartStep/int64(s.StepsPerEpoch)+1)
			}
			progressOut := t.stderr
			if world.Rank() > 0 {
				progressOut = io.Discard
			}
			bar = progress.New(progressOut, int(s.TotalSteps))
			bar.Every = o.ProgressEvery
			tStart = time.Now()
			bar.Start(tStart, int(s.StartStep))
		},
		Step: func(s ssl.TrainStep) {
			locked(func() {
				bar.Update(time.Now(), int(s.Step), fmt.Sprintf("epoch %d loss %.4f %.0f img/s", s.Epoch, s.Loss, s.EpochImgPerS))
			})
			if t.afterStep != nil {
				t.afterStep(s.Step)
			}
		},
		Epoch: func(e ssl.TrainEpoch) {
			r := e.Record
			msg := fmt.Sprintf("epoch %d/%d: loss %.4f, %.0f img/s, %s", r.Epoch, o.Epochs, r.Loss, r.ImgPerS,
				progress.FormatDuration(time.Duration(r.EpochS*float64(time.Second))))
			if r.ClusterS > 0 {
				msg += ", clustered in " + progress.FormatDuration(time.Duration(r.ClusterS*float64(time.Second)))
			}
			if e.KNN != nil {
				msg += fmt.Sprintf(", kNN top-1 %.2f%% (%d held-out images)", 100*e.KNN.Top1, e.KNN.N)
			}
			locked(func() {
				bar.Println(msg)
				if r.Epoch == o.Epochs {
					end(r.Step)
				}
			})
		},
	}
	inTrain = true
	res, err := ssl.Train(ctx, cfg, train, hooks)
	var ie *ssl.InterruptedError
	var re *ssl.ResumeError
	switch {
	case errors.As(err, &ie):
		return fmt.Errorf("sslzoo train: %w; continue with --resume %s", err, ie.Checkpoint)
	case errors.As(err, &re):
		return fmt.Errorf("sslzoo train: --resume: %w", re.Err)
	case err != nil:
		return fmt.Errorf("sslzoo train: %w", err)
	}
	if !ended { // resumed at the very end: no epoch ran
		locked(func() { end(res.Steps) })
	}
	fmt.Fprintf(t.stdout, "wrote %s (%s backbone, %d-d features), %s, %s\n", res.Final, o.Arch, res.Method.Backbone().FeatureDim(),
		res.Metrics, res.Checkpoint)
	return nil
}
