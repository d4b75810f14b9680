package tensor

import (
	"fmt"
	"os"
	"sync"
)

// ConvGeom describes a 2-D convolution over NCHW data with OIHW weights, as
// PyTorch lays them out: input [N,C,H,W], weights [O, C/Groups, KH, KW],
// bias [O], output [N, O, OutH, OutW]. Padding is symmetric. Zero Stride,
// Dilation or Groups mean 1.
type ConvGeom struct {
	N, C, H, W           int
	O, KH, KW            int
	StrideH, StrideW     int
	PadH, PadW           int
	DilationH, DilationW int
	Groups               int
	// Winograd lets oneDNN compute a 3x3 stride-1 convolution with
	// Winograd's F(4x4, 3x3) transform, where it has a kernel for the
	// shape, when the process runs with SSLZOO_WINOGRAD=1: ResNet-18's
	// training step ran 1.35x faster (CIFAR stem, batch 64, Xeon with
	// AVX-512). Its rounding error is several times a direct
	// convolution's, enough for Barlow Twins and MoCo v2 to leave the
	// data-parallel and PyTorch-step tests' tolerances within 4 steps,
	// hence opt-in. Training asks for it (autograd.Conv2d); inference that
	// must agree with another engine does not.
	Winograd bool
}

// winogradAllowed: SSLZOO_WINOGRAD=1 lets the convolutions that ask for
// Winograd's algorithm have it.
var winogradAllowed = os.Getenv("SSLZOO_WINOGRAD") == "1"

// norm returns g with the zero-means-one defaults applied.
func (g ConvGeom) norm() ConvGeom {
	if g.StrideH == 0 {
		g.StrideH = 1
	}
	if g.StrideW == 0 {
		g.StrideW = 1
	}
	if g.DilationH == 0 {
		g.DilationH = 1
	}
	if g.DilationW == 0 {
		g.DilationW = 1
	}
	if g.Groups == 0 {
		g.Groups = 1
	}
	return g
}

// OutH is the output height.
func (g ConvGeom) OutH() int {
	g = g.norm()
	return (g.H+2*g.PadH-g.DilationH*(g.KH-1)-1)/g.StrideH + 1
}

// OutW is the output width.
func (g ConvGeom) OutW() int {
	g = g.norm()
	return (g.W+2*g.PadW-g.DilationW*(g.KW-1)-1)/g.StrideW + 1
}

// InputLen, WeightLen and OutputLen are the element counts of x, w and y.
func (g ConvGeom) InputLen() int  { return g.N * g.C * g.H * g.W }
func (g ConvGeom) WeightLen() int { return g.O * (g.C / g.norm().Groups) * g.KH * g.KW }
func (g ConvGeom) OutputLen() int { return g.N * g.O * g.OutH() * g.OutW() }

// Validate reports geometry that no convolution can have.
func (g ConvGeom) Validate() error {
	n := g.norm()
	switch {
	case g.N < 1 || g.C < 1 || g.H < 1 || g.W < 1:
		return fmt.Errorf("conv: input shape [%d %d %d %d] has an empty or negative axis", g.N, g.C, g.H, g.W)
	case g.O < 1 || g.KH < 1 || g.KW < 1:
		return fmt.Errorf("conv: %d output channels with a %dx%d kernel", g.O, g.KH, g.KW)
	case n.StrideH < 1 || n.StrideW < 1 || n.DilationH < 1 || n.DilationW < 1 || n.Groups < 1:
		return fmt.Errorf("conv: stride %dx%d, dilation %dx%d, groups %d must be positive", g.StrideH, g.StrideW, g.DilationH, g.DilationW, g.Groups)
	case g.PadH < 0 || g.PadW < 0:
		return fmt.Errorf("conv: negative padding %dx%d", g.PadH, g.PadW)
	case g.C%n.Groups != 0 || g.O%n.Groups != 0:
		return fmt.Errorf("conv: %d input and %d output channels do not divide into %d groups", g.C, g.O, n.Groups)
	case g.OutH() < 1 || g.OutW() < 1:
		return fmt.Errorf("conv: input %dx%d with padding %dx%d is smaller than the dilated %dx%d kernel", g.H, g.W, g.PadH, g.PadW, g.KH, g.KW)
	}
	return nil
}

