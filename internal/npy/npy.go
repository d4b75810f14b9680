// Package npy reads and writes NumPy .npy files (format versions 1.0, 2.0
// and 3.0) holding little-endian float32, float64, int32 or int64 arrays in
// C order: the exchange format of `sslzoo embed`.
//
// Reading is strict, because a wrong reading silently feeds garbage to a
// model: the magic string, the version, the header dictionary (exactly the
// keys descr, fortran_order and shape, nothing else) and the data length
// are all checked, and every failure names the file and what is wrong.
package npy

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/sslzoo/sslzoo/internal/atomicfile"
)

// magic opens every .npy file.
const magic = "\x93NUMPY"

// maxHeader bounds the header dictionary; real headers are under 200 bytes.
const maxHeader = 1 << 20

// DType is an element type, spelled as NumPy's dtype name.
type DType string

// The element types sslzoo exchanges.
const (
	Float32 DType = "float32"
	Float64 DType = "float64"
	Int32   DType = "int32"
	Int64   DType = "int64"
)

// descrs maps the little-endian descr strings to their types.
var descrs = map[string]DType{"<f4": Float32, "<f8": Float64, "<i4": Int32, "<i8": Int64}

// Size is the width of one element in bytes.
func (d DType) Size() int {
	switch d {
	case Float32, Int32:
		return 4
	case Float64, Int64:
		return 8
	}
	return 0
}

func (d DType) descr() string {
	for k, v := range descrs {
		if v == d {
			return k
		}
	}
	return ""
}

// Array is an n-d array in C (row-major) order. Data is []float32,
// []float64, []int32 or []int64 to match DType. A 0-d array has an empty
// Shape and one element.
type Array struct {
	DType DType
	Shape []int
	Data  any
}

// Len is the number of elements Data holds (-1 for an unsupported Data).
func (a *Array) Len() int {
	switch d := a.Data.(type) {
	case []float32:
		return len(d)
	case []float64:
		return len(d)
	case []int32:
		return len(d)
	case []int64:
		return len(d)
	}
	return -1
}

// ErrFormat is wrapped by every error about a malformed file.
var ErrFormat = errors.New("not a valid .npy file")

// formatError names the file and the problem.
func formatError(name, format string, a ...any) error {
	return fmt.Errorf("%s: %w: %s", name, ErrFormat, fmt.Sprintf(format, a...))
}

// ReadFile reads a .npy file.
func ReadFile(path string) (*Array, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Decode(path, b)
}

