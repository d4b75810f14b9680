package ssl

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"log"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/data"
	"github.com/sslzoo/sslzoo/data/augment"
	"github.com/sslzoo/sslzoo/dist"
	"github.com/sslzoo/sslzoo/eval"
	"github.com/sslzoo/sslzoo/internal/atomicfile"
	"github.com/sslzoo/sslzoo/nn"
	"github.com/sslzoo/sslzoo/tensor"
	"github.com/sslzoo/sslzoo/zoo"
)

// Files Train writes in TrainConfig.Out.
const (
	FinalFile      = "final.safetensors"
	CheckpointFile = "checkpoint.safetensors"
	MetricsFile    = "metrics.jsonl"
)

// Metadata keys. The final weights use the sslzoo.* keys of DESIGN.md;
// checkpoints cannot (nn.SaveCheckpoint reserves that prefix), so they
// carry the same records under train.*.
const (
	MetaTrain        = "sslzoo.train"         // TrainSpec JSON
	MetaMethod       = "sslzoo.method"        // the method's name
	MetaBackbone     = "sslzoo.backbone"      // the architecture's registry name
	MetaMethodConfig = "sslzoo.method_config" // Method.Configuration() JSON
	MetaEmbedDim     = "sslzoo.embedding_dim" // the backbone's FeatureDim
	MetaPreprocess   = "sslzoo.preprocess"    // TrainSpec.Preprocess JSON
	MetaSteps        = "sslzoo.steps"         // iterations trained
	// The final weights also carry zoo.ArchConfigKey.

	CheckpointMetaTrain        = "train.spec"
	CheckpointMetaMethodConfig = "train.method_config"
	// CheckpointMetaArchConfig holds what final weights keep under
	// zoo.ArchConfigKey (the exact zoo.Spec, as Spec.ConfigJSON).
	CheckpointMetaArchConfig = "train.arch_config"
)

// TrainConfig is one training run: the model and schedule (recorded as a
// TrainSpec), where its files go and how it reports. Zero values of the
// optional fields pick the defaults noted.
type TrainConfig struct {
	// Method is one of MethodNames.
	Method string
	// Data names the training data in the recorded spec, e.g.
	// "fashion-mnist" or "folder:DIR" (data.Open's specs). It also picks
	// the normalisation when Norm is nil (NormFor).
	Data string
	// Arch is an image architecture of the zoo registry: resnet* or vit-*.
	// MAE takes a ViT.
	Arch string
	// Width scales a ResNet's channels (0 means 1); other families ignore
	// it and record 1.
	Width float64
	// Size is the side of the square training crops in pixels (0 means
	// 32, at least 8). ViTs use 4x4 patches at this size.
	Size int
	// Epochs and Batch size the run (at least 1 and 2).
	Epochs, Batch int
	// Seed fixes the weights, the shuffling and every augmentation draw.
	Seed uint64
	// Recipe is RecipePaper ("" too) or RecipeCIFAR; LR, when positive,
	// replaces the recipe's peak learning rate (see Run).
	Recipe string
	LR     float64
	// Limit trains on the first Limit images only (0: all).
	Limit int
	// Queue is MoCo v2's queue length (0: DefaultMoCoQueue of the set).
	Queue int
	// LocalCrops is the number of SwAV, DINO and DeepCluster v2 local
	// crops per image, at half the size (0: only the two global crops; the
	// CLI's default is 4).
	LocalCrops int
	// Pool is a ViT's embedding pooling (TrainSpec.Pool; "": the class
	// token).
	Pool string
	// Permutations is Jigsaw's number of puzzle classes (0:
	// DefaultJigsawPermutations); other methods ignore it.
	Permutations int
	// Clusters is DeepCluster's k and DeepCluster v2's prototypes per
	// head (0: DefaultDeepClusterClustersFor the set); other methods
	// ignore it.
	Clusters int
	// Norm is the per-channel normalisation; nil means NormFor(Data), or
	// mean 0.5 and std 0.25 per channel where that has another channel
	// count than the images.
	Norm *augment.Normalization
	// Workers is the number of data loading goroutines (0: GOMAXPROCS).
	Workers int

	// Out is the folder of FinalFile, CheckpointFile and MetricsFile; it
	// is created when missing. Required.
	Out string
	// Resume continues from this checkpoint (a CheckpointFile of a run
	// with the same spec): the weights, optimizer state and step are
	// restored, and MetricsFile is cut back to the checkpoint's step (the
	// records of steps trained again go) and appended to.
	Resume string
	// CheckpointEvery saves CheckpointFile every so many epochs (0: only
	// at the end and on interruption).
	CheckpointEvery int
	// LogEvery appends a step record to MetricsFile every so many steps,
	// averaging their loss (0 means 50).
	LogEvery int
	// KNN, when set, runs the online kNN monitor after epochs.
	KNN *KNNMonitor
	// Interrupt, when a signal arrives on it, stops the run between two
	// steps with a checkpoint saved (see InterruptedError). Cancelling the
	// context does the same.
	Interrupt <-chan os.Signal
	// Warn receives warnings: images skipped by data.SkipOnDecodeError,
	// batches left out. It is called from the loader's goroutines. nil
	// logs them.
	Warn func(error)

	// World, when it has more than one rank, makes this process one rank of
	// a data-parallel run (dist.Init under mpirun): Batch is the global
	// batch, each rank trains on its 1/K of every batch with BatchNorm
	// synchronised, and rank 0 alone writes Out. Every rank must be given
	// the same config. nil is one process.
	World *dist.Comm
	// MaxSteps, when positive, stops the run after that many optimizer
	// steps (counted from the start of training, not from a resume) as if
	// it had ended there: the learning-rate schedule stays the one of
	// Epochs, and the checkpoint and final weights are written.
	MaxSteps int64

	// step runs one iteration in place of Method.Step (tests provoke
	// failures with it).
	step func(m Method, tp *autograd.Tape, views []*tensor.Tensor) (float32, error)
}

