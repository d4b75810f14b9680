package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/sslzoo/sslzoo/zoo"
)

func listCommand() *cli.Command {
	return &cli.Command{
		Name:      "list",
		Usage:     "list the zoo's named models",
		UsageText: "sslzoo list [--json]\n\nexample:\n  sslzoo list\n  sslzoo list --json | jq '.[].name'",
		Description: "Bundled models ship inside the binary and work offline. Official checkpoints (verified: no) are\n" +
			"downloaded from their authors by 'sslzoo pull' and imported into sslzoo's format; they were not\n" +
			"reachable from the machines this zoo was built on, so their files are pinned only as far as the\n" +
			"authors publish a checksum.",
		Flags: []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print the manifest entries as JSON"}},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			all, err := zoo.Entries()
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return writeJSON(c.App.Writer, all)
			}
			return printEntries(c.App.Writer, all)
		},
	}
}

func infoCommand() *cli.Command {
	return &cli.Command{
		Name:      "info",
		Usage:     "show one zoo model: recipe, preprocessing, metrics, files",
		UsageText: "sslzoo info NAME [--json]\n\nexample:\n  sslzoo info simclr-resnet18-fmnist",
		ArgsUsage: "NAME",
		Flags:     []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print the manifest entry as JSON"}},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("sslzoo info: name one model (see 'sslzoo list')")
			}
			e, err := zoo.Lookup(c.Args().First())
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return writeJSON(c.App.Writer, e)
			}
			return printEntry(c.App.Writer, e)
		},
	}
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// headline is an entry's first metric, e.g. "84.1% knn".
func headline(e zoo.Entry) string {
	if len(e.Metrics) == 0 {
		return "-"
	}
	m := e.Metrics[0]
	return fmt.Sprintf("%.2f%% %s", m.Top1, m.Protocol)
}

func printEntries(w io.Writer, all []zoo.Entry) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tMETHOD\tARCH\tDIM\tPARAMS\tSIZE\tTOP-1\tDATA\tAVAILABLE")
	for _, e := range all {
		avail := "download, unverified"
		switch {
		case e.Bundled:
			avail = "bundled"
		case e.Verified:
			avail = "download"
		}
		data := "-"
		if len(e.Metrics) > 0 {
			data = e.Metrics[0].Dataset
		} else if e.Source != "" {
			data, _, _ = strings.Cut(e.Source, " (")
		}
		size := "-"
		if e.Size > 0 {
			size = humanBytes(e.Size)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%.1fM\t%s\t%s\t%s\t%s\n", e.Name, e.Method, e.Arch, e.EmbeddingDim,
			float64(e.Params)/1e6, size, headline(e), data, avail)
	}
	return tw.Flush()
}

func printEntry(w io.Writer, e zoo.Entry) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, format string, a ...any) { fmt.Fprintf(tw, "%s\t"+format+"\n", append([]any{k}, a...)...) }
	row("name", "%s (version %s)", e.Name, e.Version)
	row("method", "%s", e.Method)
	row("arch", "%s, %d-d embedding, %.2fM parameters", e.Arch, e.EmbeddingDim, float64(e.Params)/1e6)
	if len(e.ArchConfig) > 0 {
		row("arch config", "%s", e.ArchConfig)
	}
	row("modality", "%s", e.Modality)
	file := e.File
	if e.Size > 0 {
		file += " (" + humanBytes(e.Size) + ")"
	}
	row("file", "%s", file)
	switch {
	case e.SHA256 != "":
		row("sha256", "%s", e.SHA256)
	case e.SHA256Prefix != "":
		row("sha256", "%s... (the prefix its authors publish)", e.SHA256Prefix)
	}
	if e.Format != "" {
		row("format", "%s (imported after download)", e.Format)
	}
	for _, u := range e.URLs {
		row("url", "%s", u)
	}
	row("bundled", "%v", e.Bundled)
	row("verified here", "%v", e.Verified)
	row("license", "%s", e.License)
	if e.Source != "" {
		row("source", "%s", e.Source)
	}
	if p := e.Preprocess; p != nil {
		resize := fmt.Sprintf("resize to %dx%d", p.Size[0], p.Size[1])
		if p.ResizeSize > 0 {
			resize = fmt.Sprintf("resize shorter side to %d, %s crop %dx%d", p.ResizeSize, p.Crop, p.Size[0], p.Size[1])
		}
		row("preprocess", "%s, %s (%s), scale %.6g, mean %v, std %v", p.Channels, resize, p.Resize, p.Scale, p.Mean, p.Std)
	}
	if t := e.Tokenizer; t != nil {
		row("tokenizer", "%s, %d tokens, lowercase %v, max length %d, vocab sha256 %s", t.Kind, t.VocabSize, t.Lowercase, t.MaxLength, t.VocabSHA256)
	}
	if r := e.Recipe; r != nil {
		row("trained with", "%s", r.Command)
		row("training cost", "%d epochs, %d steps, %.1f h on %s (seed %d)", r.Epochs, r.Steps, r.WallTimeS/3600, r.Machine, r.Seed)
	}
	for _, m := range e.Metrics {
		row("metric", "%s %s top-1 %.2f%%  (%s)", m.Dataset, m.Protocol, m.Top1, m.Command)
	}
	if e.Notes != "" {
		row("notes", "%s", e.Notes)
	}
	return tw.Flush()
}