func (g ConvGeom) check() {
	if err := g.Validate(); err != nil {
		panic(err)
	}
}

// The conv entry points panic on bad geometry or short slices: callers
// (autograd's Conv2d) validate user shapes first, so reaching here with bad
// sizes is a programming error, and letting it through would have oneDNN
// read or write outside Go memory.
func mustLen(what string, s []float32, n int) {
	if len(s) < n {
		panic(fmt.Sprintf("tensor conv: %s has %d elements, need %d", what, len(s), n))
	}
}

// ConvForward computes y = conv(x, w) + b. b may be nil. y is overwritten.
func ConvForward(g ConvGeom, x, w, b, y []float32) {
	g = g.norm()
	g.check()
	mustLen("input", x, g.InputLen())
	mustLen("weights", w, g.WeightLen())
	mustLen("output", y, g.OutputLen())
	if b != nil {
		mustLen("bias", b, g.O)
	}
	if dnnlConvOK(g) && dnnlConvForward(g, x, w, b, y) {
		return
	}
	convForwardGo(g, x, w, b, y)
}

// ConvBackwardData computes the input gradient dx from the output gradient
// dy. With accumulate the result is added to dx, otherwise it overwrites dx.
func ConvBackwardData(g ConvGeom, dy, w, dx []float32, accumulate bool) {
	g = g.norm()
	g.check()
	mustLen("output gradient", dy, g.OutputLen())
	mustLen("weights", w, g.WeightLen())
	mustLen("input gradient", dx, g.InputLen())
	if dnnlConvOK(g) && dnnlConvBackwardData(g, dy, w, dx, accumulate) {
		return
	}
	convBackwardDataGo(g, dy, w, dx, accumulate)
}

// ConvBackwardWeights computes the weight gradient dw and, when db is not
// nil, the bias gradient db. With accumulate the results are added to dw
// and db, otherwise they overwrite them.
func ConvBackwardWeights(g ConvGeom, x, dy, dw, db []float32, accumulate bool) {
	g = g.norm()
	g.check()
	mustLen("input", x, g.InputLen())
	mustLen("output gradient", dy, g.OutputLen())
	mustLen("weight gradient", dw, g.WeightLen())
	if db != nil {
		mustLen("bias gradient", db, g.O)
	}
	if dnnlConvOK(g) && dnnlConvBackwardWeights(g, x, dy, dw, db, accumulate) {
		return
	}
	convBackwardWeightsGo(g, x, dy, dw, db, accumulate)
}

// ConvBackend names the convolution kernels in use, e.g.
// "onednn 2.6.3 (libdnnl.so.2)" or "im2col+sgemm (onednn off: SSLZOO_DNNL=off)".
func ConvBackend() string {
	s := dnnlState()
	if s.ok {
		return "onednn " + s.version + " (" + s.lib + ")"
	}
	return "im2col+sgemm (" + s.reason + ")"
}

// dnnlInfo is the outcome of trying to load oneDNN, decided once.
type dnnlInfo struct {
	ok      bool
	version string
	lib     string
	reason  string // why oneDNN is not used, when !ok
}

var (
	dnnlOnce   sync.Once
	dnnlChosen dnnlInfo
)

func dnnlState() dnnlInfo {
	dnnlOnce.Do(func() {
		if v := os.Getenv("SSLZOO_DNNL"); v == "off" || v == "0" || v == "false" {
			dnnlChosen = dnnlInfo{reason: "onednn off: SSLZOO_DNNL=" + v}
			return
		}
		dnnlChosen = loadDNNL()
	})
	return dnnlChosen
}

// dnnlConvOK reports whether the oneDNN path should be tried for g.
func dnnlConvOK(g ConvGeom) bool { return dnnlState().ok }

// addInto adds src to dst element-wise, over both cores for large buffers.
func addInto(dst, src []float32) {
	Parallel(len(src), 1, func(lo, hi int) { AddTo(dst[lo:hi], src[lo:hi]) })
}
