package text

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/sslzoo/sslzoo/internal/fuzzcheck"
)

// vocabPerByte bounds what a vocabulary costs per byte of vocab.txt: a
// two-byte line ("a\n") is a token string, its slot in two []string, a
// map entry and its share of the map's growth.
const vocabPerByte = 128

// FuzzReadVocab: any bytes give an error or a vocabulary of valid UTF-8
// tokens without line breaks, one per line, whose ids find their tokens
// (a repeated token keeps its last id), and which Write and ReadVocab give
// back unchanged. A tokenizer over it, when it has the special tokens,
// encodes a fixed text into ids in range. The seeds are the vocabularies
// of testdata and the bad files of TestVocabSaveLoad.
func FuzzReadVocab(f *testing.F) {
	for _, name := range []string{"vocab_small.txt", "vocab_opticks.txt"} {
		fuzzcheck.Seed(f, name, fuzzcheck.File(f, "testdata/"+name))
	}
	fuzzcheck.Seed(f, "empty", []byte(""))
	fuzzcheck.Seed(f, "invalid_utf8", []byte("a\xffb\n"))
	fuzzcheck.Seed(f, "crlf_bom", []byte("\uFEFF[PAD]\r\n[UNK]\r\n[CLS]\r\n[SEP]\r\n[MASK]\r\nhello\r\n##s\r\n\r\nhello\n"))
	fuzzcheck.Seed(f, "no_newline_at_end", []byte("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nx"))
	f.Fuzz(func(t *testing.T, b []byte) {
		fuzzcheck.Bounded(t, fuzzcheck.Limit(len(b), vocabPerByte), func() {
			v, err := ReadVocab(bytes.NewReader(b))
			if err != nil {
				return
			}
			if v.Size() == 0 || v.Size() > bytes.Count(b, []byte("\n"))+1 {
				t.Fatalf("%d tokens from %d bytes with %d line feeds", v.Size(), len(b), bytes.Count(b, []byte("\n")))
			}
			for id := range v.Size() {
				tok := v.Token(id)
				if !utf8.ValidString(tok) || strings.ContainsAny(tok, "\r\n") {
					t.Fatalf("token %d is %q", id, tok)
				}
				if got, ok := v.ID(tok); !ok || got < id || v.Token(got) != tok {
					t.Fatalf("ID(%q) = %d, %v; it is token %d", tok, got, ok, id)
				}
			}
			var w bytes.Buffer
			if err := v.Write(&w); err != nil {
				t.Fatal(err)
			}
			back, err := ReadVocab(&w)
			if err != nil {
				t.Fatalf("ReadVocab of Write: %v", err)
			}
			if !slices.Equal(back.Tokens(), v.Tokens()) || back.SHA256() != v.SHA256() {
				t.Fatalf("Write and ReadVocab changed %d tokens into %d", v.Size(), back.Size())
			}
			tok, err := New(v, DefaultConfig())
			if err != nil {
				return
			}
			e, err := tok.EncodePair("Hello, unaffable [MASK] world ##s", "σοφια \u00e9t\u00e9 [SEP]x")
			if err != nil {
				t.Fatalf("EncodePair: %v", err)
			}
			for _, id := range e.IDs {
				if id < 0 || id >= v.Size() {
					t.Fatalf("id %d out of a vocabulary of %d", id, v.Size())
				}
			}
		})
	})
}

