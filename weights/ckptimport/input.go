package ckptimport

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/sslzoo/sslzoo/weights"
	"github.com/sslzoo/sslzoo/weights/torchpickle"
)

// input is an opened checkpoint: a torch.save pickle, or a safetensors
// file presented as a flat dict of tensors.
type input struct {
	path      string
	container string // "zip", "legacy" or "safetensors"
	root      any
	ck        *torchpickle.Checkpoint
}

func (in *input) close() {
	if in.ck != nil {
		in.ck.Close()
	}
}

func openInput(path string) (*input, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	head := make([]byte, 9)
	n, _ := io.ReadFull(fh, head)
	fh.Close()
	if n == 9 && head[8] == '{' && !bytes.HasPrefix(head, []byte("PK")) && head[0] != 0x80 {
		f, err := weights.Read(path)
		if err != nil {
			return nil, err
		}
		d := torchpickle.NewDict()
		for _, name := range f.Names() {
			d.Set(name, f.Tensors[name])
		}
		return &input{path: path, container: "safetensors", root: d}, nil
	}
	ck, err := torchpickle.Open(path)
	if err != nil {
		return nil, err
	}
	return &input{path: path, container: ck.Format, root: ck.Root, ck: ck}, nil
}

// ref is one checkpoint tensor, not yet read.
type ref struct {
	shape []int
	pt    *torchpickle.Tensor
	st    *weights.Tensor
}

func asRef(v any) (ref, bool) {
	switch t := v.(type) {
	case *torchpickle.Tensor:
		return ref{shape: t.Shape, pt: t}, true
	case *weights.Tensor:
		return ref{shape: t.Shape, st: t}, true
	}
	return ref{}, false
}

func (r ref) read() (*weights.Tensor, error) {
	if r.st != nil {
		return r.st, nil
	}
	return r.pt.Read()
}

func (r ref) dtype() weights.DType {
	if r.st != nil {
		return r.st.DType
	}
	return r.pt.DType()
}

// stateDict is a dict of tensors by name, in the file's order.
type stateDict struct {
	names []string
	refs  map[string]ref
	other []string // non-tensor entries (skipped)
}

// asStateDict reads v as a state_dict: string keys, tensor values. It
// fails when v is not a dict or holds no tensor at all.
func asStateDict(v any) (*stateDict, bool) {
	d, ok := v.(*torchpickle.Dict)
	if !ok {
		return nil, false
	}
	sd := &stateDict{refs: map[string]ref{}}
	for i := range d.Len() {
		k, ok := d.Key(i).(string)
		if !ok {
			return nil, false
		}
		if r, ok := asRef(d.Value(i)); ok {
			sd.names = append(sd.names, k)
			sd.refs[k] = r
		} else {
			sd.other = append(sd.other, k)
		}
	}
	return sd, len(sd.names) > 0
}

// entry returns root[key] when root is a dict with that string key.
func entry(root any, key string) (any, bool) {
	d, ok := root.(*torchpickle.Dict)
	if !ok {
		return nil, false
	}
	return d.Get(key)
}

// topKeys lists a dict's keys (for messages), with what each holds.
func topKeys(root any) []string {
	d, ok := root.(*torchpickle.Dict)
	if !ok {
		return []string{"(the checkpoint is a " + torchpickle.TypeName(root) + ", not a dict)"}
	}
	var out []string
	for i := range d.Len() {
		k := fmt.Sprint(d.Key(i))
		if s, ok := d.Key(i).(string); ok {
			k = s
		}
		out = append(out, k+" ("+describe(d.Value(i))+")")
	}
	return out
}

func describe(v any) string {
	if _, ok := asRef(v); ok {
		return "tensor"
	}
	if sd, ok := asStateDict(v); ok {
		return fmt.Sprintf("dict of %d tensors", len(sd.names))
	}
	if d, ok := v.(*torchpickle.Dict); ok {
		return fmt.Sprintf("dict of %d", d.Len())
	}
	return torchpickle.TypeName(v)
}

