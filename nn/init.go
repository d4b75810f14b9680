package nn

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/sslzoo/sslzoo/tensor"
)

// Initialisers with the semantics of torch.nn.init: the same fan
// computation, gains and bounds, so a model initialised here starts from the
// same distribution as its PyTorch twin (not the same numbers: the random
// streams differ).

// FanMode picks which fan scales Kaiming initialisation.
type FanMode int

const (
	// FanIn preserves the forward activations' variance (PyTorch's default).
	FanIn FanMode = iota
	// FanOut preserves the backward gradients' variance (torchvision's
	// ResNet convolutions use it).
	FanOut
)

func (m FanMode) String() string {
	if m == FanOut {
		return "fan_out"
	}
	return "fan_in"
}

// Fans returns PyTorch's fan_in and fan_out for a weight of the given shape:
// dimension 1 and 0 times the receptive field (the product of dimensions 2
// and up). Weights need at least 2 dimensions.
func Fans(shape []int) (fanIn, fanOut int, err error) {
	if len(shape) < 2 {
		return 0, 0, fmt.Errorf("nn: fan in and fan out need a tensor of at least 2 dimensions, got shape %v", shape)
	}
	rf := tensor.Numel(shape[2:])
	return shape[1] * rf, shape[0] * rf, nil
}

// Gain is torch.nn.init.calculate_gain: the recommended scale for a
// nonlinearity. param is the negative slope for "leaky_relu"; PyTorch uses
// 0.01 when the slope is omitted, so pass 0.01 to get its default.
func Gain(nonlinearity string, param float64) (float64, error) {
	switch nonlinearity {
	case "linear", "identity", "sigmoid", "conv1d", "conv2d", "conv3d",
		"conv_transpose1d", "conv_transpose2d", "conv_transpose3d":
		return 1, nil
	case "tanh":
		return 5.0 / 3, nil
	case "relu":
		return math.Sqrt2, nil
	case "leaky_relu":
		return LeakyReLUGain(param), nil
	case "selu":
		return 0.75, nil
	}
	return 0, fmt.Errorf("nn: unknown nonlinearity %q for gain", nonlinearity)
}

// LeakyReLUGain is sqrt(2/(1+slope^2)), the gain Kaiming initialisation uses
// with parameter a (a=0 is ReLU's sqrt(2); a=sqrt(5) gives PyTorch's default
// Linear/Conv weights).
func LeakyReLUGain(slope float64) float64 { return math.Sqrt(2 / (1 + slope*slope)) }

func fan(shape []int, mode FanMode) (int, error) {
	in, out, err := Fans(shape)
	if mode == FanOut {
		return out, err
	}
	return in, err
}

// KaimingUniform is kaiming_uniform_: U(-b, b) with b = gain*sqrt(3/fan).
// Zero-element tensors are left alone, as in PyTorch.
func KaimingUniform(t *tensor.Tensor, gain float64, mode FanMode, rng *rand.Rand) error {
	if t.Numel() == 0 {
		return nil
	}
	f, err := fan(t.Shape, mode)
	if err != nil {
		return err
	}
	b := gain * math.Sqrt(3/float64(f))
	Uniform(t, -b, b, rng)
	return nil
}

// KaimingNormal is kaiming_normal_: N(0, std^2) with std = gain/sqrt(fan).
func KaimingNormal(t *tensor.Tensor, gain float64, mode FanMode, rng *rand.Rand) error {
	if t.Numel() == 0 {
		return nil
	}
	f, err := fan(t.Shape, mode)
	if err != nil {
		return err
	}
	Normal(t, 0, gain/math.Sqrt(float64(f)), rng)
	return nil
}

// XavierUniform is xavier_uniform_: U(-b, b) with
// b = gain*sqrt(6/(fan_in+fan_out)).
func XavierUniform(t *tensor.Tensor, gain float64, rng *rand.Rand) error {
	if t.Numel() == 0 {
		return nil
	}
	in, out, err := Fans(t.Shape)
	if err != nil {
		return err
	}
	b := gain * math.Sqrt(6/float64(in+out))
	Uniform(t, -b, b, rng)
	return nil
}

// XavierNormal is xavier_normal_: N(0, std^2) with
// std = gain*sqrt(2/(fan_in+fan_out)).
func XavierNormal(t *tensor.Tensor, gain float64, rng *rand.Rand) error {
	if t.Numel() == 0 {
		return nil
	}
	in, out, err := Fans(t.Shape)
	if err != nil {
		return err
	}
	Normal(t, 0, gain*math.Sqrt(2/float64(in+out)), rng)
	return nil
}

// TruncNormal is trunc_normal_: N(mean, std^2) restricted to [a, b], with a
// and b absolute bounds (not multiples of std), as PyTorch and timm define
// them. Like PyTorch it samples by inverting the normal CDF over the
// truncated range, so no draw is rejected.
func TruncNormal(t *tensor.Tensor, mean, std, a, b float64, rng *rand.Rand) {
	cdf := func(x float64) float64 { return (1 + math.Erf(x/math.Sqrt2)) / 2 }
	lo := 2*cdf((a-mean)/std) - 1
	hi := 2*cdf((b-mean)/std) - 1
	for i := range t.Data {
		u := lo + (hi-lo)*rng.Float64()
		v := mean + std*math.Sqrt2*math.Erfinv(u)
		// Erfinv at ±1 gives ±Inf; the clamp keeps the bounds exact.
		t.Data[i] = float32(min(max(v, a), b))
	}
}

// Normal fills t from N(mean, std^2).
func Normal(t *tensor.Tensor, mean, std float64, rng *rand.Rand) {
	for i := range t.Data {
		t.Data[i] = float32(mean + std*rng.NormFloat64())
	}
}

// Uniform fills t from U(lo, hi).
func Uniform(t *tensor.Tensor, lo, hi float64, rng *rand.Rand) {
	for i := range t.Data {
		t.Data[i] = float32(lo + (hi-lo)*rng.Float64())
	}
}

// Zeros fills t with 0.
func Zeros(t *tensor.Tensor) { t.Zero() }

// Ones fills t with 1.
func Ones(t *tensor.Tensor) { t.Fill(1) }

// Constant fills t with v.
func Constant(t *tensor.Tensor, v float32) { t.Fill(v) }

// DefaultInit is what torch.nn.Linear and torch.nn.Conv2d do in
// reset_parameters: weight from kaiming_uniform_(a=sqrt(5)), which works out
// to U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and the bias (may be nil) from the
// same bound.
func DefaultInit(weight, bias *tensor.Tensor, rng *rand.Rand) error {
	if err := KaimingUniform(weight, LeakyReLUGain(math.Sqrt(5)), FanIn, rng); err != nil {
		return err
	}
	if bias != nil {
		in, _, err := Fans(weight.Shape)
		if err != nil {
			return err
		}
		if in > 0 {
			b := 1 / math.Sqrt(float64(in))
			Uniform(bias, -b, b, rng)
		}
	}
	return nil
}
