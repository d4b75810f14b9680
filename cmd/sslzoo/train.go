package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/data"
	"github.com/sslzoo/sslzoo/data/augment"
	"github.com/sslzoo/sslzoo/eval"
	"github.com/sslzoo/sslzoo/internal/progress"
	"github.com/sslzoo/sslzoo/nn"
	"github.com/sslzoo/sslzoo/tensor"
	"github.com/sslzoo/sslzoo/zoo"
	"github.com/sslzoo/sslzoo/zoo/ssl"
)

// trainMethods are the methods `sslzoo train` runs.
var trainMethods = []string{"simclr", "mocov2", "mocov3", "byol", "swav"}

// Files a run writes in its --out folder.
const (
	finalFile      = "final.safetensors"
	checkpointFile = "checkpoint.safetensors"
	metricsFile    = "metrics.jsonl"
)

// Metadata keys. The final weights use the sslzoo.* keys of DESIGN.md;
// checkpoints cannot (nn.SaveCheckpoint reserves that prefix), so they
// carry the same spec under train.*.
const (
	metaTrain        = "sslzoo.train"
	metaMethod       = "sslzoo.method"
	metaBackbone     = "sslzoo.backbone"
	metaMethodConfig = "sslzoo.method_config"
	metaEmbedDim     = "sslzoo.embedding_dim"
	metaPreprocess   = "sslzoo.preprocess"
	ckptMetaTrain    = "train.spec"
	ckptMetaMethod   = "train.method_config"
)

// runSpec is everything that determines a training run's model and
// schedule. It is stored with every checkpoint (a resume must match it) and
// in the final weights, where evaluation rebuilds the backbone from it.
//
// 28x28 single-channel data (MNIST, Fashion-MNIST) stays one channel (the
// backbone's first conv takes 1 input channel) and is brought to Size x
// Size (32 by default): the training crops resample to that size, and
// evaluation resizes the whole image to it (bilinear, antialiased, as
// torchvision's Resize). Folder images are converted to RGB.
type runSpec struct {
	Method     string    `json:"method"`
	Data       string    `json:"data"`
	Arch       string    `json:"arch"`
	Width      float64   `json:"width"`
	InChannels int       `json:"in_channels"`
	Size       int       `json:"size"`
	Mean       []float64 `json:"mean"`
	Std        []float64 `json:"std"`
	Epochs     int       `json:"epochs"`
	Batch      int       `json:"batch"`
	Seed       uint64    `json:"seed"`
	LR         float64   `json:"lr,omitempty"`          // 0: the recipe's, scaled to the batch
	Recipe     string    `json:"recipe,omitempty"`      // "" is ssl.RecipePaper
	Limit      int       `json:"limit,omitempty"`       // train on the first Limit images
	Queue      int       `json:"queue,omitempty"`       // MoCo v2 queue length
	LocalCrops int       `json:"local_crops,omitempty"` // SwAV local crops
	LocalSize  int       `json:"local_size,omitempty"`  // SwAV local crop size
}

// normFor is the per-channel normalisation for a dataset spec.
func normFor(spec string) *augment.Normalization {
	name, _, _ := strings.Cut(spec, ":")
	switch name {
	case "fashion-mnist":
		return augment.FashionMNISTNorm
	case "mnist":
		return augment.MNISTNorm
	case "cifar10":
		return augment.CIFAR10Norm
	case "cifar100", "cifar100-coarse":
		return &augment.Normalization{Mean: []float64{0.5071, 0.4865, 0.4409}, Std: []float64{0.2673, 0.2564, 0.2762}}
	}
	return augment.ImageNetNorm
}

// channelsOf is the number of channels the network sees for a dataset:
// in-memory sets keep theirs; folder images are converted to RGB.
func channelsOf(ds data.Dataset) (c int, toRGB bool) {
	switch d := ds.(type) {
	case *data.Images:
		return d.C, false
	case *data.Subset:
		return channelsOf(d.Base)
	}
	return 3, true
}