// KNNMonitor is the online kNN evaluation (eval.KNN with its defaults:
// k 200, temperature 0.1, cosine): the features of a fixed random subset
// of the training images (with their labels) form the bank, and a fixed
// random subset of Test is classified against it.
type KNNMonitor struct {
	// Test is the labelled held-out split.
	Test data.Dataset
	// Every runs the monitor after every Every-th epoch and after the last
	// one (0 means 1).
	Every int
	// Bank and Query are the number of training and test images used
	// (0 means 2000 and 1000).
	Bank, Query int
}

// TrainHooks are called as a run goes; any may be nil. They run on the
// training goroutine, so a slow hook slows the run.
type TrainHooks struct {
	// Start is called once everything is set up (resume included), before
	// the first step.
	Start func(TrainStart)
	// Step is called after every step.
	Step func(TrainStep)
	// Epoch is called at the end of every epoch, after its record was
	// written and its checkpoint (if due) saved.
	Epoch func(TrainEpoch)
	// Checkpoint is called after every save of CheckpointFile.
	Checkpoint func(path string, step int64)
}

// TrainStart describes a run about to take its first step.
type TrainStart struct {
	Spec   TrainSpec
	Method Method
	// Images is the size of the training set (after Limit).
	Images int
	// StepsPerEpoch and TotalSteps are the schedule; StartStep is the
	// step a resumed run continues from (0 for a fresh run).
	StepsPerEpoch int
	TotalSteps    int64
	StartStep     int64
	// WorldSize is the number of data-parallel ranks (1: one process).
	WorldSize int
}

// TrainStep reports one finished step.
type TrainStep struct {
	Step  int64 // steps done so far (the first step reports 1)
	Epoch int   // 1-based
	Loss  float32
	LR    float64 // the learning rate the step used
	// Images is the batch size of the step; EpochImgPerS the epoch's
	// throughput so far.
	Images       int
	EpochImgPerS float64
}

// TrainEpoch reports one finished epoch.
type TrainEpoch struct {
	// Record is the epoch's line of MetricsFile.
	Record MetricsRecord
	// KNN is the monitor's result when it ran after this epoch, else nil.
	KNN *eval.Result
}

// MetricsRecord is one line of MetricsFile. Step records ("kind":
// "step") average the loss over the last LogEvery steps; epoch records
// ("kind": "epoch") close an epoch, with the kNN monitor's accuracy when it
// ran.
type MetricsRecord struct {
	Kind string `json:"kind"`
	Time string `json:"time"`
	// WorldSize is the number of data-parallel ranks (1: one process), so
	// that a run that fell back to one process shows it.
	WorldSize int      `json:"world_size"`
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
	// ClusterS, in an epoch record of DeepCluster (v1 or v2), is the time
	// its clustering of the training set took before the epoch's first
	// step (features included; 0 where a resume kept the checkpoint's).
	ClusterS float64 `json:"cluster_s,omitempty"`
	// Comm, in step records of a data-parallel run, is what this rank's
	// collectives carried per step over the record's steps.
	Comm *CommRecord `json:"comm,omitempty"`
}

// CommRecord is a data-parallel step's communication, averaged over steps.
type CommRecord struct {
	// Calls counts collectives: gradient buckets, synchronised BatchNorm's
	// statistics, gathers, and the loss and stop checks.
	Calls float64 `json:"calls_per_step"`
	// MiB is what this rank sent (an allreduce's buffer, an allgather's
	// share).
	MiB float64 `json:"mib_per_step"`
	// Seconds is the time spent inside collectives, waiting for slower
	// ranks included.
	Seconds float64 `json:"s_per_step"`
}

// commPerStep is the traffic since earlier, per step over steps; nil on
// one process.
func commPerStep(world *dist.Comm, earlier dist.Stats, steps int) *CommRecord {
	if world == nil || world.Size() < 2 || steps < 1 {
		return nil
	}
	d, n := world.Stats().Sub(earlier), float64(steps)
	return &CommRecord{Calls: float64(d.Calls) / n, MiB: float64(d.Floats) * 4 / (1 << 20) / n, Seconds: d.Wait.Seconds() / n}
}

