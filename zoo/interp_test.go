package zoo

import (
	"math"
	"testing"
)

// TestBicubicMatrix compares the resampling matrices with PyTorch 1.13's
// F.interpolate(mode="bicubic", align_corners=False) applied to identity
// inputs (values printed by torch, rounded to 7 decimals).
func TestBicubicMatrix(t *testing.T) {
	cases := []struct {
		in, out int
		want    []float64
	}{
		{4, 6, []float64{1.0868058, -0.0868056, 0, 0, 0.5, 0.59375, -0.09375, 0, -0.0868053, 0.943287, 0.1608796, -0.0173612,
			-0.0173609, 0.1608796, 0.9432871, -0.0868056, 0, -0.09375, 0.5937499, 0.5000001, 0, 0, -0.0868053, 1.0868053}},
		{5, 3, []float64{0.6851851, 0.3703704, -0.0555553, 0, 0, 0, 0, 1, 0, 0, 0, 0, -0.0555558, 0.3703705, 0.685185}},
		{3, 7, []float64{1.1093292, -0.1093292, 0, 0.8790087, 0.1341108, -0.013119, 0.4198247, 0.6851312, -0.1049562,
			0, 1, 0, -0.1049562, 0.6851312, 0.4198248, -0.013119, 0.1341108, 0.8790085, 0, -0.1093295, 1.1093296}},
		{2, 2, []float64{1, 0, 0, 1}},
		{1, 3, []float64{1, 1, 1}},
	}
	for _, c := range cases {
		got := bicubicMatrix(c.in, c.out)
		if len(got) != len(c.want) {
			t.Fatalf("%d->%d: %d entries, want %d", c.in, c.out, len(got), len(c.want))
		}
		for i := range got {
			if math.Abs(float64(got[i])-c.want[i]) > 1e-6 {
				t.Errorf("%d->%d: M[%d,%d] = %.7f, want %.7f", c.in, c.out, i/c.in, i%c.in, got[i], c.want[i])
			}
		}
		// Each row of an interpolation matrix sums to 1 (constants stay constant).
		for r := 0; r < c.out; r++ {
			s := 0.0
			for _, v := range got[r*c.in : (r+1)*c.in] {
				s += float64(v)
			}
			if math.Abs(s-1) > 1e-6 {
				t.Errorf("%d->%d: row %d sums to %g", c.in, c.out, r, s)
			}
		}
	}
}