// viewPipelines are the method's augmentation recipe at spec.Size.
// SimCLR uses the paper's CIFAR-10 setting (colour strength 0.5, no blur);
// MoCo v2 its aug_plus; MoCo v3 and BYOL BYOL's asymmetric pair; SwAV two
// global crops plus LocalCrops local crops.
func viewPipelines(spec runSpec, toRGB bool) ([]augment.Transform, error) {
	norm := &augment.Normalization{Mean: spec.Mean, Std: spec.Std}
	var views []augment.Transform
	switch spec.Method {
	case "simclr":
		views = augment.SimCLR(spec.Size, 0.5, false, norm)
	case "mocov2":
		views = augment.MoCoV2(spec.Size, norm)
	case "mocov3", "byol":
		views = augment.BYOL(spec.Size, norm)
	case "swav":
		views = augment.SwAV(spec.Size, 2, spec.LocalSize, spec.LocalCrops, norm)
	case "mae":
		views = maeViews(spec) // train_mae.go
	default:
		return nil, fmt.Errorf("unknown method %q (known: %s)", spec.Method, strings.Join(trainMethods, ", "))
	}
	if toRGB {
		for i, v := range views {
			views[i] = augment.Compose{augment.ToRGB{}, v}
		}
	}
	return views, nil
}

// evalTransform resizes a whole image to the training size and normalises.
func evalTransform(spec runSpec, toRGB bool) augment.Transform {
	t := augment.Eval(spec.Size, &augment.Normalization{Mean: spec.Mean, Std: spec.Std})
	if toRGB {
		return augment.Compose{augment.ToRGB{}, t}
	}
	return t
}

// buildBackbone constructs the encoder a spec names, freshly initialised.
func buildBackbone(spec runSpec, rng *rand.Rand) (ssl.Encoder, error) {
	a, err := zoo.Arch(spec.Arch)
	if err != nil {
		return nil, err
	}
	switch a.Family {
	case "resnet":
		a.ResNet.Width = spec.Width
		a.ResNet.InChannels = spec.InChannels
	case "vit":
		// Small images: 4x4 patches, as the CIFAR ViT recipes use.
		a.ViT.ImageSize, a.ViT.PatchSize, a.ViT.InChannels = spec.Size, 4, spec.InChannels
		if spec.Size%4 != 0 {
			return nil, fmt.Errorf("%s needs --size divisible by its patch size 4, got %d", spec.Arch, spec.Size)
		}
	default:
		return nil, fmt.Errorf("architecture %q is a %s model; train takes image backbones (resnet*, vit-*)", spec.Arch, a.Family)
	}
	b, err := a.Build(rng)
	if err != nil {
		return nil, err
	}
	enc, ok := b.(ssl.Encoder)
	if !ok {
		return nil, fmt.Errorf("architecture %q cannot serve as an encoder", spec.Arch)
	}
	return enc, nil
}

// buildMethod is ssl.New with the run's overrides: the recipe, a learning
// rate, the MoCo v2 queue length.
func buildMethod(spec runSpec, enc ssl.Encoder, run ssl.Run, rng *rand.Rand) (ssl.Method, error) {
	b, s, e := run.Batch, run.StepsPerEpoch, run.Epochs
	cifar := spec.Recipe == ssl.RecipeCIFAR
	setLR := func(oc *ssl.OptimConfig) {
		if spec.LR > 0 {
			// Keep the recipe's ratio of final to peak rate.
			if oc.LR > 0 {
				oc.FinalLR *= spec.LR / oc.LR
			}
			oc.LR = spec.LR
		}
	}
	switch spec.Method {
	case "simclr":
		c := ssl.DefaultSimCLRConfig(b, s, e)
		if cifar {
			c.UseCIFARRecipe(b, s, e)
		}
		setLR(&c.Optim)
		return ssl.NewSimCLR(c, enc, rng)
	case "mocov2":
		c := ssl.DefaultMoCoV2Config(b, s, e)
		if cifar {
			c.UseCIFARRecipe(b, s, e)
		}
		setLR(&c.Optim)
		if spec.Queue > 0 {
			c.QueueSize = spec.Queue
		}
		return ssl.NewMoCoV2(c, enc, rng)
	case "mocov3":
		c := ssl.DefaultMoCoV3Config(enc, b, s, e)
		if cifar {
			if err := c.UseCIFARRecipe(enc, b, s, e); err != nil {
				return nil, err
			}
		}
		setLR(&c.Optim)
		return ssl.NewMoCoV3(c, enc, rng)
	case "byol":
		c := ssl.DefaultBYOLConfig(b, s, e)
		if cifar {
			c.UseCIFARRecipe(b, s, e)
		}
		setLR(&c.Optim)
		return ssl.NewBYOL(c, enc, rng)
	case "swav":
		c := ssl.DefaultSwAVConfig(b, s, e)
		if cifar {
			c.UseCIFARRecipe(b, s, e)
		}
		setLR(&c.Optim)
		return ssl.NewSwAV(c, enc, rng)
	case "mae":
		return buildMAE(spec, enc, run, rng) // train_mae.go
	}
	return nil, fmt.Errorf("unknown method %q (known: %s)", spec.Method, strings.Join(trainMethods, ", "))
}

