package torchpickle

import (
	"archive/zip"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"sync"

	"github.com/sslzoo/sslzoo/weights"
)

// Storage is a typed storage: Numel elements of one dtype, which tensors
// view. Its bytes stay in the file until a tensor is read.
type Storage struct {
	// Type is torch's class name, e.g. "FloatStorage".
	Type string
	// DType is the element type; "" for complex and quantized storages,
	// which sslzoo cannot read (they load, but reading a tensor fails).
	DType    weights.DType
	ElemSize int
	Numel    int64
	Key      string // the record or key name in the file
	Location string // where it was saved from, e.g. "cpu" or "cuda:0"

	src  source   // nil for views
	root *Storage // legacy storage views: a slice of root from base
	base int64
}

// source reads a storage's bytes.
type source interface {
	readAt(p []byte, off int64) error
}

// fileSource is a byte range of the checkpoint file (zip records stored
// without compression, and legacy storages).
type fileSource struct {
	r      io.ReaderAt
	off, n int64
}

func (s fileSource) readAt(p []byte, off int64) error {
	if off < 0 || off+int64(len(p)) > s.n {
		return fmt.Errorf("read of %d bytes at %d outside a %d-byte storage", len(p), off, s.n)
	}
	if _, err := s.r.ReadAt(p, s.off+off); err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("the file ends inside a storage (truncated?)")
		}
		return err
	}
	return nil
}

// zipSource is a compressed zip record, inflated on first use. torch
// writes records uncompressed; a re-zipped checkpoint still loads.
type zipSource struct {
	f    *zip.File
	n    int64
	once sync.Once
	data []byte
	err  error
}

func (s *zipSource) readAt(p []byte, off int64) error {
	s.once.Do(func() {
		rc, err := s.f.Open()
		if err != nil {
			s.err = err
			return
		}
		defer rc.Close()
		s.data = make([]byte, s.n)
		if _, err := io.ReadFull(rc, s.data); err != nil {
			s.err = fmt.Errorf("record %s: %w", odd(s.f.Name), truncated(err))
		}
	})
	if s.err != nil {
		return s.err
	}
	if off < 0 || off+int64(len(p)) > s.n {
		return fmt.Errorf("read of %d bytes at %d outside a %d-byte storage", len(p), off, s.n)
	}
	copy(p, s.data[off:])
	return nil
}

// Tensor is a view of a storage: torch's (storage, storage_offset, size,
// stride). Shapes and strides count elements.
type Tensor struct {
	Storage *Storage
	Offset  int64
	Shape   []int
	Stride  []int
}

// DType is the element type ("" when unsupported, see Storage.DType).
func (t *Tensor) DType() weights.DType { return t.Storage.DType }

// Numel is the number of elements.
func (t *Tensor) Numel() int64 {
	n := int64(1)
	for _, d := range t.Shape {
		n *= int64(d)
	}
	return n
}

// check validates the view against its storage: every element it can
// address lies inside, and it holds no more elements than the storage (so
// reading it never allocates more than the file backs). Expanded
// (stride-0) views larger than their storage are refused for that reason.
func (t *Tensor) check() error {
	if len(t.Shape) != len(t.Stride) {
		return fmt.Errorf("tensor with %d sizes and %d strides", len(t.Shape), len(t.Stride))
	}
	numel := uint64(1)
	last := uint64(t.Offset)
	for i, d := range t.Shape {
		hi, lo := bits.Mul64(numel, uint64(d))
		if hi != 0 || lo > math.MaxInt64 {
			return fmt.Errorf("tensor of shape %v: element count overflows", t.Shape)
		}
		numel = lo
		if d > 0 {
			hi, lo := bits.Mul64(uint64(d-1), uint64(t.Stride[i]))
			sum, carry := bits.Add64(last, lo, 0)
			if hi != 0 || carry != 0 || sum > math.MaxInt64 {
				return fmt.Errorf("tensor of shape %v, stride %v: offsets overflow", t.Shape, t.Stride)
			}
			last = sum
		}
	}
	if numel == 0 {
		return nil
	}
	s := t.Storage
	if last >= uint64(s.Numel) {
		return fmt.Errorf("tensor of shape %v, stride %v, offset %d reaches element %d of a %d-element %s %q",
			t.Shape, t.Stride, t.Offset, last, s.Numel, s.Type, s.Key)
	}
	if numel > uint64(s.Numel) {
		return fmt.Errorf("tensor of shape %v has %d elements but its %s %q holds %d (an expanded view; not supported)",
			t.Shape, numel, s.Type, s.Key, s.Numel)
	}
	return nil
}

func (t *Tensor) contiguous() bool {
	want := 1
	for i := len(t.Shape) - 1; i >= 0; i-- {
		if t.Shape[i] != 1 && t.Stride[i] != want {
			return false
		}
		want *= t.Shape[i]
	}
	return true
}

// Read copies the tensor's elements out of the file into a contiguous,
// row-major safetensors tensor of the same dtype (non-contiguous views are
// gathered through their strides).
func (t *Tensor) Read() (*weights.Tensor, error) {
	s := t.Storage
	if s.DType == "" {
		return nil, fmt.Errorf("tensor of a %s: dtype not supported", s.Type)
	}
	src, base := s, int64(0)
	for src.root != nil {
		base += src.base
		src = src.root
	}
	if src.src == nil {
		return nil, fmt.Errorf("%s %q has no data in the file", s.Type, s.Key)
	}
	es := int64(s.ElemSize)
	n := t.Numel()
	out := &weights.Tensor{DType: s.DType, Shape: append([]int{}, t.Shape...), Data: make([]byte, n*es)}
	if n == 0 {
		return out, nil
	}
	start := base + t.Offset
	if t.contiguous() {
		if err := src.src.readAt(out.Data, start*es); err != nil {
			return nil, fmt.Errorf("%s %q: %w", s.Type, s.Key, err)
		}
		return out, nil
	}
	// Read the span the view covers once (check bounded it by the
	// storage), then gather.
	span := int64(1)
	for i, d := range t.Shape {
		span += int64(d-1) * int64(t.Stride[i])
	}
	buf := make([]byte, span*es)
	if err := src.src.readAt(buf, start*es); err != nil {
		return nil, fmt.Errorf("%s %q: %w", s.Type, s.Key, err)
	}
	idx := make([]int, len(t.Shape))
	for i := int64(0); i < n; i++ {
		var at int64
		for d, k := range idx {
			at += int64(k) * int64(t.Stride[d])
		}
		copy(out.Data[i*es:(i+1)*es], buf[at*es:(at+1)*es])
		for d := len(idx) - 1; d >= 0; d-- {
			idx[d]++
			if idx[d] < t.Shape[d] {
				break
			}
			idx[d] = 0
		}
	}
	return out, nil
}

// newStorage checks a declared storage and sizes it.
func newStorage(typ *Global, key, location string, numel int64) (*Storage, error) {
	if typ == nil || typ.kind != kindStorage {
		return nil, fmt.Errorf("storage %q of type %s", key, typ)
	}
	st := typ.storage
	if numel < 0 || numel > math.MaxInt64/int64(st.elemSize) {
		return nil, fmt.Errorf("%s %q declares %d elements", st.name, key, numel)
	}
	return &Storage{Type: st.name, DType: st.dtype, ElemSize: st.elemSize, Numel: numel, Key: key, Location: location}, nil
}

// pyString accepts str, and bytes from Python 2 pickles (torch's
// _maybe_decode_ascii).
func pyString(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case Bytes:
		return string(x), true
	}
	return "", false
}
