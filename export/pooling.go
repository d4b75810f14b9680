package export

import (
	"fmt"
	"maps"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/zoo"
)

// Pooling names, as written to the PoolingKey metadata key.
const (
	PoolCLS  = "cls"
	PoolMean = "mean"
)

// PoolingKey is the metadata key that records how "embedding" pools the
// tokens of a ViT or BERT.
const PoolingKey = "sslzoo.pooling"

// CheckPool validates a pooling name ("" means the model's default).
func CheckPool(pool string) error {
	switch pool {
	case "", PoolCLS, PoolMean:
		return nil
	}
	return fmt.Errorf("pooling %q: want cls or mean", pool)
}

// WithExtra returns a copy of m whose Extra also holds key = value; m's own
// map is left alone, so one Metadata can seed several exports.
func (m Metadata) WithExtra(key, value string) Metadata {
	extra := maps.Clone(m.Extra)
	if extra == nil {
		extra = map[string]string{}
	}
	extra[key] = value
	m.Extra = extra
	return m
}

// vitPooled returns the forward of a ViT embedding with the requested
// pooling, and the pooling it computes.
//
// A ViT with a final norm over all tokens (Pool "cls", as every MAE
// encoder is built, or "norm-mean") can be pooled both ways: "cls" is its
// class token after that norm, and "mean" is the average of the normalised
// patch tokens, the class token left out. A ViT built with Pool "mean"
// only has fc_norm after its average, so it can only be exported as
// "mean".
func vitPooled(arch string, m *zoo.ViT, pool string) (func(*autograd.Tape, *autograd.Var) *autograd.Var, string, error) {
	if err := CheckPool(pool); err != nil {
		return nil, "", fmt.Errorf("export: %s: %w", arch, err)
	}
	own := m.Config.Pool
	if own == "norm-mean" {
		own = PoolMean
	}
	if pool == "" || pool == own {
		return m.Forward, own, nil
	}
	if m.Head != nil {
		return nil, "", fmt.Errorf("export: %s has a classification head; pooling %q applies to a headless backbone", arch, pool)
	}
	if m.Norm == nil {
		return nil, "", fmt.Errorf("export: %s was built with mean pooling and has no final norm over its tokens; it can only be exported with pooling mean", arch)
	}
	vitPool := "norm-mean"
	if pool == PoolCLS {
		vitPool = "cls"
	}
	return func(tp *autograd.Tape, x *autograd.Var) *autograd.Var { return m.NormPooled(tp, x, vitPool) }, pool, nil
}

// vitSpec is ImageSpec with a chosen pooling.
func vitSpec(arch string, m *zoo.ViT, pool string, channels, size int, meta Metadata) (Spec, error) {
	fwd, used, err := vitPooled(arch, m, pool)
	if err != nil {
		return Spec{}, err
	}
	s, err := ImageSpec(arch, m, channels, size, size, meta.WithExtra(PoolingKey, used))
	if err != nil {
		return Spec{}, err
	}
	s.Forward = func(tp *autograd.Tape, in []*autograd.Var) []*autograd.Var {
		return []*autograd.Var{fwd(tp, in[0])}
	}
	return s, nil
}

// BERTPool pools BERT's last hidden state [n, seq, hidden]: the first
// token ([CLS]), or the mean over the tokens whose attention mask is 1 (as
// sentence-transformers does; a row with no tokens pools to zeros). mask is
// the attention mask as float values ([n, seq]; the tracer passes the int64
// attention_mask input). Exported models and `sslzoo eval genres` share it.
func BERTPool(tp *autograd.Tape, pool string, seqOut, mask *autograd.Var, n, seq, hidden int) *autograd.Var {
	if pool == PoolMean {
		m := tp.Reshape(mask, n, seq, 1)
		sum := tp.Sum(tp.Mul(seqOut, m), []int{1}, false)       // [n, hidden]
		count := tp.AddScalar(tp.Sum(m, []int{1}, false), 1e-9) // [n, 1]
		return tp.Div(sum, count)
	}
	return tp.Reshape(tp.Slice(seqOut, 1, 0, 1), n, hidden)
}
