package torchpickle

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/sslzoo/sslzoo/internal/fuzzcheck"
)

// picklePerByte bounds what one byte of a pickle may cost: an opcode byte
// pushes a 16-byte interface value (or a fresh empty dict, list or set),
// which the stack and the containers it lands in copy as they grow.
const picklePerByte = 256

// deflateRatio is the most a deflated zip record may inflate per
// compressed byte (zipSize refuses more).
const deflateRatio = 1032

// FuzzUnpickle: any bytes give an error of one line or a value, within
// the allocation bound, and every tensor it holds is in bounds of its
// storage (a bare pickle has no storages, so there are none). The seeds
// are the fixture pickles, TestHostilePickles' cases, refused globals and
// keys that once crashed the unpickler or cost more than the bound.
func FuzzUnpickle(f *testing.F) {
	files, _ := filepath.Glob("testdata/plain_p*.pkl")
	for _, p := range files {
		fuzzcheck.Seed(f, filepath.Base(p), fuzzcheck.File(f, p))
	}
	for _, c := range hostilePickles() {
		fuzzcheck.Seed(f, seedName(c.name), []byte(c.pickle))
	}
	fuzzcheck.Seed(f, "os_system", []byte("cos\nsystem\n(S'echo pwned'\ntR."))
	fuzzcheck.Seed(f, "stack_global_eval", []byte("\x80\x04\x8c\x08builtins\x8c\x04eval\x93\x8c\x01x\x85R."))
	fuzzcheck.Seed(f, "self_list", []byte("]q\x00h\x00a."))
	// A frozenset that ADDITEMS puts inside itself, then used as a key.
	fuzzcheck.Seed(f, "self_frozenset_key", []byte("cbuiltins\nfrozenset\n)\x81q\x00(h\x00\x90}h\x00Ns."))
	fuzzcheck.Seed(f, "long_key_reused", longKeyReused(600, 50)) // TestLongKeyReused's, small
	f.Fuzz(func(t *testing.T, b []byte) {
		fuzzcheck.Bounded(t, fuzzcheck.Limit(len(b), picklePerByte), func() {
			v, err := loadPickle(b)
			if err != nil {
				oneLine(t, err)
				return
			}
			if ts := tensorsIn(v, 1<<16); len(ts) > 0 {
				t.Fatalf("a bare pickle gave %d tensors", len(ts))
			}
		})
	})
}

// longKeyReused is a pickle that stores one n-byte str key into a dict
// times times through the memo, 4 bytes a time.
func longKeyReused(n, times int) []byte {
	b := []byte("\x80\x02}X")
	b = binary.LittleEndian.AppendUint32(b, uint32(n))
	b = append(b, bytes.Repeat([]byte("k"), n)...)
	b = append(b, "q\x01Ns"...)
	for range times {
		b = append(b, "h\x01Ns"...)
	}
	return append(b, '.')
}

// FuzzOpen: any file gives an error of one line or a checkpoint whose
// tensors lie inside their storages, each storage backed by bytes the
// file holds (or a deflated record that can hold them), and whose tensors
// read as data of their shape and dtype (the file's own bytes, for a
// contiguous tensor stored uncompressed), each Open and Read within the
// allocation bound. The seeds are the package's .pth fixtures, some cut
// short, one re-zipped with deflate, TestNotACheckpoint's files and
// ckptimport's small hostile checkpoints.
func FuzzOpen(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.pth")
	for _, p := range files {
		fuzzcheck.Seed(f, filepath.Base(p), fuzzcheck.File(f, p))
	}
	for _, name := range []string{"zip_p2.pth", "legacy_p2.pth"} {
		b := fuzzcheck.File(f, "testdata/"+name)
		fuzzcheck.Seed(f, name+"_cut_half", b[:len(b)/2])
		fuzzcheck.Seed(f, name+"_cut_tail", b[:len(b)-9])
	}
	fuzzcheck.Seed(f, "zip_p2_deflated.pth", deflated(f, fuzzcheck.File(f, "testdata/zip_p2.pth")))
	for _, c := range notCheckpoints() {
		fuzzcheck.Seed(f, c.name, []byte(c.content))
	}
	for _, name := range []string{"evil_os_system.pth", "evil_builtins_eval.pth", "huge_storage.pth", "huge_storage_legacy.pth"} {
		fuzzcheck.Seed(f, name, fuzzcheck.File(f, "../ckptimport/testdata/"+name))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var c *Checkpoint
		fuzzcheck.Bounded(t, fuzzcheck.Limit(len(b), picklePerByte), func() {
			var err error
			if c, err = open(bytes.NewReader(b), int64(len(b)), "fuzz.pth"); err != nil {
				oneLine(t, err)
				c = nil
			}
		})
		if c == nil {
			return
		}
		if c.Format != "zip" && c.Format != "legacy" {
			t.Fatalf("format %q", c.Format)
		}
		for _, x := range tensorsIn(c.Root, 64) {
			checkTensor(t, b, x)
		}
		if err := c.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	})
}

