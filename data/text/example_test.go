package text_test

import (
	"fmt"
	"math/rand/v2"

	"github.com/sslzoo/sslzoo/data/text"
)

func Example() {
	tok, err := text.Load("testdata/vocab_small.txt", text.DefaultConfig())
	if err != nil {
		panic(err)
	}
	toks, _ := tok.Tokenize("Unaffable café, 北京!")
	fmt.Println(toks)

	e, _ := tok.EncodePair("How are you?", "Fine.")
	fmt.Println(e.IDs, e.TypeIDs)

	m, _ := text.NewMasker(tok, text.MaskConfig{Prob: 1, MaskFrac: 1})
	inputs, labels, _ := m.Mask(e.IDs, rand.New(rand.NewPCG(1, 2)))
	fmt.Println(tok.Decode(inputs, false))
	fmt.Println(labels)
	// Output:
	// [un ##aff ##able cafe , 北 京 !]
	// [2 118 119 120 25 3 122 18 3] [0 0 0 0 0 0 1 1 1]
	// [CLS] [MASK] [MASK] [MASK] [MASK] [SEP] [MASK] [MASK] [SEP]
	// [-100 118 119 120 25 -100 122 18 -100]
}
