package torchpickle

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"math/big"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode"
)

// The unpickled values. Python's scalars map to Go's: None is nil, bool,
// int is int64 (or *big.Int beyond 64 bits), float is float64, str is
// string, bytes is Bytes. Containers and objects are the types below;
// tensors are *Tensor and storages *Storage.

// Bytes is a Python bytes or bytearray value.
type Bytes []byte

// Tuple is a Python tuple.
type Tuple []any

// List is a Python list.
type List struct{ Items []any }

// Set is a Python set or frozenset.
type Set struct {
	Items  []any
	Frozen bool
	seen   map[keyHash]bool
	key    *keyHash // a frozenset's own key, once used as one
}

func (s *Set) add(v any) error {
	k, err := hashKey(v)
	if err != nil {
		return err
	}
	if s.seen == nil {
		s.seen = map[keyHash]bool{}
	}
	if !s.seen[k] {
		s.seen[k] = true
		s.Items = append(s.Items, v)
		s.key = nil
	}
	return nil
}

// Dict is a Python dict or collections.OrderedDict, in insertion order (a
// state_dict's order is its module order).
type Dict struct {
	keys, vals []any
	index      map[keyHash]int
}

// NewDict returns an empty Dict.
func NewDict() *Dict { return &Dict{index: map[keyHash]int{}} }

// Set stores v under k, keeping the position of an existing key as Python
// does. Unhashable keys (lists, dicts, sets) are an error.
func (d *Dict) Set(k, v any) error {
	h, err := hashKey(k)
	if err != nil {
		return err
	}
	if d.index == nil {
		d.index = map[keyHash]int{}
	}
	if i, ok := d.index[h]; ok {
		d.vals[i] = v
		return nil
	}
	d.index[h] = len(d.keys)
	d.keys = append(d.keys, k)
	d.vals = append(d.vals, v)
	return nil
}

// Get returns the value under a string key.
func (d *Dict) Get(key string) (any, bool) {
	if d == nil {
		return nil, false
	}
	h, err := hashKey(key)
	if err != nil {
		return nil, false
	}
	i, ok := d.index[h]
	if !ok {
		return nil, false
	}
	return d.vals[i], true
}

// Len is the number of entries.
func (d *Dict) Len() int {
	if d == nil {
		return 0
	}
	return len(d.keys)
}

// Key and Value return the i-th entry in insertion order.
func (d *Dict) Key(i int) any   { return d.keys[i] }
func (d *Dict) Value(i int) any { return d.vals[i] }

// Global is a module-level name a pickle refers to (a class or function),
// resolved against the allowlist. Nothing is ever imported or called: the
// unpickler interprets the few tensor-building functions itself and
// records the rest as inert Objects.
type Global struct {
	Module, Name string
	kind         globalKind
	storage      *storageType // for torch.*Storage
}

// String is the dotted name, e.g. "torch._utils._rebuild_tensor_v2".
func (g *Global) String() string { return g.Module + "." + g.Name }

// Object is an instance of an allowed class (argparse.Namespace, an
// OmegaConf container, a numpy scalar, ...) recorded as data: its class,
// the arguments it would have been built from, the state BUILD would have
// set, and the items SETITEM(S) / APPEND(S) would have added for dict and
// list subclasses. No constructor or __setstate__ runs.
type Object struct {
	Class *Global
	Args  []any
	State any
	Items *Dict
	List  []any
}

// keyHash identifies a hashable value as Python's hash/eq would group
// them closely enough for checkpoints: equal ints, bools and integral
// floats collide, like 1 == True == 1.0 in Python. It is two seeded hashes
// of the value's rendering, which is streamed rather than built: a pickle
// can use one long key (a memoized string, a tuple nested through the
// memo) in every one of its 4-byte SETITEMs, and a rendering built in
// memory made each cost the key's whole length.
type keyHash [2]uint64

var keySeeds = [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}

// maxKeyLen bounds a rendering, which a pickle could otherwise blow up with
// tuples nested through memo references (each level doubling the size).
const maxKeyLen = 1 << 16

var errKeyTooLong = errors.New("dictionary key nested too deeply or too long")

// keyWriter streams a rendering into both hashes. Every value is written
// with a tag, and strings and containers with their length, so that no
// two values render the same.
type keyWriter struct {
	h   [2]maphash.Hash
	n   int
	buf [40]byte
}

func (w *keyWriter) write(b []byte) error {
	if w.n += len(b); w.n > maxKeyLen {
		return errKeyTooLong
	}
	w.h[0].Write(b)
	w.h[1].Write(b)
	return nil
}

func (w *keyWriter) writeString(s string) error {
	if w.n += len(s); w.n > maxKeyLen {
		return errKeyTooLong
	}
	w.h[0].WriteString(s)
	w.h[1].WriteString(s)
	return nil
}

// tag writes a one-byte tag and a number (a length, an int, a word).
func (w *keyWriter) tag(t byte, n uint64) error {
	return w.write(binary.LittleEndian.AppendUint64(append(w.buf[:0], t), n))
}

func hashKey(v any) (keyHash, error) { return hashKeyAt(v, 0) }

// hashKeyAt is hashKey of a value nested depth deep in a key (a
// frozenset's members are hashed on their own, yet count their depth, so
// that a frozenset holding itself through ADDITEMS ends in an error).
func hashKeyAt(v any, depth int) (keyHash, error) {
	var w keyWriter
	w.h[0].SetSeed(keySeeds[0])
	w.h[1].SetSeed(keySeeds[1])
	if err := w.key(v, depth); err != nil {
		return keyHash{}, err
	}
	return keyHash{w.h[0].Sum64(), w.h[1].Sum64()}, nil
}

