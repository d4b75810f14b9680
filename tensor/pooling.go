package tensor

import (
	"fmt"
	"math"
	"unsafe"
)

// Pooling kernels over NCHW data. Max and average pooling go to oneDNN
// when it is loaded (see dnnlPool for the measurement) and to the Go loops
// below otherwise; global average pooling is a plain memory-bound sum and
// stays in Go.

// PoolGeom describes a 2-D max or average pool over [N,C,H,W] input with
// floor output sizes (PyTorch's ceil_mode=False) and implicit padding.
type PoolGeom struct {
	N, C, H, W       int
	KH, KW           int
	StrideH, StrideW int
	PadH, PadW       int
}

// OutH is the output height.
func (g PoolGeom) OutH() int { return (g.H+2*g.PadH-g.KH)/g.StrideH + 1 }

// OutW is the output width.
func (g PoolGeom) OutW() int { return (g.W+2*g.PadW-g.KW)/g.StrideW + 1 }

// OutputLen is the output's element count.
func (g PoolGeom) OutputLen() int { return g.N * g.C * g.OutH() * g.OutW() }

// Validate reports geometry PyTorch would refuse. Padding beyond half the
// kernel would let a window see only padding.
func (g PoolGeom) Validate() error {
	switch {
	case g.N < 1 || g.C < 1 || g.H < 1 || g.W < 1:
		return fmt.Errorf("pool: input shape [%d %d %d %d] has an empty or negative axis", g.N, g.C, g.H, g.W)
	case g.KH < 1 || g.KW < 1 || g.StrideH < 1 || g.StrideW < 1:
		return fmt.Errorf("pool: kernel %dx%d and stride %dx%d must be positive", g.KH, g.KW, g.StrideH, g.StrideW)
	case g.PadH < 0 || g.PadW < 0 || 2*g.PadH > g.KH || 2*g.PadW > g.KW:
		return fmt.Errorf("pool: padding %dx%d must be between 0 and half the %dx%d kernel", g.PadH, g.PadW, g.KH, g.KW)
	case g.OutH() < 1 || g.OutW() < 1:
		return fmt.Errorf("pool: input %dx%d with padding %dx%d is smaller than the %dx%d kernel", g.H, g.W, g.PadH, g.PadW, g.KH, g.KW)
	}
	return nil
}

func (g PoolGeom) check(x []float32, y []float32) {
	if err := g.Validate(); err != nil {
		panic(err)
	}
	mustLen("pool input", x, g.N*g.C*g.H*g.W)
	mustLen("pool output", y, g.OutputLen())
}

// MaxPoolWorkspaceLen is how many float32s the workspace that carries a
// max pool's argmax from forward to backward must hold. Its contents are
// opaque: oneDNN's format or, in the Go path, int32 positions.
func MaxPoolWorkspaceLen(g PoolGeom) int {
	n := g.OutputLen()
	if b := dnnlPoolWorkspace(g); b >= 0 {
		n = max(n, (b+3)/4)
	}
	return n
}

// MaxPoolForward writes the window maxima of x to y and what backward needs
// to ws (at least MaxPoolWorkspaceLen(g) long). Ties go to the first
// position in row-major window order, as in PyTorch. A NaN input wins its
// window in the Go path, as in PyTorch, but is skipped by oneDNN's kernel.
func MaxPoolForward(g PoolGeom, x, y, ws []float32) {
	g.check(x, y)
	mustLen("max pool workspace", ws, g.OutputLen())
	if dnnlPool(true, false, g, x, y, ws) {
		return
	}
	maxPoolForwardGo(g, x, y, int32View(ws))
}

