// Package weights stores model weights on disk. Its file format is
// safetensors: an 8-byte little-endian header length, a JSON header that maps
// every tensor name to its dtype, shape and byte range, and then the raw
// little-endian tensor bytes. The same files are read by PyTorch, Hugging
// Face and every other stack, which is why sslzoo uses them for zoo weights
// and training checkpoints alike.
//
// This package imports only tensor: nn builds checkpoints on top of it.
package weights

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strings"

	"github.com/sslzoo/sslzoo/internal/atomicfile"
	"github.com/sslzoo/sslzoo/tensor"
)

// DType is a safetensors element type, spelled as in the header.
type DType string

// The element types this package reads and writes.
const (
	F64  DType = "F64"
	F32  DType = "F32"
	F16  DType = "F16"
	BF16 DType = "BF16"
	I64  DType = "I64"
	I32  DType = "I32"
	I16  DType = "I16"
	I8   DType = "I8"
	U8   DType = "U8"
	BOOL DType = "BOOL"
)

// Size is the number of bytes one element takes, or 0 for an unknown dtype.
func (d DType) Size() int {
	switch d {
	case F64, I64:
		return 8
	case F32, I32:
		return 4
	case F16, BF16, I16:
		return 2
	case I8, U8, BOOL:
		return 1
	}
	return 0
}

// IsFloat reports whether d is a floating-point type.
func (d DType) IsFloat() bool { return d == F64 || d == F32 || d == F16 || d == BF16 }

// maxHeader bounds the JSON header, as the reference implementation does, so
// that a corrupt length cannot make us allocate gigabytes.
const maxHeader = 100 << 20

// ErrFormat is wrapped by every error about a malformed file, so callers can
// tell a corrupt file (errors.Is(err, ErrFormat)) from an I/O failure.
var ErrFormat = errors.New("malformed safetensors")

// FormatError describes what is wrong with a file: which file, which tensor
// (empty when the problem is in the header as a whole) and what.
type FormatError struct {
	Path   string
	Tensor string
	Msg    string
}

