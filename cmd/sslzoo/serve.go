package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/sslzoo/sslzoo"
	"github.com/sslzoo/sslzoo/onnxrt"
	"github.com/sslzoo/sslzoo/serve"
)

func serveCommand() *cli.Command {
	return &cli.Command{
		Name:  "serve",
		Usage: "serve embeddings over HTTP: KServe v2 (Triton clients), OpenAI /v1/embeddings, Prometheus /metrics",
		UsageText: "sslzoo serve --model NAME|F.onnx|ALIAS=F.onnx [--model ...] [--addr 127.0.0.1:8080] [--max-batch 32] [--max-delay 0s]\n" +
			"             [--queue 256] [--token-file F] [--engine ort|go|auto] [--threads N] [--device cpu|cuda[:N]]\n" +
			"  example: sslzoo serve --model simclr-resnet18-fmnist --model mlm-bert-tiny-brown\n" +
			"           curl -s localhost:8080/v2/models/simclr-resnet18-fmnist",
		Description: "Endpoints: POST /v2/models/NAME/infer (KServe v2 JSON, and the binary tensor extension),\n" +
			"GET /v2/models/NAME (inputs, outputs and preprocessing), GET /v2/models/NAME/ready, GET /v2,\n" +
			"GET /v2/health/live and /v2/health/ready, POST /v1/embeddings ({\"model\", \"input\": texts, or images as\n" +
			"data:image/png;base64,... URLs}), GET /metrics. Images are decoded and preprocessed exactly as\n" +
			"'sslzoo embed' does; texts are tokenized as 'embed --text' does. Zoo names are pulled on first use.\n" +
			"Requests to one model are batched: up to --max-batch rows, waiting at most --max-delay; at 0 a batch\n" +
			"runs as soon as an engine is free, with whatever queued meanwhile (--max-batch 1 turns batching off).\n" +
			"Past --queue waiting requests the server answers 503 with Retry-After.\n" +
			"With --token-file every request but the health checks needs Authorization: Bearer TOKEN.\n" +
			"SIGTERM or Ctrl-C drains: requests in flight finish, new ones get 503, and the exit code is 0.",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "model", Usage: "zoo `NAME`, .onnx file, or ALIAS=either (repeatable)"},
			&cli.StringFlag{Name: "addr", Value: "127.0.0.1:8080", Usage: "`HOST:PORT` to listen on (0.0.0.0:8080 for every interface)"},
			&cli.IntFlag{Name: "max-batch", Value: serve.DefaultMaxBatch, Usage: "most rows per engine run (1: no batching)"},
			&cli.DurationFlag{Name: "max-delay", Usage: "longest a request waits for others to share its batch (0: run as soon as an engine is free)"},
			&cli.IntFlag{Name: "queue", Value: serve.DefaultQueue, Usage: "requests that may wait per model before 503"},
			&cli.IntFlag{Name: "instances", Value: 1, Usage: "batches of one model run at once (with --threads, how the cores are shared)"},
			&cli.StringFlag{Name: "token-file", Usage: "`FILE` holding the bearer token clients must send"},
			&cli.StringFlag{Name: "engine", Value: "auto", Usage: "ort (ONNX Runtime), go (sslzoo's engine) or auto (ort when its library loads)"},
			&cli.IntFlag{Name: "threads", Usage: "threads per engine run (0: the engine's default)"},
			&cli.StringFlag{Name: "device", Value: "cpu", Usage: "cpu, cuda or cuda:N (ONNX Runtime only)"},
			&cli.Int64Flag{Name: "body-limit", Value: serve.DefaultBodyLimit, Usage: "largest request body in `BYTES` (413 past it)"},
			&cli.IntFlag{Name: "max-rows", Value: serve.DefaultMaxRows, Usage: "most rows (images, texts) in one request"},
			&cli.DurationFlag{Name: "timeout", Value: serve.DefaultTimeout, Usage: "longest a request may take (504 past it)"},
			&cli.DurationFlag{Name: "grace", Value: 30 * time.Second, Usage: "on SIGTERM, how long in-flight requests may take to finish"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("sslzoo serve: unexpected argument %q: give models with --model", c.Args().First())
			}
			o := serveOptions{
				Models: c.StringSlice("model"), Addr: c.String("addr"), TokenFile: c.String("token-file"),
				Engine: c.String("engine"), Threads: c.Int("threads"), Device: c.String("device"), Grace: c.Duration("grace"),
				Config: serve.Config{MaxBatch: c.Int("max-batch"), MaxDelay: c.Duration("max-delay"), Queue: c.Int("queue"), Instances: c.Int("instances"),
					BodyLimit: c.Int64("body-limit"), MaxRows: c.Int("max-rows"), Timeout: c.Duration("timeout")},
			}
			ctx, stop := signal.NotifyContext(c.Context, syscall.SIGTERM, os.Interrupt)
			defer stop()
			return runServe(ctx, c.App.Writer, c.App.ErrWriter, o, nil)
		},
	}
}