// commStats is world's counters, or none on one process.
func commStats(world *dist.Comm) dist.Stats {
	if world == nil {
		return dist.Stats{}
	}
	return world.Stats()
}

// TrainResult is a finished run.
type TrainResult struct {
	Spec   TrainSpec
	Method Method // trained; Method.Backbone() is what FinalFile holds
	Steps  int64
	// Final, Checkpoint and Metrics are the paths of the files written.
	Final, Checkpoint, Metrics string
}

// ErrInterrupted matches (errors.Is) the InterruptedError of a run stopped
// by a signal or by its context.
var ErrInterrupted = errors.New("interrupted")

// InterruptedError ends a run stopped between two steps, after its
// checkpoint was saved; resume it with TrainConfig.Resume = Checkpoint.
type InterruptedError struct {
	Signal     os.Signal // the signal received on TrainConfig.Interrupt, or nil
	Cause      error     // the context's error when the context stopped the run
	Step       int64
	Epoch      int // 1-based
	Checkpoint string
}

func (e *InterruptedError) Error() string {
	var why any = e.Cause
	if e.Signal != nil {
		why = e.Signal
	}
	return fmt.Sprintf("%v (%v) at step %d (epoch %d); checkpoint saved to %s", ErrInterrupted, why, e.Step, e.Epoch, e.Checkpoint)
}

// Is makes errors.Is(err, ErrInterrupted) hold.
func (e *InterruptedError) Is(target error) bool { return target == ErrInterrupted }

// Unwrap returns the context's error, if that stopped the run.
func (e *InterruptedError) Unwrap() error { return e.Cause }

// ResumeError is a TrainConfig.Resume checkpoint that cannot continue this
// run: unreadable, of another spec, or past the run's end.
type ResumeError struct {
	Path string
	Err  error
}

func (e *ResumeError) Error() string { return "resume: " + e.Err.Error() }
func (e *ResumeError) Unwrap() error { return e.Err }

// withDefaults validates c and fills its defaults.
func (c TrainConfig) withDefaults() (TrainConfig, zoo.Spec, error) {
	bad := func(format string, a ...any) (TrainConfig, zoo.Spec, error) {
		return c, zoo.Spec{}, fmt.Errorf("train config: "+format, a...)
	}
	c.Width = cmp.Or(c.Width, 1)
	c.Size = cmp.Or(c.Size, 32)
	c.LogEvery = cmp.Or(c.LogEvery, 50)
	switch {
	case !slices.Contains(methodNames, c.Method):
		return bad("unknown method %q (known: %s)", c.Method, strings.Join(methodNames, ", "))
	case c.Out == "":
		return bad("Out, the folder for %s, %s and %s, is required", FinalFile, CheckpointFile, MetricsFile)
	case c.Epochs < 1:
		return bad("%d epochs: want at least 1", c.Epochs)
	case c.Batch < 2:
		return bad("batch %d: want at least 2 (BatchNorm and contrastive losses need pairs)", c.Batch)
	case !(c.Width > 0) || math.IsInf(c.Width, 0):
		return bad("width %g must be positive", c.Width)
	case c.Size < 8:
		return bad("size %d: want at least 8", c.Size)
	case c.LR < 0 || math.IsNaN(c.LR) || math.IsInf(c.LR, 0):
		return bad("learning rate %g must be a positive number (or 0 for the recipe's)", c.LR)
	case c.Limit < 0 || c.Queue < 0 || c.Workers < 0 || c.LocalCrops < 0:
		return bad("Limit %d, Queue %d, Workers %d and LocalCrops %d must not be negative", c.Limit, c.Queue, c.Workers, c.LocalCrops)
	case c.CheckpointEvery < 0 || c.LogEvery < 1:
		return bad("CheckpointEvery %d and LogEvery %d must not be negative", c.CheckpointEvery, c.LogEvery)
	case c.MaxSteps < 0:
		return bad("MaxSteps %d must not be negative", c.MaxSteps)
	case c.Clusters < 0:
		return bad("%d clusters must not be negative (0 for the default)", c.Clusters)
	case c.Method == "jigsaw" && (c.Permutations < 0 || c.Permutations == 1 || c.Permutations > MaxJigsawPermutations):
		return bad("%d permutations: want 2 to %d (or 0 for %d)", c.Permutations, MaxJigsawPermutations, DefaultJigsawPermutations)
	case !slices.Contains(Recipes, c.Recipe) && c.Recipe != "":
		return bad("unknown recipe %q (known: %s)", c.Recipe, strings.Join(Recipes, ", "))
	case c.Method == "mae" && c.Recipe == RecipeCIFAR:
		return bad("the %s recipe covers the contrastive and clustering methods; MAE has the %s recipe only", RecipeCIFAR, RecipePaper)
	}
	if k := c.KNN; k != nil {
		kk := *k
		kk.Every, kk.Bank, kk.Query = cmp.Or(kk.Every, 1), cmp.Or(kk.Bank, 2000), cmp.Or(kk.Query, 1000)
		if kk.Every < 0 || kk.Bank < 0 || kk.Query < 0 {
			return bad("kNN monitor every %d epochs with %d bank and %d query images: none may be negative", k.Every, k.Bank, k.Query)
		}
		if kk.Test == nil || kk.Test.Len() == 0 {
			return bad("the kNN monitor has no test images")
		}
		c.KNN = &kk
	}
	if k := worldSize(c.World); k > 1 {
		switch {
		case !DataParallel(c.Method):
			return bad("%s does not train data-parallel yet (methods that do: %s); run it as one process", c.Method, strings.Join(dataParallel, ", "))
		case c.Batch%k != 0 || c.Batch/k < 2:
			return bad("global batch %d over %d ranks: want a multiple of the ranks with at least 2 images per rank", c.Batch, k)
		}
	}
	if c.Warn == nil {
		c.Warn = func(err error) { log.Printf("warning: %v", err) }
	}
	a, err := zoo.Arch(c.Arch)
	if err != nil {
		return bad("%v", err)
	}
	if c.Method == "mae" && a.Family != "vit" {
		return c, zoo.Spec{}, fmt.Errorf("mae needs a ViT backbone (vit-tiny, vit-small, ...), not %s", c.Arch)
	}
	return c, a, nil
}

