package fuzzcheck

import "testing"

var sink []byte

func TestAllocatedCountsFreedMemory(t *testing.T) {
	got := Allocated(func() {
		sink = make([]byte, 32<<20)
		sink = nil
	})
	if got < 32<<20 {
		t.Fatalf("Allocated = %d, want at least 32 MiB", got)
	}
}

func TestEncode(t *testing.T) {
	got, err := Encode([]byte("a\x00"), "é\xff", int64(-3), true, uint16(7))
	if err != nil {
		t.Fatal(err)
	}
	want := "go test fuzz v1\n[]byte(\"a\\x00\")\nstring(\"é\\xff\")\nint64(-3)\nbool(true)\nuint16(7)\n"
	if string(got) != want {
		t.Fatalf("Encode = %q, want %q", got, want)
	}
	if _, err := Encode(3.5); err == nil {
		t.Fatal("Encode(float64) succeeded; the corpus format needs a type this package does not write")
	}
}
