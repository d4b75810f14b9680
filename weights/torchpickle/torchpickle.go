// Package torchpickle reads PyTorch checkpoints (torch.save files: .pth,
// .pth.tar, .ckpt, .bin) without Python and without executing anything in
// them.
//
// Both container formats are read: the zip archive torch.save writes since
// PyTorch 1.6 (archive/data.pkl plus one record per storage) and the
// legacy format before it (magic number, protocol and system pickles, the
// object pickle, the storage keys, then each storage's element count and
// bytes), which MoCo v2's released weights still use.
//
// Unpickling is safe in the sense of torch.load(weights_only=True): every
// global a pickle names is checked against an allowlist (allow.go) and
// refused otherwise, naming it (os.system, builtins.eval,
// subprocess.Popen, ...). Nothing is imported or called: the tensor
// rebuilding functions are interpreted here, and the plain-data classes
// checkpoints carry beside their weights (argparse.Namespace, OmegaConf and
// Lightning configs, numpy scalars) become inert Objects. Every size a file
// declares is checked against what the file holds before memory is
// allocated for it, and tensor bytes are read only when asked for.
//
// Why not github.com/nlpodyssey/gopickle (v0.2.0), which the design names:
// its unpickler allocates whatever length a pickle declares before reading
// (an 11-byte BINBYTES8 pickle asks for 1 TiB and kills the process with an
// unrecoverable out-of-memory error), panics on opcode 0xff, on LONG1 of
// length 0 and on an odd-length DICT, resolves unknown globals to generic
// classes instead of refusing them, and its pytorch package panics on
// legacy storage views and allocates every storage at its declared size
// before reading it. Those are exactly the inputs an importer of
// downloaded files must survive.
package torchpickle

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"sort"
	"strings"
)

// Checkpoint is an opened torch.save file.
type Checkpoint struct {
	Path string
	// Format is "zip" (PyTorch >= 1.6) or "legacy".
	Format string
	// Root is the unpickled object: usually a *Dict (a state_dict, or a
	// dict holding one).
	Root any

	f io.Closer // nil when read from memory
}

// Close releases the file; tensors cannot be read afterwards.
func (c *Checkpoint) Close() error {
	if c.f == nil {
		return nil
	}
	return c.f.Close()
}

// Open reads a checkpoint's pickle and leaves its tensor data in the file.
func Open(path string) (*Checkpoint, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("torchpickle: %w", err)
	}
	fi, err := f.Stat()
	if err == nil {
		var c *Checkpoint
		if c, err = open(f, fi.Size(), path); err == nil {
			c.f = f
			return c, nil
		}
	}
	f.Close()
	return nil, fmt.Errorf("torchpickle: %s: %w", path, err)
}

