//go:build !cgo || !linux

package tensor

// Without cgo (or off Linux) oneDNN cannot be loaded; the im2col kernels
// run instead.

const (
	dnnlMDBytes     = 0
	dnnlOpDescBytes = 0
)

var dnnlEnums = map[string]int{}

var dnnlBlocked = true

func loadDNNL() dnnlInfo {
	return dnnlInfo{reason: "onednn unavailable: built without cgo"}
}

func dnnlImpl(kind int, g ConvGeom, bias bool) string { return "" }

func dnnlConvForward(g ConvGeom, x, w, b, y []float32) bool { return false }

func dnnlConvBackwardData(g ConvGeom, dy, w, dx []float32, accumulate bool) bool { return false }

func dnnlConvBackwardWeights(g ConvGeom, x, dy, dw, db []float32, accumulate bool) bool {
	return false
}

func dnnlPoolWorkspace(g PoolGeom) int { return -1 }

func dnnlPool(isMax, bwd bool, g PoolGeom, a, b, ws []float32) bool { return false }

// PackedConv is oneDNN's packed inference convolution; without oneDNN
// there is none, and PackConv returns nil.
type PackedConv struct{}

// PackConv returns nil: oneDNN cannot be loaded in this build.
func PackConv(g ConvGeom, w []float32, bias bool, post ConvPost, layout ConvLayout) *PackedConv {
	return nil
}

// Forward reports false: there is no oneDNN to run it.
func (pc *PackedConv) Forward(g ConvGeom, x, b, y []float32, layout ConvLayout) bool {
	return false
}
