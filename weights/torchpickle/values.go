package torchpickle

import (
	"fmt"
	"math"
	"math/big"
	"sort"
	"strconv"
	"strings"
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
	seen   map[string]bool
}

func (s *Set) add(v any) error {
	k, err := hashKey(v)
	if err != nil {
		return err
	}
	if s.seen == nil {
		s.seen = map[string]bool{}
	}
	if !s.seen[k] {
		s.seen[k] = true
		s.Items = append(s.Items, v)
	}
	return nil
}

// Dict is a Python dict or collections.OrderedDict, in insertion order (a
// state_dict's order is its module order).
type Dict struct {
	keys, vals []any
	index      map[string]int
}

// NewDict returns an empty Dict.
func NewDict() *Dict { return &Dict{index: map[string]int{}} }

// Set stores v under k, keeping the position of an existing key as Python
// does. Unhashable keys (lists, dicts, sets) are an error.
func (d *Dict) Set(k, v any) error {
	h, err := hashKey(k)
	if err != nil {
		return err
	}
	if d.index == nil {
		d.index = map[string]int{}
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
	i, ok := d.index["s"+key]
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

// hashKey renders a hashable value as a map key, as Python's hash/eq would
// group them closely enough for checkpoints: equal ints, bools and
// integral floats collide, like 1 == True == 1.0 in Python.
func hashKey(v any) (string, error) {
	var b strings.Builder
	if err := writeKey(&b, v, 0); err != nil {
		return "", err
	}
	return b.String(), nil
}

// maxKeyLen bounds rendering, which a pickle could otherwise blow up with
// tuples nested through memo references (each level doubling the size).
const maxKeyLen = 1 << 16

func writeKey(b *strings.Builder, v any, depth int) error {
	if depth > 32 || b.Len() > maxKeyLen {
		return fmt.Errorf("dictionary key nested too deeply or too long")
	}
	switch x := v.(type) {
	case nil:
		b.WriteString("n")
	case bool:
		if x {
			b.WriteString("i1")
		} else {
			b.WriteString("i0")
		}
	case int64:
		b.WriteString("i" + strconv.FormatInt(x, 10))
	case *big.Int:
		b.WriteString("i" + x.String())
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<63 {
			b.WriteString("i" + strconv.FormatInt(int64(x), 10))
		} else {
			b.WriteString("f" + strconv.FormatFloat(x, 'g', -1, 64))
		}
	case string:
		b.WriteString("s" + x)
	case Bytes:
		b.WriteString("b" + string(x))
	case Tuple:
		b.WriteString("(")
		for _, e := range x {
			if err := writeKey(b, e, depth+1); err != nil {
				return err
			}
			b.WriteString(",")
		}
		b.WriteString(")")
	case *Global:
		b.WriteString("g" + x.String())
	case *Set:
		if !x.Frozen {
			return fmt.Errorf("unhashable key: set")
		}
		// A frozenset's hash ignores order; sort the member keys.
		keys := make([]string, 0, len(x.Items))
		for _, e := range x.Items {
			k, err := hashKey(e)
			if err != nil {
				return err
			}
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteString("F{" + strings.Join(keys, ",") + "}")
	case *Object, *Tensor, *Storage:
		// Instances hash by identity in Python.
		fmt.Fprintf(b, "o%p", x)
	default:
		return fmt.Errorf("unhashable key: %s", typeName(v))
	}
	return nil
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