// Train runs a self-supervised method on the images of ds and writes its
// files to cfg.Out: CheckpointFile (method, optimizer and step, for
// Resume) every CheckpointEvery epochs and at the end, MetricsFile (JSON
// lines, MetricsRecord), and at the end FinalFile, the backbone's weights
// with the run's spec, the method's config, the exact architecture
// (zoo.ArchConfigKey) and the preprocessing in the metadata.
//
// A signal on cfg.Interrupt or the end of ctx stops the run between two
// steps with a checkpoint saved, and returns an *InterruptedError. A
// non-finite loss stops it naming the step and the last good checkpoint.
//
// With several ranks, the ranks first compare their configs and data sizes
// (by hash), and all refuse to start where any differs. A rank that fails
// later calls World.Abort, so that the others do not wait for it forever:
// under MPI that ends the job; in-process the others return an error.
func Train(ctx context.Context, cfg TrainConfig, ds data.Dataset, hooks TrainHooks) (res *TrainResult, err error) {
	defer tensor.PinThread()() // the steps are loops of oneDNN kernels
	// together is set where every rank returns the same way at the same
	// point, so that none is left waiting and the job need not be aborted.
	together := false
	defer func() {
		if err != nil && !together && worldSize(cfg.World) > 1 {
			cfg.World.Abort(err)
		}
	}()
	cfg, arch, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	name := cmp.Or(cfg.Data, "the training set")
	if ds == nil {
		return nil, fmt.Errorf("%s: no dataset", name)
	}
	if cfg.Limit > 0 && cfg.Limit < ds.Len() {
		idx := make([]int, cfg.Limit)
		for i := range idx {
			idx[i] = i
		}
		ds = &data.Subset{Base: ds, Indices: idx}
	}
	if worldSize(cfg.World) > 1 {
		if err := sameConfig(cfg, ds); err != nil {
			var d *disagreement
			together = errors.As(err, &d)
			return nil, err
		}
	}
	if ds.Len() == 0 {
		return nil, fmt.Errorf("%s holds no images", name)
	}
	if ds.Len() < cfg.Batch {
		return nil, fmt.Errorf("%s has %d images, fewer than one batch of %d (lower the batch)", name, ds.Len(), cfg.Batch)
	}
	channels, toRGB := ImageChannels(ds)
	norm := cfg.Norm
	if norm == nil {
		norm = NormFor(cfg.Data)
		if len(norm.Mean) != channels {
			norm = &augment.Normalization{Mean: make([]float64, channels), Std: make([]float64, channels)}
			for i := range channels {
				norm.Mean[i], norm.Std[i] = 0.5, 0.25
			}
		}
	} else if len(norm.Mean) != channels || len(norm.Std) != channels {
		return nil, fmt.Errorf("train config: normalisation of %d means and %d stds for %d-channel images", len(norm.Mean), len(norm.Std), channels)
	}
	spec := TrainSpec{Method: cfg.Method, Data: cfg.Data, Arch: cfg.Arch, Width: cfg.Width, InChannels: channels, Size: cfg.Size,
		Mean: norm.Mean, Std: norm.Std, Epochs: cfg.Epochs, Batch: cfg.Batch, Seed: cfg.Seed, LR: cfg.LR, Limit: cfg.Limit, Pool: cfg.Pool}
	if cfg.Recipe != RecipePaper {
		spec.Recipe = cfg.Recipe // metadata of paper-recipe runs stays as it was
	}
	if arch.Family != "resnet" {
		spec.Width = 1 // the width scales ResNets only
	}
	switch cfg.Method {
	case "mocov2":
		spec.Queue = cfg.Queue
		if spec.Queue == 0 {
			spec.Queue = DefaultMoCoQueue(ds.Len(), cfg.Batch)
		}
	case "swav", "dino", "deepclusterv2":
		spec.LocalCrops, spec.LocalSize = cfg.LocalCrops, max(8, cfg.Size/2)
	}
	switch cfg.Method {
	case "deepcluster", "deepclusterv2":
		spec.Clusters = cfg.Clusters
	case "jigsaw":
		spec.Permutations = cmp.Or(cfg.Permutations, DefaultJigsawPermutations)
	}
	archSpec, err := spec.ArchSpec()
	if err != nil {
		return nil, err
	}
	views, err := spec.Views(toRGB)
	if err != nil {
		return nil, err
	}
	ranks := worldSize(cfg.World)
	rank0 := cfg.World == nil || cfg.World.Rank() == 0 // the one writer of Out
	lc := data.LoaderConfig{BatchSize: cfg.Batch, Shuffle: true, Seed: cfg.Seed, DropLast: true,
		Workers: cfg.Workers, Views: views, Warn: cfg.Warn}
	if ranks > 1 {
		lc.Shard, lc.Shards = cfg.World.Rank(), ranks
	}
	loader, err := data.NewLoader(ds, lc)
	if err != nil {
		return nil, err
	}
	spe := loader.Len()
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x7472616e))
	enc, err := spec.NewBackbone(rng)
	if err != nil {
		return nil, err
	}
	method, err := New(spec.Method, enc, Run{Batch: cfg.Batch, StepsPerEpoch: spe, Epochs: cfg.Epochs,
		Recipe: spec.Recipe, LR: spec.LR, Queue: spec.Queue, Size: spec.Size, Permutations: spec.Permutations,
		Clusters: spec.Clusters, Mean: spec.Mean, Std: spec.Std, Images: ds.Len()}, rng)
	if err != nil {
		return nil, err
	}
	// A method that works on the whole set before each epoch (DeepCluster,
	// DeepCluster v2) is told each batch's images; one that also orders
	// its epochs (DeepCluster, uniformly over its pseudo-labels) gets a
	// loader that asks it; the batches per epoch stay.
	prep, _ := method.(epochHook)
	if ord, ok := method.(epochPreparer); ok {
		lc.Order = ord.epochOrder
		if loader, err = data.NewLoader(ds, lc); err != nil {
			return nil, err
		}
	}
	if ranks > 1 {
		w, ok := method.(interface{ setWorld(*dist.Comm) })
		if !ok {
			return nil, fmt.Errorf("%s: %T has no data-parallel state", spec.Method, method)
		}
		w.setWorld(cfg.World)
	}
	specJSON, _ := json.Marshal(spec)
	methodJSON, err := json.Marshal(method.Configuration())
	if err != nil {
		return nil, fmt.Errorf("method config: %w", err)
	}
	archJSON := archSpec.ConfigJSON()
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return nil, err
	}
	ckptPath := filepath.Join(cfg.Out, CheckpointFile)
	final := filepath.Join(cfg.Out, FinalFile)
	// A run killed while saving leaves its temporary beside the file (the
	// file itself stays whole); this run (its rank 0) is the folder's only
	// writer.
	for _, p := range []string{ckptPath, final} {
		if !rank0 {
			continue
		}
		if err := atomicfile.RemoveTemps(p); err != nil {
			return nil, err
		}
	}
	ckptMeta := map[string]string{CheckpointMetaTrain: string(specJSON), CheckpointMetaMethodConfig: string(methodJSON),
		CheckpointMetaArchConfig: archJSON}

	total := int64(cfg.Epochs * spe)
	var start int64
	if cfg.Resume != "" {
		if start, err = resume(cfg.Resume, method, spec); err != nil {
			return nil, &ResumeError{Path: cfg.Resume, Err: err}
		}
		if start > total {
			return nil, &ResumeError{Path: cfg.Resume, Err: fmt.Errorf("%s is at step %d, past the run's %d steps", cfg.Resume, start, total)}
		}
	}
	if err := fromRankZero(cfg.World, method); err != nil {
		return nil, err
	}
	flag := os.O_CREATE | os.O_WRONLY | os.O_TRUNC
	if cfg.Resume != "" {
		flag = os.O_CREATE | os.O_WRONLY | os.O_APPEND
	}
	metricsPath := filepath.Join(cfg.Out, MetricsFile)
	if cfg.Resume != "" && rank0 {
		if err := rewindMetrics(metricsPath, start); err != nil {
			return nil, err
		}
	}
	var mf io.WriteCloser = nopWriteCloser{}
	if rank0 {
		f, err := os.OpenFile(metricsPath, flag, 0o644)
		if err != nil {
			return nil, err
		}
		mf = f
	}
	defer func() {
		if cerr := mf.Close(); cerr != nil && err == nil {
			res, err = nil, cerr
		}
	}()
	logRec := func(r MetricsRecord) error {
		r.Time = time.Now().UTC().Format(time.RFC3339)
		b, _ := json.Marshal(r)
		if _, err := mf.Write(append(b, '\n')); err != nil {
			return fmt.Errorf("write metrics: %w", err)
		}
		return nil
	}

	var monitor *knnMonitor
	if cfg.KNN != nil {
		monitor = newKNNMonitor(ds, spec.EvalTransform(toRGB), cfg)
	}
	if cfg.MaxSteps > 0 {
		total = min(total, cfg.MaxSteps)
	}
	if hooks.Start != nil {
		hooks.Start(TrainStart{Spec: spec, Method: method, Images: ds.Len(), StepsPerEpoch: spe, TotalSteps: total, StartStep: start,
			WorldSize: ranks})
	}

	saveCkpt := func(step int64) error {
		if !rank0 {
			return nil
		}
		if err := nn.SaveCheckpoint(ckptPath, method, method.Optimizer(), step, nil, ckptMeta); err != nil {
			return err
		}
		if hooks.Checkpoint != nil {
			hooks.Checkpoint(ckptPath, step)
		}
		return nil
	}
	// interrupted saves the checkpoint of a run stopped between steps.
	interrupted := func(sig os.Signal, cause error, step int64, epoch int) error {
		if err := saveCkpt(step); err != nil {
			return err
		}
		return &InterruptedError{Signal: sig, Cause: cause, Step: step, Epoch: epoch + 1, Checkpoint: ckptPath}
	}
	lastGood := cfg.Resume
	stepFn := cfg.step
	if stepFn == nil {
		stepFn = func(m Method, tp *autograd.Tape, v []*tensor.Tensor) (float32, error) { return m.Step(tp, v) }
	}
	tp := autograd.NewTape()
	if ranks > 1 {
		tp.SetCrossReplicaSum(cfg.World.AllreduceSum) // SyncBatchNorm, as solo-learn under DDP
	}
	step := start
	var lossSum float64
	var lossN, imgs int
	tLog, commLog := time.Now(), commStats(cfg.World)
	// stepRecord averages the steps since the last record.
	stepRecord := func(epoch int, lr float64, now time.Time) MetricsRecord {
		return MetricsRecord{Kind: "step", WorldSize: ranks, Step: step, Epoch: epoch + 1, Loss: lossSum / float64(lossN), LR: lr,
			ImgPerS: float64(imgs) / now.Sub(tLog).Seconds(), Comm: commPerStep(cfg.World, commLog, lossN)}
	}
	for epoch := int(start / int64(spe)); epoch < cfg.Epochs && step < total; epoch++ {
		skip := 0
		if epoch == int(start/int64(spe)) {
			skip = int(start % int64(spe))
		}
		var clusterS float64
		if prep != nil {
			tc := time.Now()
			ran, err := prep.prepareEpoch(ctx, epoch, epochSource{ds: ds,
				extract: eval.ExtractConfig{Transform: spec.EvalTransform(toRGB), Workers: cfg.Workers, Warn: cfg.Warn}})
			if err != nil {
				if cerr := ctx.Err(); cerr != nil {
					return nil, interrupted(nil, cerr, step, epoch)
				}
				return nil, fmt.Errorf("epoch %d: %w", epoch+1, err)
			}
			if ran {
				clusterS = time.Since(tc).Seconds()
				tLog = time.Now() // the step records' throughput excludes it
			}
		}
		it := loader.Epoch(ctx, epoch)
		tEpoch := time.Now()
		var epochLoss float64
		var epochN, epochImgs int
		// i counts the epoch's batches taken; the loop ends at the epoch's
		// end or at MaxSteps.
		i := 0
		for ; step < total; i++ {
			b, err := it.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				it.Close()
				if cerr := ctx.Err(); cerr != nil {
					return nil, interrupted(nil, cerr, step, epoch)
				}
				return nil, err
			}
			if i < skip {
				b.Release() // already trained before the checkpoint
				continue
			}
			var sig os.Signal
			var cause error
			select {
			case sig = <-cfg.Interrupt:
			case <-ctx.Done():
				cause = ctx.Err()
			default:
			}
			n := b.Views[0].Shape[0]
			// The ranks decide together, so that all stop or skip at the
			// same step.
			stop, shrunk, err := agree(cfg.World, sig != nil || cause != nil, n < 2)
			if err != nil {
				b.Release()
				it.Close()
				return nil, fmt.Errorf("step %d: %w", step, err)
			}
			if stop {
				b.Release()
				it.Close()
				if sig == nil && cause == nil {
					cause = errOtherRank
				}
				together = true
				return nil, interrupted(sig, cause, step, epoch)
			}
			if shrunk {
				cfg.Warn(fmt.Errorf("step %d: batch shrank to %d image(s) after skipped files (on this rank or another); left out", step, n))
				b.Release()
				continue
			}
			if prep != nil {
				prep.setBatchIndices(b.Indices)
			}
			loss, err := stepFn(method, tp, b.Views)
			n *= ranks // the images of the global batch, for throughput
			b.Release()
			if err != nil {
				it.Close()
				if f := float64(loss); math.IsNaN(f) || math.IsInf(f, 0) {
					good := lastGood
					if good == "" {
						good = "none saved yet"
					}
					return nil, fmt.Errorf("loss is %g at step %d (epoch %d); stopped; last good checkpoint: %s", loss, step, epoch+1, good)
				}
				return nil, fmt.Errorf("step %d: %w", step, err)
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
			if lossN >= cfg.LogEvery {
				if err := logRec(stepRecord(epoch, lr, now)); err != nil {
					it.Close()
					return nil, err
				}
				lossSum, lossN, imgs, tLog, commLog = 0, 0, 0, now, commStats(cfg.World)
			}
			if hooks.Step != nil {
				hooks.Step(TrainStep{Step: step, Epoch: epoch + 1, Loss: loss, LR: lr, Images: n,
					EpochImgPerS: float64(epochImgs) / now.Sub(tEpoch).Seconds()})
			}
		}
		wait, _ := it.WaitTime()
		it.Close()
		if i < spe {
			// MaxSteps inside the epoch, which did not end: the steps
			// since the last record get one of their own.
			if lossN > 0 {
				if err := logRec(stepRecord(epoch, float64(method.Optimizer().LR()), time.Now())); err != nil {
					return nil, err
				}
			}
			break
		}
		epochS := time.Since(tEpoch).Seconds()
		rec := MetricsRecord{Kind: "epoch", WorldSize: ranks, Step: step, Epoch: epoch + 1, LR: float64(method.Optimizer().LR()), EpochS: epochS,
			ImgPerS: float64(epochImgs) / epochS, ClusterS: clusterS}
		ws := wait.Seconds()
		rec.DataWaitS = &ws
		if epochN > 0 {
			rec.Loss = epochLoss / float64(epochN)
		}
		var knn *eval.Result
		if monitor != nil && rank0 && ((epoch+1)%cfg.KNN.Every == 0 || epoch+1 == cfg.Epochs) {
			tk := time.Now()
			r, err := monitor.run(ctx, method.Backbone())
			method.SetTraining(true)
			if err != nil {
				if cerr := ctx.Err(); cerr != nil {
					return nil, interrupted(nil, cerr, step, epoch)
				}
				return nil, fmt.Errorf("kNN monitor after epoch %d: %w", epoch+1, err)
			}
			rec.KNNTop1, rec.KNNTop5, rec.KNNS = &r.Top1, &r.Top5, time.Since(tk).Seconds()
			knn = &r
		}
		if err := logRec(rec); err != nil {
			return nil, err
		}
		if cfg.CheckpointEvery > 0 && (epoch+1)%cfg.CheckpointEvery == 0 {
			if err := saveCkpt(step); err != nil {
				return nil, err
			}
			lastGood = ckptPath
		}
		if hooks.Epoch != nil {
			hooks.Epoch(TrainEpoch{Record: rec, KNN: knn})
		}
		// The next interval's throughput excludes the monitor and the save.
		lossSum, lossN, imgs, tLog, commLog = 0, 0, 0, time.Now(), commStats(cfg.World)
	}
	if err := saveCkpt(step); err != nil {
		return nil, err
	}
	pre, _ := json.Marshal(spec.Preprocess())
	meta := map[string]string{
		MetaTrain: string(specJSON), MetaMethod: cfg.Method, MetaBackbone: cfg.Arch, MetaMethodConfig: string(methodJSON),
		MetaEmbedDim: strconv.Itoa(enc.FeatureDim()), MetaPreprocess: string(pre), MetaSteps: strconv.FormatInt(step, 10),
		zoo.ArchConfigKey: archJSON,
	}
	if rank0 {
		if err := nn.SaveState(final, enc, meta); err != nil {
			return nil, err
		}
	}
	return &TrainResult{Spec: spec, Method: method, Steps: step, Final: final, Checkpoint: ckptPath, Metrics: metricsPath}, nil
}