// FuzzTokenize: over the real test vocabulary, any text tokenizes into
// vocabulary tokens; Encode and EncodePair give [CLS] ... [SEP] encodings
// no longer than MaxLen, ids in range, type ids, attention mask and word
// indices consistent, and Truncated accounting for every token cut; and
// text without [UNK] decodes into text that tokenizes the same again. The
// seeds are TestInvalidUTF8's and the golden texts' kinds of input.
func FuzzTokenize(f *testing.F) {
	for i, s := range []struct {
		a, b                 string
		cased, split, strict bool
		maxLen               uint16
	}{
		{"Hello, World! How are you?", "", false, false, false, 0},
		{"unaffable", "Héllo Naïve café résumé", false, false, false, 8},
		{"hel\xfflo wor\xc3ld", "x\x80", false, false, true, 0},
		{"hel\xfflo wor\xc3ld", "", true, false, false, 0},
		{"[CLS] hello [MASK]un[SEP]", "[PAD][UNK]", false, false, false, 5},
		{"[MASK] literal split", "ΣΟΦΙΑΣ σοφια", false, true, false, 0},
		{"中文字 \u3002 ¿qué? ¡sí! … — “quoted”", "\t\r\n\u200b\x00", false, false, false, 0},
		{strings.Repeat("a", 101) + " " + strings.Repeat("hello ", 300), "x", false, false, false, 0},
	} {
		fuzzcheck.Seed(f, "seed"+string(rune('0'+i)), s.a, s.b, s.cased, s.split, s.strict, s.maxLen)
	}
	v, err := LoadVocab("testdata/vocab_small.txt")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, a, b string, cased, split, strict bool, maxLen uint16) {
		cfg := DefaultConfig()
		if cased {
			cfg.Basic = Basic{}
		}
		cfg.SplitSpecialTokens, cfg.StrictUTF8 = split, strict
		cfg.MaxLen = 3 + int(maxLen%1024)
		tok, err := New(v, cfg)
		if err != nil {
			t.Fatal(err)
		}
		fuzzcheck.Bounded(t, fuzzcheck.Limit(len(a)+len(b), 512), func() {
			toks, err := tok.Tokenize(a)
			if err != nil {
				if !strict || utf8.ValidString(a) {
					t.Fatalf("Tokenize: %v", err)
				}
				return
			}
			unk := false
			for _, s := range toks {
				if _, ok := v.ID(s); !ok {
					t.Fatalf("token %q is not in the vocabulary", s)
				}
				unk = unk || s == UNK
			}
			e, err := tok.Encode(a)
			if err != nil {
				t.Fatalf("Encode after Tokenize: %v", err)
			}
			checkEncoding(t, tok, e, len(toks)+2, -1)
			if !unk && e.Truncated == 0 {
				back := tok.Decode(e.IDs[1:e.Len()-1], false)
				again, err := tok.Tokenize(back)
				if err != nil || !slices.Equal(again, toks) {
					t.Fatalf("%q tokenizes as %q, decodes as %q, which tokenizes as %q (%v)", a, toks, back, again, err)
				}
			}
			tb, err := tok.Tokenize(b)
			if err != nil {
				return
			}
			p, err := tok.EncodePair(a, b)
			if err != nil {
				t.Fatalf("EncodePair after Tokenize: %v", err)
			}
			checkEncoding(t, tok, p, len(toks)+len(tb)+3, len(toks))
		})
	})
}

// checkEncoding checks e against the untruncated length full; for a pair,
// na is the first text's token count (-1 for a single text).
func checkEncoding(t *testing.T, tok *Tokenizer, e *Encoding, full, na int) {
	t.Helper()
	n, sp, size := e.Len(), tok.Specials(), tok.Vocab().Size()
	if n > tok.Config().MaxLen || n+e.Truncated != full || e.Truncated < 0 {
		t.Fatalf("%d positions, %d truncated, from %d, MaxLen %d", n, e.Truncated, full, tok.Config().MaxLen)
	}
	if len(e.TypeIDs) != n || len(e.AttentionMask) != n || len(e.Words) != n {
		t.Fatalf("%d ids, %d type ids, %d mask, %d words", n, len(e.TypeIDs), len(e.AttentionMask), len(e.Words))
	}
	if e.IDs[0] != sp.CLS || e.IDs[n-1] != sp.SEP || e.Words[0] != -1 || e.Words[n-1] != -1 {
		t.Fatalf("ends %d...%d (words %d, %d)", e.IDs[0], e.IDs[n-1], e.Words[0], e.Words[n-1])
	}
	seps, last := 0, -1
	for i, id := range e.IDs {
		if id < 0 || id >= size || e.AttentionMask[i] != 1 {
			t.Fatalf("position %d: id %d (vocabulary %d), mask %d", i, id, size, e.AttentionMask[i])
		}
		if e.TypeIDs[i] != min(seps, 1) && !(i == n-1 && na >= 0) {
			t.Fatalf("position %d after %d [SEP]: type %d", i, seps, e.TypeIDs[i])
		}
		if w := e.Words[i]; w >= 0 {
			if w < last {
				t.Fatalf("position %d: word %d after word %d", i, w, last)
			}
			last = w
		} else if i != 0 && i != n-1 {
			seps++
			if na < 0 || seps > 1 {
				t.Fatalf("position %d: added special token %d inside the encoding", i, id)
			}
		}
	}
	if na >= 0 && (seps != 1 || e.TypeIDs[n-1] != 1) {
		t.Fatalf("pair with %d separators, last type %d", seps, e.TypeIDs[n-1])
	}
}