// Decode parses a whole .npy file held in b; name labels errors.
func Decode(name string, b []byte) (*Array, error) {
	if len(b) < len(magic)+2 || string(b[:len(magic)]) != magic {
		n := min(len(b), 8)
		return nil, formatError(name, "it does not start with the NumPy magic string (first bytes %q)", b[:n])
	}
	major, minor := b[6], b[7]
	var hlen, off int
	switch {
	case major == 1 && minor == 0:
		if len(b) < 10 {
			return nil, formatError(name, "truncated inside the header length")
		}
		hlen, off = int(binary.LittleEndian.Uint16(b[8:])), 10
	case (major == 2 || major == 3) && minor == 0:
		if len(b) < 12 {
			return nil, formatError(name, "truncated inside the header length")
		}
		n := binary.LittleEndian.Uint32(b[8:])
		if n > maxHeader {
			return nil, formatError(name, "header length %d exceeds %d bytes", n, maxHeader)
		}
		hlen, off = int(n), 12
	default:
		return nil, formatError(name, "format version %d.%d is not 1.0, 2.0 or 3.0", major, minor)
	}
	if off+hlen > len(b) {
		return nil, formatError(name, "header of %d bytes runs past the end of the %d-byte file (truncated?)", hlen, len(b))
	}
	header := string(b[off : off+hlen])
	if major < 3 {
		for i := 0; i < len(header); i++ {
			if header[i] >= 0x80 {
				return nil, formatError(name, "header has a non-ASCII byte at %d", i)
			}
		}
	}
	h, err := parseHeader(header)
	if err != nil {
		return nil, formatError(name, "header %q: %v", strings.TrimSpace(header), err)
	}
	data := b[off+hlen:]
	n := 1
	for _, d := range h.shape {
		if d > 0 && n > math.MaxInt/8/d {
			return nil, formatError(name, "shape %v is too large", h.shape)
		}
		n *= d
	}
	if want := n * h.dtype.Size(); len(data) != want {
		what := "truncated"
		if len(data) > want {
			what = "trailing bytes after the data"
		}
		return nil, formatError(name, "%s %v needs %d data bytes, the file has %d (%s)", h.dtype, h.shape, want, len(data), what)
	}
	a := &Array{DType: h.dtype, Shape: h.shape}
	switch h.dtype {
	case Float32:
		v := make([]float32, n)
		for i := range v {
			v[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
		}
		a.Data = v
	case Float64:
		v := make([]float64, n)
		for i := range v {
			v[i] = math.Float64frombits(binary.LittleEndian.Uint64(data[8*i:]))
		}
		a.Data = v
	case Int32:
		v := make([]int32, n)
		for i := range v {
			v[i] = int32(binary.LittleEndian.Uint32(data[4*i:]))
		}
		a.Data = v
	case Int64:
		v := make([]int64, n)
		for i := range v {
			v[i] = int64(binary.LittleEndian.Uint64(data[8*i:]))
		}
		a.Data = v
	}
	return a, nil
}

type header struct {
	dtype DType
	shape []int
}

// parseHeader reads the header dictionary, a Python literal such as
// {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }.
func parseHeader(s string) (*header, error) {
	p := &lexer{s: strings.TrimRight(s, " \n")}
	if !p.eat('{') {
		return nil, errors.New("not a dictionary")
	}
	var h header
	seen := map[string]bool{}
	for {
		if p.eat('}') {
			break
		}
		key, err := p.str()
		if err != nil {
			return nil, fmt.Errorf("key: %v", err)
		}
		if seen[key] {
			return nil, fmt.Errorf("key %q appears twice", key)
		}
		seen[key] = true
		if !p.eat(':') {
			return nil, fmt.Errorf("no ':' after key %q", key)
		}
		switch key {
		case "descr":
			d, err := p.str()
			if err != nil {
				return nil, fmt.Errorf("descr: %v", err)
			}
			dt, ok := descrs[d]
			if !ok {
				return nil, fmt.Errorf("dtype %q is not supported (want little-endian float32 '<f4', float64 '<f8', int32 '<i4' or int64 '<i8')", d)
			}
			h.dtype = dt
		case "fortran_order":
			w := p.word()
			switch w {
			case "False":
			case "True":
				return nil, errors.New("Fortran-order arrays are not supported; save a C-order array (np.ascontiguousarray)")
			default:
				return nil, fmt.Errorf("fortran_order is %q, want True or False", w)
			}
		case "shape":
			if h.shape, err = p.tuple(); err != nil {
				return nil, fmt.Errorf("shape: %v", err)
			}
		default:
			return nil, fmt.Errorf("unexpected key %q", key)
		}
		if !p.eat(',') {
			if !p.eat('}') {
				return nil, fmt.Errorf("expected ',' or '}' after the value of %q", key)
			}
			break
		}
	}
	if p.skip(); p.i != len(p.s) {
		return nil, fmt.Errorf("text after the dictionary: %q", p.s[p.i:])
	}
	for _, k := range []string{"descr", "fortran_order", "shape"} {
		if !seen[k] {
			return nil, fmt.Errorf("key %q is missing", k)
		}
	}
	return &h, nil
}

// lexer walks a Python literal.
type lexer struct {
	s string
	i int
}

func (p *lexer) skip() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t' || p.s[p.i] == '\n') {
		p.i++
	}
}

func (p *lexer) eat(c byte) bool {
	p.skip()
	if p.i < len(p.s) && p.s[p.i] == c {
		p.i++
		return true
	}
	return false
}

// str reads a quoted string without escapes (all the header needs).
func (p *lexer) str() (string, error) {
	p.skip()
	if p.i >= len(p.s) || (p.s[p.i] != '\'' && p.s[p.i] != '"') {
		return "", errors.New("expected a quoted string")
	}
	q := p.s[p.i]
	end := strings.IndexByte(p.s[p.i+1:], q)
	if end < 0 {
		return "", errors.New("unterminated string")
	}
	v := p.s[p.i+1 : p.i+1+end]
	if strings.ContainsRune(v, '\\') {
		return "", errors.New("escapes are not supported")
	}
	p.i += end + 2
	return v, nil
}

