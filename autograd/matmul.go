package autograd

import "github.com/sslzoo/sslzoo/tensor"

// MatMul multiplies the last two axes: a [...,m,k] @ b [...,k,n] -> [...,m,n].
// The leading (batch) axes must be equal, or one side must be 2-D, in which
// case it is shared by every matrix of the other side.
func (tp *Tape) MatMul(a, b *Var) *Var { return tp.matmul(a, b, false, false) }

// MatMulT is MatMul with a and/or b transposed on their last two axes
// first, without materialising the transpose: q @ k^T is MatMulT(q, k,
// false, true).
func (tp *Tape) MatMulT(a, b *Var, transA, transB bool) *Var {
	return tp.matmul(a, b, transA, transB)
}

// mmPlan is the shape analysis of one batched product.
type mmPlan struct {
	m, n, k  int
	batch    int   // number of matrix products
	strideA  int   // elements between consecutive A matrices; 0 when shared
	strideB  int   // likewise for B
	lda, ldb int   // row strides as stored (the stored last-axis length)
	outShape []int // batch dims + [m, n]
}

func planMatMul(op string, as, bs []int, transA, transB bool) mmPlan {
	if len(as) < 2 || len(bs) < 2 {
		Failf(op, "operands need at least 2 axes, got a %v and b %v", as, bs)
	}
	ar, ac := as[len(as)-2], as[len(as)-1]
	br, bc := bs[len(bs)-2], bs[len(bs)-1]
	p := mmPlan{lda: ac, ldb: bc}
	p.m, p.k = ar, ac
	if transA {
		p.m, p.k = ac, ar
	}
	kb, n := br, bc
	if transB {
		kb, n = bc, br
	}
	p.n = n
	if kb != p.k {
		Failf(op, "inner dimensions differ: a %v (transA=%v) has k=%d, b %v (transB=%v) has k=%d", as, transA, p.k, bs, transB, kb)
	}
	aBatch, bBatch := as[:len(as)-2], bs[:len(bs)-2]
	var batchDims []int
	switch {
	case len(bBatch) == 0:
		batchDims = aBatch
		p.strideA = ar * ac
	case len(aBatch) == 0:
		batchDims = bBatch
		p.strideB = br * bc
	default:
		if !tensor.SameShape(aBatch, bBatch) {
			Failf(op, "batch axes differ: a %v, b %v (they must match, or one operand must be 2-D)", as, bs)
		}
		batchDims = aBatch
		p.strideA, p.strideB = ar*ac, br*bc
	}
	p.batch = tensor.Numel(batchDims)
	p.outShape = append(append([]int(nil), batchDims...), p.m, p.n)
	return p
}

// batchedGemm runs fn(i) for each of the batch's products, spread over
// goroutines unless they accumulate into one shared output. tensor.Sgemm
// caps the C calls running at once at the core count, and splits a product
// over cores only when cores are idle, so big products run one per core and
// a lone one still uses every core.
func batchedGemm(batch, work int, shared bool, fn func(i int)) {
	if shared || batch == 1 {
		for i := range batch {
			fn(i)
		}
		return
	}
	tensor.Parallel(batch, work, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			fn(i)
		}
	})
}

