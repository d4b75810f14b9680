package torchpickle

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"strconv"
	"unicode/utf8"
)

// reader feeds the unpickler from a stream of known length, counting what
// it consumed (the legacy format's storages start right after its
// pickles). Every length a pickle declares is checked against what is
// left before anything is allocated.
type reader struct {
	br    *bufio.Reader
	pos   int64 // bytes consumed
	limit int64 // bytes in the stream
}

func newReader(r io.Reader, n int64) *reader {
	// A buffer no larger than the stream: fresh pages are costly here.
	return &reader{br: bufio.NewReaderSize(r, int(min(max(n, 16), 64<<10))), limit: n}
}

var errTruncated = errors.New("file ends inside a pickle (truncated?)")

func (r *reader) byte() (byte, error) {
	if r.pos >= r.limit {
		return 0, errTruncated
	}
	b, err := r.br.ReadByte()
	if err != nil {
		return 0, truncated(err)
	}
	r.pos++
	return b, nil
}

func (r *reader) bytes(n uint64) ([]byte, error) {
	if n > uint64(r.limit-r.pos) {
		return nil, fmt.Errorf("a pickle value declares %d bytes but only %d remain (truncated or corrupt)", n, r.limit-r.pos)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r.br, b); err != nil {
		return nil, truncated(err)
	}
	r.pos += int64(n)
	return b, nil
}

// line reads through the next '\n' and returns the line without it.
func (r *reader) line() ([]byte, error) {
	var out []byte
	for {
		b, err := r.byte()
		if err != nil {
			return nil, err
		}
		if b == '\n' {
			return out, nil
		}
		out = append(out, b)
	}
}

func truncated(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errTruncated
	}
	return err
}

// unpickler interprets pickle protocols 0-5. It builds values only: globals
// are resolved against the allowlist (allow.go), the tensor-rebuilding
// functions are interpreted here, and everything else becomes inert data.
type unpickler struct {
	r          *reader
	stack      []any
	marks      []int // stack heights at each MARK
	memo       map[uint64]any
	persistent func(pid any) (any, error)
}

func newUnpickler(r *reader, persistent func(any) (any, error)) *unpickler {
	return &unpickler{r: r, memo: map[uint64]any{}, persistent: persistent}
}

// load runs one pickle up to its STOP and returns the value.
func (u *unpickler) load() (v any, err error) {
	u.stack, u.marks = u.stack[:0], u.marks[:0]
	for {
		at := u.r.pos
		op, err := u.r.byte()
		if err != nil {
			return nil, err
		}
		done, err := u.step(op)
		if err != nil {
			return nil, fmt.Errorf("pickle byte %d (opcode 0x%02x): %w", at, op, err)
		}
		if done {
			return u.pop()
		}
	}
}

func (u *unpickler) push(v any) { u.stack = append(u.stack, v) }

func (u *unpickler) floor() int {
	if len(u.marks) == 0 {
		return 0
	}
	return u.marks[len(u.marks)-1]
}

func (u *unpickler) pop() (any, error) {
	if len(u.stack) <= u.floor() {
		return nil, errors.New("stack underflow")
	}
	v := u.stack[len(u.stack)-1]
	u.stack = u.stack[:len(u.stack)-1]
	return v, nil
}

func (u *unpickler) top() (any, error) {
	if len(u.stack) <= u.floor() {
		return nil, errors.New("stack underflow")
	}
	return u.stack[len(u.stack)-1], nil
}

// popMark returns the items pushed since the last MARK and drops the mark.
func (u *unpickler) popMark() ([]any, error) {
	if len(u.marks) == 0 {
		return nil, errors.New("no MARK on the stack")
	}
	m := u.marks[len(u.marks)-1]
	u.marks = u.marks[:len(u.marks)-1]
	items := append([]any(nil), u.stack[m:]...)
	u.stack = u.stack[:m]
	return items, nil
}

func (u *unpickler) le(n int) (uint64, error) {
	b, err := u.r.bytes(uint64(n))
	if err != nil {
		return 0, err
	}
	var v uint64
	for i := n - 1; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v, nil
}

