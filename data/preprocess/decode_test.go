package preprocess

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// pngHeader is a PNG signature and IHDR chunk declaring w x h RGBA pixels,
// with a correct CRC, and no pixel data.
func pngHeader(w, h uint32) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	chunk := make([]byte, 0, 17)
	chunk = append(chunk, "IHDR"...)
	chunk = binary.BigEndian.AppendUint32(chunk, w)
	chunk = binary.BigEndian.AppendUint32(chunk, h)
	chunk = append(chunk, 8, 6, 0, 0, 0)
	binary.Write(&b, binary.BigEndian, uint32(13))
	b.Write(chunk)
	binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(chunk))
	return b.Bytes()
}

func bmpHeader(w, h int32) []byte {
	b := make([]byte, 54)
	copy(b, "BM")
	binary.LittleEndian.PutUint32(b[2:], 54)
	binary.LittleEndian.PutUint32(b[10:], 54)
	binary.LittleEndian.PutUint32(b[14:], 40)
	binary.LittleEndian.PutUint32(b[18:], uint32(w))
	binary.LittleEndian.PutUint32(b[22:], uint32(h))
	binary.LittleEndian.PutUint16(b[26:], 1)
	binary.LittleEndian.PutUint16(b[28:], 24)
	return b
}

func gifHeader(w, h uint16) []byte {
	b := []byte("GIF89a")
	b = binary.LittleEndian.AppendUint16(b, w)
	b = binary.LittleEndian.AppendUint16(b, h)
	b = append(b, 0x80, 0, 0) // a 2-entry global colour table follows
	b = append(b, 0, 0, 0, 255, 255, 255)
	b = append(b, 0x2c, 0, 0, 0, 0)
	b = binary.LittleEndian.AppendUint16(b, w)
	b = binary.LittleEndian.AppendUint16(b, h)
	return append(b, 0, 2)
}

func jpegHeader(w, h uint16) []byte {
	// SOI, a JFIF APP0 (without it Go reads on past the frame header), SOF0.
	b := []byte{0xff, 0xd8, 0xff, 0xe0, 0, 16, 'J', 'F', 'I', 'F', 0, 1, 1, 0, 0, 1, 0, 1, 0, 0}
	b = append(b, 0xff, 0xc0, 0, 11, 8)
	b = binary.BigEndian.AppendUint16(b, h)
	b = binary.BigEndian.AppendUint16(b, w)
	return append(b, 1, 1, 0x11, 0)
}

func webpHeader(w, h uint32) []byte {
	chunk := []byte("VP8X")
	chunk = binary.LittleEndian.AppendUint32(chunk, 10)
	chunk = append(chunk, 0, 0, 0, 0)
	chunk = append(chunk, byte(w-1), byte((w-1)>>8), byte((w-1)>>16))
	chunk = append(chunk, byte(h-1), byte((h-1)>>8), byte((h-1)>>16))
	b := []byte("RIFF")
	b = binary.LittleEndian.AppendUint32(b, uint32(4+len(chunk)))
	b = append(b, "WEBP"...)
	return append(b, chunk...)
}

func writeTemp(t testing.TB, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDecodeRefusesBadFiles(t *testing.T) {
	dir := t.TempDir()
	good, err := os.ReadFile(filepath.Join(goldenDir, "rgba.png"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		file   []byte
		opts   DecodeOptions
		is     error  // wrapped cause, when one is promised
		says   string // part of the message
		offset bool   // a byte offset > 0 is reported
	}{
		{"truncated.png", good[:len(good)/2], DecodeOptions{}, nil, "not enough pixel data", true},
		{"garbage.png", []byte("hello, this is not an image at all"), DecodeOptions{}, image.ErrFormat, "not a PNG", false},
		{"empty.png", nil, DecodeOptions{}, image.ErrFormat, "not a PNG", false},
		{"huge.png", pngHeader(100000, 100000), DecodeOptions{}, ErrTooLarge, "100000x100000", false},
		{"huge.bmp", bmpHeader(100000, 100000), DecodeOptions{}, ErrTooLarge, "100000x100000", false},
		{"huge.gif", gifHeader(65535, 65535), DecodeOptions{}, ErrTooLarge, "65535x65535", false},
		{"huge.jpg", jpegHeader(60000, 60000), DecodeOptions{}, ErrTooLarge, "60000x60000", false},
		{"huge.webp", webpHeader(16384, 16384), DecodeOptions{}, ErrTooLarge, "16384x16384", false},
		{"over-pixel-limit.png", good, DecodeOptions{MaxPixels: 100}, ErrTooLarge, "40x30", false},
		{"over-byte-limit.png", good, DecodeOptions{MaxBytes: 100}, ErrTooLarge, "MaxBytes", false},
		{"header-only.png", pngHeader(8, 8), DecodeOptions{}, io.ErrUnexpectedEOF, "byte offset", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := writeTemp(t, dir, c.name, c.file)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			img, err := DecodeFile(path, c.opts)
			runtime.ReadMemStats(&after)
			if err == nil {
				t.Fatalf("decoded a %v image", img.Bounds())
			}
			msg := err.Error()
			var de *DecodeError
			if !errors.As(err, &de) || de.Path != path {
				t.Fatalf("%T %v: want a *DecodeError for %s", err, err, path)
			}
			if !strings.Contains(msg, path) || !strings.Contains(msg, c.says) || strings.Contains(msg, "\n") {
				t.Errorf("message %q: want one line naming %s and saying %q", msg, path, c.says)
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Errorf("%v does not wrap %v", err, c.is)
			}
			if c.offset != (de.Offset > 0) || de.Offset > de.Size {
				t.Errorf("offset %d of %d", de.Offset, de.Size)
			}
			// Refused from the header: nothing near the declared size was allocated.
			if got := after.TotalAlloc - before.TotalAlloc; got > 1<<20 {
				t.Errorf("allocated %d bytes before refusing", got)
			}
		})
	}
}

func TestDecodeOtherFailures(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.png")
	if _, err := DecodeFile(missing, DecodeOptions{}); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing file: %v", err)
	}
	if _, err := DecodeFile(dir, DecodeOptions{}); err == nil || !strings.Contains(err.Error(), "directory") {
		t.Errorf("directory: %v", err)
	}
}

// TestDecodeByContent: the name's extension plays no part.
func TestDecodeByContent(t *testing.T) {
	dir := t.TempDir()
	src := image.NewNRGBA(image.Rect(0, 0, 3, 2))
	for i := range src.Pix {
		src.Pix[i] = uint8(40 * i)
	}
	var b bytes.Buffer
	if err := png.Encode(&b, src); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a.jpg", "b.gif", "c", "d.PNG"} {
		img, err := DecodeFile(writeTemp(t, dir, name, b.Bytes()), DecodeOptions{})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := color.NRGBAModel.Convert(img.At(2, 1)).(color.NRGBA); got != src.NRGBAAt(2, 1) {
			t.Errorf("%s: pixel (2,1) = %v, want %v", name, got, src.NRGBAAt(2, 1))
		}
	}
	for _, c := range []struct {
		file string
		want Format
	}{{"rgba.png", PNG}, {"photo.jpg", JPEG}, {"palette.gif", GIF}, {"rgb.bmp", BMP}, {"lossy.webp", WebP}, {"lossless.webp", WebP}, {"rgb.tiff", TIFF}} {
		b, err := os.ReadFile(filepath.Join(goldenDir, c.file))
		if err != nil {
			t.Fatal(err)
		}
		if got := Sniff(b); got != c.want {
			t.Errorf("Sniff(%s) = %q, want %q", c.file, got, c.want)
		}
	}
}
