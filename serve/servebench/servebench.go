// Package servebench is `make bench-serve`: it starts `sslzoo serve` as its
// own process, with batching on and with it off, loads it from closed-loop
// clients on loopback at several concurrencies and in each protocol, and
// measures the same model in-process at batch 1 and at the batch size, in
// one interleaved run, so that the ratios the serving issue sets as
// targets come from the same minutes of the same machine.
package servebench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sslzoo/sslzoo"
	"github.com/sslzoo/sslzoo/onnxrt"
	"github.com/sslzoo/sslzoo/serve/kserve"
	"github.com/sslzoo/sslzoo/serve/loadgen"
	"github.com/sslzoo/sslzoo/serve/openai"
)

// Config says what to measure.
type Config struct {
	Model       string // an image model's .onnx file
	Server      string // the sslzoo binary that serves it
	Engine      string
	Threads     int
	Instances   int // concurrent engine runs, in the servers and in-process
	MaxBatch    int
	MaxDelay    time.Duration
	Concurrency []int
	Cell        time.Duration // each measurement, per round
	Rounds      int
	Soak        time.Duration // the run over which RSS growth is measured
	Progress    io.Writer     // one line per measurement; nil for none
}

// Protocols of a cell.
const (
	InProcess = "in-process"
	V2JSON    = "v2 json"
	V2Binary  = "v2 binary"
	OpenAI    = "openai png"
)

// Cell is one measurement: a protocol at a concurrency, batching on or
// off (in-process: Batch rows per run, Concurrency 1).
type Cell struct {
	Protocol    string
	Batching    bool
	Concurrency int
	Batch       int
	Result      loadgen.Result
}

// Rows per second: requests carry one image each, in-process runs Batch.
func (c Cell) RowsPerSecond() float64 { return c.Result.RPS() * float64(max(c.Batch, 1)) }

// Report is a whole run.
type Report struct {
	Config           Config
	Cells            []Cell
	RSSStart, RSSEnd int64 // the batching server's resident memory over the soak, bytes
	SoakRequests     int
	SoakErrors       int
	ExitCodes        [2]int // the servers' exit codes after SIGTERM
}

type server struct {
	cmd  *exec.Cmd
	base string
	done chan error
}

// start runs `sslzoo serve` on a free port and waits until it is ready.
func start(ctx context.Context, cfg Config, maxBatch int) (*server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	args := []string{"serve", "--model", "bench=" + cfg.Model, "--addr", addr, "--max-batch", strconv.Itoa(maxBatch),
		"--max-delay", cfg.MaxDelay.String(), "--queue", "1024", "--engine", cfg.Engine, "--threads", strconv.Itoa(cfg.Threads),
		"--instances", strconv.Itoa(max(cfg.Instances, 1))}
	cmd := exec.Command(cfg.Server, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", cfg.Server, err)
	}
	s := &server{cmd: cmd, base: "http://" + addr, done: make(chan error, 1)}
	go func() { s.done <- cmd.Wait() }()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		resp, err := http.Get(s.base + "/v2/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		select {
		case err := <-s.done:
			return nil, fmt.Errorf("sslzoo serve exited before it was ready (%v): %s", err, strings.TrimSpace(out.String()))
		case <-ctx.Done():
			s.stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("sslzoo serve was not ready within 2 minutes: %s", out.String())
		}
	}
}

// stop sends SIGTERM and returns the exit code.
func (s *server) stop() int {
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(time.Minute):
		s.cmd.Process.Kill()
		<-s.done
	}
	return s.cmd.ProcessState.ExitCode()
}

// rss is a process's resident memory in bytes, from /proc.
func rss(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmRSS in /proc status")
}