// step executes one opcode; done reports STOP.
func (u *unpickler) step(op byte) (done bool, err error) {
	switch op {
	case '(': // MARK
		u.marks = append(u.marks, len(u.stack))
	case '.': // STOP
		return true, nil
	case '0': // POP
		if len(u.marks) > 0 && len(u.stack) == u.floor() {
			_, err = u.popMark()
			return false, err
		}
		_, err = u.pop()
	case '1': // POP_MARK
		_, err = u.popMark()
	case '2': // DUP
		var v any
		if v, err = u.top(); err == nil {
			u.push(v)
		}
	case 0x80: // PROTO
		var p byte
		if p, err = u.r.byte(); err == nil && p > 5 {
			err = fmt.Errorf("pickle protocol %d (this reader knows 0 to 5)", p)
		}
	case 0x95: // FRAME: only a read-ahead hint; the opcodes inside are ordinary
		var n uint64
		if n, err = u.le(8); err == nil && n > uint64(u.r.limit-u.r.pos) {
			err = fmt.Errorf("frame of %d bytes but only %d remain (truncated?)", n, u.r.limit-u.r.pos)
		}

	// Scalars.
	case 'N':
		u.push(nil)
	case 0x88:
		u.push(true)
	case 0x89:
		u.push(false)
	case 'K': // BININT1
		var b byte
		if b, err = u.r.byte(); err == nil {
			u.push(int64(b))
		}
	case 'M': // BININT2
		var v uint64
		if v, err = u.le(2); err == nil {
			u.push(int64(v))
		}
	case 'J': // BININT
		var v uint64
		if v, err = u.le(4); err == nil {
			u.push(int64(int32(uint32(v))))
		}
	case 0x8a: // LONG1
		var n byte
		if n, err = u.r.byte(); err == nil {
			err = u.long(uint64(n))
		}
	case 0x8b: // LONG4
		var n uint64
		if n, err = u.le(4); err == nil {
			if int32(uint32(n)) < 0 {
				return false, errors.New("LONG4 with a negative length")
			}
			err = u.long(n)
		}
	case 'I': // INT (text)
		var l []byte
		if l, err = u.r.line(); err == nil {
			switch string(l) {
			case "00":
				u.push(false)
			case "01":
				u.push(true)
			default:
				err = u.decimal(string(l))
			}
		}
	case 'L': // LONG (text)
		var l []byte
		if l, err = u.r.line(); err == nil {
			s := string(l)
			if len(s) > 0 && s[len(s)-1] == 'L' {
				s = s[:len(s)-1]
			}
			err = u.decimal(s)
		}
	case 'F': // FLOAT (text)
		var l []byte
		if l, err = u.r.line(); err == nil {
			var f float64
			if f, err = strconv.ParseFloat(string(l), 64); err == nil {
				u.push(f)
			}
		}
	case 'G': // BINFLOAT, big-endian
		var b []byte
		if b, err = u.r.bytes(8); err == nil {
			u.push(math.Float64frombits(binary.BigEndian.Uint64(b)))
		}

	// Strings and bytes.
	case 'S': // STRING: a quoted Python 2 str literal
		var l []byte
		if l, err = u.r.line(); err == nil {
			var s string
			if s, err = unquotePy2(l); err == nil {
				u.push(s)
			}
		}
	case 'T', 'U', 'X', 0x8c, 0x8d, 'B', 'C', 0x8e, 0x96:
		err = u.counted(op)
	case 'V': // UNICODE: raw-unicode-escape
		var l []byte
		if l, err = u.r.line(); err == nil {
			var s string
			if s, err = rawUnicodeEscape(l); err == nil {
				u.push(s)
			}
		}

	// Containers.
	case ')':
		u.push(Tuple{})
	case 't':
		var items []any
		if items, err = u.popMark(); err == nil {
			u.push(Tuple(items))
		}
	case 0x85, 0x86, 0x87: // TUPLE1-3
		n := int(op - 0x84)
		if len(u.stack)-u.floor() < n {
			return false, errors.New("stack underflow")
		}
		t := append(Tuple(nil), u.stack[len(u.stack)-n:]...)
		u.stack = u.stack[:len(u.stack)-n]
		u.push(t)
	case ']':
		u.push(&List{})
	case 'l':
		var items []any
		if items, err = u.popMark(); err == nil {
			u.push(&List{Items: items})
		}
	case '}':
		u.push(NewDict())
	case 'd':
		var items []any
		if items, err = u.popMark(); err == nil {
			d := NewDict()
			if err = setItems(d, items); err == nil {
				u.push(d)
			}
		}
	case 0x8f:
		u.push(&Set{})
	case 0x91: // FROZENSET
		var items []any
		if items, err = u.popMark(); err == nil {
			s := &Set{Frozen: true}
			for _, v := range items {
				if err = s.add(v); err != nil {
					return false, err
				}
			}
			u.push(s)
		}
	case 'a': // APPEND
		var v, l any
		if v, err = u.pop(); err != nil {
			return false, err
		}
		if l, err = u.top(); err == nil {
			err = appendTo(l, []any{v})
		}
	case 'e': // APPENDS
		var items []any
		var l any
		if items, err = u.popMark(); err != nil {
			return false, err
		}
		if l, err = u.top(); err == nil {
			err = appendTo(l, items)
		}
	case 's': // SETITEM
		var k, v, d any
		if v, err = u.pop(); err != nil {
			return false, err
		}
		if k, err = u.pop(); err != nil {
			return false, err
		}
		if d, err = u.top(); err == nil {
			err = setItemsOn(d, []any{k, v})
		}
	case 'u': // SETITEMS
		var items []any
		var d any
		if items, err = u.popMark(); err != nil {
			return false, err
		}
		if d, err = u.top(); err == nil {
			err = setItemsOn(d, items)
		}
	case 0x90: // ADDITEMS
		var items []any
		var s any
		if items, err = u.popMark(); err != nil {
			return false, err
		}
		if s, err = u.top(); err != nil {
			return false, err
		}
		set, ok := s.(*Set)
		if !ok {
			return false, fmt.Errorf("ADDITEMS on a %s", typeName(s))
		}
		for _, v := range items {
			if err = set.add(v); err != nil {
				return false, err
			}
		}

	// Memo.
	case 'p': // PUT (text)
		var l []byte
		if l, err = u.r.line(); err == nil {
			var i uint64
			if i, err = strconv.ParseUint(string(l), 10, 63); err == nil {
				err = u.put(i)
			}
		}
	case 'q': // BINPUT
		var b byte
		if b, err = u.r.byte(); err == nil {
			err = u.put(uint64(b))
		}
	case 'r': // LONG_BINPUT
		var i uint64
		if i, err = u.le(4); err == nil {
			err = u.put(i)
		}
	case 0x94: // MEMOIZE
		err = u.put(uint64(len(u.memo)))
	case 'g': // GET (text)
		var l []byte
		if l, err = u.r.line(); err == nil {
			var i uint64
			if i, err = strconv.ParseUint(string(l), 10, 63); err == nil {
				err = u.get(i)
			}
		}
	case 'h': // BINGET
		var b byte
		if b, err = u.r.byte(); err == nil {
			err = u.get(uint64(b))
		}
	case 'j': // LONG_BINGET
		var i uint64
		if i, err = u.le(4); err == nil {
			err = u.get(i)
		}

	// Globals and objects.
	case 'c': // GLOBAL: "module\nname\n"
		var mod, name []byte
		if mod, err = u.r.line(); err != nil {
			return false, err
		}
		if name, err = u.r.line(); err != nil {
			return false, err
		}
		var g *Global
		if g, err = resolve(string(mod), string(name)); err == nil {
			u.push(g)
		}
	case 0x93: // STACK_GLOBAL
		var name, mod any
		if name, err = u.pop(); err != nil {
			return false, err
		}
		if mod, err = u.pop(); err != nil {
			return false, err
		}
		ms, ok1 := mod.(string)
		ns, ok2 := name.(string)
		if !ok1 || !ok2 {
			return false, fmt.Errorf("STACK_GLOBAL of a %s and a %s, want two str", typeName(mod), typeName(name))
		}
		var g *Global
		if g, err = resolve(ms, ns); err == nil {
			u.push(g)
		}
	case 'R': // REDUCE
		var args, fn any
		if args, err = u.pop(); err != nil {
			return false, err
		}
		if fn, err = u.pop(); err != nil {
			return false, err
		}
		t, ok := args.(Tuple)
		if !ok {
			return false, fmt.Errorf("REDUCE with %s arguments, want a tuple", typeName(args))
		}
		var v any
		if v, err = call(fn, t); err == nil {
			u.push(v)
		}
	case 0x81, 0x92: // NEWOBJ, NEWOBJ_EX
		var kwargs any
		if op == 0x92 {
			if kwargs, err = u.pop(); err != nil {
				return false, err
			}
		}
		var args, cls any
		if args, err = u.pop(); err != nil {
			return false, err
		}
		if cls, err = u.pop(); err != nil {
			return false, err
		}
		t, ok := args.(Tuple)
		if !ok {
			return false, fmt.Errorf("NEWOBJ with %s arguments, want a tuple", typeName(args))
		}
		var v any
		if v, err = newObject(cls, t); err == nil {
			if o, ok := v.(*Object); ok && kwargs != nil {
				o.Args = append(o.Args, kwargs)
			}
			u.push(v)
		}
	case 'i': // INST: "module\nname\n", arguments since MARK
		var mod, name []byte
		if mod, err = u.r.line(); err != nil {
			return false, err
		}
		if name, err = u.r.line(); err != nil {
			return false, err
		}
		var g *Global
		if g, err = resolve(string(mod), string(name)); err != nil {
			return false, err
		}
		var items []any
		if items, err = u.popMark(); err != nil {
			return false, err
		}
		var v any
		if v, err = call(g, Tuple(items)); err == nil {
			u.push(v)
		}
	case 'o': // OBJ: class and arguments since MARK
		var items []any
		if items, err = u.popMark(); err != nil {
			return false, err
		}
		if len(items) == 0 {
			return false, errors.New("OBJ without a class")
		}
		var v any
		if v, err = call(items[0], Tuple(items[1:])); err == nil {
			u.push(v)
		}
	case 'b': // BUILD
		var state, obj any
		if state, err = u.pop(); err != nil {
			return false, err
		}
		if obj, err = u.top(); err == nil {
			err = build(obj, state)
		}
	case 'P', 'Q': // PERSID, BINPERSID
		var pid any
		if op == 'P' {
			var l []byte
			if l, err = u.r.line(); err != nil {
				return false, err
			}
			pid = string(l)
		} else if pid, err = u.pop(); err != nil {
			return false, err
		}
		if u.persistent == nil {
			return false, errors.New("persistent id outside a torch checkpoint")
		}
		var v any
		if v, err = u.persistent(pid); err == nil {
			u.push(v)
		}
	case 0x82, 0x83, 0x84:
		return false, errors.New("the copyreg extension registry (EXT opcodes) is not supported")
	case 0x97:
		return false, errors.New("out-of-band buffers (NEXT_BUFFER) are not supported")
	case 0x98: // READONLY_BUFFER: a no-op for values already in memory
		_, err = u.top()
	default:
		return false, fmt.Errorf("unknown opcode (not a pickle, or corrupt)")
	}
	return false, err
}

