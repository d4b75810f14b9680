package kserve

import (
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
)

// checkFastFloat32 fails t when the fast path takes s and disagrees with
// strconv, bit for bit.
func checkFastFloat32(t *testing.T, s string) {
	t.Helper()
	if !isNumber([]byte(s)) {
		return
	}
	got, ok := fastFloat32([]byte(s))
	if !ok {
		return
	}
	want, err := strconv.ParseFloat(s, 32)
	if err != nil {
		t.Fatalf("%s: fast path gave %g, strconv: %v", s, got, err)
	}
	if math.Float32bits(got) != math.Float32bits(float32(want)) {
		t.Fatalf("%s: fast path gave %g (%#x), strconv %g (%#x)", s, got, math.Float32bits(got), float32(want), math.Float32bits(float32(want)))
	}
}

func TestFastFloat32(t *testing.T) {
	fixed := []string{"0", "-0", "0.0", "1", "-1", "0.5", "1e10", "1E-10", "3.4028234e38", "3.4028236e38",
		"1.17549435e-38", "1.1754942e-38", "123456789012345", "1234567890123456", "0.000001", "-0.35294116",
		"16777217", "16777219", "33554433", "0.1", "0.2", "0.3", "9.999999e-23", "1e22", "1e23", "1e-22", "1e-23"}
	for _, s := range fixed {
		checkFastFloat32(t, s)
	}
	taken := 0
	r := rand.New(rand.NewPCG(1, 2))
	for range 200000 {
		var s string
		switch r.IntN(4) {
		case 0: // what clients write: the shortest float32 form
			s = strconv.FormatFloat(float64(math.Float32frombits(r.Uint32())), 'g', -1, 32)
		case 1: // a float64's shortest form, more digits than a float32 needs
			s = strconv.FormatFloat(r.NormFloat64()*math.Pow(10, float64(r.IntN(20)-10)), 'g', -1, 64)
		case 2: // fixed precision
			s = strconv.FormatFloat(r.Float64()*2-1, 'f', r.IntN(12), 64)
		default: // float32 midpoints and their neighbours, in decimal
			a := math.Float32frombits(r.Uint32() &^ (1 << 31))
			mid := (float64(a) + float64(math.Nextafter32(a, float32(math.Inf(1))))) / 2
			s = strconv.FormatFloat(mid, 'e', 14+r.IntN(3), 64)
		}
		if _, ok := fastFloat32([]byte(s)); ok {
			taken++
		}
		checkFastFloat32(t, s)
	}
	if taken < 50000 { // about 89000 take it
		t.Errorf("the fast path took only %d of 200000 numbers", taken)
	}
}

// FuzzFastFloat32: whatever number the fast path takes, it gives strconv's
// float32 bit for bit.
func FuzzFastFloat32(f *testing.F) {
	for _, s := range []string{"0", "-0.35294116", "1e-10", "3.4028235e38", "16777217", "0.1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { checkFastFloat32(t, s) })
}