func (tp *Tape) matmul(a, b *Var, transA, transB bool) *Var {
	const op = "MatMul"
	p := planMatMul(op, a.Value.Shape, b.Value.Shape, transA, transB)
	out := tp.Alloc(p.outShape...)
	A, B, C := a.Value.Data, b.Value.Data, out.Data
	mn, work := p.m*p.n, p.m*p.n*p.k
	// Matrix i of an operand; a shared (2-D) operand is the whole buffer.
	lenA, lenB := p.strideA, p.strideB
	if lenA == 0 {
		lenA = len(A)
	}
	if lenB == 0 {
		lenB = len(B)
	}
	if p.strideB == 0 && !transA && p.batch > 1 {
		// b is shared and a's matrices are stacked rows: one tall product.
		tensor.Sgemm(false, transB, p.batch*p.m, p.n, p.k, 1, A, p.lda, B, p.ldb, 0, C, p.n)
	} else {
		batchedGemm(p.batch, work, false, func(i int) {
			tensor.Sgemm(transA, transB, p.m, p.n, p.k, 1,
				A[i*p.strideA:i*p.strideA+lenA], p.lda,
				B[i*p.strideB:i*p.strideB+lenB], p.ldb,
				0, C[i*mn:(i+1)*mn], p.n)
		})
	}
	attrs := map[string]any{"transA": transA, "transB": transB}
	return tp.Record(op, attrs, out, []*Var{a, b}, func(o *Var) {
		G := o.Grad.Data
		if ga := tp.GradOf(a); ga != nil {
			dA := ga.Data
			if p.strideB == 0 && !transA && p.batch > 1 {
				// dA (stacked) += G (stacked) @ op(B)^T in one product.
				tensor.Sgemm(false, !transB, p.batch*p.m, p.k, p.n, 1, G, p.n, B, p.ldb, 1, dA, p.k)
			} else {
				batchedGemm(p.batch, work, p.strideA == 0, func(i int) {
					g := G[i*mn : (i+1)*mn]
					bi := B[i*p.strideB : i*p.strideB+lenB]
					di := dA[i*p.strideA : i*p.strideA+lenA]
					if !transA {
						// dA_i [m,k] += G_i @ op(B_i)^T
						tensor.Sgemm(false, !transB, p.m, p.k, p.n, 1, g, p.n, bi, p.ldb, 1, di, p.k)
					} else {
						// A_i is stored [k,m]: dA_i += op(B_i) @ G_i^T
						tensor.Sgemm(transB, true, p.k, p.m, p.n, 1, bi, p.ldb, g, p.n, 1, di, p.m)
					}
				})
			}
		}
		if gb := tp.GradOf(b); gb != nil {
			dB := gb.Data
			if p.strideB == 0 && !transA && p.batch > 1 {
				// Shared b: the sum over the batch of A_i^T G_i is one
				// product over the stacked rows.
				if !transB {
					tensor.Sgemm(true, false, p.k, p.n, p.batch*p.m, 1, A, p.lda, G, p.n, 1, dB, p.n)
				} else {
					tensor.Sgemm(true, false, p.n, p.k, p.batch*p.m, 1, G, p.n, A, p.lda, 1, dB, p.k)
				}
				return
			}
			batchedGemm(p.batch, work, p.strideB == 0, func(i int) {
				g := G[i*mn : (i+1)*mn]
				ai := A[i*p.strideA : i*p.strideA+lenA]
				di := dB[i*p.strideB : i*p.strideB+lenB]
				if !transB {
					// dB_i [k,n] += op(A_i)^T @ G_i
					tensor.Sgemm(!transA, false, p.k, p.n, p.m, 1, ai, p.lda, g, p.n, 1, di, p.n)
				} else {
					// B_i is stored [n,k]: dB_i += G_i^T @ op(A_i)
					tensor.Sgemm(true, transA, p.n, p.k, p.m, 1, g, p.n, ai, p.lda, 1, di, p.k)
				}
			})
		}
	})
}

// Linear is x @ w^T + b with w in PyTorch's [out, in] layout: x [...,in],
// w [out,in], b [out] or nil, giving [...,out]. All leading axes of x fold
// into one product.
func (tp *Tape) Linear(x, w, b *Var) *Var {
	const op = "Linear"
	xs, ws := x.Value.Shape, w.Value.Shape
	if len(xs) < 1 || len(ws) != 2 {
		Failf(op, "x %v must have at least 1 axis and w %v exactly 2 ([out, in])", xs, ws)
	}
	in, outF := ws[1], ws[0]
	if xs[len(xs)-1] != in {
		Failf(op, "x %v has %d input features, w %v expects %d", xs, xs[len(xs)-1], ws, in)
	}
	if b != nil && (len(b.Value.Shape) != 1 || b.Value.Shape[0] != outF) {
		Failf(op, "bias %v must be [%d] for w %v", b.Value.Shape, outF, ws)
	}
	rows := tensor.Numel(xs[:len(xs)-1])
	outShape := append(append([]int(nil), xs[:len(xs)-1]...), outF)
	out := tp.Alloc(outShape...)
	X, W, Y := x.Value.Data, w.Value.Data, out.Data
	beta := float32(0)
	if b != nil {
		// Start every row from the bias and let the product accumulate.
		for r := range rows {
			copy(Y[r*outF:(r+1)*outF], b.Value.Data)
		}
		beta = 1
	}
	tensor.Sgemm(false, true, rows, outF, in, 1, X, in, W, in, beta, Y, outF)

	inputs := []*Var{x, w}
	if b != nil {
		inputs = append(inputs, b)
	}
	attrs := map[string]any{"inFeatures": in, "outFeatures": outF, "bias": b != nil}
	return tp.Record(op, attrs, out, inputs, func(o *Var) {
		G := o.Grad.Data
		if gx := tp.GradOf(x); gx != nil {
			tensor.Sgemm(false, false, rows, in, outF, 1, G, outF, W, in, 1, gx.Data, in)
		}
		if gw := tp.GradOf(w); gw != nil {
			tensor.Sgemm(true, false, outF, in, rows, 1, G, outF, X, in, 1, gw.Data, in)
		}
		if b != nil {
			if gb := tp.GradOf(b); gb != nil {
				db := gb.Data
				for r := range rows {
					for j, g := range G[r*outF : (r+1)*outF] {
						db[j] += g
					}
				}
			}
		}
	})
}