func (u *unpickler) put(i uint64) error {
	v, err := u.top()
	if err != nil {
		return err
	}
	u.memo[i] = v
	return nil
}

func (u *unpickler) get(i uint64) error {
	v, ok := u.memo[i]
	if !ok {
		return fmt.Errorf("memo key %d was never stored", i)
	}
	u.push(v)
	return nil
}

// long pushes a little-endian two's-complement integer of n bytes.
func (u *unpickler) long(n uint64) error {
	b, err := u.r.bytes(n)
	if err != nil {
		return err
	}
	if len(b) <= 8 {
		var v uint64
		for i := len(b) - 1; i >= 0; i-- {
			v = v<<8 | uint64(b[i])
		}
		if len(b) > 0 && len(b) < 8 && b[len(b)-1]&0x80 != 0 {
			v |= ^uint64(0) << (8 * len(b)) // sign-extend
		}
		u.push(int64(v))
		return nil
	}
	be := make([]byte, len(b))
	for i := range b {
		be[len(b)-1-i] = b[i]
	}
	x := new(big.Int).SetBytes(be)
	if b[len(b)-1]&0x80 != 0 {
		x.Sub(x, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
	}
	u.push(normInt(x))
	return nil
}

func (u *unpickler) decimal(s string) error {
	if v, err := strconv.ParseInt(s, 10, 64); err == nil {
		u.push(v)
		return nil
	}
	x, ok := new(big.Int).SetString(s, 10)
	if !ok {
		return fmt.Errorf("bad integer literal %q", s)
	}
	u.push(normInt(x))
	return nil
}

func normInt(x *big.Int) any {
	if x.IsInt64() {
		return x.Int64()
	}
	return x
}

// counted reads the length-prefixed string and bytes opcodes.
func (u *unpickler) counted(op byte) error {
	var n uint64
	var err error
	switch op {
	case 'U', 0x8c, 'C':
		var b byte
		b, err = u.r.byte()
		n = uint64(b)
	case 'T', 'X', 'B':
		n, err = u.le(4)
		if op == 'T' && int32(uint32(n)) < 0 {
			return errors.New("BINSTRING with a negative length")
		}
	default:
		n, err = u.le(8)
	}
	if err != nil {
		return err
	}
	b, err := u.r.bytes(n)
	if err != nil {
		return err
	}
	switch op {
	case 'X', 0x8c, 0x8d:
		if !utf8.Valid(b) {
			return errors.New("str that is not UTF-8")
		}
		u.push(string(b))
	case 'T', 'U':
		// Python 2 str: torch keeps these as str (its _maybe_decode_ascii).
		u.push(string(b))
	default:
		u.push(Bytes(b))
	}
	return nil
}

// unquotePy2 decodes a STRING opcode's repr()-quoted argument.
func unquotePy2(l []byte) (string, error) {
	if len(l) < 2 || l[0] != l[len(l)-1] || (l[0] != '\'' && l[0] != '"') {
		return "", errors.New("STRING argument is not quoted")
	}
	l = l[1 : len(l)-1]
	var out []byte
	for i := 0; i < len(l); i++ {
		c := l[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		i++
		if i >= len(l) {
			return "", errors.New("STRING ends in a backslash")
		}
		switch e := l[i]; e {
		case '\\', '\'', '"':
			out = append(out, e)
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'x':
			if i+2 >= len(l) {
				return "", errors.New("short \\x escape in STRING")
			}
			v, err := strconv.ParseUint(string(l[i+1:i+3]), 16, 8)
			if err != nil {
				return "", errors.New("bad \\x escape in STRING")
			}
			out = append(out, byte(v))
			i += 2
		default:
			return "", fmt.Errorf("unsupported escape \\%c in STRING", e)
		}
	}
	return string(out), nil
}

// rawUnicodeEscape decodes Python's raw-unicode-escape codec: bytes are
// Latin-1 except \uXXXX and \UXXXXXXXX.
func rawUnicodeEscape(l []byte) (string, error) {
	var out []rune
	for i := 0; i < len(l); i++ {
		if l[i] == '\\' && i+1 < len(l) && (l[i+1] == 'u' || l[i+1] == 'U') {
			n := 4
			if l[i+1] == 'U' {
				n = 8
			}
			if i+2+n > len(l) {
				return "", errors.New("short \\u escape in UNICODE")
			}
			v, err := strconv.ParseUint(string(l[i+2:i+2+n]), 16, 32)
			if err != nil || v > utf8.MaxRune {
				return "", errors.New("bad \\u escape in UNICODE")
			}
			out = append(out, rune(v))
			i += 1 + n
			continue
		}
		out = append(out, rune(l[i]))
	}
	return string(out), nil
}

func setItems(d *Dict, items []any) error {
	if len(items)%2 != 0 {
		return fmt.Errorf("%d items for key/value pairs", len(items))
	}
	for i := 0; i < len(items); i += 2 {
		if err := d.Set(items[i], items[i+1]); err != nil {
			return err
		}
	}
	return nil
}

// setItemsOn applies SETITEM(S) to a dict, or records the items of a dict
// subclass instance (AttributeDict) on its Object.
func setItemsOn(target any, items []any) error {
	switch t := target.(type) {
	case *Dict:
		return setItems(t, items)
	case *Object:
		if t.Items == nil {
			t.Items = NewDict()
		}
		return setItems(t.Items, items)
	}
	return fmt.Errorf("SETITEM on a %s", typeName(target))
}

func appendTo(target any, items []any) error {
	switch t := target.(type) {
	case *List:
		t.Items = append(t.Items, items...)
	case *Object:
		t.List = append(t.List, items...)
	default:
		return fmt.Errorf("APPEND to a %s", typeName(target))
	}
	return nil
}

// build applies BUILD: state is recorded on Objects; the extra state torch
// attaches to OrderedDicts (a state_dict's _metadata) and tensors (Python
// attributes) is dropped, as it carries no weights.
func build(obj, state any) error {
	switch o := obj.(type) {
	case *Object:
		o.State = state
	case *Dict, *Tensor, *List, *Set:
	default:
		return fmt.Errorf("BUILD on a %s", typeName(obj))
	}
	return nil
}