// prefixesSeen summarises the tensor names of the checkpoint's state
// dicts (the root, and dicts one or two levels down) by their first two
// name components, e.g. `state_dict: module.encoder_q.* (320)`.
func prefixesSeen(root any) []string {
	var out []string
	add := func(where string, sd *stateDict) {
		counts := map[string]int{}
		var order []string
		for _, n := range sd.names {
			p := n
			if parts := strings.SplitN(n, ".", 3); len(parts) == 3 {
				p = parts[0] + "." + parts[1] + ".*"
			}
			if counts[p] == 0 {
				order = append(order, p)
			}
			counts[p]++
		}
		var items []string
		for i, p := range order {
			if i == 8 {
				items = append(items, fmt.Sprintf("... %d more", len(order)-8))
				break
			}
			items = append(items, fmt.Sprintf("%s (%d)", p, counts[p]))
		}
		label := where
		if label != "" {
			label += ": "
		}
		out = append(out, label+strings.Join(items, ", "))
	}
	var walk func(where string, v any, depth int)
	walk = func(where string, v any, depth int) {
		if sd, ok := asStateDict(v); ok {
			add(where, sd)
			return
		}
		d, ok := v.(*torchpickle.Dict)
		if !ok || depth >= 2 {
			return
		}
		for i := range d.Len() {
			if k, ok := d.Key(i).(string); ok {
				w := k
				if where != "" {
					w = where + "." + k
				}
				walk(w, d.Value(i), depth+1)
			}
		}
	}
	walk("", root, 0)
	if len(out) == 0 {
		return []string{"none (no dict of tensors)"}
	}
	return out
}

// layoutError explains a checkpoint that does not have the format's
// layout: what is there, and which formats would read it.
func layoutError(in *input, format, why string) error {
	var fits []string
	for _, f := range Formats {
		if f == format || f == "hf-bert" {
			continue
		}
		if sel, err := layouts[f](in); err == nil {
			if _, err := detectFamily(sel.backbone); err == nil {
				fits = append(fits, f)
			}
		}
	}
	hint := ""
	if len(fits) > 0 {
		hint = "; it reads as --format " + strings.Join(fits, " or ")
	}
	top := topKeys(in.root)
	if len(top) > 12 {
		top = append(top[:12], fmt.Sprintf("... %d more", len(top)-12))
	}
	return fmt.Errorf("%s is not a %s checkpoint: %s; top-level keys: %s; tensor key prefixes: %s; --format is one of %s%s",
		in.path, format, why, strings.Join(top, ", "), strings.Join(prefixesSeen(in.root), "; "), strings.Join(Formats, ", "), hint)
}

var errNoLayout = errors.New("layout does not fit")

// droppedGroups names what of a state dict the backbone did not use, each
// dropped tensor under its shortest name prefix that holds no used tensor
// (e.g. "module.encoder_q.fc.* (4 tensors)", "module.queue").
func droppedGroups(sd *stateDict, used map[string]bool) []string {
	usedPrefix := map[string]bool{}
	for n := range used {
		for i := range n {
			if n[i] == '.' {
				usedPrefix[n[:i]] = true
			}
		}
	}
	counts, first := map[string]int{}, map[string]string{}
	var order []string
	for _, n := range sd.names {
		if used[n] {
			continue
		}
		g := n
		for i := range n {
			if n[i] == '.' && !usedPrefix[n[:i]] {
				g = n[:i]
				break
			}
		}
		if counts[g] == 0 {
			order = append(order, g)
			first[g] = n
		}
		counts[g]++
	}
	out := make([]string, 0, len(order))
	for _, g := range order {
		if counts[g] == 1 {
			out = append(out, first[g]) // a single tensor, named in full
		} else {
			out = append(out, fmt.Sprintf("%s.* (%d tensors)", g, counts[g]))
		}
	}
	return out
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
