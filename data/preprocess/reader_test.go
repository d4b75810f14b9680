package preprocess

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/png"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// makeImages writes n small PNGs of varied sizes (some need resizing) to a
// temporary folder, with garbage in place of the files at the bad indices.
func makeImages(t testing.TB, n int, bad ...int) []string {
	t.Helper()
	dir := t.TempDir()
	var paths []string
	for i := range n {
		name := fmt.Sprintf("img%03d.png", i)
		if slices.Contains(bad, i) {
			paths = append(paths, writeTemp(t, dir, name, []byte("not a png "+name)))
			continue
		}
		w, h := 8+i%5, 8+i%3
		m := image.NewNRGBA(image.Rect(0, 0, w, h))
		for j := range m.Pix {
			m.Pix[j] = uint8(j*7 + i*13)
		}
		var b bytes.Buffer
		if err := png.Encode(&b, m); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, writeTemp(t, dir, name, b.Bytes()))
	}
	return paths
}

var readerSpec = Spec{Channels: "RGB", Size: [2]int{8, 8}, ResizeSize: 8, Crop: "center",
	Scale: 1.0 / 255, Mean: []float64{0.5, 0.4, 0.3}, Std: []float64{0.2, 0.25, 0.3}}

func TestFiles(t *testing.T) {
	cases := []struct {
		name      string
		n         int
		bad       []int
		policy    ErrorPolicy
		batch     int
		workers   int
		wantKept  []int  // indices, in order, of the images yielded
		wantErr   string // in the final error, "" for none
		wantWarns []int
	}{
		{"all good", 23, nil, Fail, 5, 3, seq(0, 23), "", nil},
		{"one worker, one batch", 7, nil, Fail, 0, 1, seq(0, 7), "", nil},
		{"more workers than files", 3, nil, Fail, 2, 16, seq(0, 3), "", nil},
		{"fail at the first bad file", 23, []int{12, 7}, Fail, 5, 4, seq(0, 5), "img007.png", nil},
		{"skip bad files", 23, []int{7, 12}, Skip, 5, 4, without(seq(0, 23), 7, 12), "", []int{7, 12}},
		{"skip them all", 4, []int{0, 1, 2, 3}, Skip, 2, 2, nil, "none of the 4 inputs", []int{0, 1, 2, 3}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			paths := makeImages(t, c.n, c.bad...)
			var warned []int
			opts := Options{Workers: c.workers, BatchSize: c.batch, OnError: c.policy,
				Warn: func(i int, path string, err error) {
					if path != paths[i] || !strings.Contains(err.Error(), path) {
						t.Errorf("warning for input %d (%s): %v", i, path, err)
					}
					warned = append(warned, i)
				}}
			var kept []int
			var gotErr error
			bs := max(c.batch, 0)
			if bs == 0 {
				bs = DefaultBatchSize
			}
			for b, err := range Files(context.Background(), paths, readerSpec, opts) {
				if err != nil {
					gotErr = err
					continue
				}
				if len(b.Indices) == 0 || len(b.Indices) > bs || len(b.Data) != len(b.Indices)*readerSpec.Len() {
					t.Fatalf("batch of %d indices, %d values", len(b.Indices), len(b.Data))
				}
				if len(b.Indices) < bs && len(kept)+len(b.Indices) != len(c.wantKept) {
					t.Errorf("a short batch (%d) before the end", len(b.Indices))
				}
				for k, i := range b.Indices {
					want, err := readerSpec.File(paths[i])
					if err != nil {
						t.Fatal(err)
					}
					if !slices.Equal(b.Data[k*len(want):(k+1)*len(want)], want) {
						t.Errorf("input %d: batch values differ from Spec.File's", i)
					}
				}
				kept = append(kept, b.Indices...)
			}
			if !slices.Equal(kept, c.wantKept) {
				t.Errorf("kept %v, want %v", kept, c.wantKept)
			}
			if !slices.Equal(warned, c.wantWarns) {
				t.Errorf("warned about %v, want %v", warned, c.wantWarns)
			}
			switch {
			case c.wantErr == "" && gotErr != nil:
				t.Errorf("error %v", gotErr)
			case c.wantErr != "" && (gotErr == nil || !strings.Contains(gotErr.Error(), c.wantErr)):
				t.Errorf("error %v, want one naming %q", gotErr, c.wantErr)
			}
		})
	}
}

func seq(a, b int) []int {
	var s []int
	for i := a; i < b; i++ {
		s = append(s, i)
	}
	return s
}

func without(s []int, drop ...int) []int {
	return slices.DeleteFunc(s, func(i int) bool { return slices.Contains(drop, i) })
}

func TestFilesStops(t *testing.T) {
	paths := makeImages(t, 40)
	// Large files after the first batch keep the workers busy when the loop
	// breaks, so a worker left running would show in the stacks below.
	big := image.NewGray(image.Rect(0, 0, 1000, 1000))
	for i := range big.Pix {
		big.Pix[i] = uint8(i * i >> 7)
	}
	var enc bytes.Buffer
	if err := png.Encode(&enc, big); err != nil {
		t.Fatal(err)
	}
	bigPath := writeTemp(t, t.TempDir(), "big.png", enc.Bytes())
	slow := slices.Clone(paths[:4])
	for range 8 {
		slow = append(slow, bigPath)
	}
	for _, err := range Files(context.Background(), slow, readerSpec, Options{BatchSize: 4, Workers: 4}) {
		if err != nil {
			t.Fatal(err)
		}
		break
	}
	// Files waits for its workers before returning: none may still be
	// decoding, and any goroutine of Files must be gone soon after (one may
	// be caught on its way out). Files may be inlined into the caller,
	// hence the loose name.
	stacks := func() string {
		buf := make([]byte, 1<<20)
		return string(buf[:runtime.Stack(buf, true)])
	}
	if s := stacks(); strings.Contains(s, "preprocess.(*prepared).file") {
		t.Errorf("a worker of Files still decoding after break:\n%s", s)
	}
	for try := 0; strings.Contains(stacks(), ".Files.func"); try++ {
		if try == 100 {
			t.Fatalf("goroutines of Files left running after break:\n%s", stacks())
		}
		time.Sleep(10 * time.Millisecond)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var got error
	for _, err := range Files(ctx, paths, readerSpec, Options{}) {
		got = err
	}
	if !errors.Is(got, context.Canceled) {
		t.Errorf("cancelled context: %v", got)
	}

	ctx, cancel = context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	time.Sleep(time.Millisecond)
	got = nil
	for _, err := range Files(ctx, paths, readerSpec, Options{}) {
		got = err
	}
	if !errors.Is(got, context.DeadlineExceeded) {
		t.Errorf("expired context: %v", got)
	}

	bad := readerSpec
	bad.Std = []float64{1}
	got = nil
	for _, err := range Files(context.Background(), paths, bad, Options{}) {
		got = err
	}
	if got == nil || !strings.Contains(got.Error(), "stds") {
		t.Errorf("bad spec: %v", got)
	}
}

func TestParseErrorPolicy(t *testing.T) {
	for s, want := range map[string]ErrorPolicy{"": Fail, "fail": Fail, "skip": Skip} {
		if p, err := ParseErrorPolicy(s); err != nil || p != want {
			t.Errorf("%q: %v %v", s, p, err)
		}
	}
	if _, err := ParseErrorPolicy("ignore"); err == nil {
		t.Error("ParseErrorPolicy accepted ignore")
	}
}