// mocoQueueFor is the MoCo v2 queue length for a training set of n
// images: the recipe's 65536 needs a set many times larger than it (else
// the queue holds stale keys of the very images in the batch), so smaller
// sets get 4096, the length lightly's CIFAR-10 benchmarks use.
func mocoQueueFor(n, batch int) int {
	if n >= 4*65536 {
		return 65536
	}
	return max(batch, min(4096, n/2))
}

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
		&cli.IntFlag{Name: "local-crops", Value: 4, Usage: "SwAV local crops per image"},
		&cli.IntFlag{Name: "workers", Usage: "data loading goroutines (0: one per CPU)"},
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
			LocalCrops: c.Int("local-crops"), Workers: c.Int("workers"), OnDecodeError: c.String("on-decode-error"),
		}
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		defer signal.Stop(sig)
		t := &trainer{opts: o, stdout: c.App.Writer, stderr: c.App.ErrWriter, interrupt: sig}
		return t.run(c.Context)
	}
	usage := map[string]string{
		"simclr": "SimCLR: NT-Xent on two views, projection head with BN, LARS + warmup-cosine",
		"mocov2": "MoCo v2: momentum encoder, queue of negatives, InfoNCE, SGD + cosine",
		"mocov3": "MoCo v3: no queue, predictor, symmetric loss, cosine momentum",
		"byol":   "BYOL: online/target networks, predictor, normalised MSE, EMA 0.996 -> 1",
		"swav":   "SwAV: prototypes, Sinkhorn-Knopp, swapped prediction, multi-crop",
	}
	var subs []*cli.Command
	for _, m := range trainMethods {
		subs = append(subs, &cli.Command{Name: m, Usage: usage[m], Flags: flags, Action: action})
	}
	subs = append(subs, &cli.Command{Name: "mae", Usage: maeUsage, Flags: flags, Action: action}) // ViT only: train_mae.go
	subs = append(subs, trainMLMCommand())                                                        // text: cmd/sslzoo/train_mlm.go
	return &cli.Command{
		Name:      "train",
		Usage:     "pretrain an image encoder with a self-supervised method",
		ArgsUsage: "METHOD [flags]",
		Description: "METHOD is one of " + strings.Join(trainMethods, ", ") + " ('sslzoo train simclr --help' lists the flags).\n" +
			"Writes OUT/final.safetensors (backbone weights; the run's config in the metadata),\n" +
			"OUT/metrics.jsonl and OUT/checkpoint.safetensors. Ctrl-C saves a checkpoint; --resume continues it.\n" +
			"28x28 grey data (mnist, fashion-mnist) stays one channel and is resampled to --size (32).",
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
	Workers                     int
	OnDecodeError               string
	// ProgressEvery is the interval of plain progress lines off a
	// terminal (0: 30 s).
	ProgressEvery time.Duration
}

