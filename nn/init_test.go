package nn

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/sslzoo/sslzoo/tensor"
)

type stats struct{ mean, std, min, max float64 }

func statsOf(t *tensor.Tensor) stats {
	var s, ss float64
	st := stats{min: math.Inf(1), max: math.Inf(-1)}
	for _, v := range t.Data {
		x := float64(v)
		s += x
		ss += x * x
		st.min = math.Min(st.min, x)
		st.max = math.Max(st.max, x)
	}
	n := float64(len(t.Data))
	st.mean = s / n
	st.std = math.Sqrt(ss/n - st.mean*st.mean)
	return st
}

// checkDist asserts the sample mean and std of t are those of the target
// distribution, within sampling error: the mean within 5 standard errors,
// the std within 3%.
func checkDist(t *testing.T, name string, x *tensor.Tensor, mean, std float64) stats {
	t.Helper()
	st := statsOf(x)
	se := std / math.Sqrt(float64(x.Numel()))
	if math.Abs(st.mean-mean) > 5*se {
		t.Errorf("%s: mean %.5f, want %.5f (±%.5f)", name, st.mean, mean, 5*se)
	}
	if math.Abs(st.std-std) > 0.03*std {
		t.Errorf("%s: std %.5f, want %.5f", name, st.std, std)
	}
	return st
}

func TestFansAndGain(t *testing.T) {
	in, out, err := Fans([]int{64, 16, 3, 3})
	if err != nil || in != 144 || out != 576 {
		t.Errorf("conv fans %d %d %v", in, out, err)
	}
	in, out, _ = Fans([]int{10, 7})
	if in != 7 || out != 10 {
		t.Errorf("linear fans %d %d", in, out)
	}
	if _, _, err := Fans([]int{5}); err == nil {
		t.Error("1-D fans accepted")
	}
	// Values from torch.nn.init.calculate_gain.
	for _, c := range []struct {
		name  string
		param float64
		want  float64
	}{
		{"linear", 0, 1}, {"conv2d", 0, 1}, {"sigmoid", 0, 1}, {"tanh", 0, 5.0 / 3},
		{"relu", 0, 1.4142135623730951}, {"leaky_relu", 0.01, 1.4141428569978354},
		{"leaky_relu", 0.2, 1.3867504905630728}, {"selu", 0, 0.75},
	} {
		g, err := Gain(c.name, c.param)
		if err != nil || math.Abs(g-c.want) > 1e-12 {
			t.Errorf("Gain(%s, %g) = %v, %v; want %v", c.name, c.param, g, err, c.want)
		}
	}
	if _, err := Gain("swish", 0); err == nil {
		t.Error("unknown nonlinearity accepted")
	}
}

func TestKaimingAndXavier(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	relu := math.Sqrt2

	w := tensor.New(200, 100) // fan_in 100, fan_out 200
	if err := KaimingUniform(w, relu, FanIn, rng); err != nil {
		t.Fatal(err)
	}
	b := relu * math.Sqrt(3.0/100)
	st := checkDist(t, "kaiming_uniform fan_in", w, 0, b/math.Sqrt(3))
	if st.max > b || st.min < -b || st.max < 0.99*b || st.min > -0.99*b {
		t.Errorf("kaiming_uniform range [%g, %g], want within and near ±%g", st.min, st.max, b)
	}

	conv := tensor.New(50, 20, 3, 3) // fan_in 180, fan_out 450
	if err := KaimingNormal(conv, relu, FanOut, rng); err != nil {
		t.Fatal(err)
	}
	checkDist(t, "kaiming_normal fan_out", conv, 0, relu/math.Sqrt(450))
	if err := KaimingNormal(conv, 1, FanIn, rng); err != nil {
		t.Fatal(err)
	}
	checkDist(t, "kaiming_normal fan_in", conv, 0, 1/math.Sqrt(180))

	if err := XavierUniform(w, 1, rng); err != nil {
		t.Fatal(err)
	}
	xb := math.Sqrt(6.0 / 300)
	st = checkDist(t, "xavier_uniform", w, 0, xb/math.Sqrt(3))
	if st.max > xb || st.min < -xb {
		t.Errorf("xavier_uniform range [%g, %g] beyond ±%g", st.min, st.max, xb)
	}
	if err := XavierNormal(w, 2, rng); err != nil {
		t.Fatal(err)
	}
	checkDist(t, "xavier_normal gain 2", w, 0, 2*math.Sqrt(2.0/300))

	if err := KaimingUniform(tensor.New(7), 1, FanIn, rng); err == nil {
		t.Error("1-D kaiming accepted")
	}
	// Zero-element tensors are a no-op, as in PyTorch.
	if err := KaimingUniform(tensor.New(0, 5), 1, FanIn, rng); err != nil {
		t.Error(err)
	}
}

func TestDefaultInit(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	w, bias := tensor.New(300, 64), tensor.New(20000)
	if err := DefaultInit(w, bias, rng); err != nil {
		t.Fatal(err)
	}
	bound := 1 / math.Sqrt(64) // what kaiming_uniform(a=sqrt(5)) reduces to
	for name, x := range map[string]*tensor.Tensor{"weight": w, "bias": bias} {
		st := checkDist(t, name, x, 0, bound/math.Sqrt(3))
		if st.max > bound || st.min < -bound {
			t.Errorf("%s range [%g, %g] beyond ±%g", name, st.min, st.max, bound)
		}
	}
}

func TestTruncNormal(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	phi := func(x float64) float64 { return math.Exp(-x*x/2) / math.Sqrt(2*math.Pi) }
	Phi := func(x float64) float64 { return (1 + math.Erf(x/math.Sqrt2)) / 2 }
	for _, c := range []struct{ mean, std, a, b float64 }{
		{0, 1, -2, 2},     // PyTorch's defaults
		{1, 0.5, 0.5, 2},  // asymmetric truncation
		{0, 0.02, -2, 2},  // timm's ViT init: bounds are absolute, so barely truncated
		{0, 1, -0.1, 0.1}, // very narrow
	} {
		x := tensor.New(40000)
		TruncNormal(x, c.mean, c.std, c.a, c.b, rng)
		al, be := (c.a-c.mean)/c.std, (c.b-c.mean)/c.std
		z := Phi(be) - Phi(al)
		m := c.mean + c.std*(phi(al)-phi(be))/z
		v := c.std * c.std * (1 + (al*phi(al)-be*phi(be))/z - math.Pow((phi(al)-phi(be))/z, 2))
		st := checkDist(t, "trunc_normal", x, m, math.Sqrt(v))
		if st.min < c.a || st.max > c.b {
			t.Errorf("trunc_normal%v: range [%g, %g]", c, st.min, st.max)
		}
	}
}

func TestNormalUniformConstant(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	x := tensor.New(30000)
	Normal(x, 3, 0.5, rng)
	checkDist(t, "normal", x, 3, 0.5)
	Uniform(x, -1, 3, rng)
	st := checkDist(t, "uniform", x, 1, 4/math.Sqrt(12))
	if st.min < -1 || st.max > 3 {
		t.Errorf("uniform range [%g, %g]", st.min, st.max)
	}
	Ones(x)
	if statsOf(x) != (stats{1, 0, 1, 1}) {
		t.Error("Ones")
	}
	Zeros(x)
	if statsOf(x) != (stats{0, 0, 0, 0}) {
		t.Error("Zeros")
	}
	Constant(x, -2.5)
	if statsOf(x) != (stats{-2.5, 0, -2.5, -2.5}) {
		t.Error("Constant")
	}
}
