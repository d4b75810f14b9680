package text

import (
	"errors"
	"reflect"
	"testing"
)

func TestPack(t *testing.T) {
	tok := testTokenizer(t, "vocab_small.txt", true)
	sp := tok.Specials()
	docs := []Document{
		{Name: "a", Sentences: []string{"hello world", "the quick brown fox", "\x00\u200b", "a lazy dog sat on the mat"}},
		{Name: "b", Sentences: []string{"hello"}},
		{Name: "empty"},
	}
	seqs, st, err := Pack(tok, docs, PackConfig{SeqLen: 8})
	if err != nil {
		t.Fatal(err)
	}
	// budget 6: [hello world the quick brown fox] fits exactly; the 7-token
	// sentence is cut to 6; doc b is its own sequence.
	want := [][]string{
		{"[CLS]", "hello", "world", "the", "quick", "brown", "fox", "[SEP]"},
		{"[CLS]", "a", "lazy", "dog", "sat", "on", "the", "[SEP]"},
		{"[CLS]", "hello", "[SEP]"},
	}
	if len(seqs) != len(want) {
		t.Fatalf("%d sequences, want %d", len(seqs), len(want))
	}
	for i, s := range seqs {
		if got := toTokens(tok, s.IDs); !reflect.DeepEqual(got, want[i]) {
			t.Errorf("sequence %d = %q, want %q", i, got, want[i])
		}
	}
	if seqs[0].Doc != 0 || seqs[2].Doc != 1 {
		t.Errorf("doc indices %d %d", seqs[0].Doc, seqs[2].Doc)
	}
	wantSt := PackStats{Documents: 3, Sentences: 5, Sequences: 3, Empty: 1, Truncated: 1, DroppedTokens: 1, Tokens: 13}
	if st != wantSt {
		t.Errorf("stats %+v, want %+v", st, wantSt)
	}

	// SplitLong loses nothing.
	seqs, st, err = Pack(tok, docs[:1], PackConfig{SeqLen: 5, SplitLong: true})
	if err != nil {
		t.Fatal(err)
	}
	var all []int
	for _, s := range seqs {
		if len(s.IDs) > 5 || s.IDs[0] != sp.CLS || s.IDs[len(s.IDs)-1] != sp.SEP {
			t.Fatalf("bad sequence %q", toTokens(tok, s.IDs))
		}
		all = append(all, s.IDs[1:len(s.IDs)-1]...)
	}
	var direct []int
	for _, s := range docs[0].Sentences {
		ids, _, _ := tok.wordIDs(s, 0)
		direct = append(direct, ids...)
	}
	if !reflect.DeepEqual(all, direct) || st.Truncated != 0 || st.Tokens != len(direct) {
		t.Errorf("split-long packing lost tokens: %v vs %v, %+v", all, direct, st)
	}

	if _, _, err := Pack(tok, docs, PackConfig{SeqLen: 2}); err == nil {
		t.Error("SeqLen 2 accepted")
	}
	if _, _, err := Pack(tok, docs, PackConfig{SeqLen: 513}); err == nil {
		t.Error("SeqLen above MaxLen accepted")
	}
	if _, _, err := Pack(tok, []Document{{Sentences: []string{"\x01"}}}, PackConfig{SeqLen: 8}); !errors.Is(err, ErrEmpty) {
		t.Errorf("no tokens: %v", err)
	}
	cfg := DefaultConfig()
	cfg.StrictUTF8 = true
	strict, _ := New(tok.Vocab(), cfg)
	if _, _, err := Pack(strict, []Document{{Name: "bad", Sentences: []string{"a\xffb"}}}, PackConfig{SeqLen: 8}); !errors.Is(err, ErrInvalidUTF8) {
		t.Errorf("strict invalid UTF-8: %v", err)
	}

	b, err := tok.PadSequences([]Sequence{{IDs: []int{sp.CLS, 7, sp.SEP}}, {IDs: []int{sp.CLS, sp.SEP}}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if b.B != 2 || b.T != 3 || !reflect.DeepEqual(b.IDs, []int{sp.CLS, 7, sp.SEP, sp.CLS, sp.SEP, sp.PAD}) ||
		!reflect.DeepEqual(b.AttentionMask, []int{1, 1, 1, 1, 1, 0}) {
		t.Errorf("padded batch %+v", b)
	}
	if _, err := tok.PadSequences([]Sequence{{IDs: []int{1, 2, 3}}}, 2); err == nil {
		t.Error("padding to a shorter length accepted")
	}
}

func toTokens(tok *Tokenizer, ids []int) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = tok.Vocab().Token(id)
	}
	return out
}

// TestPackOpticks packs the whole of Opticks at sequence length 128 with the
// Opticks vocabulary. Newton's sentences are long: truncation drops about a
// tenth of the tokens, which SplitLong keeps.
func TestPackOpticks(t *testing.T) {
	doc, err := LoadOpticks()
	if err != nil {
		t.Skip(err)
	}
	tok := testTokenizer(t, "vocab_opticks.txt", true)
	var kept [2]int
	for i, split := range []bool{false, true} {
		seqs, st, err := Pack(tok, []Document{doc}, PackConfig{SeqLen: 128, SplitLong: split})
		if err != nil {
			t.Fatal(err)
		}
		used := 0
		for _, s := range seqs {
			if len(s.IDs) > 128 {
				t.Fatalf("sequence of %d tokens", len(s.IDs))
			}
			used += len(s.IDs)
		}
		if used != st.Tokens+2*len(seqs) {
			t.Errorf("stats count %d tokens, sequences hold %d", st.Tokens, used-2*len(seqs))
		}
		if fill := float64(used) / float64(128*len(seqs)); fill < 0.7 {
			t.Errorf("SplitLong=%v: sequences only %.0f%% full", split, 100*fill)
		}
		if split && st.Truncated != 0 {
			t.Errorf("SplitLong truncated %d sentences", st.Truncated)
		}
		kept[i] = st.Tokens + st.DroppedTokens
		t.Logf("SplitLong=%v: %+v", split, st)
	}
	if kept[0] != kept[1] {
		t.Errorf("token totals differ: %d truncating, %d splitting", kept[0], kept[1])
	}
}