// word reads a bare identifier or number.
func (p *lexer) word() string {
	p.skip()
	j := p.i
	for j < len(p.s) && (p.s[j] == '_' || p.s[j] >= '0' && p.s[j] <= '9' || p.s[j] >= 'a' && p.s[j] <= 'z' || p.s[j] >= 'A' && p.s[j] <= 'Z') {
		j++
	}
	w := p.s[p.i:j]
	p.i = j
	return w
}

// tuple reads a tuple of non-negative ints: (), (3,), (2, 3).
func (p *lexer) tuple() ([]int, error) {
	if !p.eat('(') {
		return nil, errors.New("expected a tuple")
	}
	dims := []int{}
	for {
		if p.eat(')') {
			return dims, nil
		}
		w := p.word()
		d, err := strconv.Atoi(strings.TrimSuffix(w, "L"))
		if err != nil || d < 0 {
			return nil, fmt.Errorf("dimension %q is not a non-negative integer", w)
		}
		dims = append(dims, d)
		if !p.eat(',') {
			if !p.eat(')') {
				return nil, errors.New("expected ',' or ')'")
			}
			if len(dims) == 1 {
				return nil, errors.New("a one-element tuple needs a trailing comma")
			}
			return dims, nil
		}
	}
}

// Encode renders a as a .npy file (version 1.0 unless the header needs
// 2.0), with the header padded so the data starts on a 64-byte boundary as
// NumPy does.
func Encode(a *Array) ([]byte, error) {
	descr := a.DType.descr()
	if descr == "" {
		return nil, fmt.Errorf("npy: unsupported element type %q", a.DType)
	}
	n := 1
	for _, d := range a.Shape {
		if d < 0 {
			return nil, fmt.Errorf("npy: shape %v has a negative dimension", a.Shape)
		}
		n *= d
	}
	if a.DType != typeOf(a.Data) {
		return nil, fmt.Errorf("npy: element type %s with data of Go type %T", a.DType, a.Data)
	}
	if l := a.Len(); l != n {
		return nil, fmt.Errorf("npy: shape %v needs %d elements, data has %d (%T)", a.Shape, n, l, a.Data)
	}
	var shape strings.Builder
	shape.WriteByte('(')
	for i, d := range a.Shape {
		if i > 0 {
			shape.WriteString(", ")
		}
		shape.WriteString(strconv.Itoa(d))
	}
	if len(a.Shape) == 1 {
		shape.WriteByte(',')
	}
	shape.WriteByte(')')
	dict := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, shape.String())
	pre := 10
	if len(dict)+1+64 > math.MaxUint16 {
		pre = 12
	}
	hlen := (pre + len(dict) + 1 + 63) / 64 * 64
	var buf bytes.Buffer
	buf.Grow(hlen + n*a.DType.Size())
	buf.WriteString(magic)
	if pre == 10 {
		buf.Write([]byte{1, 0})
		binary.Write(&buf, binary.LittleEndian, uint16(hlen-pre))
	} else {
		buf.Write([]byte{2, 0})
		binary.Write(&buf, binary.LittleEndian, uint32(hlen-pre))
	}
	buf.WriteString(dict)
	buf.WriteString(strings.Repeat(" ", hlen-pre-len(dict)-1))
	buf.WriteByte('\n')
	var err error
	switch d := a.Data.(type) {
	case []float32:
		err = binary.Write(&buf, binary.LittleEndian, d)
	case []float64:
		err = binary.Write(&buf, binary.LittleEndian, d)
	case []int32:
		err = binary.Write(&buf, binary.LittleEndian, d)
	case []int64:
		err = binary.Write(&buf, binary.LittleEndian, d)
	}
	if err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func typeOf(data any) DType {
	switch data.(type) {
	case []float32:
		return Float32
	case []float64:
		return Float64
	case []int32:
		return Int32
	case []int64:
		return Int64
	}
	return ""
}

// WriteFile writes a to path atomically: through a temporary file in the
// same folder, renamed into place only when complete, so that a failure
// never leaves a partial file.
func WriteFile(path string, a *Array) error {
	b, err := Encode(a)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return WriteAtomic(path, func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	})
}

// WriteAtomic creates path through a temporary file in its folder: fill
// writes the content, and only a complete file is renamed into place.
func WriteAtomic(path string, fill func(io.Writer) error) error {
	return atomicfile.Write(path, fill)
}