// open reads a checkpoint of size bytes from r (Open's file, or bytes in
// memory for the fuzz target); tensors read from r later.
func open(r io.ReaderAt, size int64, path string) (*Checkpoint, error) {
	head := make([]byte, 512+8)
	n, err := r.ReadAt(head, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	head = head[:n]
	c := &Checkpoint{Path: path}
	switch {
	case n == 0:
		return nil, errors.New("empty file")
	case bytes.HasPrefix(head, []byte("PK\x03\x04")) || bytes.HasPrefix(head, []byte("PK\x05\x06")):
		c.Format = "zip"
		c.Root, err = loadZip(r, size)
	case n >= 262 && string(head[257:262]) == "ustar":
		return nil, errors.New("a tar archive: the PyTorch 0.3-era tar checkpoint layout is not supported (load and re-save it with a newer PyTorch)")
	case n >= 9 && head[8] == '{' && head[0] != 0x80:
		return nil, errors.New("a safetensors file, not a torch.save pickle")
	default:
		c.Format = "legacy"
		c.Root, err = loadLegacy(r, size)
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}

// loadZip reads the zip format: <dir>/data.pkl unpickled with storages
// resolved to the records <dir>/data/<key>.
func loadZip(f io.ReaderAt, size int64) (any, error) {
	zr, err := zip.NewReader(f, size)
	if err != nil {
		return nil, fmt.Errorf("zip checkpoint: %w (truncated or not a torch.save file)", err)
	}
	records := map[string]*zip.File{}
	var pkl *zip.File
	for _, zf := range zr.File {
		records[zf.Name] = zf
		// torch.save writes one top-level folder (named after the file).
		if strings.HasSuffix(zf.Name, "/data.pkl") && strings.Count(zf.Name, "/") == 1 {
			if pkl != nil {
				return nil, fmt.Errorf("zip checkpoint holds two pickles, %s and %s", odd(pkl.Name), odd(zf.Name))
			}
			pkl = zf
		}
	}
	if pkl == nil {
		return nil, errors.New("zip archive without <folder>/data.pkl: not a torch.save checkpoint")
	}
	prefix := strings.TrimSuffix(pkl.Name, "data.pkl")
	if _, ok := records[prefix+"constants.pkl"]; ok {
		return nil, errors.New("a TorchScript archive (torch.jit.save), not a torch.save checkpoint: save the model's state_dict with torch.save")
	}
	if bo, ok := records[prefix+"byteorder"]; ok {
		b, err := readSmall(bo, 16)
		if err != nil {
			return nil, err
		}
		if string(b) != "little" {
			return nil, fmt.Errorf("byte order %q: only little-endian checkpoints are supported", b)
		}
	}
	plen, err := zipSize(pkl)
	if err != nil {
		return nil, err
	}
	rc, err := pkl.Open()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", odd(pkl.Name), err)
	}
	defer rc.Close()

	storages := map[string]*Storage{}
	persistent := func(pid any) (any, error) {
		// ('storage', storage_type, key, location, numel): torch 1.13
		// serialization.py _save / _load.
		t, ok := pid.(Tuple)
		if !ok || len(t) != 5 {
			return nil, fmt.Errorf("persistent id %s, want a 5-tuple", typeName(pid))
		}
		if s, _ := pyString(t[0]); s != "storage" {
			return nil, fmt.Errorf("persistent id of kind %s, want \"storage\"", show(t[0]))
		}
		typ, _ := t[1].(*Global)
		key, ok1 := pyString(t[2])
		loc, ok2 := pyString(t[3])
		numel, ok3 := asInt(t[4])
		if !ok1 || !ok2 || !ok3 {
			return nil, errors.New("malformed storage persistent id")
		}
		if s, ok := storages[key]; ok {
			if typ == nil || typ.storage == nil || s.Type != typ.storage.name || s.Numel != numel {
				return nil, fmt.Errorf("storage %q declared twice with different types or sizes", key)
			}
			return s, nil
		}
		s, err := newStorage(typ, key, loc, numel)
		if err != nil {
			return nil, err
		}
		rec, ok := records[prefix+"data/"+key]
		if !ok {
			return nil, fmt.Errorf("%s %q: no record %s", s.Type, key, odd(prefix+"data/"+key))
		}
		need := numel * int64(s.ElemSize)
		have, err := zipSize(rec)
		if err != nil {
			return nil, err
		}
		if have < need {
			return nil, fmt.Errorf("%s %q declares %d elements (%d bytes) but its record %s holds %d bytes", s.Type, key, numel, need, odd(rec.Name), have)
		}
		if rec.Method == zip.Store {
			off, err := rec.DataOffset()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", odd(rec.Name), err)
			}
			if off+need > size {
				return nil, fmt.Errorf("record %s ends past the end of the file (truncated?)", odd(rec.Name))
			}
			s.src = fileSource{r: f, off: off, n: need}
		} else {
			s.src = &zipSource{f: rec, n: need}
		}
		storages[key] = s
		return s, nil
	}
	u := newUnpickler(newReader(rc, plen), persistent)
	root, err := u.load()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", odd(pkl.Name), err)
	}
	return root, nil
}

// zipSize is a record's uncompressed size, refusing compression ratios
// deflate cannot reach (about 1032:1): a record's size is what the file
// backs before anything is allocated for it.
func zipSize(zf *zip.File) (int64, error) {
	n := zf.UncompressedSize64
	if zf.Method == zip.Store {
		if n != zf.CompressedSize64 {
			return 0, fmt.Errorf("record %s: stored sizes disagree", odd(zf.Name))
		}
	} else if n > 1032*zf.CompressedSize64+1024 {
		return 0, fmt.Errorf("record %s: %d bytes from %d compressed is beyond deflate's ratio (corrupt)", odd(zf.Name), n, zf.CompressedSize64)
	}
	if n > 1<<62 {
		return 0, fmt.Errorf("record %s: %d bytes", odd(zf.Name), n)
	}
	return int64(n), nil
}

func readSmall(zf *zip.File, max int64) ([]byte, error) {
	n, err := zipSize(zf)
	if err != nil {
		return nil, err
	}
	if n > max {
		return nil, fmt.Errorf("record %s: %d bytes, want at most %d", odd(zf.Name), n, max)
	}
	rc, err := zf.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b := make([]byte, n)
	if _, err := io.ReadFull(rc, b); err != nil {
		return nil, fmt.Errorf("record %s: %w", odd(zf.Name), truncated(err))
	}
	return b, nil
}

// legacyMagic is torch's MAGIC_NUMBER (serialization.py).
var legacyMagic, _ = new(big.Int).SetString("1950a86a20f9469cfc6c", 16)