func (e *FormatError) Error() string {
	var b strings.Builder
	b.WriteString("safetensors ")
	b.WriteString(e.Path)
	if e.Tensor != "" {
		fmt.Fprintf(&b, ": tensor %q", e.Tensor)
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	return b.String()
}

// Is makes errors.Is(err, ErrFormat) hold.
func (e *FormatError) Is(target error) bool { return target == ErrFormat }

// Tensor is one stored tensor: its dtype, shape and raw little-endian bytes.
// Tensors read from a file share the file's buffer; convert them (Float32,
// Int64) rather than keeping Data when the file can be dropped.
type Tensor struct {
	DType DType
	Shape []int
	Data  []byte
}

// Numel is the number of elements.
func (t *Tensor) Numel() int { return tensor.Numel(t.Shape) }

// FromFloat32 stores t as F32 (the bytes are copied).
func FromFloat32(t *tensor.Tensor) *Tensor {
	out := &Tensor{DType: F32, Shape: cloneShape(t.Shape), Data: make([]byte, 4*len(t.Data))}
	for i, v := range t.Data {
		binary.LittleEndian.PutUint32(out.Data[4*i:], math.Float32bits(v))
	}
	return out
}

// FromFloat32As stores t as the float dtype d (F32, F64, F16 or BF16),
// rounding to nearest-even as PyTorch's .half() and .bfloat16() do.
func FromFloat32As(t *tensor.Tensor, d DType) (*Tensor, error) {
	if !d.IsFloat() {
		return nil, fmt.Errorf("weights: cannot store float32 data as %s", d)
	}
	out := &Tensor{DType: d, Shape: cloneShape(t.Shape), Data: make([]byte, d.Size()*len(t.Data))}
	for i, v := range t.Data {
		switch d {
		case F32:
			binary.LittleEndian.PutUint32(out.Data[4*i:], math.Float32bits(v))
		case F64:
			binary.LittleEndian.PutUint64(out.Data[8*i:], math.Float64bits(float64(v)))
		case F16:
			binary.LittleEndian.PutUint16(out.Data[2*i:], float32ToHalf(v))
		case BF16:
			binary.LittleEndian.PutUint16(out.Data[2*i:], float32ToBF16(v))
		}
	}
	return out, nil
}

// FromInt64 stores integer values as I64 (e.g. BatchNorm's
// num_batches_tracked, which PyTorch keeps as int64).
func FromInt64(shape []int, vals []int64) (*Tensor, error) {
	if len(vals) != tensor.Numel(shape) {
		return nil, fmt.Errorf("weights: %d int64 values for shape %v", len(vals), shape)
	}
	out := &Tensor{DType: I64, Shape: cloneShape(shape), Data: make([]byte, 8*len(vals))}
	for i, v := range vals {
		binary.LittleEndian.PutUint64(out.Data[8*i:], uint64(v))
	}
	return out, nil
}

// FromBytes stores raw bytes as a 1-D U8 tensor (e.g. a serialised RNG state).
func FromBytes(b []byte) *Tensor {
	return &Tensor{DType: U8, Shape: []int{len(b)}, Data: append([]byte(nil), b...)}
}

// Float32 converts the tensor to float32. Float types convert as PyTorch's
// .float() does (F64 rounds to nearest); integer and BOOL types convert to
// the nearest float32, which is exact up to 2^24.
func (t *Tensor) Float32() (*tensor.Tensor, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	n := t.Numel()
	out := tensor.New(t.Shape...)
	d := t.Data
	switch t.DType {
	case F32:
		for i := range n {
			out.Data[i] = math.Float32frombits(binary.LittleEndian.Uint32(d[4*i:]))
		}
	case F64:
		for i := range n {
			out.Data[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(d[8*i:])))
		}
	case F16:
		for i := range n {
			out.Data[i] = halfToFloat32(binary.LittleEndian.Uint16(d[2*i:]))
		}
	case BF16:
		for i := range n {
			out.Data[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(d[2*i:])) << 16)
		}
	default:
		vals, err := t.Int64()
		if err != nil {
			return nil, err
		}
		for i, v := range vals {
			out.Data[i] = float32(v)
		}
	}
	return out, nil
}

// Int64 returns the values of an integer or BOOL tensor. Float tensors are
// refused rather than truncated.
func (t *Tensor) Int64() ([]int64, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	n := t.Numel()
	out := make([]int64, n)
	d := t.Data
	switch t.DType {
	case I64:
		for i := range n {
			out[i] = int64(binary.LittleEndian.Uint64(d[8*i:]))
		}
	case I32:
		for i := range n {
			out[i] = int64(int32(binary.LittleEndian.Uint32(d[4*i:])))
		}
	case I16:
		for i := range n {
			out[i] = int64(int16(binary.LittleEndian.Uint16(d[2*i:])))
		}
	case I8:
		for i := range n {
			out[i] = int64(int8(d[i]))
		}
	case U8:
		for i := range n {
			out[i] = int64(d[i])
		}
	case BOOL:
		for i := range n {
			if d[i] != 0 {
				out[i] = 1
			}
		}
	default:
		return nil, fmt.Errorf("weights: %s tensor has no integer values", t.DType)
	}
	return out, nil
}

// check verifies dtype, shape and byte length agree (for tensors built by
// hand; parsed tensors are validated by Parse).
func (t *Tensor) check() error {
	if t.DType.Size() == 0 {
		return fmt.Errorf("weights: unknown dtype %q", t.DType)
	}
	for _, d := range t.Shape {
		if d < 0 {
			return fmt.Errorf("weights: negative dimension in shape %v", t.Shape)
		}
	}
	if want := t.Numel() * t.DType.Size(); len(t.Data) != want {
		return fmt.Errorf("weights: %s tensor of shape %v needs %d bytes, has %d", t.DType, t.Shape, want, len(t.Data))
	}
	return nil
}

