package text

import (
	"math"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/sslzoo/sslzoo/autograd"
)

func TestIgnoreLabelMatchesAutograd(t *testing.T) {
	if IgnoreLabel != autograd.IgnoreIndex {
		t.Fatalf("IgnoreLabel %d != autograd.IgnoreIndex %d", IgnoreLabel, autograd.IgnoreIndex)
	}
}

// maskSample builds rows of [CLS] words [SEP] [PAD]... over the small vocab.
func maskSample(t *testing.T, tok *Tokenizer, rows, width int, rng *rand.Rand) []int {
	t.Helper()
	sp := tok.Specials()
	var ordinary []int
	for id := range tok.Vocab().Size() {
		if !tok.IsSpecial(id) {
			ordinary = append(ordinary, id)
		}
	}
	ids := make([]int, 0, rows*width)
	for range rows {
		n := 2 + rng.IntN(width-2)
		ids = append(ids, sp.CLS)
		for j := 1; j < width; j++ {
			switch {
			case j < n-1:
				ids = append(ids, ordinary[rng.IntN(len(ordinary))])
			case j == n-1:
				ids = append(ids, sp.SEP)
			default:
				ids = append(ids, sp.PAD)
			}
		}
	}
	return ids
}

func within(t *testing.T, what string, got, p float64, n int) {
	t.Helper()
	sd := math.Sqrt(p * (1 - p) / float64(n))
	if math.Abs(got-p) > 5*sd {
		t.Errorf("%s = %.4f, want %.4f ± %.4f (5 sd over %d)", what, got, p, 5*sd, n)
	}
}

func TestMaskStatistics(t *testing.T) {
	tok := testTokenizer(t, "vocab_small.txt", true)
	m, err := NewMasker(tok, DefaultMaskConfig())
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	ids := maskSample(t, tok, 2000, 64, rng)
	inputs, labels, err := m.Mask(ids, rng)
	if err != nil {
		t.Fatal(err)
	}
	var eligible, selected, masked, kept, random int
	for i, id := range ids {
		if tok.IsSpecial(id) {
			if labels[i] != IgnoreLabel || inputs[i] != id {
				t.Fatalf("special token %d at %d selected or changed", id, i)
			}
			continue
		}
		eligible++
		if labels[i] == IgnoreLabel {
			if inputs[i] != id {
				t.Fatalf("unselected token at %d changed", i)
			}
			continue
		}
		if labels[i] != id {
			t.Fatalf("label %d at %d, want the original %d", labels[i], i, id)
		}
		selected++
		switch {
		case inputs[i] == tok.Specials().MASK:
			masked++
		case inputs[i] == id:
			kept++
		default:
			random++
			if tok.IsSpecial(inputs[i]) {
				t.Fatalf("random replacement %d is a special token", inputs[i])
			}
		}
	}
	within(t, "selected fraction", float64(selected)/float64(eligible), 0.15, eligible)
	within(t, "[MASK] fraction", float64(masked)/float64(selected), 0.8, selected)
	// A random draw can hit the original token: 1 in 216 ordinary tokens.
	pSame := 0.1 / 216
	within(t, "unchanged fraction", float64(kept)/float64(selected), 0.1+pSame, selected)
	within(t, "random fraction", float64(random)/float64(selected), 0.1-pSame, selected)
	t.Logf("%d eligible, %d selected: %d mask, %d random, %d kept", eligible, selected, masked, random, kept)

	// Same seed, same masks.
	in2, lab2, _ := m.Mask(ids, rand.New(rand.NewPCG(7, 7)))
	in3, lab3, _ := m.Mask(ids, rand.New(rand.NewPCG(7, 7)))
	if !reflect.DeepEqual(in2, in3) || !reflect.DeepEqual(lab2, lab3) {
		t.Error("masking is not deterministic for a fixed seed")
	}
}

func TestWholeWordMask(t *testing.T) {
	tok := testTokenizer(t, "vocab_small.txt", true)
	cfg := DefaultMaskConfig()
	cfg.WholeWord = true
	m, err := NewMasker(tok, cfg)
	if err != nil {
		t.Fatal(err)
	}
	e, err := tok.Encode("unaffable dogs jumping over the lazy cat " +
		"unaffable dogs jumping over the lazy cat unaffable dogs jumping")
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	var words, selWords, tokens, selTokens int
	for range 3000 {
		_, labels, err := m.Mask(e.IDs, rng)
		if err != nil {
			t.Fatal(err)
		}
		// Words from the tokenizer must be all-or-nothing.
		state := map[int]bool{}
		for i, w := range e.Words {
			if w < 0 {
				if labels[i] != IgnoreLabel {
					t.Fatal("special token selected")
				}
				continue
			}
			sel := labels[i] != IgnoreLabel
			if prev, ok := state[w]; ok && prev != sel {
				t.Fatalf("word %d partly selected: %v", w, labels)
			}
			state[w] = sel
			tokens++
			if sel {
				selTokens++
			}
		}
		for _, sel := range state {
			words++
			if sel {
				selWords++
			}
		}
	}
	within(t, "selected word fraction", float64(selWords)/float64(words), 0.15, words)
	if selTokens == 0 || selTokens == tokens {
		t.Errorf("%d of %d tokens selected", selTokens, tokens)
	}
}

func TestMaskErrors(t *testing.T) {
	tok := testTokenizer(t, "vocab_small.txt", true)
	for _, cfg := range []MaskConfig{{Prob: 1.5}, {Prob: 0.1, MaskFrac: 0.9, RandomFrac: 0.2}, {Prob: 0.1, MaskFrac: -1}} {
		if _, err := NewMasker(tok, cfg); err == nil {
			t.Errorf("config %+v accepted", cfg)
		}
	}
	m, _ := NewMasker(tok, DefaultMaskConfig())
	if _, _, err := m.Mask([]int{2, 99999, 3}, rand.New(rand.NewPCG(1, 1))); err == nil {
		t.Error("out-of-vocabulary id accepted")
	}
	if err := m.MaskInto([]int{2, 3}, make([]int, 1), make([]int, 2), rand.New(rand.NewPCG(1, 1))); err == nil {
		t.Error("short inputs accepted")
	}
	// Prob 1 with MaskFrac 1 masks every ordinary token.
	all, _ := NewMasker(tok, MaskConfig{Prob: 1, MaskFrac: 1})
	e, _ := tok.Encode("hello world")
	in, lab, _ := all.Mask(e.IDs, rand.New(rand.NewPCG(1, 1)))
	sp := tok.Specials()
	if want := []int{sp.CLS, sp.MASK, sp.MASK, sp.SEP}; !reflect.DeepEqual(in, want) {
		t.Errorf("inputs %v, want %v", in, want)
	}
	if want := []int{IgnoreLabel, e.IDs[1], e.IDs[2], IgnoreLabel}; !reflect.DeepEqual(lab, want) {
		t.Errorf("labels %v, want %v", lab, want)
	}
}
