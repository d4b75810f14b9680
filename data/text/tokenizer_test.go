package text

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

type goldenFile struct {
	Generator string `json:"generator"`
	Configs   []struct {
		Name      string `json:"name"`
		Vocab     string `json:"vocab"`
		Lowercase bool   `json:"lowercase"`
		Singles   []struct {
			Text          string   `json:"text"`
			Tokens        []string `json:"tokens"`
			InputIDs      []int    `json:"input_ids"`
			TokenTypeIDs  []int    `json:"token_type_ids"`
			AttentionMask []int    `json:"attention_mask"`
		} `json:"singles"`
		Pairs []struct {
			A             string `json:"a"`
			B             string `json:"b"`
			InputIDs      []int  `json:"input_ids"`
			TokenTypeIDs  []int  `json:"token_type_ids"`
			AttentionMask []int  `json:"attention_mask"`
		} `json:"pairs"`
		Batches []struct {
			Texts         []string `json:"texts"`
			InputIDs      [][]int  `json:"input_ids"`
			TokenTypeIDs  [][]int  `json:"token_type_ids"`
			AttentionMask [][]int  `json:"attention_mask"`
		} `json:"batches"`
	} `json:"configs"`
}

func testTokenizer(t *testing.T, vocabFile string, lowercase bool) *Tokenizer {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Basic.Lowercase = lowercase
	cfg.Basic.StripAccents = lowercase
	tok, err := Load(filepath.Join("testdata", vocabFile), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestTokenizerGolden compares every encoding with the BertTokenizer of
// @xenova/transformers (scripts/gen_tokenizer_golden.mjs).
func TestTokenizerGolden(t *testing.T) {
	raw, err := os.ReadFile("testdata/tokenizer_golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var g goldenFile
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatal(err)
	}
	if len(g.Configs) < 2 {
		t.Fatalf("golden file has %d configs", len(g.Configs))
	}
	for _, c := range g.Configs {
		t.Run(c.Name, func(t *testing.T) {
			tok := testTokenizer(t, c.Vocab, c.Lowercase)
			for _, s := range c.Singles {
				toks, err := tok.Tokenize(s.Text)
				if err != nil {
					t.Fatalf("%q: %v", s.Text, err)
				}
				if len(toks) == 0 && len(s.Tokens) == 0 {
					toks = s.Tokens
				}
				if !reflect.DeepEqual(toks, s.Tokens) {
					t.Errorf("tokenize %q:\n got %q\nwant %q", s.Text, toks, s.Tokens)
				}
				e, err := tok.Encode(s.Text)
				if err != nil {
					t.Fatalf("%q: %v", s.Text, err)
				}
				if !reflect.DeepEqual(e.IDs, s.InputIDs) || !reflect.DeepEqual(e.TypeIDs, s.TokenTypeIDs) ||
					!reflect.DeepEqual(e.AttentionMask, s.AttentionMask) {
					t.Errorf("encode %q:\n got %v %v %v\nwant %v %v %v", s.Text, e.IDs, e.TypeIDs, e.AttentionMask,
						s.InputIDs, s.TokenTypeIDs, s.AttentionMask)
				}
			}
			for _, p := range c.Pairs {
				e, err := tok.EncodePair(p.A, p.B)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(e.IDs, p.InputIDs) || !reflect.DeepEqual(e.TypeIDs, p.TokenTypeIDs) ||
					!reflect.DeepEqual(e.AttentionMask, p.AttentionMask) {
					t.Errorf("encode pair %q %q:\n got %v %v %v\nwant %v %v %v", p.A, p.B, e.IDs, e.TypeIDs,
						e.AttentionMask, p.InputIDs, p.TokenTypeIDs, p.AttentionMask)
				}
			}
			for _, b := range c.Batches {
				got, err := tok.EncodeBatch(b.Texts)
				if err != nil {
					t.Fatal(err)
				}
				if got.B != len(b.InputIDs) || got.T != len(b.InputIDs[0]) {
					t.Fatalf("batch shape [%d %d], want [%d %d]", got.B, got.T, len(b.InputIDs), len(b.InputIDs[0]))
				}
				if !reflect.DeepEqual(got.IDs, flat(b.InputIDs)) || !reflect.DeepEqual(got.TypeIDs, flat(b.TokenTypeIDs)) ||
					!reflect.DeepEqual(got.AttentionMask, flat(b.AttentionMask)) {
					t.Errorf("batch %q:\n got %v %v\nwant %v %v", b.Texts, got.IDs, got.AttentionMask, b.InputIDs, b.AttentionMask)
				}
			}
		})
	}
}

func flat(x [][]int) []int {
	var out []int
	for _, r := range x {
		out = append(out, r...)
	}
	return out
}

// TestTokenizerPublishedAlgorithm covers the cases where transformers.js
// departs from BERT's published algorithm, with expectations worked out by
// hand from BERT's tokenization.py.
func TestTokenizerPublishedAlgorithm(t *testing.T) {
	tok := testTokenizer(t, "vocab_small.txt", true)
	cases := []struct {
		text string
		want []string
	}{
		// Every nonspacing mark goes, not only U+0300..U+036F: U+0951
		// (Devanagari stress sign) and U+20D7 (combining arrow) are Mn.
		{"a\u0951b c\u20d7", []string{"ab", "c"}},
		// Ideographs above U+FFFF are split one per word.
		{"\U00020000\U00020001ab", []string{"[UNK]", "[UNK]", "ab"}},
		// Hangul syllables decompose into jamo under NFD; not CJK, so they
		// stay one word (unknown here).
		{"한국어 ok", []string{"[UNK]", "ok"}},
	}
	for _, c := range cases {
		got, err := tok.Tokenize(c.text)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%q: got %q, want %q", c.text, got, c.want)
		}
	}
	if got := (Basic{Lowercase: true, StripAccents: true}).Normalize("한"); got != "\u1112\u1161\u11ab" {
		t.Errorf("Hangul NFD: got %+q", got)
	}
}

func TestBasicNormalize(t *testing.T) {
	cases := []struct {
		b    Basic
		in   string
		want string
	}{
		{Basic{Lowercase: true}, "İ", "i\u0307"},
		{Basic{Lowercase: true, StripAccents: true}, "İ", "i"},
		{Basic{Lowercase: true}, "ΣΑΣ ΣΑΣ'Σ Σ", "σας σασ'ς σ"},
		{Basic{Lowercase: true}, "AΣ\u0301B", "aσ\u0301b"},
		{Basic{}, "a\x00b\u200bc\td\u2028e", "abc d e"},
		{Basic{SplitCJK: true}, "a中b", "a 中 b"},
		{Basic{StripAccents: true}, "Café", "Cafe"},
	}
	for _, c := range cases {
		if got := c.b.Normalize(c.in); got != c.want {
			t.Errorf("%+v Normalize(%+q) = %+q, want %+q", c.b, c.in, got, c.want)
		}
	}
	got := (Basic{}).Split("a,b  c.\u3002d")
	if want := []string{"a", ",", "b", "c", ".", "\u3002", "d"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Split = %q, want %q", got, want)
	}
}

func TestInvalidUTF8(t *testing.T) {
	tok := testTokenizer(t, "vocab_small.txt", true)
	bad := "hel\xfflo wor\xc3ld"
	// Default: invalid bytes become U+FFFD, which cleanup drops.
	got, err := tok.Tokenize(bad)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"hello", "world"}; !reflect.DeepEqual(got, want) {
		t.Errorf("replace mode: got %q, want %q", got, want)
	}
	cfg := DefaultConfig()
	cfg.StrictUTF8 = true
	strict, err := New(tok.Vocab(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, err = strict.Encode(bad)
	if !errors.Is(err, ErrInvalidUTF8) || !strings.Contains(err.Error(), "byte 3") {
		t.Errorf("strict mode: got %v, want ErrInvalidUTF8 at byte 3", err)
	}
	if _, err := strict.EncodePair("ok", "x\x80"); !errors.Is(err, ErrInvalidUTF8) {
		t.Errorf("strict pair: got %v", err)
	}
	if _, err := strict.Encode("valid é"); err != nil {
		t.Errorf("strict mode rejects valid text: %v", err)
	}
}

func TestTruncation(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxLen = 6
	v, _ := LoadVocab("testdata/vocab_small.txt")
	tok, err := New(v, cfg)
	if err != nil {
		t.Fatal(err)
	}
	e, err := tok.Encode("the quick brown fox jumped")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := e.IDs, ids(t, v, "[CLS]", "the", "quick", "brown", "fox", "[SEP]"); !reflect.DeepEqual(got, want) {
		t.Errorf("single: got %v, want %v", got, want)
	}
	if e.Truncated != 2 || tok.Truncations() != 1 {
		t.Errorf("Truncated = %d, Truncations() = %d; want 2 and 1", e.Truncated, tok.Truncations())
	}
	// longest_first: remove from the longer side, from b on ties.
	cfg.MaxLen = 8
	tok, _ = New(v, cfg)
	e, _ = tok.EncodePair("the quick brown fox", "hello world")
	// a=4, b=2, budget 5: a loses 1 -> 3,2.
	if got, want := e.IDs, ids(t, v, "[CLS]", "the", "quick", "brown", "[SEP]", "hello", "world", "[SEP]"); !reflect.DeepEqual(got, want) {
		t.Errorf("pair: got %v, want %v", got, want)
	}
	e, _ = tok.EncodePair("the quick brown", "a lazy dog sat")
	// a=3, b=4, budget 5: b->3, tie -> b 2.
	if got, want := e.IDs, ids(t, v, "[CLS]", "the", "quick", "brown", "[SEP]", "a", "lazy", "[SEP]"); !reflect.DeepEqual(got, want) {
		t.Errorf("pair tie: got %v, want %v", got, want)
	}
	if e.Truncated != 2 || !reflect.DeepEqual(e.TypeIDs, []int{0, 0, 0, 0, 0, 1, 1, 1}) {
		t.Errorf("pair tie: Truncated %d, types %v", e.Truncated, e.TypeIDs)
	}
	if err := tok.Pad(e, 7); err == nil {
		t.Error("Pad to a shorter length did not fail")
	}
	if err := tok.Pad(e, 10); err != nil || e.Len() != 10 || e.IDs[9] != tok.Specials().PAD || e.AttentionMask[9] != 0 {
		t.Errorf("Pad: %v %v %v", err, e.IDs, e.AttentionMask)
	}
	cfg.MaxLen = 2
	if _, err := New(v, cfg); err == nil {
		t.Error("MaxLen 2 accepted")
	}
}

func ids(t *testing.T, v *Vocab, toks ...string) []int {
	t.Helper()
	out := make([]int, len(toks))
	for i, s := range toks {
		id, ok := v.ID(s)
		if !ok {
			t.Fatalf("token %q not in vocab", s)
		}
		out[i] = id
	}
	return out
}

func TestWordsAndDecode(t *testing.T) {
	tok := testTokenizer(t, "vocab_small.txt", true)
	e, err := tok.EncodePair("unaffable dogs", "jumping")
	if err != nil {
		t.Fatal(err)
	}
	// [CLS] un ##aff ##able dog ##s [SEP] jump ##ing [SEP]
	if want := []int{-1, 0, 0, 0, 1, 1, -1, 2, 2, -1}; !reflect.DeepEqual(e.Words, want) {
		t.Errorf("Words = %v, want %v", e.Words, want)
	}
	if got := tok.Decode(e.IDs, true); got != "unaffable dogs jumping" {
		t.Errorf("Decode = %q", got)
	}
	if got := tok.Decode([]int{2, 116, 9999, 3}, false); got != "[CLS] hello [UNK] [SEP]" {
		t.Errorf("Decode with bad id = %q", got)
	}
}

func TestSpecialLiteralOption(t *testing.T) {
	cfg := DefaultConfig()
	cfg.SplitSpecialTokens = true
	v, _ := LoadVocab("testdata/vocab_small.txt")
	tok, _ := New(v, cfg)
	got, _ := tok.Tokenize("a [MASK] b")
	if want := []string{"a", "[", "mask", "]", "b"}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestVocabFile(t *testing.T) {
	dir := t.TempDir()
	// CRLF, a BOM, a duplicate (last id wins) and no final newline.
	src := "\uFEFF[PAD]\r\n[UNK]\r\n[CLS]\r\n[SEP]\r\n[MASK]\r\nfoo\r\n##bar\r\nfoo"
	p := filepath.Join(dir, "vocab.txt")
	os.WriteFile(p, []byte(src), 0o644)
	v, err := LoadVocab(p)
	if err != nil {
		t.Fatal(err)
	}
	if v.Size() != 8 || v.Token(0) != "[PAD]" || v.Token(7) != "foo" {
		t.Fatalf("size %d tokens %q", v.Size(), v.Tokens())
	}
	if id, _ := v.ID("foo"); id != 7 {
		t.Errorf("duplicate token id %d, want 7 (last wins)", id)
	}
	if !v.IsContinuation(6) || v.IsContinuation(5) {
		t.Error("IsContinuation wrong")
	}
	out := filepath.Join(dir, "out.txt")
	if err := v.Save(out); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(out)
	if string(b) != "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nfoo\n##bar\nfoo\n" {
		t.Errorf("saved %q", b)
	}
	v2, _ := LoadVocab(out)
	if v2.SHA256() != v.SHA256() {
		t.Error("hash changed across save/load")
	}
	// The hash of a vocab written by Write is the file's sha256.
	small, _ := LoadVocab("testdata/vocab_small.txt")
	raw, _ := os.ReadFile("testdata/vocab_small.txt")
	if small.SHA256() != sha256Hex(raw) {
		t.Error("SHA256 differs from the file hash")
	}
	for _, bad := range []string{"", "a\xffb\n"} {
		os.WriteFile(p, []byte(bad), 0o644)
		if _, err := LoadVocab(p); err == nil {
			t.Errorf("vocab %q accepted", bad)
		}
	}
	if _, err := LoadVocab(filepath.Join(dir, "missing.txt")); err == nil {
		t.Error("missing file accepted")
	}
	if _, err := NewVocab([]string{"a\nb"}); err == nil {
		t.Error("token with newline accepted")
	}
	noMask, _ := NewVocab([]string{"[PAD]", "[UNK]", "[CLS]", "[SEP]"})
	if _, err := New(noMask, DefaultConfig()); err == nil || !strings.Contains(err.Error(), "[MASK]") {
		t.Errorf("missing [MASK]: %v", err)
	}
}

// TestConcurrentEncode runs encodings from several goroutines (meaningful
// under -race: the tokenizer is shared read-only apart from its counter).
func TestConcurrentEncode(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxLen = 8
	v, _ := LoadVocab("testdata/vocab_small.txt")
	tok, _ := New(v, cfg)
	want, _ := tok.Encode("the quick brown fox jumped over the lazy dog")
	done := make(chan []int)
	for range 4 {
		go func() {
			var got []int
			for range 50 {
				e, _ := tok.Encode("the quick brown fox jumped over the lazy dog")
				got = e.IDs
			}
			done <- got
		}()
	}
	for range 4 {
		if got := <-done; !reflect.DeepEqual(got, want.IDs) {
			t.Errorf("concurrent encode %v, want %v", got, want.IDs)
		}
	}
	if n := tok.Truncations(); n != 201 {
		t.Errorf("Truncations() = %d, want 201", n)
	}
}
