package torchpickle

import (
	"errors"
	"fmt"
)

// call interprets REDUCE, INST and OBJ: fn(*args) for an allowed global.
// Tensor rebuilding and a few container constructors are done here; every
// other allowed global yields an inert Object.
func call(fn any, args Tuple) (any, error) { return callDepth(fn, args, 0) }

func callDepth(fn any, args Tuple, depth int) (any, error) {
	g, ok := fn.(*Global)
	if !ok {
		return nil, fmt.Errorf("call of a %s (only allowed globals can be called)", typeName(fn))
	}
	switch g.kind {
	case kindRebuildTensor:
		return rebuildTensor(g, args)
	case kindRebuildParameter:
		// _rebuild_parameter(data, requires_grad, backward_hooks[, state])
		if len(args) < 3 {
			return nil, fmt.Errorf("%s with %d arguments", g, len(args))
		}
		t, ok := args[0].(*Tensor)
		if !ok {
			return nil, fmt.Errorf("%s of a %s, want a tensor", g, typeName(args[0]))
		}
		return t, nil
	case kindRebuildFromType:
		// _rebuild_from_type_v2(func, new_type, args, state): a tensor
		// subclass or a tensor with Python attributes; the data is func(*args).
		if len(args) != 4 {
			return nil, fmt.Errorf("%s with %d arguments", g, len(args))
		}
		inner, ok := args[2].(Tuple)
		if !ok {
			return nil, fmt.Errorf("%s with %s arguments", g, typeName(args[2]))
		}
		if depth > 4 {
			return nil, errors.New("tensor rebuild calls nested too deeply")
		}
		return callDepth(args[0], inner, depth+1)
	case kindDict:
		d := NewDict()
		if len(args) > 0 {
			if err := fillDict(d, args[0]); err != nil {
				return nil, fmt.Errorf("%s: %w", g, err)
			}
		}
		return d, nil
	case kindSet, kindFrozenSet:
		s := &Set{Frozen: g.kind == kindFrozenSet}
		if len(args) > 0 {
			var items []any
			switch x := args[0].(type) {
			case *List:
				items = x.Items
			case Tuple:
				items = x
			case *Set:
				items = x.Items
			case nil:
			default:
				return nil, fmt.Errorf("%s of a %s", g, typeName(args[0]))
			}
			for _, v := range items {
				if err := s.add(v); err != nil {
					return nil, err
				}
			}
		}
		return s, nil
	case kindByteArray:
		// bytearray(bytes), or bytearray(str, "latin-1") below protocol 3.
		switch {
		case len(args) == 0:
			return Bytes{}, nil
		case len(args) == 1:
			if b, ok := args[0].(Bytes); ok {
				return b, nil
			}
		case len(args) == 2:
			return callDepth(&Global{Module: "_codecs", Name: "encode", kind: kindCodecsEncode}, args, depth)
		}
		return nil, fmt.Errorf("%s of %d arguments (%s)", g, len(args), typeName(args[0]))
	case kindCodecsEncode:
		// Protocol 2 pickles Python 3 bytes as _codecs.encode(str, "latin1").
		if len(args) != 2 {
			return nil, fmt.Errorf("%s with %d arguments", g, len(args))
		}
		s, ok1 := args[0].(string)
		enc, ok2 := args[1].(string)
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("%s of a %s and a %s", g, typeName(args[0]), typeName(args[1]))
		}
		switch enc {
		case "latin1", "latin-1", "iso-8859-1", "iso8859-1":
			b := make(Bytes, 0, len(s))
			for _, r := range s {
				if r > 0xff {
					return nil, fmt.Errorf("%s: rune %U is not Latin-1", g, r)
				}
				b = append(b, byte(r))
			}
			return b, nil
		case "utf-8", "utf8":
			return Bytes(s), nil
		}
		return nil, fmt.Errorf("%s: encoding %q not supported", g, enc)
	case kindReconstructor:
		// copyreg._reconstructor(cls, base, state): protocol 0/1 objects.
		if len(args) != 3 {
			return nil, fmt.Errorf("%s with %d arguments", g, len(args))
		}
		cls, ok := args[0].(*Global)
		if !ok {
			return nil, fmt.Errorf("%s of a %s", g, typeName(args[0]))
		}
		return newObject(cls, nil)
	case kindSize:
		if len(args) != 1 {
			return nil, fmt.Errorf("%s with %d arguments", g, len(args))
		}
		t, ok := args[0].(Tuple)
		if !ok {
			return nil, fmt.Errorf("%s of a %s", g, typeName(args[0]))
		}
		return t, nil
	}
	return &Object{Class: g, Args: args}, nil
}

