// Package tensor holds sslzoo's float32 N-d arrays and the CPU kernels that
// compute on them. Tensors are dense and row-major; views that would need
// strides (transpose, permute) are materialised by the kernels instead, which
// keeps every kernel simple and every buffer BLAS-ready.
package tensor

import (
	"fmt"
	"strings"
)

// Tensor is a dense row-major float32 array.
type Tensor struct {
	Shape []int
	Data  []float32
}

// New returns a zero-filled tensor of the given shape.
func New(shape ...int) *Tensor {
	return &Tensor{Shape: append([]int(nil), shape...), Data: make([]float32, Numel(shape))}
}

// FromSlice wraps data (not copied) as a tensor of the given shape.
// It panics when the lengths disagree, because that is a programming error.
func FromSlice(data []float32, shape ...int) *Tensor {
	if len(data) != Numel(shape) {
		panic(fmt.Sprintf("tensor.FromSlice: %d values for shape %v", len(data), shape))
	}
	return &Tensor{Shape: append([]int(nil), shape...), Data: data}
}

// Numel is the number of elements a shape holds.
func Numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// Numel is the number of elements in t.
func (t *Tensor) Numel() int { return len(t.Data) }

// Dims is the number of axes.
func (t *Tensor) Dims() int { return len(t.Shape) }

// Clone returns a deep copy.
func (t *Tensor) Clone() *Tensor {
	return &Tensor{Shape: append([]int(nil), t.Shape...), Data: append([]float32(nil), t.Data...)}
}

// View returns a tensor sharing t's data under another shape with the same
// element count. One dimension may be -1 and is inferred.
func (t *Tensor) View(shape ...int) (*Tensor, error) {
	s, err := InferShape(t.Numel(), shape)
	if err != nil {
		return nil, err
	}
	return &Tensor{Shape: s, Data: t.Data}, nil
}

// InferShape resolves a single -1 in shape so that it holds n elements.
func InferShape(n int, shape []int) ([]int, error) {
	out := append([]int(nil), shape...)
	known, infer := 1, -1
	for i, d := range out {
		switch {
		case d == -1 && infer < 0:
			infer = i
		case d < 0:
			return nil, fmt.Errorf("shape %v: bad dimension %d", shape, d)
		default:
			known *= d
		}
	}
	if infer >= 0 {
		if known == 0 || n%known != 0 {
			return nil, fmt.Errorf("shape %v: cannot hold %d elements", shape, n)
		}
		out[infer] = n / known
	} else if known != n {
		return nil, fmt.Errorf("shape %v holds %d elements, not %d", shape, known, n)
	}
	return out, nil
}

// SameShape reports whether a and b have identical shapes.
func SameShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Fill sets every element to v.
func (t *Tensor) Fill(v float32) {
	for i := range t.Data {
		t.Data[i] = v
	}
}

// Zero sets every element to 0.
func (t *Tensor) Zero() { clear(t.Data) }

// String prints the shape and up to eight leading values, for debugging.
func (t *Tensor) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Tensor%v[", t.Shape)
	for i, v := range t.Data {
		if i == 8 {
			b.WriteString(" ...")
			break
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%g", v)
	}
	b.WriteByte(']')
	return b.String()
}