// File is a parsed safetensors file.
type File struct {
	Path     string // where it was read from, for error messages
	Metadata map[string]string
	Tensors  map[string]*Tensor
}

// Names lists the tensor names in sorted order.
func (f *File) Names() []string {
	names := make([]string, 0, len(f.Tensors))
	for n := range f.Tensors {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Float32 converts the named tensor to float32.
func (f *File) Float32(name string) (*tensor.Tensor, error) {
	t, ok := f.Tensors[name]
	if !ok {
		return nil, fmt.Errorf("safetensors %s: no tensor %q", f.Path, name)
	}
	out, err := t.Float32()
	if err != nil {
		return nil, fmt.Errorf("safetensors %s: tensor %q: %w", f.Path, name, err)
	}
	return out, nil
}

// Read reads and validates a safetensors file.
func Read(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read safetensors: %w", err)
	}
	return Parse(path, b)
}

// headerEntry is one tensor's header record. Pointers tell a missing field
// from an empty one (a scalar has shape []).
type headerEntry struct {
	DType       *string  `json:"dtype"`
	Shape       *[]int   `json:"shape"`
	DataOffsets *[]int64 `json:"data_offsets"`
}

// Parse validates and decodes a safetensors file held in b; path names it in
// errors. The returned tensors share b's memory.
//
// Validation is strict, as in the reference implementation: the header must
// be a JSON object with unique keys, every dtype known, every byte range
// inside the data section and exactly as long as its shape requires, and the
// ranges must tile the data section with no overlap and no gap (holes would
// let a file carry hidden content).
func Parse(path string, b []byte) (*File, error) {
	bad := func(tensor, format string, args ...any) error {
		return &FormatError{Path: path, Tensor: tensor, Msg: fmt.Sprintf(format, args...)}
	}
	if len(b) < 8 {
		return nil, bad("", "file is %d bytes, shorter than the 8-byte header length", len(b))
	}
	hlen := binary.LittleEndian.Uint64(b)
	if hlen > maxHeader {
		return nil, bad("", "header length %d exceeds the %d-byte limit", hlen, maxHeader)
	}
	if 8+hlen > uint64(len(b)) {
		return nil, bad("", "header length %d reaches byte %d, beyond the file's %d bytes (truncated file?)", hlen, 8+hlen, len(b))
	}
	header := b[8 : 8+hlen]
	data := b[8+hlen:]
	if len(header) == 0 || header[0] != '{' {
		return nil, bad("", "header does not start with a JSON object")
	}

	f := &File{Path: path, Metadata: map[string]string{}, Tensors: map[string]*Tensor{}}
	dec := json.NewDecoder(bytes.NewReader(header))
	dec.DisallowUnknownFields()
	if _, err := dec.Token(); err != nil {
		return nil, bad("", "header JSON: %v", err)
	}
	seen := map[string]bool{}
	type span struct {
		name       string
		begin, end int64
	}
	var spans []span
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, bad("", "header JSON: %v", err)
		}
		name, _ := tok.(string)
		if seen[name] {
			return nil, bad(name, "appears twice in the header")
		}
		seen[name] = true
		if name == "__metadata__" {
			if err := dec.Decode(&f.Metadata); err != nil {
				return nil, bad("", "__metadata__ must map strings to strings: %v", err)
			}
			if f.Metadata == nil { // "__metadata__": null
				f.Metadata = map[string]string{}
			}
			continue
		}
		if name == "" {
			return nil, bad("", "header has an empty tensor name")
		}
		var e headerEntry
		if err := dec.Decode(&e); err != nil {
			return nil, bad(name, "header entry: %v", err)
		}
		if e.DType == nil || e.Shape == nil || e.DataOffsets == nil {
			return nil, bad(name, "header entry needs dtype, shape and data_offsets")
		}
		dt := DType(*e.DType)
		if dt.Size() == 0 {
			return nil, bad(name, "unsupported dtype %q", *e.DType)
		}
		shape := *e.Shape
		offs := *e.DataOffsets
		if len(offs) != 2 {
			return nil, bad(name, "data_offsets must hold 2 numbers, has %d", len(offs))
		}
		begin, end := offs[0], offs[1]
		if begin < 0 || end < begin {
			return nil, bad(name, "data_offsets [%d,%d] are not an increasing byte range", begin, end)
		}
		if end > int64(len(data)) {
			return nil, bad(name, "data_offsets [%d,%d] end beyond the %d-byte data section (file offsets %d-%d, file size %d)",
				begin, end, len(data), 8+int64(hlen)+begin, 8+int64(hlen)+end, len(b))
		}
		// Element count with overflow checks: a corrupt shape must not wrap.
		n := int64(1)
		for _, d := range shape {
			if d < 0 {
				return nil, bad(name, "negative dimension in shape %v", shape)
			}
			if d != 0 && n > math.MaxInt64/int64(d) {
				return nil, bad(name, "shape %v is too large", shape)
			}
			n *= int64(d)
		}
		if n > math.MaxInt64/int64(dt.Size()) || n*int64(dt.Size()) != end-begin {
			return nil, bad(name, "%s shape %v needs %d bytes but data_offsets [%d,%d] span %d", dt, shape, n*int64(dt.Size()), begin, end, end-begin)
		}
		f.Tensors[name] = &Tensor{DType: dt, Shape: shape, Data: data[begin:end:end]}
		spans = append(spans, span{name, begin, end})
	}
	if _, err := dec.Token(); err != nil {
		return nil, bad("", "header JSON: %v", err)
	}
	if tok, err := dec.Token(); err != io.EOF {
		return nil, bad("", "header has trailing content after the JSON object (%v %v)", tok, err)
	}

	sort.SliceStable(spans, func(i, j int) bool {
		if spans[i].begin != spans[j].begin {
			return spans[i].begin < spans[j].begin
		}
		return spans[i].end < spans[j].end
	})
	var pos int64
	prev := ""
	for _, s := range spans {
		switch {
		case s.begin < pos:
			return nil, bad(s.name, "data_offsets [%d,%d] overlap tensor %q, which ends at %d", s.begin, s.end, prev, pos)
		case s.begin > pos:
			return nil, bad(s.name, "data_offsets [%d,%d] leave a gap: bytes %d-%d of the data section belong to no tensor", s.begin, s.end, pos, s.begin)
		}
		if s.end > s.begin || prev == "" {
			prev = s.name
		}
		pos = s.end
	}
	if pos != int64(len(data)) {
		return nil, bad("", "data section is %d bytes but tensors cover only %d (%d trailing bytes; truncated or padded file)", len(data), pos, int64(len(data))-pos)
	}
	return f, nil
}

