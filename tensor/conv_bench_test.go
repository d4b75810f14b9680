package tensor

import (
	"math/rand/v2"
	"testing"
	"time"
)

// benchGeom is the ResNet basic-block conv the design notes measure:
// conv3x3 64->64 on 32x32, batch 64.
var benchGeom = ConvGeom{N: 64, C: 64, H: 32, W: 32, O: 64, KH: 3, KW: 3, PadH: 1, PadW: 1}.norm()

type convBenchBufs struct{ x, w, y, dy, dx, dw []float32 }

func newConvBenchBufs(g ConvGeom) convBenchBufs {
	rng := rand.New(rand.NewPCG(1, 2))
	return convBenchBufs{
		x: convRand(rng, g.InputLen()), w: convRand(rng, g.WeightLen()),
		y: make([]float32, g.OutputLen()), dy: convRand(rng, g.OutputLen()),
		dx: make([]float32, g.InputLen()), dw: make([]float32, g.WeightLen()),
	}
}

// convStepFLOPs is the work of forward + backward data + backward weights.
func convStepFLOPs(g ConvGeom) float64 {
	return 3 * 2 * float64(g.OutputLen()) * float64(g.C/g.Groups*g.KH*g.KW)
}

func runConvBench(b *testing.B, g ConvGeom, fwd, bwdD, bwdW func(c convBenchBufs)) {
	c := newConvBenchBufs(g)
	fwd(c) // build and cache plans outside the timing
	bwdD(c)
	bwdW(c)
	b.ResetTimer()
	for range b.N {
		fwd(c)
		bwdD(c)
		bwdW(c)
	}
	b.ReportMetric(convStepFLOPs(g)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

// BenchmarkConv3x3 times one fwd+bwd step of the selected backend and of
// the im2col fallback; compare with scripts/bench_conv_torch.py.
func BenchmarkConv3x3(b *testing.B) {
	g := benchGeom
	b.Run("selected", func(b *testing.B) {
		b.Log(ConvBackend())
		runConvBench(b, g,
			func(c convBenchBufs) { ConvForward(g, c.x, c.w, nil, c.y) },
			func(c convBenchBufs) { ConvBackwardData(g, c.dy, c.w, c.dx, false) },
			func(c convBenchBufs) { ConvBackwardWeights(g, c.x, c.dy, c.dw, nil, false) })
	})
	b.Run("im2col", func(b *testing.B) {
		runConvBench(b, g,
			func(c convBenchBufs) { convForwardGo(g, c.x, c.w, nil, c.y) },
			func(c convBenchBufs) { convBackwardDataGo(g, c.dy, c.w, c.dx, false) },
			func(c convBenchBufs) { convBackwardWeightsGo(g, c.x, c.dy, c.dw, nil, false) })
	})
}

// BenchmarkConvLayouts compares oneDNN on its preferred blocked layouts
// (with reorders from and to NCHW/OIHW) against oneDNN forced onto plain
// layouts, per pass. It decided dnnlBlocked.
func BenchmarkConvLayouts(b *testing.B) {
	if !dnnlState().ok {
		b.Skip(ConvBackend())
	}
	g := benchGeom
	for _, blocked := range []bool{true, false} {
		name := "plain"
		if blocked {
			name = "blocked"
		}
		old := dnnlBlocked
		dnnlBlocked = blocked
		c := newConvBenchBufs(g)
		for _, pass := range []struct {
			name string
			kind int
			run  func()
		}{
			{"fwd", 0, func() { dnnlConvForward(g, c.x, c.w, nil, c.y) }},
			{"bwd_data", 1, func() { dnnlConvBackwardData(g, c.dy, c.w, c.dx, false) }},
			{"bwd_weights", 2, func() { dnnlConvBackwardWeights(g, c.x, c.dy, c.dw, nil, false) }},
		} {
			b.Run(name+"/"+pass.name, func(b *testing.B) {
				pass.run()
				b.Log(dnnlImpl(pass.kind, g, false))
				b.ResetTimer()
				for range b.N {
					pass.run()
				}
				b.ReportMetric(convStepFLOPs(g)/3*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
		dnnlBlocked = old
	}
}

// BenchmarkConvThreadHandoff measures whether oneDNN's OpenMP threads get
// in the way of Go's goroutines. It times a two-goroutine element-wise pass
// over the conv output run right after each convolution, once after
// oneDNN's and once after the Go fallback's (same data, same cache state).
// OpenMP workers spin for a while after a parallel region before they
// sleep; if that stole a core from Go, "after-onednn" would be slower.
// (The pass is branch-free on purpose: a ReLU on fresh conv output is
// dominated by branch mispredictions, which a second run does not see.)
func BenchmarkConvThreadHandoff(b *testing.B) {
	if !dnnlState().ok {
		b.Skip(ConvBackend())
	}
	g := benchGeom
	c := newConvBenchBufs(g)
	scale := func() {
		Parallel(len(c.y), 1, func(lo, hi int) {
			d := c.dx[lo:hi]
			for i, v := range c.y[lo:hi] {
				d[i] = v * 0.5
			}
		})
	}
	for _, conv := range []struct {
		name string
		run  func()
	}{
		{"after-onednn", func() { ConvForward(g, c.x, c.w, nil, c.y) }},
		{"after-go", func() { convForwardGo(g, c.x, c.w, nil, c.y) }},
	} {
		conv.run()
		scale()
		b.Run(conv.name, func(b *testing.B) {
			// Timed by hand: StopTimer/StartTimer read memory statistics,
			// which stops the world and would blur what is measured here.
			var spent time.Duration
			for range b.N {
				conv.run()
				t0 := time.Now()
				scale()
				spent += time.Since(t0)
			}
			b.ReportMetric(float64(spent.Nanoseconds())/float64(b.N), "pass-ns/op")
		})
	}
}
