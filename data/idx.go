package data

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
)

// IDX element types (the third magic byte).
const (
	IDXUint8   = 0x08
	IDXInt8    = 0x09
	IDXInt16   = 0x0B
	IDXInt32   = 0x0C
	IDXFloat32 = 0x0D
	IDXFloat64 = 0x0E
)

var idxSize = map[byte]int{IDXUint8: 1, IDXInt8: 1, IDXInt16: 2, IDXInt32: 4, IDXFloat32: 4, IDXFloat64: 8}

// maxIDXBytes bounds what a header may ask us to allocate (4 GiB), so a
// corrupt dimension gives an error instead of an out-of-memory crash.
const maxIDXBytes = 1 << 32

// IDX is a decoded IDX file (LeCun's format for MNIST): an element type,
// dimensions, and the elements in their raw big-endian bytes.
type IDX struct {
	Type byte
	Dims []int
	Data []byte
}

// Uint8 returns the elements of an unsigned-byte file (no copy).
func (x *IDX) Uint8() ([]uint8, error) {
	if x.Type != IDXUint8 {
		return nil, fmt.Errorf("IDX element type 0x%02x, want 0x08 (unsigned byte)", x.Type)
	}
	return x.Data, nil
}

// Float64s converts the elements of any type to float64.
func (x *IDX) Float64s() []float64 {
	size := idxSize[x.Type]
	out := make([]float64, len(x.Data)/size)
	for i := range out {
		b := x.Data[i*size:]
		switch x.Type {
		case IDXUint8:
			out[i] = float64(b[0])
		case IDXInt8:
			out[i] = float64(int8(b[0]))
		case IDXInt16:
			out[i] = float64(int16(binary.BigEndian.Uint16(b)))
		case IDXInt32:
			out[i] = float64(int32(binary.BigEndian.Uint32(b)))
		case IDXFloat32:
			out[i] = float64(math.Float32frombits(binary.BigEndian.Uint32(b)))
		case IDXFloat64:
			out[i] = math.Float64frombits(binary.BigEndian.Uint64(b))
		}
	}
	return out
}

// offsetReader counts the bytes read through it.
type offsetReader struct {
	r io.Reader
	n int64
}

func (o *offsetReader) Read(p []byte) (int, error) {
	n, err := o.r.Read(p)
	o.n += int64(n)
	return n, err
}

// ReadIDX reads an IDX file, gzip-compressed or not (told apart by the gzip
// magic bytes, not the name). Errors name the file and the byte offset: in
// the file for raw files, and in the decompressed stream (plus the
// compressed position) for gzip files.
func ReadIDX(path string) (*IDX, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("idx: %w", err)
	}
	defer f.Close()
	file := &offsetReader{r: f}
	br := bufio.NewReaderSize(file, 1<<16)
	head, _ := br.Peek(2)
	if !bytes.Equal(head, []byte{0x1f, 0x8b}) {
		x, err := decodeIDX(br, func(off int64) string { return fmt.Sprintf("%s: byte offset %d", path, off) })
		if err != nil {
			return nil, err
		}
		return x, nil
	}
	gz, err := gzip.NewReader(br)
	if err != nil {
		return nil, fmt.Errorf("%s: byte offset %d: gzip header: %w", path, file.n-int64(br.Buffered()), err)
	}
	defer gz.Close()
	return decodeIDX(gz, func(off int64) string {
		return fmt.Sprintf("%s: byte offset %d of the decompressed data (compressed offset %d)", path, off, file.n-int64(br.Buffered()))
	})
}

// DecodeIDX reads an uncompressed IDX stream; name is used in errors.
func DecodeIDX(r io.Reader, name string) (*IDX, error) {
	return decodeIDX(r, func(off int64) string { return fmt.Sprintf("%s: byte offset %d", name, off) })
}

