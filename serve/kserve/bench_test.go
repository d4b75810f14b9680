package kserve

import (
	"fmt"
	"strings"
	"testing"
)

// BenchmarkDecodeRequestJSON: one Fashion-MNIST image (784 floats, as
// make bench-serve sends it) in a v2 JSON request.
func BenchmarkDecodeRequestJSON(b *testing.B) {
	var sb strings.Builder
	sb.WriteString(`{"inputs":[{"name":"pixel_values","shape":[1,1,28,28],"datatype":"FP32","data":[`)
	for i := range 784 {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, "%g", float32(i%255)/255*2-1)
	}
	sb.WriteString(`]}]}`)
	body := []byte(sb.String())
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := DecodeRequest(body, -1); err != nil {
			b.Fatal(err)
		}
	}
}
