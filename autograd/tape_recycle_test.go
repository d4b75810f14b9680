package autograd

import "testing"

func TestRecycle(t *testing.T) {
	tp := NewTape()
	var a []float32
	tp.NoGrad(func() {
		a = tp.Alloc(4, 4).Data
		if !tp.Recycle(a[4:8]) { // any view of the buffer identifies it
			t.Error("Recycle refused a buffer the tape allocated")
		}
		if tp.Recycle(a) {
			t.Error("Recycle took the same buffer twice")
		}
		if tp.Recycle(make([]float32, 16)) {
			t.Error("Recycle took a buffer the tape does not own")
		}
		if b := tp.Alloc(16).Data; &b[0] != &a[0] {
			t.Error("the recycled buffer was not reused")
		}
	})
	b := tp.Alloc(8).Data
	if tp.Recycle(b) {
		t.Error("a recording tape recycled a buffer the backward pass may read")
	}
}