func (o trainOptions) validate() error {
	known := o.Method == "mae" // train_mae.go
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
	case o.Limit < 0 || o.Queue < 0 || o.Workers < 0:
		return usagef("sslzoo train: --limit, --queue and --workers must not be negative")
	case o.LocalCrops < 0:
		return usagef("sslzoo train: --local-crops %d must not be negative", o.LocalCrops)
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

// trainer runs one `sslzoo train` invocation.
type trainer struct {
	opts           trainOptions
	stdout, stderr io.Writer
	// interrupt delivers Ctrl-C / SIGTERM; the trainer checks it between
	// steps, saves a checkpoint and stops.
	interrupt <-chan os.Signal
	// step runs one iteration; nil means the method's Step (tests replace
	// it to provoke a NaN).
	step func(m ssl.Method, tp *autograd.Tape, views []*tensor.Tensor) (float32, error)
	// afterStep runs after every step (tests use it to send signals).
	afterStep func(step int64)

	errMu sync.Mutex
}

// warn prints a warning line; the loader calls it from its goroutines.
func (t *trainer) warn(err error) {
	t.errMu.Lock()
	defer t.errMu.Unlock()
	fmt.Fprintf(t.stderr, "warning: %v\n", err)
}

// metricsRecord is one line of metrics.jsonl. Step records ("kind":
// "step") average the loss over the last --log-every steps; epoch records
// close an epoch, with the kNN monitor's accuracy when it ran.
type metricsRecord struct {
	Kind      string   `json:"kind"`
	Time      string   `json:"time"`
	Step      int64    `json:"step"`
	Epoch     int      `json:"epoch"` // 1-based epoch the record belongs to
	Loss      float64  `json:"loss"`
	LR        float64  `json:"lr"`
	ImgPerS   float64  `json:"img_per_s"`
	EpochS    float64  `json:"epoch_s,omitempty"`
	DataWaitS *float64 `json:"data_wait_s,omitempty"`
	KNNTop1   *float64 `json:"knn_top1,omitempty"`
	KNNTop5   *float64 `json:"knn_top5,omitempty"`
	KNNS      float64  `json:"knn_s,omitempty"`
}

// errInterrupted ends a run stopped by a signal after its checkpoint was
// saved.
var errInterrupted = errors.New("interrupted")

func (t *trainer) run(ctx context.Context) (err error) {
	o := t.opts
	if err := o.validate(); err != nil {
		return err
	}
	policy, _ := data.ParseDecodePolicy(o.OnDecodeError)
	train, err := data.Open(ctx, o.Data, data.OpenOptions{Train: true, OnDecodeError: policy, Warn: t.warn})
	if err != nil {
		return fmt.Errorf("sslzoo train: --data %s: %w", o.Data, err)
	}
	if o.Limit > 0 && o.Limit < train.Len() {
		idx := make([]int, o.Limit)
		for i := range idx {
			idx[i] = i
		}
		train = &data.Subset{Base: train, Indices: idx}
	}
	if train.Len() == 0 {
		return fmt.Errorf("sslzoo train: --data %s holds no images", o.Data)
	}
	if train.Len() < o.Batch {
		return fmt.Errorf("sslzoo train: --data %s has %d images, fewer than one batch of %d (lower --batch)", o.Data, train.Len(), o.Batch)
	}
	channels, toRGB := channelsOf(train)
	norm := normFor(o.Data)
	if len(norm.Mean) != channels {
		norm = &augment.Normalization{Mean: make([]float64, channels), Std: make([]float64, channels)}
		for i := range channels {
			norm.Mean[i], norm.Std[i] = 0.5, 0.25
		}
	}
	spec := runSpec{Method: o.Method, Data: o.Data, Arch: o.Arch, Width: o.Width, InChannels: channels, Size: o.Size,
		Mean: norm.Mean, Std: norm.Std, Epochs: o.Epochs, Batch: o.Batch, Seed: o.Seed, LR: o.LR, Limit: o.Limit}
	if o.Recipe != ssl.RecipePaper {
		spec.Recipe = o.Recipe // metadata of paper-recipe runs stays as it was
	}
	if a, _ := zoo.Arch(o.Arch); a.Family != "resnet" {
		spec.Width = 1 // --width scales ResNets only
	}
	switch o.Method {
	case "mocov2":
		spec.Queue = o.Queue
		if spec.Queue == 0 {
			spec.Queue = mocoQueueFor(train.Len(), o.Batch)
		}
	case "swav":
		spec.LocalCrops, spec.LocalSize = o.LocalCrops, max(8, o.Size/2)
	}
	views, err := viewPipelines(spec, toRGB)
	if err != nil {
		return fmt.Errorf("sslzoo train: %w", err)
	}
	loader, err := data.NewLoader(train, data.LoaderConfig{BatchSize: o.Batch, Shuffle: true, Seed: o.Seed, DropLast: true,
		Workers: o.Workers, Views: views, Warn: t.warn})
	if err != nil {
		return fmt.Errorf("sslzoo train: %w", err)
	}
	spe := loader.Len()
	rng := rand.New(rand.NewPCG(o.Seed, 0x7472616e))
	enc, err := buildBackbone(spec, rng)
	if err != nil {
		return fmt.Errorf("sslzoo train: %w", err)
	}
	method, err := buildMethod(spec, enc, ssl.Run{Batch: o.Batch, StepsPerEpoch: spe, Epochs: o.Epochs}, rng)
	if err != nil {
		return fmt.Errorf("sslzoo train: %w", err)
	}
	specJSON, _ := json.Marshal(spec)
	methodJSON, err := json.Marshal(method.Configuration())
	if err != nil {
		return fmt.Errorf("sslzoo train: method config: %w", err)
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return fmt.Errorf("sslzoo train: %w", err)
	}
	ckptPath := filepath.Join(o.Out, checkpointFile)
	ckptMeta := map[string]string{ckptMetaTrain: string(specJSON), ckptMetaMethod: string(methodJSON)}

	var start int64
	if o.Resume != "" {
		if start, err = resume(o.Resume, method, spec); err != nil {
			return fmt.Errorf("sslzoo train: --resume: %w", err)
		}
	}
	flag := os.O_CREATE | os.O_WRONLY | os.O_TRUNC
	if o.Resume != "" {
		flag = os.O_CREATE | os.O_WRONLY | os.O_APPEND
	}
	mf, err := os.OpenFile(filepath.Join(o.Out, metricsFile), flag, 0o644)
	if err != nil {
		return fmt.Errorf("sslzoo train: %w", err)
	}
	defer func() {
		if cerr := mf.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("sslzoo train: %w", cerr)
		}
	}()
	logRec := func(r metricsRecord) error {
		r.Time = time.Now().UTC().Format(time.RFC3339)
		b, _ := json.Marshal(r)
		if _, err := mf.Write(append(b, '\n')); err != nil {
			return fmt.Errorf("sslzoo train: write metrics: %w", err)
		}
		return nil
	}

	var monitor *knnMonitor
	if o.KNNEvery > 0 {
		if monitor, err = newKNNMonitor(ctx, train, spec, toRGB, o, policy, t.warn); err != nil {
			return fmt.Errorf("sslzoo train: kNN monitor: %w", err)
		}
	}

	total := int64(o.Epochs * spe)
	if start > total {
		return fmt.Errorf("sslzoo train: --resume %s is at step %d, past the run's %d steps", o.Resume, start, total)
	}
	arch := o.Arch
	if strings.HasPrefix(o.Arch, "resnet") {
		arch = fmt.Sprintf("%s width %g", o.Arch, o.Width) // --width only shapes ResNets
	}
	fmt.Fprintf(t.stdout, "%s on %s (%d images, %d steps/epoch, %d epochs), %s, %d channel(s) at %dx%d, batch %d, %s recipe, %s lr %.4g\n",
		o.Method, o.Data, train.Len(), spe, o.Epochs, arch, channels, o.Size, o.Size, o.Batch,
		cmp.Or(o.Recipe, ssl.RecipePaper), optimName(method), method.Optimizer().LR())
	if start > 0 {
		fmt.Fprintf(t.stdout, "resuming from %s at step %d (epoch %d)\n", o.Resume, start, start/int64(spe)+1)
	}

	bar := progress.New(t.stderr, int(total))
	bar.Every = o.ProgressEvery
	bar.Start(time.Now(), int(start))
	defer func() {
		if err != nil {
			// The error line must not share the terminal line of the bar.
			t.errMu.Lock()
			bar.Clear()
			t.errMu.Unlock()
		}
	}()
	saveCkpt := func(step int64) error {
		if err := nn.SaveCheckpoint(ckptPath, method, method.Optimizer(), step, nil, ckptMeta); err != nil {
			return fmt.Errorf("sslzoo train: %w", err)
		}
		return nil
	}
	lastGood := ""
	if o.Resume != "" {
		lastGood = o.Resume
	}
	stepFn := t.step
	if stepFn == nil {
		stepFn = func(m ssl.Method, tp *autograd.Tape, v []*tensor.Tensor) (float32, error) { return m.Step(tp, v) }
	}
	tp := autograd.NewTape()
	tStart := time.Now()
	step := start
	var lossSum float64
	var lossN, imgs int
	tLog := time.Now()
	for epoch := int(start / int64(spe)); epoch < o.Epochs; epoch++ {
		skip := 0
		if epoch == int(start/int64(spe)) {
			skip = int(start % int64(spe))
		}
		it := loader.Epoch(ctx, epoch)
		tEpoch := time.Now()
		var epochLoss float64
		var epochN, epochImgs int
		for i := 0; ; i++ {
			b, err := it.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				it.Close()
				return fmt.Errorf("sslzoo train: %w", err)
			}
			if i < skip {
				b.Release() // already trained before the checkpoint
				continue
			}
			select {
			case s := <-t.interrupt:
				b.Release()
				it.Close()
				if err := saveCkpt(step); err != nil {
					return err
				}
				return fmt.Errorf("sslzoo train: %w (%v) at step %d (epoch %d); checkpoint saved to %s; continue with --resume %s",
					errInterrupted, s, step, epoch+1, ckptPath, ckptPath)
			default:
			}
			if n := b.Views[0].Shape[0]; n < 2 {
				t.warn(fmt.Errorf("step %d: batch shrank to %d image(s) after skipped files; left out", step, n))
				b.Release()
				continue
			}
			loss, err := stepFn(method, tp, b.Views)
			n := b.Views[0].Shape[0]
			b.Release()
			if err != nil {
				it.Close()
				if f := float64(loss); math.IsNaN(f) || math.IsInf(f, 0) {
					good := lastGood
					if good == "" {
						good = "none saved yet"
					}
					return fmt.Errorf("sslzoo train: loss is %g at step %d (epoch %d); stopped; last good checkpoint: %s", loss, step, epoch+1, good)
				}
				return fmt.Errorf("sslzoo train: step %d: %w", step, err)
			}
			// Step set the rate it used.
			lr := float64(method.Optimizer().LR())
			step++
			lossSum += float64(loss)
			epochLoss += float64(loss)
			lossN++
			epochN++
			imgs += n
			epochImgs += n
			now := time.Now()
			rate := float64(epochImgs) / now.Sub(tEpoch).Seconds()
			t.errMu.Lock()
			bar.Update(now, int(step), fmt.Sprintf("epoch %d loss %.4f %.0f img/s", epoch+1, loss, rate))
			t.errMu.Unlock()
			if lossN >= o.LogEvery {
				if err := logRec(metricsRecord{Kind: "step", Step: step, Epoch: epoch + 1, Loss: lossSum / float64(lossN), LR: lr,
					ImgPerS: float64(imgs) / now.Sub(tLog).Seconds()}); err != nil {
					it.Close()
					return err
				}
				lossSum, lossN, imgs, tLog = 0, 0, 0, now
			}
			if t.afterStep != nil {
				t.afterStep(step)
			}
		}
		wait, _ := it.WaitTime()
		it.Close()
		epochS := time.Since(tEpoch).Seconds()
		rec := metricsRecord{Kind: "epoch", Step: step, Epoch: epoch + 1, LR: float64(method.Optimizer().LR()), EpochS: epochS,
			ImgPerS: float64(epochImgs) / epochS}
		ws := wait.Seconds()
		rec.DataWaitS = &ws
		if epochN > 0 {
			rec.Loss = epochLoss / float64(epochN)
		}
		msg := fmt.Sprintf("epoch %d/%d: loss %.4f, %.0f img/s, %s", epoch+1, o.Epochs, rec.Loss, rec.ImgPerS, progress.FormatDuration(time.Duration(epochS*float64(time.Second))))
		if monitor != nil && ((epoch+1)%o.KNNEvery == 0 || epoch+1 == o.Epochs) {
			tk := time.Now()
			r, err := monitor.run(ctx, method.Backbone())
			method.SetTraining(true)
			if err != nil {
				return fmt.Errorf("sslzoo train: kNN monitor after epoch %d: %w", epoch+1, err)
			}
			rec.KNNTop1, rec.KNNTop5, rec.KNNS = &r.Top1, &r.Top5, time.Since(tk).Seconds()
			msg += fmt.Sprintf(", kNN top-1 %.2f%% (%d held-out images)", 100*r.Top1, r.N)
		}
		if err := logRec(rec); err != nil {
			return err
		}
		if o.CheckpointEvery > 0 && (epoch+1)%o.CheckpointEvery == 0 {
			if err := saveCkpt(step); err != nil {
				return err
			}
			lastGood = ckptPath
		}
		t.errMu.Lock()
		bar.Println(msg)
		t.errMu.Unlock()
		// The next interval's throughput excludes the monitor and the save.
		lossSum, lossN, imgs, tLog = 0, 0, 0, time.Now()
	}
	bar.Done(time.Now(), int(step), "done in "+progress.FormatDuration(time.Since(tStart)))
	if err := saveCkpt(step); err != nil {
		return err
	}
	meta := map[string]string{
		metaTrain: string(specJSON), metaMethod: o.Method, metaBackbone: o.Arch, metaMethodConfig: string(methodJSON),
		metaEmbedDim: strconv.Itoa(enc.FeatureDim()), metaPreprocess: preprocessJSON(spec),
		"sslzoo.steps": strconv.FormatInt(step, 10),
	}
	final := filepath.Join(o.Out, finalFile)
	if err := nn.SaveState(final, enc, meta); err != nil {
		return fmt.Errorf("sslzoo train: %w", err)
	}
	fmt.Fprintf(t.stdout, "wrote %s (%s backbone, %d-d features), %s, %s\n", final, o.Arch, enc.FeatureDim(),
		filepath.Join(o.Out, metricsFile), ckptPath)
	return nil
}