// makeBodies builds each protocol's request for one image.
func makeBodies(enc *sslzoo.Encoder) (map[string]loadgen.Request, error) {
	spec := enc.Preprocess()
	c, h, w := spec.Shape()
	r := rand.New(rand.NewPCG(1, 2))
	img := image.NewGray(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = uint8(r.IntN(256))
	}
	x, err := spec.Apply(img)
	if err != nil {
		return nil, err
	}
	in := onnxrt.NewTensor([]int{1, c, h, w}, x)
	name := enc.Engine().Inputs()[0].Name
	reqs := map[string]loadgen.Request{}
	for _, bin := range []bool{false, true} {
		body, hl, err := kserve.EncodeRequest(&kserve.Request{Inputs: []kserve.Input{{Name: name, Tensor: in, Binary: bin}}, BinaryOutput: bin})
		if err != nil {
			return nil, err
		}
		hdr := http.Header{"Content-Type": {"application/json"}}
		proto := V2JSON
		if bin {
			hdr = http.Header{"Content-Type": {"application/octet-stream"}, kserve.HeaderLength: {strconv.Itoa(hl)}}
			proto = V2Binary
		}
		reqs[proto] = loadgen.Request{URL: "/v2/models/bench/infer", Header: hdr, Body: body}
	}
	var pb bytes.Buffer
	if err := png.Encode(&pb, img); err != nil {
		return nil, err
	}
	ob := fmt.Appendf(nil, `{"model":"bench","input":[%q]}`, openai.DataURL("image/png", pb.Bytes()))
	reqs[OpenAI] = loadgen.Request{URL: "/v1/embeddings", Header: http.Header{"Content-Type": {"application/json"}}, Body: ob}
	return reqs, nil
}

// verify checks one answer in full against the in-process embedding, so
// that what the load measures is right.
func verify(proto string, resp *http.Response, body []byte, want []float32) error {
	var got []float32
	switch proto {
	case OpenAI:
		r, err := openai.DecodeResponse(body)
		if err != nil {
			return err
		}
		got = r.Embeddings[0]
	default:
		hl := int64(-1)
		if h := resp.Header.Get(kserve.HeaderLength); h != "" {
			hl, _ = strconv.ParseInt(h, 10, 64)
		}
		r, err := kserve.DecodeResponse(body, hl)
		if err != nil {
			return err
		}
		if got, err = r.Outputs[0].Tensor.Float32s(); err != nil {
			return err
		}
	}
	if len(got) != len(want) {
		return fmt.Errorf("%s: %d values, want %d", proto, len(got), len(want))
	}
	for i := range want {
		if math.Abs(float64(got[i]-want[i])) > 1e-4*(1+math.Abs(float64(want[i]))) {
			return fmt.Errorf("%s: value %d is %g, in-process %g", proto, i, got[i], want[i])
		}
	}
	return nil
}

// check is the light per-answer test under load: the shape of a good
// answer, without decoding it (the client shares the CPU with the server).
func check(proto string) func([]byte) error {
	prefix := []byte(`{"model_name":"bench"`)
	if proto == OpenAI {
		prefix = []byte(`{"object":"list"`)
	}
	return func(b []byte) error {
		if !bytes.HasPrefix(b, prefix) {
			return fmt.Errorf("unexpected answer %.100q", b)
		}
		return nil
	}
}

