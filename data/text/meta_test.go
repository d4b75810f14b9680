package text

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// TestMetadataRoundTrip rebuilds a tokenizer from its own metadata and
// checks it encodes exactly as the original (which TestTokenizerGolden
// holds to Hugging Face's), for a cased and an uncased setup.
func TestMetadataRoundTrip(t *testing.T) {
	texts := []string{"Hello, World! How are you?", "Ünïcödé accents and CASE", "a [MASK] token", strings.Repeat("long text ", 40)}
	for _, lower := range []bool{true, false} {
		orig := testTokenizer(t, "vocab_small.txt", lower)
		cfg := orig.Config()
		cfg.MaxLen = 16
		orig, err := New(orig.Vocab(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		back, err := FromMetadata(orig.MetadataEntries())
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range texts {
			a, err := orig.Encode(s)
			if err != nil {
				t.Fatal(err)
			}
			b, err := back.Encode(s)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(a.IDs, b.IDs) {
				t.Errorf("lowercase %v, %q: from metadata %v, original %v", lower, s, b.IDs, a.IDs)
			}
		}
		if back.Config().MaxLen != 16 || back.Config().Basic.Lowercase != lower {
			t.Errorf("config not carried: %+v", back.Config())
		}
	}
}

func TestMetadataRefusals(t *testing.T) {
	tok := testTokenizer(t, "vocab_small.txt", true)
	good := tok.MetadataEntries()
	with := func(k, v string) map[string]string {
		m := map[string]string{MetaTokenizer: good[MetaTokenizer], MetaVocab: good[MetaVocab]}
		if v == "" {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	if _, err := FromMetadata(with(MetaVocab, "")); !errors.Is(err, ErrNoVocab) {
		t.Errorf("no vocab: got %v, want ErrNoVocab", err)
	}
	for name, c := range map[string]struct {
		meta map[string]string
		want string
	}{
		"other vocab":   {with(MetaVocab, strings.Replace(good[MetaVocab], "hello", "jello", 1)), "not the one the model records"},
		"bad record":    {with(MetaTokenizer, "{"), "bad sslzoo.tokenizer"},
		"other type":    {with(MetaTokenizer, `{"type":"sentencepiece"}`), "not bert-wordpiece"},
		"huge vocab":    {with(MetaVocab, strings.Repeat("x\n", maxVocabBytes/2+1)), "larger than any vocabulary"},
		"invalid utf-8": {with(MetaVocab, "a\n\xff\n"), "not valid UTF-8"},
	} {
		if _, err := FromMetadata(c.meta); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error containing %q", name, err, c.want)
		}
	}
}