func optimName(m ssl.Method) string {
	switch m.Optimizer().(type) {
	case *nn.LARS:
		return "LARS"
	case *nn.SGD:
		return "SGD"
	case *nn.AdamW, *ssl.AdamWGroups:
		return "AdamW"
	}
	return fmt.Sprintf("%T", m.Optimizer())
}

// preprocessJSON tells another stack how to prepare inputs for the
// exported backbone (DESIGN.md's sslzoo.preprocess).
func preprocessJSON(s runSpec) string {
	ch := "RGB"
	if s.InChannels == 1 {
		ch = "grey"
	}
	b, _ := json.Marshal(map[string]any{"layout": "NCHW", "channels": ch, "size": []int{s.Size, s.Size},
		"resize": "bilinear", "scale": 1.0 / 255, "mean": s.Mean, "std": s.Std})
	return string(b)
}

// resume loads a checkpoint into method after checking it came from a run
// with the same spec, and returns its step.
func resume(path string, method ssl.Method, spec runSpec) (int64, error) {
	step, meta, err := nn.LoadCheckpoint(path, method, method.Optimizer(), nil)
	if err != nil {
		return 0, err
	}
	var saved runSpec
	if err := json.Unmarshal([]byte(meta[ckptMetaTrain]), &saved); err != nil {
		return 0, fmt.Errorf("%s has no readable %s metadata: %v", path, ckptMetaTrain, err)
	}
	a, _ := json.Marshal(saved)
	b, _ := json.Marshal(spec)
	if string(a) != string(b) {
		return 0, fmt.Errorf("%s was written by a different run (saved %s, this run %s); use the same flags", path, a, b)
	}
	if step != method.Steps() {
		return 0, fmt.Errorf("%s: metadata step %d but the method state counts %d", path, step, method.Steps())
	}
	return step, nil
}

