package tensor

import "sync"

// The portable convolution: each image is unfolded (im2col) into a
// [C/G*KH*KW, OutH*OutW] matrix and multiplied by the weights with Sgemm.
// Images are spread over goroutines; DESIGN.md measured that beating one
// multi-threaded GEMM over the whole batch for these per-image products.

// scratchPool recycles the per-goroutine im2col buffers. Unlike Pool it is
// safe for concurrent use, since the workers of one call share it.
type scratchPool struct {
	mu   sync.Mutex
	free map[int][][]float32
}

var convScratch = scratchPool{free: map[int][][]float32{}}

func (p *scratchPool) get(n int) []float32 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if l := p.free[n]; len(l) > 0 {
		b := l[len(l)-1]
		p.free[n] = l[:len(l)-1]
		return b
	}
	return make([]float32, n)
}

func (p *scratchPool) put(b []float32) {
	if cap(b) == 0 {
		return
	}
	p.mu.Lock()
	p.free[len(b)] = append(p.free[len(b)], b)
	p.mu.Unlock()
}

// isPointwise reports a 1x1, stride-1, unpadded conv, whose im2col matrix is
// the input itself.
func (g ConvGeom) isPointwise() bool {
	return g.KH == 1 && g.KW == 1 && g.StrideH == 1 && g.StrideW == 1 && g.PadH == 0 && g.PadW == 0
}

// im2col unfolds cg channels of one image x ([cg,H,W]) into col
// ([cg*KH*KW, OutH*OutW]), writing zeros where the kernel reads padding.
func im2col(g ConvGeom, cg int, x, col []float32) {
	oh, ow := g.OutH(), g.OutW()
	hw := g.H * g.W
	r := 0
	for c := 0; c < cg; c++ {
		plane := x[c*hw : (c+1)*hw]
		for kh := 0; kh < g.KH; kh++ {
			for kw := 0; kw < g.KW; kw++ {
				row := col[r*oh*ow : (r+1)*oh*ow]
				r++
				iw0 := kw*g.DilationW - g.PadW
				// Output columns whose input column lies inside the image.
				lo, hi := validRange(iw0, g.StrideW, g.W, ow)
				for y := 0; y < oh; y++ {
					dst := row[y*ow : (y+1)*ow]
					ih := y*g.StrideH - g.PadH + kh*g.DilationH
					if ih < 0 || ih >= g.H {
						clear(dst)
						continue
					}
					src := plane[ih*g.W : (ih+1)*g.W]
					clear(dst[:lo])
					if g.StrideW == 1 {
						copy(dst[lo:hi], src[lo+iw0:hi+iw0])
					} else {
						for x := lo; x < hi; x++ {
							dst[x] = src[x*g.StrideW+iw0]
						}
					}
					clear(dst[hi:])
				}
			}
		}
	}
}

// col2imAdd folds col back onto the image, adding every entry to the input
// position it was read from (the adjoint of im2col).
func col2imAdd(g ConvGeom, cg int, col, x []float32) {
	oh, ow := g.OutH(), g.OutW()
	hw := g.H * g.W
	r := 0
	for c := 0; c < cg; c++ {
		plane := x[c*hw : (c+1)*hw]
		for kh := 0; kh < g.KH; kh++ {
			for kw := 0; kw < g.KW; kw++ {
				row := col[r*oh*ow : (r+1)*oh*ow]
				r++
				iw0 := kw*g.DilationW - g.PadW
				lo, hi := validRange(iw0, g.StrideW, g.W, ow)
				for y := 0; y < oh; y++ {
					ih := y*g.StrideH - g.PadH + kh*g.DilationH
					if ih < 0 || ih >= g.H {
						continue
					}
					dst := plane[ih*g.W : (ih+1)*g.W]
					src := row[y*ow : (y+1)*ow]
					if g.StrideW == 1 {
						d := dst[lo+iw0 : hi+iw0]
						for i, v := range src[lo:hi] {
							d[i] += v
						}
					} else {
						for x := lo; x < hi; x++ {
							dst[x*g.StrideW+iw0] += src[x]
						}
					}
				}
			}
		}
	}
}

// validRange returns the output columns [lo,hi) whose input column
// x*stride+off falls inside [0,w), for x in [0,n).
func validRange(off, stride, w, n int) (lo, hi int) {
	if off < 0 {
		lo = (-off + stride - 1) / stride
	}
	// largest x with x*stride+off <= w-1
	if w-1-off < 0 {
		return 0, 0
	}
	hi = (w-1-off)/stride + 1
	lo = min(lo, n)
	hi = max(min(hi, n), lo)
	return lo, hi
}