// errOtherRank is the cause of a stop that another rank asked for.
var errOtherRank = errors.New("another rank was interrupted")

// worldSize is the number of ranks of w; nil is one process.
func worldSize(w *dist.Comm) int {
	if w == nil {
		return 1
	}
	return w.Size()
}

// agree returns, on every rank alike, whether any rank wants to stop and
// whether any rank's batch is unusable. One process decides alone.
func agree(w *dist.Comm, stop, skip bool) (anyStop, anySkip bool, err error) {
	if worldSize(w) == 1 {
		return stop, skip, nil
	}
	flags := []float32{0, 0}
	if stop {
		flags[0] = 1
	}
	if skip {
		flags[1] = 1
	}
	if err := w.AllreduceSum(flags); err != nil {
		return false, false, err
	}
	return flags[0] > 0, flags[1] > 0, nil
}

// sameConfig fails, on every rank alike, when the ranks were given
// different configs or data sizes: each field that determines the math is
// hashed into two 24-bit pieces (integers a float32 holds exactly), and
// the pieces are gathered. The data's size and channels count too: a
// dataset type that ImageChannels does not know is taken as RGB. Out, Workers, Warn, the logging and checkpoint
// cadence, the monitor and the hooks may differ.
func sameConfig(cfg TrainConfig, ds data.Dataset) error {
	channels, toRGB := ImageChannels(ds)
	var norm any
	if cfg.Norm != nil {
		norm = [][]float64{cfg.Norm.Mean, cfg.Norm.Std}
	}
	fields := []struct {
		name  string
		value any
	}{
		{"method", cfg.Method}, {"data", cfg.Data}, {"arch", cfg.Arch}, {"width", cfg.Width}, {"size", cfg.Size},
		{"epochs", cfg.Epochs}, {"batch", cfg.Batch}, {"seed", cfg.Seed}, {"recipe", cfg.Recipe}, {"lr", cfg.LR},
		{"limit", cfg.Limit}, {"queue", cfg.Queue}, {"local crops", cfg.LocalCrops}, {"pool", cfg.Pool},
		{"permutations", cfg.Permutations}, {"clusters", cfg.Clusters}, {"normalisation", norm}, {"max steps", cfg.MaxSteps}, {"resume", cfg.Resume},
		{"data size", ds.Len()}, {"image channels", fmt.Sprint(channels, toRGB)},
	}
	mine := make([]float32, 2*len(fields))
	for i, f := range fields {
		h := fnv.New64a()
		fmt.Fprintf(h, "%s=%v", f.name, f.value)
		v := h.Sum64()
		mine[2*i], mine[2*i+1] = float32(v&(1<<24-1)), float32(v>>24&(1<<24-1))
	}
	all, err := cfg.World.Allgather(mine)
	if err != nil {
		return fmt.Errorf("comparing the ranks' configs: %w", err)
	}
	d := &disagreement{rank: -1}
	for i, f := range fields {
		for r := 1; r < cfg.World.Size(); r++ {
			row := all[r*len(mine):]
			if row[2*i] != all[2*i] || row[2*i+1] != all[2*i+1] {
				d.fields = append(d.fields, f.name)
				if d.rank < 0 || r < d.rank {
					d.rank = r
				}
				break
			}
		}
	}
	if d.rank < 0 {
		return nil
	}
	return d
}

