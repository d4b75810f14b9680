package torchpickle

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/sslzoo/sslzoo/internal/fuzzcheck"
	"github.com/sslzoo/sslzoo/weights"
)

// The fixtures come from scripts/gen_import_golden.py (PyTorch 1.13); run
// `go test ./weights/ckptimport -update` to regenerate them.

// loadPickle runs the unpickler over a bare pickle.
func loadPickle(b []byte) (any, error) {
	return newUnpickler(newReader(bytes.NewReader(b), int64(len(b))), nil).load()
}

// plainJSON renders a decoded value the way the fixture script renders the
// Python value it pickled (gen_import_golden.py plain_json).
func plainJSON(t *testing.T, v any) any {
	t.Helper()
	switch x := v.(type) {
	case nil, bool, float64, string:
		return x
	case int64:
		if x > -(1<<53) && x < 1<<53 {
			return x
		}
		return map[string]any{"int": big.NewInt(x).String()}
	case *big.Int:
		return map[string]any{"int": x.String()}
	case Bytes:
		return map[string]any{"bytes": hex.EncodeToString(x)}
	case Tuple:
		out := []any{}
		for _, e := range x {
			out = append(out, plainJSON(t, e))
		}
		return out
	case *List:
		return plainJSON(t, Tuple(x.Items))
	case *Set:
		out := plainJSON(t, Tuple(x.Items)).([]any)
		sort.Slice(out, func(i, j int) bool { return out[i].(int64) < out[j].(int64) })
		return out
	case *Dict:
		out := map[string]any{}
		for i := range x.Len() {
			out[x.Key(i).(string)] = plainJSON(t, x.Value(i))
		}
		return out
	case *Object:
		if x.Class.String() == "argparse.Namespace" {
			return map[string]any{"Namespace": plainJSON(t, x.State)}
		}
	}
	t.Fatalf("unexpected %s", typeName(v))
	return nil
}

func canonical(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func expectedPlain(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile("testdata/expected.json")
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	return canonical(t, v)
}

// TestPlainPickles decodes the same plain data pickled at protocols 0 to 5
// (text opcodes, copyreg._reconstructor, _codecs.encode bytes, frames,
// memoize, sets) to what Python pickled.
func TestPlainPickles(t *testing.T) {
	want := expectedPlain(t)
	for proto := range 6 {
		name := filepath.Join("testdata", "plain_p"+string(rune('0'+proto))+".pkl")
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			v, err := loadPickle(b)
			if err != nil {
				t.Fatal(err)
			}
			if got := canonical(t, plainJSON(t, v)); got != want {
				t.Errorf("decoded\n%s\nwant\n%s", got, want)
			}
		})
	}
}

