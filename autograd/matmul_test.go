package autograd

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sslzoo/sslzoo/tensor"
)

func mmRand(rng *rand.Rand, shape ...int) *tensor.Tensor {
	t := tensor.New(shape...)
	for i := range t.Data {
		t.Data[i] = float32(rng.NormFloat64())
	}
	return t
}

// mmRef is a batched matmul in float64 straight from the definition:
// element (i,j) of product p is sum_q op(A_p)[i,q] * op(B_p)[q,j], where a
// 2-D operand is the same matrix for every p.
func mmRef(a, b *tensor.Tensor, transA, transB bool) []float64 {
	ar, ac := a.Shape[a.Dims()-2], a.Shape[a.Dims()-1]
	br, bc := b.Shape[b.Dims()-2], b.Shape[b.Dims()-1]
	batch := max(a.Numel()/(ar*ac), b.Numel()/(br*bc))
	m, k, n := ar, ac, bc
	if transA {
		m, k = ac, ar
	}
	if transB {
		n = br
	}
	at := func(p, i, q int) float64 {
		base := (p * ar * ac) % a.Numel()
		if transA {
			return float64(a.Data[base+q*ac+i])
		}
		return float64(a.Data[base+i*ac+q])
	}
	bt := func(p, q, j int) float64 {
		base := (p * br * bc) % b.Numel()
		if transB {
			return float64(b.Data[base+j*bc+q])
		}
		return float64(b.Data[base+q*bc+j])
	}
	out := make([]float64, batch*m*n)
	for p := range batch {
		for i := range m {
			for j := range n {
				s := 0.0
				for q := range k {
					s += at(p, i, q) * bt(p, q, j)
				}
				out[(p*m+i)*n+j] = s
			}
		}
	}
	return out
}

func mmClose(t *testing.T, label string, got []float32, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", label, len(got), len(want))
	}
	for i := range got {
		if math.Abs(float64(got[i])-want[i]) > tol*(1+math.Abs(want[i])) {
			t.Fatalf("%s: element %d = %g, want %g", label, i, got[i], want[i])
		}
	}
}

type mmCase struct {
	a, b           []int
	transA, transB bool
	out            []int
}

var mmCases = []mmCase{
	{[]int{1, 1}, []int{1, 1}, false, false, []int{1, 1}},
	{[]int{3, 4}, []int{4, 5}, false, false, []int{3, 5}},
	{[]int{4, 3}, []int{4, 5}, true, false, []int{3, 5}},
	{[]int{3, 4}, []int{5, 4}, false, true, []int{3, 5}},
	{[]int{4, 3}, []int{5, 4}, true, true, []int{3, 5}},
	{[]int{2, 3, 4}, []int{2, 4, 5}, false, false, []int{2, 3, 5}},
	{[]int{2, 2, 3, 4}, []int{2, 2, 5, 4}, false, true, []int{2, 2, 3, 5}}, // attention q @ k^T
	{[]int{2, 2, 4, 3}, []int{2, 2, 4, 5}, true, false, []int{2, 2, 3, 5}},
	{[]int{3, 3, 4}, []int{4, 5}, false, false, []int{3, 3, 5}},       // shared 2-D b: one tall product
	{[]int{3, 3, 4}, []int{5, 4}, false, true, []int{3, 3, 5}},        // shared b, transposed
	{[]int{3, 4, 3}, []int{4, 5}, true, false, []int{3, 3, 5}},        // shared b with transA: per-batch loop
	{[]int{3, 4}, []int{2, 3, 4, 5}, false, false, []int{2, 3, 3, 5}}, // shared 2-D a
	{[]int{4, 3}, []int{2, 5, 4}, true, true, []int{2, 3, 5}},
	{[]int{24, 12, 12}, []int{24, 12, 12}, false, true, []int{24, 12, 12}}, // enough products to run on goroutines
}

func TestMatMulForward(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, c := range mmCases {
		label := fmt.Sprintf("a%v b%v tA=%v tB=%v", c.a, c.b, c.transA, c.transB)
		a, b := mmRand(rng, c.a...), mmRand(rng, c.b...)
		tp := NewTape()
		y := tp.MatMulT(Const(a), Const(b), c.transA, c.transB)
		if !tensor.SameShape(y.Shape(), c.out) {
			t.Fatalf("%s: shape %v, want %v", label, y.Shape(), c.out)
		}
		mmClose(t, label, y.Value.Data, mmRef(a, b, c.transA, c.transB), 1e-5)
		if !c.transA && !c.transB {
			y2 := tp.MatMul(Const(a), Const(b))
			mmClose(t, label+" MatMul", y2.Value.Data, mmRef(a, b, false, false), 1e-5)
		}
	}
}