// newObject interprets NEWOBJ: cls.__new__(cls, *args), recorded as data.
func newObject(cls any, args Tuple) (any, error) {
	g, ok := cls.(*Global)
	if !ok {
		return nil, fmt.Errorf("NEWOBJ of a %s (only allowed classes can be instantiated)", typeName(cls))
	}
	switch g.kind {
	case kindDict:
		return NewDict(), nil
	case kindSet, kindFrozenSet:
		return &Set{Frozen: g.kind == kindFrozenSet}, nil
	case kindInert, kindStorage:
		return &Object{Class: g, Args: args}, nil
	}
	return nil, fmt.Errorf("NEWOBJ of %s, which is a function", g)
}

func fillDict(d *Dict, src any) error {
	switch x := src.(type) {
	case nil, *Global: // defaultdict's default factory
		return nil
	case *Dict:
		for i := range x.Len() {
			if err := d.Set(x.Key(i), x.Value(i)); err != nil {
				return err
			}
		}
		return nil
	case *List, Tuple:
		var items []any
		if l, ok := x.(*List); ok {
			items = l.Items
		} else {
			items = x.(Tuple)
		}
		for _, it := range items {
			kv, ok := it.(Tuple)
			if !ok || len(kv) != 2 {
				return fmt.Errorf("dict item %s, want a (key, value) pair", typeName(it))
			}
			if err := d.Set(kv[0], kv[1]); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("dict of a %s", typeName(src))
}

// asInt reads a Python int (or bool) argument.
func asInt(v any) (int64, bool) {
	switch x := v.(type) {
	case int64:
		return x, true
	case bool:
		if x {
			return 1, true
		}
		return 0, true
	}
	return 0, false
}

// maxDims bounds a tensor's rank; PyTorch's own limit is 64.
const maxDims = 64

func intTuple(v any) ([]int, bool) {
	t, ok := v.(Tuple)
	if !ok || len(t) > maxDims {
		return nil, false
	}
	out := make([]int, len(t))
	for i, e := range t {
		n, ok := asInt(e)
		if !ok || n < 0 || int64(int(n)) != n {
			return nil, false
		}
		out[i] = int(n)
	}
	return out, true
}

// rebuildTensor interprets _rebuild_tensor_v2(storage, storage_offset,
// size, stride, requires_grad, backward_hooks[, metadata]) and the older
// _rebuild_tensor(storage, storage_offset, size, stride), checking the
// view against its storage.
func rebuildTensor(g *Global, args Tuple) (any, error) {
	if len(args) < 4 {
		return nil, fmt.Errorf("%s with %d arguments", g, len(args))
	}
	st, ok := args[0].(*Storage)
	if !ok {
		return nil, fmt.Errorf("%s of a %s, want a storage", g, typeName(args[0]))
	}
	off, ok1 := asInt(args[1])
	shape, ok2 := intTuple(args[2])
	stride, ok3 := intTuple(args[3])
	if !ok1 || !ok2 || !ok3 || off < 0 {
		return nil, fmt.Errorf("%s: bad offset, size or stride (%s, %s, %s)", g, typeName(args[1]), typeName(args[2]), typeName(args[3]))
	}
	t := &Tensor{Storage: st, Offset: off, Shape: shape, Stride: stride}
	if err := t.check(); err != nil {
		return nil, err
	}
	return t, nil
}
