package kserve

// Lifting the "data" arrays out of a JSON request before encoding/json sees
// it. A v2 JSON request is a few hundred bytes of structure around arrays of
// thousands of numbers; encoding/json scans those arrays twice (validation,
// then skipping the json.RawMessage) before collect parses them a third
// time, which was 53% of BenchmarkDecodeRequestJSON. liftData finds the
// arrays in one cheap pass and replaces each with null; collect then
// validates and parses each array itself, once.

// liftedInputs maps an index into "inputs" to the raw array of its "data".
type liftedInputs map[int][]byte

// liftData returns body with the value of every inputs[i].data that is an
// array replaced by null, and the arrays it took out. It reports false, and
// the caller must decode body as it is, whenever it cannot be sure that
// encoding/json would give "inputs" and "data" the values it found: on
// malformed structure, on a second "inputs" or a second "data" in one
// input, and on any key, at the two
// levels it walks, holding a backslash or a non-ASCII byte (encoding/json
// unescapes keys and folds case by Unicode rules, so those might match).
func liftData(body []byte) ([]byte, liftedInputs, bool) {
	l := lifter{b: body}
	i := skipSpace(body, 0)
	if i >= len(body) || body[i] != '{' {
		return nil, nil, false
	}
	sawInputs := false
	i, ok := l.object(i, func(key []byte, v int) (int, bool) {
		if !asciiFold(key, "inputs") {
			return l.skip(v)
		}
		if sawInputs {
			return 0, false
		}
		sawInputs = true
		if l.b[v] != '[' {
			return l.skip(v)
		}
		return l.inputs(v)
	})
	if !ok || skipSpace(body, i) != len(body) || len(l.lifted) == 0 {
		return nil, nil, false
	}
	skel := make([]byte, 0, len(body)-l.liftedBytes+4*len(l.spans))
	prev := 0
	for _, s := range l.spans {
		skel = append(skel, body[prev:s[0]]...)
		skel = append(skel, "null"...)
		prev = s[1]
	}
	return append(skel, body[prev:]...), l.lifted, true
}

type lifter struct {
	b           []byte
	lifted      liftedInputs
	spans       [][2]int // [start, end) of each lifted array, in order
	liftedBytes int
}

// seq walks the array or object opening at b[i], calling elem with each
// element's index and offset; elem returns the offset just past it. It
// returns the offset past the closing bracket.
func (l *lifter) seq(i int, elem func(idx, at int) (int, bool)) (int, bool) {
	b := l.b
	closer := byte(']')
	if b[i] == '{' {
		closer = '}'
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == closer {
		return i + 1, true
	}
	for idx := 0; ; idx++ {
		if i >= len(b) {
			return 0, false
		}
		var ok bool
		if i, ok = elem(idx, i); !ok {
			return 0, false
		}
		if i = skipSpace(b, i); i >= len(b) {
			return 0, false
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case closer:
			return i + 1, true
		default:
			return 0, false
		}
	}
}

// object walks the object at b[i] == '{', calling member with each key
// (quotes stripped) and the offset of its value; member returns the offset
// just past the value.
func (l *lifter) object(i int, member func(key []byte, v int) (int, bool)) (int, bool) {
	b := l.b
	return l.seq(i, func(_, i int) (int, bool) {
		if b[i] != '"' {
			return 0, false
		}
		end := scalarEnd(b, i)
		if end-i < 2 || b[end-1] != '"' || !plainKey(b[i+1:end-1]) {
			return 0, false
		}
		key := b[i+1 : end-1]
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return 0, false
		}
		v := skipSpace(b, i+1)
		if v >= len(b) {
			return 0, false
		}
		return member(key, v)
	})
}

// inputs walks the "inputs" array at b[i] == '[', lifting the data of each
// object in it.
func (l *lifter) inputs(i int) (int, bool) {
	return l.seq(i, func(idx, i int) (int, bool) {
		if l.b[i] != '{' {
			return l.skip(i)
		}
		return l.object(i, func(key []byte, v int) (int, bool) {
			if !asciiFold(key, "data") || l.b[v] != '[' {
				return l.skip(v)
			}
			end, ok := l.skip(v)
			if !ok {
				return 0, false
			}
			if l.lifted == nil {
				l.lifted = liftedInputs{}
			}
			if _, seen := l.lifted[idx]; seen {
				return 0, false // a repeated "data": left to encoding/json
			}
			l.lifted[idx] = l.b[v:end]
			l.spans = append(l.spans, [2]int{v, end})
			l.liftedBytes += end - v
			return end, true
		})
	})
}

// skip returns the offset past the value at b[i]: a string, a scalar, or
// an array or object matched by bracket depth alone. What is inside is left
// for encoding/json (the skeleton) or collect (a lifted array) to check.
func (l *lifter) skip(i int) (int, bool) {
	b := l.b
	switch b[i] {
	case '"':
		end := scalarEnd(b, i)
		return end, end-i >= 2 && b[end-1] == '"'
	case '[', '{':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				end := scalarEnd(b, j)
				if end-j < 2 || b[end-1] != '"' {
					return 0, false
				}
				j = end - 1
			case '[', '{':
				depth++
			case ']', '}':
				if depth--; depth == 0 {
					return j + 1, true
				}
			}
		}
		return 0, false
	}
	end := scalarEnd(b, i)
	for j := i; j < end; j++ {
		if c := b[j]; c == '}' || c == ':' {
			return j, j > i
		}
	}
	return end, end > i
}

// plainKey: printable ASCII without escapes, the only keys liftData trusts
// itself to match as encoding/json does.
func plainKey(k []byte) bool {
	for _, c := range k {
		if c == '\\' || c < 0x20 || c >= 0x80 {
			return false
		}
	}
	return true
}

// asciiFold is encoding/json's case-insensitive key match, for ASCII keys.
func asciiFold(k []byte, name string) bool {
	if len(k) != len(name) {
		return false
	}
	for i, c := range k {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != name[i] {
			return false
		}
	}
	return true
}