// Run measures everything Config asks for.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.Rounds < 1 || cfg.Cell <= 0 || cfg.MaxBatch < 2 || len(cfg.Concurrency) == 0 {
		return nil, errors.New("servebench: want rounds >= 1, a positive cell time, max batch >= 2 and some concurrencies")
	}
	logf := func(format string, a ...any) {
		if cfg.Progress != nil {
			fmt.Fprintf(cfg.Progress, format+"\n", a...)
		}
	}
	enc, err := sslzoo.Open(cfg.Model, &sslzoo.Options{Engine: cfg.Engine, Threads: cfg.Threads})
	if err != nil {
		return nil, err
	}
	defer enc.Close()
	if enc.Modality() != sslzoo.ModalityImage {
		return nil, fmt.Errorf("servebench: %s is not an image model", cfg.Model)
	}
	reqs, err := makeBodies(enc)
	if err != nil {
		return nil, err
	}
	c, h, w := enc.Preprocess().Shape()
	pix := make([]float32, cfg.MaxBatch*c*h*w)
	r := rand.New(rand.NewPCG(3, 4))
	for i := range pix {
		pix[i] = float32(r.NormFloat64())
	}
	one, err := kserve.DecodeRequest(reqs[V2JSON].Body, -1)
	if err != nil {
		return nil, err
	}
	wantRows, err := enc.Engine().Run(one.Inputs[0].Tensor)
	if err != nil {
		return nil, err
	}
	want, _ := wantRows[enc.EmbeddingOutput()].Float32s()

	off, err := start(ctx, cfg, 1)
	if err != nil {
		return nil, err
	}
	on, err := start(ctx, cfg, cfg.MaxBatch)
	if err != nil {
		off.stop()
		return nil, err
	}
	rep := &Report{Config: cfg}
	defer func() {
		if on != nil {
			rep.ExitCodes = [2]int{off.stop(), on.stop()}
		}
	}()
	for _, s := range []*server{off, on} {
		for proto, req := range reqs {
			resp, body, err := post(s.base+req.URL, req)
			if err == nil {
				err = verify(proto, resp, body, want)
			}
			if err != nil {
				return nil, fmt.Errorf("servebench: the first answer is wrong: %w", err)
			}
		}
	}

	type key struct {
		proto    string
		batching bool
		conc     int
		batch    int
	}
	var order []key
	for _, b := range []int{1, cfg.MaxBatch} {
		order = append(order, key{InProcess, b > 1, 1, b})
	}
	for _, n := range cfg.Concurrency {
		order = append(order, key{V2JSON, false, n, 1}, key{V2JSON, true, n, 1})
	}
	top := cfg.Concurrency[len(cfg.Concurrency)-1]
	order = append(order, key{V2Binary, false, top, 1}, key{V2Binary, true, top, 1}, key{OpenAI, true, top, 1})
	results := map[key]loadgen.Result{}
	warm := min(cfg.Cell/4, time.Second)
	for round := range cfg.Rounds {
		for _, k := range order {
			var res loadgen.Result
			if k.proto == InProcess {
				x := onnxrt.NewTensor([]int{k.batch, c, h, w}, pix[:k.batch*c*h*w])
				run := func() error { _, err := enc.Engine().Run(x); return err }
				loadgen.Timed(ctx, warm, max(cfg.Instances, 1), run)
				res = loadgen.Timed(ctx, cfg.Cell, max(cfg.Instances, 1), run)
			} else {
				s := off
				if k.batching {
					s = on
				}
				req := reqs[k.proto]
				req.URL = s.base + req.URL
				if _, err := loadgen.Run(ctx, req, k.conc, warm, check(k.proto)); err != nil {
					return nil, err
				}
				if res, err = loadgen.Run(ctx, req, k.conc, cfg.Cell, check(k.proto)); err != nil {
					return nil, err
				}
			}
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			results[k] = results[k].Merge(res)
			logf("round %d/%d  %-10s batching %-5v c=%-3d batch %-3d %8.1f rows/s  errors %d", round+1, cfg.Rounds, k.proto,
				k.batching, k.conc, k.batch, res.RPS()*float64(k.batch), res.Errors)
		}
	}
	for _, k := range order {
		rep.Cells = append(rep.Cells, Cell{Protocol: k.proto, Batching: k.batching, Concurrency: k.conc, Batch: k.batch, Result: results[k]})
	}
	if cfg.Soak > 0 {
		req := reqs[V2JSON]
		req.URL = on.base + req.URL
		if rep.RSSStart, err = rss(on.cmd.Process.Pid); err != nil {
			return nil, err
		}
		logf("soak: %v at c=%d, batching on, server RSS %d MiB", cfg.Soak, top, rep.RSSStart>>20)
		res, err := loadgen.Run(ctx, req, top, cfg.Soak, check(V2JSON))
		if err != nil {
			return nil, err
		}
		if rep.RSSEnd, err = rss(on.cmd.Process.Pid); err != nil {
			return nil, err
		}
		rep.SoakRequests, rep.SoakErrors = res.Requests, res.Errors
	}
	return rep, nil
}

func post(url string, req loadgen.Request) (*http.Response, []byte, error) {
	hr, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(req.Body))
	if err != nil {
		return nil, nil, err
	}
	hr.Header = req.Header.Clone()
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("status %d: %.200s", resp.StatusCode, b)
	}
	return resp, b, err
}