type serveOptions struct {
	Models                          []string
	Addr, TokenFile, Engine, Device string
	Threads                         int
	Grace                           time.Duration
	Config                          serve.Config
}

// runServe serves until ctx ends, then drains. ready, when set, gets the
// address once the server listens (for tests).
func runServe(ctx context.Context, w, errw io.Writer, o serveOptions, ready func(addr string)) error {
	const name = "sslzoo serve"
	switch {
	case len(o.Models) == 0:
		return usagef("%s: give at least one --model NAME|F.onnx (see 'sslzoo list')", name)
	case o.Config.MaxBatch < 1:
		return usagef("%s: --max-batch %d: want >= 1 (1 turns batching off)", name, o.Config.MaxBatch)
	case o.Config.MaxDelay < 0 || o.Config.Timeout <= 0 || o.Grace < 0:
		return usagef("%s: --max-delay and --grace must not be negative, and --timeout must be positive", name)
	case o.Config.Queue < 1 || o.Config.BodyLimit < 1 || o.Config.MaxRows < 1 || o.Config.Instances < 1 || o.Threads < 0:
		return usagef("%s: --queue, --body-limit, --max-rows and --instances must be positive, and --threads not negative", name)
	}
	switch o.Engine {
	case onnxrt.EngineORT, onnxrt.EngineGo, onnxrt.EngineAuto:
	default:
		return usagef("%s: --engine %q: want ort, go or auto", name, o.Engine)
	}
	if _, err := onnxrt.ParseDevice(o.Device); err != nil {
		return usagef("%s: --device: %v", name, err)
	}
	for _, m := range o.Models {
		if _, _, err := serve.ParseModelSpec(m); err != nil {
			return usagef("%s: %v", name, err)
		}
	}
	if o.TokenFile != "" {
		tok, err := readToken(o.TokenFile)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		o.Config.Token = tok
	}
	o.Config.Version = version()

	opts := &sslzoo.Options{Progress: errw, Engine: o.Engine, Threads: o.Threads, Device: o.Device}
	var models []serve.Model
	defer func() {
		for _, m := range models {
			m.Encoder.Close()
		}
	}()
	for _, spec := range o.Models {
		m, err := serve.LoadModel(ctx, spec, opts)
		if err != nil {
			return fmt.Errorf("%s: %w", name, pullFailure(err))
		}
		models = append(models, m)
		fmt.Fprintf(w, "model %s: %s, %s\n", m.Name, describeEncoder(m.Encoder), m.Encoder.Path())
	}
	srv, err := serve.New(o.Config, models...)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		srv.Shutdown(context.Background())
		return fmt.Errorf("%s: --addr %s: %w", name, o.Addr, err)
	}
	addr := ln.Addr().String()
	if host, _, _ := net.SplitHostPort(addr); o.Config.Token == "" && !net.ParseIP(host).IsLoopback() {
		fmt.Fprintf(errw, "warning: listening on %s without --token-file: anyone who can reach it can use it\n", addr)
	}
	fmt.Fprintf(w, "serving %s on http://%s (max batch %d, max delay %v, queue %d)\n",
		strings.Join(srv.Models(), ", "), addr, o.Config.MaxBatch, o.Config.MaxDelay, o.Config.Queue)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	if ready != nil {
		ready(addr)
	}
	select {
	case err := <-done:
		srv.Shutdown(context.Background())
		return fmt.Errorf("%s: %w", name, err)
	case <-ctx.Done():
	}
	fmt.Fprintf(w, "shutting down: letting requests in flight finish (up to %v)\n", o.Grace)
	sctx, cancel := context.WithTimeout(context.Background(), o.Grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("%s: shutdown: %w", name, err)
	}
	if err := <-done; err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	fmt.Fprintln(w, "stopped")
	return nil
}

// readToken reads a bearer token file: one line, not empty.
func readToken(path string) (string, error) {
	info, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("--token-file: %w", err)
	}
	if info.Size() > 4096 {
		return "", fmt.Errorf("--token-file %s: %d bytes is not a token (want one line)", path, info.Size())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("--token-file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" || strings.ContainsAny(tok, "\r\n") {
		return "", fmt.Errorf("--token-file %s: want one non-empty line holding the token", path)
	}
	return tok, nil
}

// describeEncoder is a one-line summary: modality, width and engine.
func describeEncoder(e *sslzoo.Encoder) string {
	engine := "go engine"
	if _, ok := e.Engine().(*onnxrt.Session); ok {
		engine = "onnxruntime " + onnxrt.Version()
	}
	dim := "?"
	if e.Dim() > 0 {
		dim = fmt.Sprint(e.Dim())
	}
	return fmt.Sprintf("%s, %s-d, %s", e.Modality(), dim, engine)
}

// version is the module version the binary was built from ("dev" when
// built from a work tree).
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}