// knnMonitor is the online kNN evaluation: features of a fixed random
// subset of the training images (with labels) form the bank, and a fixed
// subset of the test split is classified against it.
type knnMonitor struct {
	bank, query data.Dataset
	cfg         eval.ExtractConfig
}

func newKNNMonitor(ctx context.Context, train data.Dataset, spec runSpec, toRGB bool, o trainOptions,
	policy data.DecodePolicy, warn func(error)) (*knnMonitor, error) {
	test, err := data.Open(ctx, o.Data, data.OpenOptions{Train: false, OnDecodeError: policy, Warn: warn})
	if err != nil {
		return nil, err
	}
	pick := func(ds data.Dataset, n int, seed uint64) data.Dataset {
		if n >= ds.Len() {
			return ds
		}
		perm := rand.New(rand.NewPCG(seed, 0x6b6e6e)).Perm(ds.Len())[:n]
		return &data.Subset{Base: ds, Indices: perm}
	}
	if test.Len() == 0 {
		return nil, fmt.Errorf("--data %s has no test images", o.Data)
	}
	return &knnMonitor{bank: pick(train, o.KNNBank, o.Seed), query: pick(test, o.KNNQuery, o.Seed+1),
		cfg: eval.ExtractConfig{Transform: evalTransform(spec, toRGB), Workers: o.Workers, Warn: warn}}, nil
}

func (k *knnMonitor) run(ctx context.Context, enc ssl.Encoder) (eval.Result, error) {
	bank, err := eval.Extract(ctx, enc, k.bank, k.cfg)
	if err != nil {
		return eval.Result{}, err
	}
	query, err := eval.Extract(ctx, enc, k.query, k.cfg)
	if err != nil {
		return eval.Result{}, err
	}
	return eval.KNN(bank, query, eval.DefaultKNN())
}
