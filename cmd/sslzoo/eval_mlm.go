package main

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/sslzoo/sslzoo/zoo"
	"github.com/sslzoo/sslzoo/zoo/mlm"
)

// evalMLMReport is what `sslzoo eval mlm --json` prints.
type evalMLMReport struct {
	Protocol   string     `json:"protocol"` // "mlm"
	Model      string     `json:"model"`
	Like       string     `json:"like"`
	HeldOut    int        `json:"held_out_sequences"`
	Masked     int        `json:"masked_positions"`
	Accuracy   float64    `json:"accuracy"`
	Loss       float64    `json:"loss"`
	Perplexity float64    `json:"perplexity"`
	Unigram    mlmScoreJS `json:"unigram"`
	Seconds    float64    `json:"seconds"`
}

type mlmScoreJS struct {
	Accuracy   float64 `json:"accuracy"`
	Loss       float64 `json:"loss"`
	Perplexity float64 `json:"perplexity"`
}

func evalMLMCommand() *cli.Command {
	return &cli.Command{
		Name:  "mlm",
		Usage: "masked-token accuracy and perplexity of a BERT on the held-out text of an sslzoo train mlm run",
		Description: "--model is a Hugging Face BERT folder with the MLM head (config.json, model.safetensors,\n" +
			"vocab.txt): one that sslzoo train mlm or scripts/mlm_torch.py wrote, or any BertForMaskedLM with\n" +
			"the run's vocabulary. --like is the folder of an sslzoo train mlm run (or its sequences.safetensors):\n" +
			"its held-out sequences are masked exactly as that run's own evaluations masked them, so the\n" +
			"figures compare directly with the run's, and the unigram baseline is scored on the same positions.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "model", Usage: "Hugging Face BERT folder to evaluate (required)"},
			&cli.StringFlag{Name: "like", Usage: "output folder of sslzoo train mlm whose held-out text is used (required)"},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object"},
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			return runEvalMLM(c.App.Writer, c.String("model"), c.String("like"), c.Bool("json"))
		},
	}
}

func runEvalMLM(stdout io.Writer, model, like string, asJSON bool) error {
	if model == "" || like == "" {
		return usagef("sslzoo eval mlm: --model and --like are both required")
	}
	t0 := time.Now()
	seqs, err := mlm.ReadSequences(like)
	if err != nil {
		return fmt.Errorf("sslzoo eval mlm: --like: %w (give the folder of an sslzoo train mlm run)", err)
	}
	hf, err := zoo.LoadHFBERT(model)
	if err != nil {
		return fmt.Errorf("sslzoo eval mlm: --model: %w", err)
	}
	s, err := mlm.EvaluateRun(hf.Model, hf.Tokenizer, seqs)
	if err != nil {
		return fmt.Errorf("sslzoo eval mlm: %s on %s: %w", model, like, err)
	}
	r := evalMLMReport{Protocol: "mlm", Model: model, Like: like, HeldOut: s.HeldOut, Masked: s.Model.Masked,
		Accuracy: s.Model.Accuracy, Loss: s.Model.Loss, Perplexity: s.Model.Perplexity(),
		Unigram: mlmScoreJS{Accuracy: s.Unigram.Accuracy, Loss: s.Unigram.Loss, Perplexity: s.Unigram.Perplexity()},
		Seconds: time.Since(t0).Seconds()}
	if asJSON {
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, string(b))
		return nil
	}
	fmt.Fprintf(stdout, "%s on the held-out text of %s (%d sequences, %d masked positions):\n", model, like, r.HeldOut, r.Masked)
	fmt.Fprintf(stdout, "masked accuracy %.4f, perplexity %.2f (loss %.4f); unigram baseline: accuracy %.4f, perplexity %.2f\n",
		r.Accuracy, r.Perplexity, r.Loss, r.Unigram.Accuracy, r.Unigram.Perplexity)
	return nil
}