// MaxPoolBackward routes each output gradient to its window's maximum, as
// recorded in ws by MaxPoolForward. With accumulate the result is added to
// dx, otherwise it overwrites dx.
func MaxPoolBackward(g PoolGeom, dy, ws, dx []float32, accumulate bool) {
	g.check(dx, dy)
	mustLen("max pool workspace", ws, g.OutputLen())
	if poolBackwardDNNL(true, g, dy, ws, dx, accumulate) {
		return
	}
	if !accumulate {
		clear(dx[:g.N*g.C*g.H*g.W])
	}
	maxPoolBackwardGo(g, dy, int32View(ws), dx)
}

// AvgPoolForward writes window means to y, counting padding as zeros in
// the divisor (PyTorch's count_include_pad=True).
func AvgPoolForward(g PoolGeom, x, y []float32) {
	g.check(x, y)
	if dnnlPool(false, false, g, x, y, nil) {
		return
	}
	avgPoolForwardGo(g, x, y)
}

// AvgPoolBackward spreads each output gradient evenly over its window.
// With accumulate the result is added to dx, otherwise it overwrites dx.
func AvgPoolBackward(g PoolGeom, dy, dx []float32, accumulate bool) {
	g.check(dx, dy)
	if poolBackwardDNNL(false, g, dy, nil, dx, accumulate) {
		return
	}
	if !accumulate {
		clear(dx[:g.N*g.C*g.H*g.W])
	}
	avgPoolBackwardGo(g, dy, dx)
}

// poolBackwardDNNL runs oneDNN's pooling backward, which overwrites its
// output: accumulating goes through a temporary.
func poolBackwardDNNL(isMax bool, g PoolGeom, dy, ws, dx []float32, accumulate bool) bool {
	if !accumulate {
		return dnnlPool(isMax, true, g, dy, dx, ws)
	}
	n := g.N * g.C * g.H * g.W
	tmp := convScratch.get(n)
	defer convScratch.put(tmp)
	if !dnnlPool(isMax, true, g, dy, tmp, ws) {
		return false
	}
	addInto(dx[:n], tmp)
	return true
}

// int32View reinterprets a float32 workspace as the Go path's int32 argmax.
func int32View(ws []float32) []int32 {
	return unsafe.Slice((*int32)(unsafe.Pointer(unsafe.SliceData(ws))), len(ws))
}

// maxPoolForwardGo writes the window maxima and, to argmax, the position of
// each maximum within its input plane (h*W+w). NaN wins, as in PyTorch.
func maxPoolForwardGo(g PoolGeom, x, y []float32, argmax []int32) {
	oh, ow, hw := g.OutH(), g.OutW(), g.H*g.W
	Parallel(g.N*g.C, oh*ow*g.KH*g.KW, func(lo, hi int) {
		for p := lo; p < hi; p++ {
			plane := x[p*hw : (p+1)*hw]
			out := y[p*oh*ow : (p+1)*oh*ow]
			arg := argmax[p*oh*ow : (p+1)*oh*ow]
			for i := 0; i < oh; i++ {
				h0 := i*g.StrideH - g.PadH
				h1 := min(h0+g.KH, g.H)
				h0 = max(h0, 0)
				for j := 0; j < ow; j++ {
					w0 := j*g.StrideW - g.PadW
					w1 := min(w0+g.KW, g.W)
					w0 = max(w0, 0)
					best := float32(math.Inf(-1))
					bi := h0*g.W + w0
					for h := h0; h < h1; h++ {
						row := plane[h*g.W : (h+1)*g.W]
						for w := w0; w < w1; w++ {
							if v := row[w]; v > best || v != v {
								best, bi = v, h*g.W+w
								if v != v {
									goto done
								}
							}
						}
					}
				done:
					out[i*ow+j] = best
					arg[i*ow+j] = int32(bi)
				}
			}
		}
	})
}