// disagreement is sameConfig's error: the fields that differ, and the
// first rank where one does.
type disagreement struct {
	fields []string
	rank   int
}

func (d *disagreement) Error() string {
	return fmt.Sprintf("ranks disagree on %s (rank %d differs from rank 0): start every rank with the same flags and data",
		strings.Join(d.fields, ", "), d.rank)
}

// nopWriteCloser stands for the metrics file on the ranks that do not
// write it.
type nopWriteCloser struct{}

func (nopWriteCloser) Write(p []byte) (int, error) { return len(p), nil }
func (nopWriteCloser) Close() error                { return nil }

// OptimizerName is the short name of a method's optimizer: LARS, SGD or
// AdamW.
func OptimizerName(m Method) string {
	switch m.Optimizer().(type) {
	case *nn.LARS:
		return "LARS"
	case *nn.SGD, *deepClusterSGD:
		return "SGD"
	case *nn.AdamW, *AdamWGroups:
		return "AdamW"
	}
	return fmt.Sprintf("%T", m.Optimizer())
}

// rewindMetrics cuts a resumed run's MetricsFile back to the checkpoint's
// step: a run killed after its last checkpoint logged steps that are about
// to be trained again, and may have left a torn last line. The records
// kept are a prefix, so the file reads as if the run had not stopped.
func rewindMetrics(path string, step int64) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("resume: %w", err)
	}
	keep := 0
	for rest := b; ; {
		line, after, complete := bytes.Cut(rest, []byte("\n"))
		var r struct {
			Step *int64 `json:"step"`
		}
		if !complete || json.Unmarshal(line, &r) != nil || r.Step == nil || *r.Step > step {
			break
		}
		keep += len(line) + 1
		rest = after
	}
	if keep == len(b) {
		return nil
	}
	if err := atomicfile.WriteBytes(path, b[:keep]); err != nil {
		return fmt.Errorf("resume: rewind metrics: %w", err)
	}
	return nil
}

// resume loads a checkpoint into method after checking it came from a run
// with the same spec, and returns its step.
func resume(path string, method Method, spec TrainSpec) (int64, error) {
	step, meta, err := nn.LoadCheckpoint(path, method, method.Optimizer(), nil)
	if err != nil {
		return 0, err
	}
	var saved TrainSpec
	if err := json.Unmarshal([]byte(meta[CheckpointMetaTrain]), &saved); err != nil {
		return 0, fmt.Errorf("%s has no readable %s metadata: %v", path, CheckpointMetaTrain, err)
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