// Encode serialises tensors and metadata in the safetensors layout. Tensors
// are laid out in name order and the header is padded with spaces to a
// multiple of 8 bytes, so every tensor's data is 8-byte aligned in the file.
func Encode(tensors map[string]*Tensor, metadata map[string]string) ([]byte, error) {
	names := make([]string, 0, len(tensors))
	for n := range tensors {
		names = append(names, n)
	}
	sort.Strings(names)

	type entry struct {
		DType       DType    `json:"dtype"`
		Shape       []int    `json:"shape"`
		DataOffsets [2]int64 `json:"data_offsets"`
	}
	header := make(map[string]any, len(tensors)+1)
	if len(metadata) > 0 {
		header["__metadata__"] = metadata
	}
	var off int64
	for _, n := range names {
		t := tensors[n]
		if n == "" || n == "__metadata__" {
			return nil, fmt.Errorf("safetensors: invalid tensor name %q", n)
		}
		if t == nil {
			return nil, fmt.Errorf("safetensors: tensor %q is nil", n)
		}
		if err := t.check(); err != nil {
			return nil, fmt.Errorf("safetensors: tensor %q: %w", n, err)
		}
		shape := t.Shape
		if shape == nil {
			shape = []int{}
		}
		header[n] = entry{t.DType, shape, [2]int64{off, off + int64(len(t.Data))}}
		off += int64(len(t.Data))
	}
	hj, err := json.Marshal(header)
	if err != nil {
		return nil, fmt.Errorf("safetensors: encode header: %w", err)
	}
	if pad := len(hj) % 8; pad != 0 {
		hj = append(hj, bytes.Repeat([]byte{' '}, 8-pad)...)
	}
	out := make([]byte, 8, 8+len(hj)+int(off))
	binary.LittleEndian.PutUint64(out, uint64(len(hj)))
	out = append(out, hj...)
	for _, n := range names {
		out = append(out, tensors[n].Data...)
	}
	return out, nil
}