func decodeIDX(r io.Reader, where func(off int64) string) (*IDX, error) {
	cr := &offsetReader{r: r}
	fail := func(off int64, format string, args ...any) error {
		return fmt.Errorf("%s: %w", where(off), fmt.Errorf(format, args...))
	}
	short := func(what string, err error) error {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("%s: %s: %w", where(cr.n), what, err)
	}
	var magic [4]byte
	if _, err := io.ReadFull(cr, magic[:]); err != nil {
		return nil, short("IDX magic", err)
	}
	if magic[0] != 0 || magic[1] != 0 {
		return nil, fail(0, "not an IDX file (magic % x, want 00 00 type ndim)", magic)
	}
	size, ok := idxSize[magic[2]]
	if !ok {
		return nil, fail(2, "unknown IDX element type 0x%02x", magic[2])
	}
	nd := int(magic[3])
	if nd < 1 {
		return nil, fail(3, "IDX with %d dimensions", nd)
	}
	x := &IDX{Type: magic[2], Dims: make([]int, nd)}
	total := int64(size)
	for i := range x.Dims {
		var b [4]byte
		off := cr.n
		if _, err := io.ReadFull(cr, b[:]); err != nil {
			return nil, short(fmt.Sprintf("IDX dimension %d of %d", i, nd), err)
		}
		d := int64(binary.BigEndian.Uint32(b[:]))
		if d > 0 && total > maxIDXBytes/d {
			return nil, fail(off, "IDX dimensions %v... need more than %d bytes", x.Dims[:i], int64(maxIDXBytes))
		}
		total *= d
		x.Dims[i] = int(d)
	}
	// Grow the buffer as data arrives, doubling from 64 KiB up to 64 MiB
	// steps, so that a corrupt header on a short file costs an error and
	// about what the file holds, not the 4 GiB (or 64 MiB) it declares.
	x.Data = make([]byte, 0, min(total, 1<<16))
	for int64(len(x.Data)) < total {
		n := int(min(total-int64(len(x.Data)), max(int64(len(x.Data)), 1<<16), 1<<26))
		x.Data = append(x.Data, make([]byte, n)...)
		got, err := io.ReadFull(cr, x.Data[len(x.Data)-n:])
		if err != nil {
			return nil, short(fmt.Sprintf("IDX data for shape %v: %d of %d bytes", x.Dims, len(x.Data)-n+got, total), err)
		}
	}
	// Reading on to the end checks the gzip CRC and catches trailing junk.
	var extra [1]byte
	n, err := io.ReadFull(cr, extra[:])
	if n > 0 {
		rest, _ := io.Copy(io.Discard, cr)
		return nil, fail(cr.n-rest-1, "%d bytes after the IDX data for shape %v", rest+1, x.Dims)
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: after the IDX data: %w", where(cr.n), err)
	}
	return x, nil
}

// LoadIDXImages reads an images file (N x H x W, or N x H x W x C with C 1
// or 3, unsigned bytes) and an optional labels file (N unsigned bytes; ""
// for none) into an in-memory dataset.
func LoadIDXImages(name, imagesPath, labelsPath string) (*Images, error) {
	im, err := ReadIDX(imagesPath)
	if err != nil {
		return nil, err
	}
	pix, err := im.Uint8()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", imagesPath, err)
	}
	s := &Images{Name: name, C: 1}
	switch len(im.Dims) {
	case 3:
		s.N, s.H, s.W = im.Dims[0], im.Dims[1], im.Dims[2]
		s.Pix = pix
	case 4:
		s.N, s.H, s.W, s.C = im.Dims[0], im.Dims[1], im.Dims[2], im.Dims[3]
		if s.C != 1 && s.C != 3 {
			return nil, fmt.Errorf("%s: IDX images of shape %v: want 1 or 3 channels last", imagesPath, im.Dims)
		}
		s.Pix = hwcToCHW(pix, s.N, s.H, s.W, s.C)
	default:
		return nil, fmt.Errorf("%s: IDX shape %v is not N x H x W or N x H x W x C", imagesPath, im.Dims)
	}
	if s.N == 0 || s.H == 0 || s.W == 0 {
		return nil, fmt.Errorf("%s: empty IDX image set of shape %v", imagesPath, im.Dims)
	}
	if labelsPath == "" {
		return s, nil
	}
	lb, err := ReadIDX(labelsPath)
	if err != nil {
		return nil, err
	}
	lab, err := lb.Uint8()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", labelsPath, err)
	}
	if len(lb.Dims) != 1 || lb.Dims[0] != s.N {
		return nil, fmt.Errorf("%s: labels of shape %v for %d images in %s", labelsPath, lb.Dims, s.N, imagesPath)
	}
	s.Labels = make([]int, s.N)
	for i, v := range lab {
		s.Labels[i] = int(v)
	}
	return s, nil
}

func hwcToCHW(pix []uint8, n, h, w, c int) []uint8 {
	if c == 1 {
		return pix
	}
	out := make([]uint8, len(pix))
	per := h * w * c
	for i := 0; i < n; i++ {
		src, dst := pix[i*per:(i+1)*per], out[i*per:(i+1)*per]
		for p := 0; p < h*w; p++ {
			for ch := 0; ch < c; ch++ {
				dst[ch*h*w+p] = src[p*c+ch]
			}
		}
	}
	return out
}