// TestTorchSaveFiles reads every tensor of the zip and legacy fixtures,
// at several pickle protocols, byte for byte against PyTorch's contiguous
// copies: dtypes, storage offsets, transposed and strided views, an
// expanded row, a scalar, an empty tensor and a Parameter.
func TestTorchSaveFiles(t *testing.T) {
	want, err := weights.Read("testdata/expected.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	plain := expectedPlain(t)
	for _, name := range []string{"zip_p1", "zip_p2", "zip_p4", "zip_p5", "legacy_p1", "legacy_p2"} {
		t.Run(name, func(t *testing.T) {
			c, err := Open(filepath.Join("testdata", name+".pth"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if wantFormat := strings.Split(name, "_")[0]; c.Format != wantFormat {
				t.Errorf("format %q, want %q", c.Format, wantFormat)
			}
			root := c.Root.(*Dict)
			tv, _ := root.Get("tensors")
			ts := tv.(*Dict)
			if ts.Len() != len(want.Tensors) {
				t.Errorf("%d tensors, want %d", ts.Len(), len(want.Tensors))
			}
			for i := range ts.Len() {
				k := ts.Key(i).(string)
				pt := ts.Value(i).(*Tensor)
				got, err := pt.Read()
				if err != nil {
					t.Errorf("%s: %v", k, err)
					continue
				}
				w := want.Tensors[k]
				if got.DType != w.DType || !slices.Equal(got.Shape, w.Shape) || !bytes.Equal(got.Data, w.Data) {
					t.Errorf("%s: %s %v %x, want %s %v %x", k, got.DType, got.Shape, got.Data, w.DType, w.Shape, w.Data)
				}
			}
			// The views really are views, so the gather path ran.
			tr, _ := ts.Get("transposed")
			off, _ := ts.Get("offset")
			if tr.(*Tensor).contiguous() || off.(*Tensor).Offset == 0 {
				t.Error("fixture views were saved contiguous")
			}
			pv, _ := root.Get("plain")
			if got := canonical(t, plainJSON(t, pv)); got != plain {
				t.Errorf("plain data\n%s\nwant\n%s", got, plain)
			}
		})
	}
}

// hostilePickle is a bare pickle that must fail with an error containing
// want.
type hostilePickle struct{ name, pickle, want string }

// hostilePickles are TestHostilePickles' cases, also FuzzUnpickle's seeds.
func hostilePickles() []hostilePickle {
	nest := []byte("\x80\x02})q\x000")
	for range 40 {
		nest = append(nest, "h\x00h\x00\x86q\x000"...)
	}
	nest = append(nest, "h\x00Ns."...)
	return []hostilePickle{
		{"opcode 0xff", "\xff", "unknown opcode"},
		{"empty", "", "truncated"},
		{"no STOP", "\x80\x02K\x01", "truncated"},
		{"odd DICT", "(K\x01d.", "items for key/value pairs"},
		{"BINBYTES8 of 1 TiB", "\x80\x04\x8e\x00\x00\x00\x00\x00\x01\x00\x00", "declares 1099511627776 bytes"},
		{"BINUNICODE of 4 GiB", "X\xff\xff\xff\xff", "declares 4294967295 bytes"},
		{"FRAME of 2^62", "\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x40", "frame of"},
		{"LONG4 negative", "\x8b\xff\xff\xff\xff", "negative length"},
		{"missing memo", "h\x05.", "memo key 5"},
		{"underflow past MARK", "K\x01(\x85.", "stack underflow"},
		{"STOP on empty stack", ".", "stack underflow"},
		{"APPEND to an int", "K\x01K\x02a.", "APPEND to a int"},
		{"unhashable key", "}]Ns.", "unhashable key: list"},
		{"key blown up through the memo", string(nest), "nested too deeply or too long"},
		{"protocol 6", "\x80\x06N.", "pickle protocol 6"},
		{"EXT1", "\x82\x01.", "extension registry"},
		{"persistent id in a plain pickle", "K\x01Q.", "persistent id outside"},
		{"REDUCE of a non-global", "K\x01)R.", "call of a int"},
		{"REDUCE with list args", "ccollections\nOrderedDict\n]R.", "want a tuple"},
		{"NEWOBJ of a function", "ctorch._utils\n_rebuild_tensor_v2\n)\x81.", "is a function"},
		{"rebuild without storage", "ctorch._utils\n_rebuild_tensor_v2\n(K\x00K\x00)))NtR.", "want a storage"},
		{"bad STRING", "S'abc\n.", "not quoted"},
		{"non-UTF-8 str", "X\x01\x00\x00\x00\xff.", "not UTF-8"},
	}
}

// TestHostilePickles: bare pickles that must fail cleanly: no panic, no
// huge allocation, an error saying what is wrong.
func TestHostilePickles(t *testing.T) {
	for _, c := range hostilePickles() {
		t.Run(c.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := loadPickle([]byte(c.pickle))
			runtime.ReadMemStats(&after)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<20 {
				t.Errorf("allocated %d bytes for a %d-byte pickle", grew, len(c.pickle))
			}
		})
	}
}

// TestLongKeyReused: a key used again costs no memory however long it
// is. Each SETITEM of a memoized key used to render the whole key in
// memory: a 60 KB str key set 2000 times took 250 MB for a 68 KB pickle.
func TestLongKeyReused(t *testing.T) {
	b := longKeyReused(60000, 2000)
	fuzzcheck.Bounded(t, fuzzcheck.Limit(len(b), picklePerByte), func() {
		v, err := loadPickle(b)
		if d, ok := v.(*Dict); err != nil || !ok || d.Len() != 1 {
			t.Fatalf("got %s, %v; want a dict of one key", typeName(v), err)
		}
	})
}

// TestPickleValues covers decodings the fixtures do not: LONG1 of length
// 0 (Python's 0), sign extension, text-mode ints and longs.
func TestPickleValues(t *testing.T) {
	cases := []struct {
		pickle string
		want   any
	}{
		{"\x8a\x00.", int64(0)},
		{"\x8a\x01\xff.", int64(-1)},
		{"\x8a\x02\x00\x80.", int64(-32768)},
		{"\x8a\x08\xff\xff\xff\xff\xff\xff\xff\x7f.", int64(1<<63 - 1)},
		{"J\xfe\xff\xff\xff.", int64(-2)},
		{"I01\n.", true},
		{"I-17\n.", int64(-17)},
		{"L12L\n.", int64(12)},
		{"F-0.5\n.", -0.5},
		{"S'a\\'b\\x41'\n.", "a'bA"},
		{"V\\u00e9\n.", "é"},
		{"(K\x01K\x02\x8b\x00\x00\x00\x00u.", nil}, // SETITEMS on an int: checked below
	}
	for _, c := range cases[:len(cases)-1] {
		v, err := loadPickle([]byte(c.pickle))
		if err != nil || v != c.want {
			t.Errorf("%q: %v (%v), want %v", c.pickle, v, err, c.want)
		}
	}
	if _, err := loadPickle([]byte(cases[len(cases)-1].pickle)); err == nil {
		t.Error("SETITEMS without a dict was accepted")
	}
}

// TestRefusedGlobals: every way a pickle can name a global goes through
// the allowlist, and the error names the global.
func TestRefusedGlobals(t *testing.T) {
	cases := []struct{ pickle, global string }{
		{"cos\nsystem\n(S'echo pwned'\ntR.", "os.system"},
		{"\x80\x04\x8c\x02os\x8c\x06system\x93\x8c\x0becho pwned\x85R.", "os.system"},
		{"(S'echo pwned'\nios\nsystem\n.", "os.system"},
		{"c__builtin__\neval\n.", "builtins.eval"},
		{"cbuiltins\ngetattr\n.", "builtins.getattr"},
		{"csubprocess\nPopen\n.", "subprocess.Popen"},
		{"cmymodel\nNet\n.", "mymodel.Net"},
		{"ctorch.nn.modules.conv\nConv2d\n.", "torch.nn.modules.conv.Conv2d"},
	}
	for _, c := range cases {
		_, err := loadPickle([]byte(c.pickle))
		var re *RefusedError
		if !errors.As(err, &re) || re.Global != c.global || !strings.Contains(err.Error(), "refused global "+c.global) {
			t.Errorf("%q: error %v, want a refusal of %s", c.pickle, err, c.global)
		}
	}
}

// TestTruncatedFiles cuts the fixtures short everywhere: Open must fail
// with an error naming the file, never panic. (A zip loses its central
// directory; a legacy file's pickles or storages are checked against the
// file's size.)
func TestTruncatedFiles(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"zip_p2.pth", "legacy_p2.pth"} {
		full, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		for n := 0; n < len(full); n += 1 + n%13 {
			if err := os.WriteFile(p, full[:n], 0o644); err != nil {
				t.Fatal(err)
			}
			c, err := Open(p)
			if err == nil {
				c.Close()
				t.Fatalf("%s cut at %d of %d bytes opened", name, n, len(full))
			}
			if !strings.Contains(err.Error(), p) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("cut at %d: error %q does not name the file on one line", n, err)
			}
		}
	}
}

// notCheckpoint is a file that is no torch.save checkpoint and the error
// it must get.
type notCheckpoint struct{ name, content, want string }

// notCheckpoints are TestNotACheckpoint's files, also FuzzOpen's seeds.
func notCheckpoints() []notCheckpoint {
	return []notCheckpoint{
		{"empty.pth", "", "empty file"},
		{"text.pth", "hello, world\n", "not a PyTorch checkpoint"},
		{"plain.pkl", "\x80\x02}q\x00.", "without torch's magic number"},
		{"model.safetensors", "\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":1}        ", "a safetensors file"},
		{"tar.pth", strings.Repeat("\x00", 257) + "ustar" + strings.Repeat("\x00", 300), "tar archive"},
	}
}

// TestNotACheckpoint: other files get a one-line error saying what they are.
func TestNotACheckpoint(t *testing.T) {
	dir := t.TempDir()
	for _, c := range notCheckpoints() {
		p := filepath.Join(dir, c.name)
		if err := os.WriteFile(p, []byte(c.content), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Open(p)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: error %v, want one naming the file and containing %q", c.name, err, c.want)
		}
	}
}