func TestMatMulHandCase(t *testing.T) {
	// [1 2 3; 4 5 6] @ [1 0; 0 1; 1 1] = [4 5; 10 11], worked by hand.
	tp := NewTape()
	a := Const(tensor.FromSlice([]float32{1, 2, 3, 4, 5, 6}, 2, 3))
	b := Const(tensor.FromSlice([]float32{1, 0, 0, 1, 1, 1}, 3, 2))
	got := tp.MatMul(a, b).Value.Data
	want := []float32{4, 5, 10, 11}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
}

func TestMatMulGrad(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, c := range mmCases {
		t.Run(fmt.Sprintf("a%v_b%v_tA=%v_tB=%v", c.a, c.b, c.transA, c.transB), func(t *testing.T) {
			in := []*tensor.Tensor{mmRand(rng, c.a...), mmRand(rng, c.b...)}
			err := CheckGrad(func(tp *Tape, v []*Var) *Var {
				return tp.MatMulT(v[0], v[1], c.transA, c.transB)
			}, in, GradCheck{Seed: 9})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestMatMulGradSameOperand uses one Var on both sides (a Gram matrix), so
// both backward branches accumulate into the same gradient.
func TestMatMulGradSameOperand(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, shape := range [][]int{{4, 3}, {2, 5, 3}} {
		err := CheckGrad(func(tp *Tape, v []*Var) *Var {
			return tp.MatMulT(v[0], v[0], false, true)
		}, []*tensor.Tensor{mmRand(rng, shape...)}, GradCheck{Seed: 1})
		if err != nil {
			t.Fatalf("x%v @ x^T: %v", shape, err)
		}
	}
}

func TestMatMulGradOnlyOneSide(t *testing.T) {
	// A constant operand gets no gradient and must not break the other's.
	rng := rand.New(rand.NewPCG(9, 10))
	a, b := mmRand(rng, 2, 3, 4), mmRand(rng, 4, 5)
	tp := NewTape()
	w := NewParam("w", b)
	y := tp.MatMul(Const(a), w)
	seed := mmRand(rng, 2, 3, 5)
	if err := tp.BackwardWith(y, seed); err != nil {
		t.Fatal(err)
	}
	// dW = sum_p A_p^T G_p, i.e. stacked A^T @ stacked G.
	flatA := tensor.FromSlice(a.Data, 6, 4)
	flatG := tensor.FromSlice(seed.Data, 6, 5)
	mmClose(t, "dW", w.Grad.Data, mmRef(flatA, flatG, true, false), 1e-5)
}

func TestMatMulShapeErrors(t *testing.T) {
	cases := []struct {
		a, b   []int
		tA, tB bool
		msg    string
	}{
		{[]int{3}, []int{3, 2}, false, false, "at least 2 axes"},
		{[]int{2, 3}, []int{4, 2}, false, false, "inner dimensions"},
		{[]int{2, 3}, []int{2, 4}, false, true, "inner dimensions"},
		{[]int{2, 2, 3}, []int{3, 3, 4}, false, false, "batch axes differ"},
		{[]int{2, 2, 3}, []int{2, 1, 3, 4}, false, false, "batch axes differ"},
	}
	for _, c := range cases {
		err := Catch(func() {
			NewTape().MatMulT(Const(tensor.New(c.a...)), Const(tensor.New(c.b...)), c.tA, c.tB)
		})
		if err == nil || !strings.Contains(err.Error(), c.msg) || !strings.HasPrefix(err.Error(), "MatMul") {
			t.Errorf("a%v b%v: got %v, want a MatMul error containing %q", c.a, c.b, err, c.msg)
		}
	}
}

func TestMatMulRecordsAttrs(t *testing.T) {
	tp := NewTape()
	tp.MatMulT(NewParam("a", tensor.New(2, 3)), Const(tensor.New(4, 3)), false, true)
	n := tp.Nodes()[len(tp.Nodes())-1]
	if n.Op != "MatMul" || n.Attrs["transA"] != false || n.Attrs["transB"] != true {
		t.Fatalf("node %s %v", n.Op, n.Attrs)
	}
}

// linearRef is x @ w^T + b in float64.
func linearRef(x, w, b *tensor.Tensor) []float64 {
	out, in := w.Shape[0], w.Shape[1]
	rows := x.Numel() / in
	y := make([]float64, rows*out)
	for r := range rows {
		for o := range out {
			s := 0.0
			if b != nil {
				s = float64(b.Data[o])
			}
			for i := range in {
				s += float64(x.Data[r*in+i]) * float64(w.Data[o*in+i])
			}
			y[r*out+o] = s
		}
	}
	return y
}

func TestLinear(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	cases := []struct {
		x    []int
		in   int
		out  int
		bias bool
	}{
		{[]int{5}, 5, 3, true},
		{[]int{1, 1}, 1, 1, false},
		{[]int{4, 6}, 6, 3, true},
		{[]int{4, 6}, 6, 3, false},
		{[]int{2, 3, 7}, 7, 5, true},
		{[]int{2, 1, 3, 4}, 4, 2, true},
	}
	for _, c := range cases {
		label := fmt.Sprintf("x%v out=%d bias=%v", c.x, c.out, c.bias)
		x, w := mmRand(rng, c.x...), mmRand(rng, c.out, c.in)
		var b *tensor.Tensor
		if c.bias {
			b = mmRand(rng, c.out)
		}
		tp := NewTape()
		var bv *Var
		if b != nil {
			bv = Const(b)
		}
		y := tp.Linear(Const(x), Const(w), bv)
		wantShape := append(append([]int(nil), c.x[:len(c.x)-1]...), c.out)
		if !tensor.SameShape(y.Shape(), wantShape) {
			t.Fatalf("%s: shape %v, want %v", label, y.Shape(), wantShape)
		}
		mmClose(t, label, y.Value.Data, linearRef(x, w, b), 1e-5)

		in := []*tensor.Tensor{x, w}
		if b != nil {
			in = append(in, b)
		}
		err := CheckGrad(func(tp *Tape, v []*Var) *Var {
			var bias *Var
			if len(v) == 3 {
				bias = v[2]
			}
			return tp.Linear(v[0], v[1], bias)
		}, in, GradCheck{Seed: 3})
		if err != nil {
			t.Fatalf("%s: %v", label, err)
		}
	}
}

func TestLinearHandCase(t *testing.T) {
	// x=[1 2], w=[[1 1],[2 -1],[0 3]], b=[0.5 0 -1]: y=[3.5 0 5].
	tp := NewTape()
	y := tp.Linear(Const(tensor.FromSlice([]float32{1, 2}, 1, 2)),
		Const(tensor.FromSlice([]float32{1, 1, 2, -1, 0, 3}, 3, 2)),
		Const(tensor.FromSlice([]float32{0.5, 0, -1}, 3)))
	want := []float32{3.5, 0, 5}
	for i := range want {
		if y.Value.Data[i] != want[i] {
			t.Fatalf("got %v, want %v", y.Value.Data, want)
		}
	}
}

func TestLinearShapeErrors(t *testing.T) {
	cases := []struct {
		x, w, b []int
		msg     string
	}{
		{[]int{2, 3}, []int{4, 5}, nil, "input features"},
		{[]int{2, 3}, []int{3}, nil, "exactly 2"},
		{[]int{2, 3}, []int{4, 3}, []int{3}, "bias"},
		{[]int{2, 3}, []int{4, 3}, []int{1, 4}, "bias"},
	}
	for _, c := range cases {
		err := Catch(func() {
			var b *Var
			if c.b != nil {
				b = Const(tensor.New(c.b...))
			}
			NewTape().Linear(Const(tensor.New(c.x...)), Const(tensor.New(c.w...)), b)
		})
		if err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("x%v w%v b%v: got %v, want error containing %q", c.x, c.w, c.b, err, c.msg)
		}
	}
}

// BenchmarkBatchedGemm compares the two ways batchedGemm can run many small
// products (one attention head each): one after another, or spread over
// goroutines with tensor.Parallel. The two alternate round by round; it
// reports the median time of each and serial/parallel (above 1: goroutines
// are faster). Shapes: ViT-tiny (64 images × 3 heads, 65 tokens, head dim
// 64) and BERT-mini (64 × 4 heads, 128 tokens, 64).
func BenchmarkBatchedGemm(b *testing.B) {
	for _, s := range [][4]int{{192, 65, 65, 64}, {256, 128, 128, 64}, {64, 96, 96, 96}} {
		batch, m, n, k := s[0], s[1], s[2], s[3]
		b.Run(fmt.Sprintf("%dx(%dx%dx%d)", batch, m, n, k), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 1))
			A, B := mmRand(rng, batch, m, k).Data, mmRand(rng, batch, n, k).Data
			C := make([]float32, batch*m*n)
			one := func(i int) {
				tensor.Sgemm(false, true, m, n, k, 1, A[i*m*k:(i+1)*m*k], k, B[i*n*k:(i+1)*n*k], k, 0, C[i*m*n:(i+1)*m*n], n)
			}
			var ts, tpar []time.Duration
			for range b.N {
				for r := range 20 {
					for _, par := range []bool{r%2 == 0, r%2 == 1} {
						t0 := time.Now()
						if par {
							tensor.Parallel(batch, m*n*k, func(lo, hi int) {
								for i := lo; i < hi; i++ {
									one(i)
								}
							})
							tpar = append(tpar, time.Since(t0))
						} else {
							for i := range batch {
								one(i)
							}
							ts = append(ts, time.Since(t0))
						}
					}
				}
			}
			ms, mp := mmMedian(ts), mmMedian(tpar)
			b.ReportMetric(float64(ms.Microseconds()), "serial-us")
			b.ReportMetric(float64(mp.Microseconds()), "parallel-us")
			b.ReportMetric(ms.Seconds()/mp.Seconds(), "serial/parallel")
		})
	}
}

func mmMedian(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}