// checkTensor holds one tensor of a checkpoint read from b to the
// contract of FuzzOpen.
func checkTensor(t *testing.T, b []byte, x *Tensor) {
	if err := x.check(); err != nil {
		t.Fatalf("a checkpoint holds a tensor out of bounds: %v", err)
	}
	s := x.Storage
	if s.ElemSize < 1 || s.Numel < 0 || (s.DType != "" && s.DType.Size() != s.ElemSize) {
		t.Fatalf("%s %q: dtype %q, %d-byte elements, %d of them", s.Type, s.Key, s.DType, s.ElemSize, s.Numel)
	}
	root, base := s, int64(0)
	for root.root != nil {
		base += root.base
		root = root.root
	}
	if base+s.Numel > root.Numel {
		t.Fatalf("view %q of %d elements at %d of a %d-element storage", s.Key, s.Numel, base, root.Numel)
	}
	es := int64(s.ElemSize)
	backing := root.Numel * es
	var stored []byte // the storage's bytes in the file, when stored as is
	switch src := root.src.(type) {
	case fileSource:
		if src.n != backing || src.off < 0 || src.off+src.n > int64(len(b)) {
			t.Fatalf("%s %q of %d bytes at %d+%d of a %d-byte file", s.Type, s.Key, backing, src.off, src.n, len(b))
		}
		stored = b[src.off : src.off+src.n]
	case *zipSource:
		if src.n != backing || uint64(src.n) > deflateRatio*uint64(len(b))+1024 {
			t.Fatalf("%s %q of %d bytes from a deflated record of a %d-byte file", s.Type, s.Key, src.n, len(b))
		}
	default:
		t.Fatalf("%s %q has no data source (%T)", s.Type, s.Key, root.src)
	}
	// Read keeps at most the inflated record, the span it gathers from and
	// its copy: three times the storage.
	fuzzcheck.Bounded(t, fuzzcheck.Slack+3*uint64(backing), func() {
		out, err := x.Read()
		if err != nil {
			oneLine(t, err)
			if s.DType != "" && stored != nil {
				t.Fatalf("a tensor of a stored %s failed to read: %v", s.Type, err)
			}
			return
		}
		n := x.Numel()
		if out.DType != s.DType || !slices.Equal(out.Shape, x.Shape) || int64(len(out.Data)) != n*es {
			t.Fatalf("read %s %v of %d bytes from a %s tensor %v", out.DType, out.Shape, len(out.Data), s.DType, x.Shape)
		}
		if stored != nil && n > 0 && x.contiguous() {
			at := (base + x.Offset) * es
			if !bytes.Equal(out.Data, stored[at:at+n*es]) {
				t.Fatalf("contiguous %v tensor at %d read other bytes than the file's", x.Shape, x.Offset)
			}
		}
	})
}

// tensorsIn collects up to max tensors reachable from v, visiting each
// container once (a pickle's memo can share or nest containers in
// themselves).
func tensorsIn(v any, max int) []*Tensor {
	var out []*Tensor
	seen := map[any]bool{}
	budget := 1 << 16
	var walk func(v any)
	walk = func(v any) {
		if budget--; budget < 0 || len(out) >= max {
			return
		}
		switch x := v.(type) {
		case *Tensor:
			out = append(out, x)
		case Tuple:
			if len(x) == 0 || seen[unsafe.SliceData(x)] {
				return
			}
			seen[unsafe.SliceData(x)] = true
			for _, e := range x {
				walk(e)
			}
		case *List:
			if !seen[x] {
				seen[x] = true
				walk(Tuple(x.Items))
			}
		case *Set:
			if !seen[x] {
				seen[x] = true
				walk(Tuple(x.Items))
			}
		case *Dict:
			if x != nil && !seen[x] {
				seen[x] = true
				walk(Tuple(x.keys))
				walk(Tuple(x.vals))
			}
		case *Object:
			if !seen[x] {
				seen[x] = true
				walk(Tuple(x.Args))
				walk(x.State)
				walk(x.Items)
				walk(Tuple(x.List))
			}
		}
	}
	walk(v)
	return out
}

// oneLine fails t unless err is a single line of text.
func oneLine(t *testing.T, err error) {
	t.Helper()
	if msg := err.Error(); msg == "" || strings.ContainsAny(msg, "\n\r") {
		t.Fatalf("error is not one line: %q", msg)
	}
}

// seedName turns a test case's name into a corpus file name.
func seedName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' {
			return r
		}
		return '_'
	}, s)
}

// deflated rewrites a zip checkpoint with every record compressed.
func deflated(f *testing.F, b []byte) []byte {
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		f.Fatal(err)
	}
	var out bytes.Buffer
	zw := zip.NewWriter(&out)
	for _, zf := range zr.File {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: zf.Name, Method: zip.Deflate})
		if err != nil {
			f.Fatal(err)
		}
		rc, err := zf.Open()
		if err != nil {
			f.Fatal(err)
		}
		if _, err := io.Copy(w, rc); err != nil {
			f.Fatal(err)
		}
		rc.Close()
	}
	if err := zw.Close(); err != nil {
		f.Fatal(err)
	}
	return out.Bytes()
}