// maxPoolBackwardGo adds each output gradient to dx at its window's argmax.
func maxPoolBackwardGo(g PoolGeom, dy []float32, argmax []int32, dx []float32) {
	ohw, hw := g.OutH()*g.OutW(), g.H*g.W
	Parallel(g.N*g.C, ohw, func(lo, hi int) {
		for p := lo; p < hi; p++ {
			d := dx[p*hw : (p+1)*hw]
			arg := argmax[p*ohw : (p+1)*ohw]
			for i, v := range dy[p*ohw : (p+1)*ohw] {
				d[arg[i]] += v
			}
		}
	})
}

// avgPoolForwardGo writes window means. With floor output sizes no window
// reaches past the padding, so every divisor is KH*KW.
func avgPoolForwardGo(g PoolGeom, x, y []float32) {
	oh, ow, hw := g.OutH(), g.OutW(), g.H*g.W
	inv := 1 / float32(g.KH*g.KW)
	Parallel(g.N*g.C, oh*ow*g.KH*g.KW, func(lo, hi int) {
		for p := lo; p < hi; p++ {
			plane := x[p*hw : (p+1)*hw]
			out := y[p*oh*ow : (p+1)*oh*ow]
			for i := 0; i < oh; i++ {
				h0 := i*g.StrideH - g.PadH
				h1 := min(h0+g.KH, g.H)
				h0 = max(h0, 0)
				for j := 0; j < ow; j++ {
					w0 := j*g.StrideW - g.PadW
					w1 := min(w0+g.KW, g.W)
					w0 = max(w0, 0)
					var s float32
					for h := h0; h < h1; h++ {
						for _, v := range plane[h*g.W+w0 : h*g.W+w1] {
							s += v
						}
					}
					out[i*ow+j] = s * inv
				}
			}
		}
	})
}

// avgPoolBackwardGo spreads each output gradient evenly over its window,
// adding into dx.
func avgPoolBackwardGo(g PoolGeom, dy, dx []float32) {
	oh, ow, hw := g.OutH(), g.OutW(), g.H*g.W
	inv := 1 / float32(g.KH*g.KW)
	Parallel(g.N*g.C, oh*ow*g.KH*g.KW, func(lo, hi int) {
		for p := lo; p < hi; p++ {
			d := dx[p*hw : (p+1)*hw]
			grad := dy[p*oh*ow : (p+1)*oh*ow]
			for i := 0; i < oh; i++ {
				h0 := i*g.StrideH - g.PadH
				h1 := min(h0+g.KH, g.H)
				h0 = max(h0, 0)
				for j := 0; j < ow; j++ {
					w0 := j*g.StrideW - g.PadW
					w1 := min(w0+g.KW, g.W)
					w0 = max(w0, 0)
					v := grad[i*ow+j] * inv
					for h := h0; h < h1; h++ {
						row := d[h*g.W+w0 : h*g.W+w1]
						for k := range row {
							row[k] += v
						}
					}
				}
			}
		}
	})
}

// GlobalAvgPoolForward averages each of the planes planes of hw elements
// in x into one value of y: [N,C,H,W] -> [N,C] with planes = N*C.
func GlobalAvgPoolForward(planes, hw int, x, y []float32) {
	mustLen("global pool input", x, planes*hw)
	mustLen("global pool output", y, planes)
	inv := 1 / float32(hw)
	Parallel(planes, hw, func(lo, hi int) {
		for p := lo; p < hi; p++ {
			var s float32
			for _, v := range x[p*hw : (p+1)*hw] {
				s += v
			}
			y[p] = s * inv
		}
	})
}

// GlobalAvgPoolBackward adds dy[p]/hw to every element of plane p of dx.
func GlobalAvgPoolBackward(planes, hw int, dy, dx []float32) {
	mustLen("global pool gradient", dy, planes)
	mustLen("global pool input gradient", dx, planes*hw)
	inv := 1 / float32(hw)
	Parallel(planes, hw, func(lo, hi int) {
		for p := lo; p < hi; p++ {
			v := dy[p] * inv
			row := dx[p*hw : (p+1)*hw]
			for i := range row {
				row[i] += v
			}
		}
	})
}