// Write stores tensors and metadata at path atomically: the bytes go to a
// temporary file in the same directory, which is synced and then renamed
// over path, so a crash leaves either the old file or the new one, never a
// torn one.
func Write(path string, tensors map[string]*Tensor, metadata map[string]string) error {
	b, err := Encode(tensors, metadata)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return WriteFileAtomic(path, b)
}

// WriteFloat32 is Write for plain float32 tensors, stored as F32.
func WriteFloat32(path string, tensors map[string]*tensor.Tensor, metadata map[string]string) error {
	m := make(map[string]*Tensor, len(tensors))
	for n, t := range tensors {
		if t == nil {
			return fmt.Errorf("write %s: tensor %q is nil", path, n)
		}
		if len(t.Data) != t.Numel() || tensor.Numel(t.Shape) != len(t.Data) {
			return fmt.Errorf("write %s: tensor %q has %d values for shape %v", path, n, len(t.Data), t.Shape)
		}
		m[n] = FromFloat32(t)
	}
	return Write(path, m, metadata)
}

// WriteFileAtomic writes b to path through a synced temporary file in the
// same directory and a rename, then syncs the directory so the rename itself
// survives a crash.
func WriteFileAtomic(path string, b []byte) error { return atomicfile.WriteBytes(path, b) }

func cloneShape(s []int) []int {
	if s == nil {
		return []int{}
	}
	return append([]int{}, s...)
}

// halfToFloat32 converts IEEE binary16 bits to float32, exactly (every half
// value, subnormals included, is representable in float32).
func halfToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	man := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // inf or NaN; keep the payload
		return math.Float32frombits(sign | 0x7f800000 | man<<13)
	case exp == 0 && man == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal: value is man * 2^-24
		v := float32(man) * (1.0 / (1 << 24))
		if sign != 0 {
			v = -v
		}
		return v
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | man<<13)
}

// float32ToHalf rounds a float32 to the nearest binary16 (ties to even),
// overflowing to infinity as PyTorch's .half() does.
func float32ToHalf(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23) & 0xff
	man := b & 0x7fffff
	if exp == 0xff {
		if man != 0 {
			return sign | 0x7e00 | uint16(man>>13) // quiet NaN
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		// Subnormal half (or zero): shift the full significand into place
		// and round to nearest-even on the bits shifted out.
		if e < -10 {
			return sign
		}
		m := man | 0x800000
		shift := uint32(14 - e)
		half := m >> shift
		rem := m & (1<<shift - 1)
		mid := uint32(1) << (shift - 1)
		if rem > mid || (rem == mid && half&1 == 1) {
			half++
		}
		return sign | uint16(half)
	}
	h := uint32(e)<<10 | man>>13
	rem := man & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && h&1 == 1) {
		h++ // may carry into the exponent, up to infinity: that is correct
	}
	return sign | uint16(h)
}

// float32ToBF16 rounds to the nearest bfloat16 (ties to even).
func float32ToBF16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 {
		return uint16(b>>16) | 0x40 // quiet NaN
	}
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}

// FromFloat32Map stores every tensor of m as F32.
func FromFloat32Map(m map[string]*tensor.Tensor) map[string]*Tensor {
	out := make(map[string]*Tensor, len(m))
	for n, t := range m {
		out[n] = FromFloat32(t)
	}
	return out
}