func convForwardGo(g ConvGeom, x, w, b, y []float32) {
	ohw := g.OutH() * g.OutW()
	cg, og := g.C/g.Groups, g.O/g.Groups
	k := cg * g.KH * g.KW
	hw := g.H * g.W
	direct := g.isPointwise()
	Parallel(g.N, g.O*k*ohw, func(lo, hi int) {
		var col []float32
		if !direct {
			col = convScratch.get(k * ohw)
			defer convScratch.put(col)
		}
		for n := lo; n < hi; n++ {
			for gi := 0; gi < g.Groups; gi++ {
				src := x[(n*g.C+gi*cg)*hw:]
				if !direct {
					im2col(g, cg, src, col)
					src = col
				}
				Sgemm(false, false, og, ohw, k, 1, w[gi*og*k:], k, src, ohw, 0, y[(n*g.O+gi*og)*ohw:], ohw)
			}
			if b != nil {
				for o := 0; o < g.O; o++ {
					row := y[(n*g.O+o)*ohw : (n*g.O+o+1)*ohw]
					bv := b[o]
					for i := range row {
						row[i] += bv
					}
				}
			}
		}
	})
}

func convBackwardDataGo(g ConvGeom, dy, w, dx []float32, accumulate bool) {
	ohw := g.OutH() * g.OutW()
	cg, og := g.C/g.Groups, g.O/g.Groups
	k := cg * g.KH * g.KW
	hw := g.H * g.W
	direct := g.isPointwise()
	var beta float32
	if accumulate {
		beta = 1
	}
	Parallel(g.N, g.O*k*ohw, func(lo, hi int) {
		var col []float32
		if !direct {
			col = convScratch.get(k * ohw)
			defer convScratch.put(col)
		}
		for n := lo; n < hi; n++ {
			for gi := 0; gi < g.Groups; gi++ {
				dyg := dy[(n*g.O+gi*og)*ohw:]
				dxg := dx[(n*g.C+gi*cg)*hw : (n*g.C+(gi+1)*cg)*hw]
				if direct {
					Sgemm(true, false, cg, hw, og, 1, w[gi*og*k:], k, dyg, ohw, beta, dxg, hw)
					continue
				}
				Sgemm(true, false, k, ohw, og, 1, w[gi*og*k:], k, dyg, ohw, 0, col, ohw)
				if !accumulate {
					clear(dxg)
				}
				col2imAdd(g, cg, col, dxg)
			}
		}
	})
}

func convBackwardWeightsGo(g ConvGeom, x, dy, dw, db []float32, accumulate bool) {
	ohw := g.OutH() * g.OutW()
	cg, og := g.C/g.Groups, g.O/g.Groups
	k := cg * g.KH * g.KW
	hw := g.H * g.W
	direct := g.isPointwise()
	nw := g.WeightLen()
	if !accumulate {
		clear(dw[:nw])
		if db != nil {
			clear(db[:g.O])
		}
	}
	var mu sync.Mutex
	Parallel(g.N, g.O*k*ohw, func(lo, hi int) {
		// Each worker sums its images privately, then adds once under the lock.
		part := convScratch.get(nw)
		defer convScratch.put(part)
		clear(part)
		var col []float32
		if !direct {
			col = convScratch.get(k * ohw)
			defer convScratch.put(col)
		}
		var dbPart []float64
		if db != nil {
			dbPart = make([]float64, g.O)
		}
		for n := lo; n < hi; n++ {
			for gi := 0; gi < g.Groups; gi++ {
				src := x[(n*g.C+gi*cg)*hw:]
				if !direct {
					im2col(g, cg, src, col)
					src = col
				}
				Sgemm(false, true, og, k, ohw, 1, dy[(n*g.O+gi*og)*ohw:], ohw, src, ohw, 1, part[gi*og*k:], k)
			}
			for o := range dbPart {
				var s float32
				for _, v := range dy[(n*g.O+o)*ohw : (n*g.O+o+1)*ohw] {
					s += v
				}
				dbPart[o] += float64(s)
			}
		}
		mu.Lock()
		defer mu.Unlock()
		for i, v := range part {
			dw[i] += v
		}
		for o, v := range dbPart {
			db[o] += float32(v)
		}
	})
}
