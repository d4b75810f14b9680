package bench

import (
	"strings"
	"testing"
)

func TestParseVmHWM(t *testing.T) {
	cases := []struct {
		name    string
		status  string
		want    float64
		wantErr string
	}{
		{"typical", "Name:\tx\nVmPeak:\t  999 kB\nVmHWM:\t  204800 kB\nVmRSS:\t 1024 kB\n", 200, ""},
		{"missing", "Name:\tx\nVmRSS:\t 1024 kB\n", 0, "no VmHWM"},
		{"bad unit", "VmHWM:\t 12 MB\n", 0, "unexpected VmHWM"},
		{"bad number", "VmHWM:\t 1x2 kB\n", 0, "VmHWM line"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseVmHWM([]byte(c.status))
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, c.wantErr)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("got %v, %v; want %v", got, err, c.want)
			}
		})
	}
}

func TestPeakRSSMiBOfThisProcess(t *testing.T) {
	before, err := PeakRSSMiB()
	if err != nil {
		t.Fatal(err)
	}
	// Touch 64 MiB so the high-water mark must rise above it.
	b := make([]byte, 64<<20)
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
	after, err := PeakRSSMiB()
	if err != nil {
		t.Fatal(err)
	}
	if after < 64 || after < before {
		t.Fatalf("peak RSS %0.f MiB after touching 64 MiB (before: %.0f)", after, before)
	}
	_ = b[len(b)-1]
}

func TestGemmSmall(t *testing.T) {
	r, err := Gemm(16, 2, 1)
	if err != nil {
		t.Fatal(err)
	}
	if r.Mode != "gemm" || r.Size != 16 || r.Steps != 2 || !(r.GFLOPS > 0) || !(r.Seconds > 0) {
		t.Fatalf("implausible result %+v", r)
	}
	if _, err := Gemm(0, 1, 0); err == nil {
		t.Fatal("size 0 accepted")
	}
}