func (w *keyWriter) key(v any, depth int) error {
	if depth > 32 {
		return errKeyTooLong
	}
	switch x := v.(type) {
	case nil:
		return w.tag('n', 0)
	case bool:
		if x {
			return w.tag('i', 1)
		}
		return w.tag('i', 0)
	case int64:
		return w.tag('i', uint64(x))
	case *big.Int: // beyond int64 (normInt), so equal to no int64
		words, neg := x.Bits(), uint64(0)
		if x.Sign() < 0 {
			neg = 1
		}
		if err := w.tag('I', uint64(len(words))<<1|neg); err != nil {
			return err
		}
		for _, d := range words {
			if err := w.write(binary.LittleEndian.AppendUint64(w.buf[:0], uint64(d))); err != nil {
				return err
			}
		}
		return nil
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<63 {
			return w.tag('i', uint64(int64(x)))
		}
		return w.tag('f', math.Float64bits(x))
	case string:
		if err := w.tag('s', uint64(len(x))); err != nil {
			return err
		}
		return w.writeString(x)
	case Bytes:
		if err := w.tag('b', uint64(len(x))); err != nil {
			return err
		}
		return w.write(x)
	case Tuple:
		if err := w.tag('(', uint64(len(x))); err != nil {
			return err
		}
		for _, e := range x {
			if err := w.key(e, depth+1); err != nil {
				return err
			}
		}
		return nil
	case *Global:
		if err := w.tag('g', uint64(len(x.Module))<<32|uint64(len(x.Name))); err != nil {
			return err
		}
		if err := w.writeString(x.Module); err != nil {
			return err
		}
		return w.writeString(x.Name)
	case *Set:
		if !x.Frozen {
			return fmt.Errorf("unhashable key: set")
		}
		k, err := x.frozenKey(depth)
		if err != nil {
			return err
		}
		if err := w.tag('F', k[0]); err != nil {
			return err
		}
		return w.tag('F', k[1])
	case *Object, *Tensor, *Storage:
		// Instances hash by identity in Python.
		return w.tag('o', uint64(reflect.ValueOf(x).Pointer()))
	}
	return fmt.Errorf("unhashable key: %s", typeName(v))
}

// frozenKey is a frozenset's key: its members' keys, in sorted order as a
// frozenset's hash ignores order. It is kept, as the members are only
// hashed once however often the set is used as a key.
func (s *Set) frozenKey(depth int) (keyHash, error) {
	if s.key != nil {
		return *s.key, nil
	}
	keys := make([]keyHash, 0, len(s.Items))
	for _, e := range s.Items {
		k, err := hashKeyAt(e, depth+1)
		if err != nil {
			return keyHash{}, err
		}
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b keyHash) int {
		if c := cmp.Compare(a[0], b[0]); c != 0 {
			return c
		}
		return cmp.Compare(a[1], b[1])
	})
	var w keyWriter
	w.h[0].SetSeed(keySeeds[0])
	w.h[1].SetSeed(keySeeds[1])
	for _, k := range keys {
		b := binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(w.buf[:0], k[0]), k[1])
		w.h[0].Write(b)
		w.h[1].Write(b)
	}
	k := keyHash{w.h[0].Sum64(), w.h[1].Sum64()}
	s.key = &k
	return k, nil
}

// typeName names a value's Python type for error messages.
func typeName(v any) string {
	switch x := v.(type) {
	case nil:
		return "None"
	case bool:
		return "bool"
	case int64, *big.Int:
		return "int"
	case float64:
		return "float"
	case string:
		return "str"
	case Bytes:
		return "bytes"
	case Tuple:
		return "tuple"
	case *List:
		return "list"
	case *Dict:
		return "dict"
	case *Set:
		if x.Frozen {
			return "frozenset"
		}
		return "set"
	case *Global:
		return x.String()
	case *Object:
		return x.Class.String() + " object"
	case *Tensor:
		return "tensor"
	case *Storage:
		return "storage"
	}
	return fmt.Sprintf("%T", v)
}

// TypeName names v's Python type, e.g. "dict", "tensor" or
// "argparse.Namespace object".
func TypeName(v any) string { return typeName(v) }

// odd quotes a name taken from a file (a zip record, a global, a storage
// key) when it holds spaces, quotes or unprintable runes, so that an error
// naming it stays one readable line.
func odd(s string) string {
	for _, r := range s {
		if r == ' ' || r == '"' || r == '\\' || !unicode.IsGraphic(r) {
			return strconv.Quote(s)
		}
	}
	return s
}

// show renders a value from a pickle for an error message on one line:
// scalars and short tuples of them as Python would print them, strings
// through odd, anything else by its type.
func show(v any) string { return showDepth(v, 0) }

func showDepth(v any, depth int) string {
	switch x := v.(type) {
	case nil:
		return "None"
	case bool, int64, float64, *big.Int:
		return fmt.Sprint(x)
	case string:
		return odd(x)
	case Bytes:
		return "b" + strconv.Quote(string(x))
	case Tuple:
		if depth > 0 || len(x) > 8 {
			break
		}
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = showDepth(e, depth+1)
		}
		return "(" + strings.Join(parts, ", ") + ")"
	}
	return typeName(v)
}