// loadLegacy reads the pre-1.6 format (torch 1.13 serialization.py
// _legacy_save / _legacy_load).
func loadLegacy(f io.ReaderAt, size int64) (any, error) {
	r := newReader(io.NewSectionReader(f, 0, size), size)
	magic, err := newUnpickler(r, nil).load()
	if err != nil {
		return nil, fmt.Errorf("not a PyTorch checkpoint (neither a zip archive nor torch's legacy pickle format): %w", err)
	}
	if m, ok := magic.(*big.Int); !ok || m.Cmp(legacyMagic) != 0 {
		return nil, errors.New("a pickle without torch's magic number: not a torch.save checkpoint")
	}
	ver, err := newUnpickler(r, nil).load()
	if err != nil {
		return nil, err
	}
	if v, ok := ver.(int64); !ok || v != 1001 {
		return nil, fmt.Errorf("legacy protocol version %s, want 1001", show(ver))
	}
	sys, err := newUnpickler(r, nil).load()
	if err != nil {
		return nil, err
	}
	if d, ok := sys.(*Dict); ok {
		if le, ok := d.Get("little_endian"); ok && le != true {
			return nil, errors.New("saved on a big-endian machine: not supported")
		}
	}

	roots := map[string]*Storage{}
	views := map[string]*Storage{}
	persistent := func(pid any) (any, error) {
		t, ok := pid.(Tuple)
		if !ok || len(t) == 0 {
			return nil, fmt.Errorf("persistent id %s, want a tuple", typeName(pid))
		}
		if kind, _ := pyString(t[0]); kind == "module" {
			return nil, errors.New("a pickled nn.Module class (torch.save(model)): re-save the model's state_dict")
		}
		// ('storage', storage_type, root_key, location, numel, view_metadata)
		if s, _ := pyString(t[0]); s != "storage" || len(t) != 6 {
			return nil, fmt.Errorf("persistent id %s of length %d, want a 6-tuple starting \"storage\"", show(t[0]), len(t))
		}
		typ, _ := t[1].(*Global)
		key, ok1 := pyString(t[2])
		loc, ok2 := pyString(t[3])
		numel, ok3 := asInt(t[4])
		if !ok1 || !ok2 || !ok3 {
			return nil, errors.New("malformed storage persistent id")
		}
		root, ok := roots[key]
		if !ok {
			s, err := newStorage(typ, key, loc, numel)
			if err != nil {
				return nil, err
			}
			roots[key] = s
			root = s
		}
		if t[5] == nil {
			return root, nil
		}
		// A view of the root storage (files from before PyTorch 1.0).
		vm, ok := t[5].(Tuple)
		if !ok || len(vm) != 3 {
			return nil, errors.New("malformed storage view metadata")
		}
		vkey, ok1 := pyString(vm[0])
		voff, ok2 := asInt(vm[1])
		vn, ok3 := asInt(vm[2])
		if !ok1 || !ok2 || !ok3 || voff < 0 || vn < 0 || voff > root.Numel || vn > root.Numel-voff {
			return nil, fmt.Errorf("storage view %s outside its %d-element root %q", show(t[5]), root.Numel, key)
		}
		if v, ok := views[vkey]; ok {
			return v, nil
		}
		v := *root
		v.Key, v.Numel, v.root, v.base, v.src = vkey, vn, root, voff, nil
		views[vkey] = &v
		return &v, nil
	}
	root, err := newUnpickler(r, persistent).load()
	if err != nil {
		return nil, err
	}
	keysV, err := newUnpickler(r, nil).load()
	if err != nil {
		return nil, fmt.Errorf("storage key list: %w", err)
	}
	keys, ok := keysV.(*List)
	if !ok {
		return nil, fmt.Errorf("storage key list is a %s", typeName(keysV))
	}
	// Each storage: its element count as int64, then its bytes.
	pos := r.pos
	var count [8]byte
	for _, kv := range keys.Items {
		key, ok := pyString(kv)
		if !ok {
			return nil, fmt.Errorf("storage key %s, want str", typeName(kv))
		}
		s, ok := roots[key]
		if !ok {
			return nil, fmt.Errorf("storage %q is listed but no tensor uses it", key)
		}
		if s.src != nil {
			return nil, fmt.Errorf("storage %q is listed twice", key)
		}
		if _, err := f.ReadAt(count[:], pos); err != nil {
			return nil, fmt.Errorf("storage %q: the file ends before its data (truncated?)", key)
		}
		n := int64(le64(count[:]))
		if n != s.Numel {
			return nil, fmt.Errorf("%s %q: the file stores %d elements, its tensors declared %d", s.Type, key, n, s.Numel)
		}
		need := n * int64(s.ElemSize)
		if need > size-pos-8 {
			return nil, fmt.Errorf("%s %q: %d bytes of data but the file ends %d bytes later (truncated?)", s.Type, key, need, size-pos-8)
		}
		s.src = fileSource{r: f, off: pos + 8, n: need}
		pos += 8 + need
	}
	var missing []string
	for k, s := range roots {
		if s.src == nil {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		for i, k := range missing {
			missing[i] = odd(k)
		}
		return nil, fmt.Errorf("storages %s have no data in the file", strings.Join(missing, ", "))
	}
	return root, nil
}

func le64(b []byte) uint64 {
	var v uint64
	for i := 7; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v
}