// FuzzParseHFConfig: any tokenizer_config.json gives an error or a
// configuration that New either takes, giving a tokenizer whose encodings
// fit its MaxLen, or refuses with an error. The seeds are
// TestLoadDirAndSaveDir's files and SaveDir's.
func FuzzParseHFConfig(f *testing.F) {
	fuzzcheck.Seed(f, "transformers_cased", []byte(`{"do_lower_case": false, "strip_accents": null, "model_max_length": 1000000000000000019884624838656,
	  "mask_token": {"__type": "AddedToken", "content": "[MASK]", "lstrip": true}, "cls_token": "[CLS]"}`))
	fuzzcheck.Seed(f, "other_mask", []byte(`{"mask_token": "<mask>"}`))
	fuzzcheck.Seed(f, "broken", []byte(`{`))
	fuzzcheck.Seed(f, "saved", []byte(`{"cls_token": "[CLS]", "do_lower_case": true, "mask_token": "[MASK]", "model_max_length": 128,
	  "pad_token": "[PAD]", "sep_token": "[SEP]", "strip_accents": false, "tokenize_chinese_chars": true, "tokenizer_class": "BertTokenizer", "unk_token": "[UNK]"}`))
	fuzzcheck.Seed(f, "tiny_max_length", []byte(`{"model_max_length": 2.5, "unk_token": {"content": 7}}`))
	v, err := LoadVocab("testdata/vocab_small.txt")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		fuzzcheck.Bounded(t, fuzzcheck.Limit(len(raw), 64), func() {
			cfg, err := parseHFConfig(raw, DefaultConfig())
			if err != nil {
				return
			}
			if cfg.MaxLen < 0 || cfg.MaxLen > 1e6 {
				t.Fatalf("MaxLen %d", cfg.MaxLen)
			}
			tok, err := New(v, cfg)
			if err != nil {
				return
			}
			e, err := tok.Encode(strings.Repeat("hello world ", 10))
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if e.Len() > tok.Config().MaxLen {
				t.Fatalf("Encode: %d positions, MaxLen %d", e.Len(), tok.Config().MaxLen)
			}
		})
	})
}

// FuzzFromMetadata: any recorded vocabulary and settings give an error or
// a tokenizer over exactly the recorded vocabulary whose encodings fit its
// MaxLen. The seeds are TestMetadataRoundTrip's records, good and bad.
func FuzzFromMetadata(f *testing.F) {
	v, err := LoadVocab("testdata/vocab_small.txt")
	if err != nil {
		f.Fatal(err)
	}
	orig, err := New(v, DefaultConfig())
	if err != nil {
		f.Fatal(err)
	}
	good := orig.MetadataEntries()
	fuzzcheck.Seed(f, "good", good[MetaVocab], good[MetaTokenizer], true)
	fuzzcheck.Seed(f, "no_record", good[MetaVocab], "", false)
	fuzzcheck.Seed(f, "other_vocab", strings.Replace(good[MetaVocab], "hello", "jello", 1), good[MetaTokenizer], true)
	fuzzcheck.Seed(f, "bad_record", good[MetaVocab], "{", true)
	fuzzcheck.Seed(f, "other_type", good[MetaVocab], `{"type":"sentencepiece"}`, true)
	fuzzcheck.Seed(f, "invalid_utf8", "a\n\xff\n", "", false)
	fuzzcheck.Seed(f, "odd_lengths", good[MetaVocab], `{"max_len": -4, "max_chars_per_word": 1000000000000}`, true)
	f.Fuzz(func(t *testing.T, vocab, record string, hasRecord bool) {
		meta := map[string]string{MetaVocab: vocab}
		if hasRecord {
			meta[MetaTokenizer] = record
		}
		fuzzcheck.Bounded(t, fuzzcheck.Limit(len(vocab)+len(record), vocabPerByte), func() {
			tok, err := FromMetadata(meta)
			if err != nil {
				return
			}
			if back, _ := ReadVocab(strings.NewReader(vocab)); back == nil || back.SHA256() != tok.Vocab().SHA256() {
				t.Fatal("the tokenizer's vocabulary is not the recorded one")
			}
			e, err := tok.Encode(strings.Repeat("hello world ", 10))
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if e.Len() > tok.Config().MaxLen {
				t.Fatalf("Encode: %d positions, MaxLen %d", e.Len(), tok.Config().MaxLen)
			}
		})
	})
}
