package progress

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestPlainLinesAtInterval(t *testing.T) {
	var buf bytes.Buffer
	b := &Bar{W: &buf, Total: 100, Every: 10 * time.Second}
	t0 := time.Unix(1000, 0)
	b.Start(t0, 0)
	b.Update(t0.Add(time.Second), 1, "loss 3")       // too soon
	b.Update(t0.Add(10*time.Second), 10, "loss 2")   // prints, ETA 90s
	b.Update(t0.Add(15*time.Second), 15, "loss 1.5") // too soon
	b.Done(t0.Add(100*time.Second), 100, "loss 1")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("lines %q, want 2", lines)
	}
	if lines[0] != "10/100 (10%) loss 2 ETA 1m30s" {
		t.Fatalf("line %q", lines[0])
	}
	if lines[1] != "100/100 (100%) loss 1" {
		t.Fatalf("final line %q", lines[1])
	}
	if strings.Contains(buf.String(), "\r") {
		t.Fatal("carriage return in a log")
	}
}

func TestTerminalRedraws(t *testing.T) {
	var buf bytes.Buffer
	b := &Bar{W: &buf, Total: 4, Terminal: true, Width: 8}
	t0 := time.Unix(0, 0)
	// Resumed at 2 of 4: the ETA uses only the units done since Start.
	b.Start(t0, 2)
	b.Update(t0.Add(2*time.Second), 3, "x")
	if got := buf.String(); got != "\r\x1b[K[======  ] 3/4 (75%) x ETA 2s" {
		t.Fatalf("%q", got)
	}
	b.Println("note")
	if !strings.HasSuffix(buf.String(), "\r\x1b[Knote\n") {
		t.Fatalf("%q", buf.String())
	}
	b.Update(t0.Add(3*time.Second), 4, "y")
	n := buf.Len()
	b.Clear()
	if got := buf.String()[n:]; got != "\r\x1b[K" {
		t.Fatalf("clear wrote %q", got)
	}
	b.Clear() // nothing drawn now
	if buf.Len() != n+4 {
		t.Fatal("second Clear wrote again")
	}
	if IsTerminal(&buf) {
		t.Fatal("a buffer is not a terminal")
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		4 * time.Second: "4s", 725 * time.Second: "12m05s", 3*time.Hour + 20*time.Minute + 9*time.Second: "3h20m",
	} {
		if got := FormatDuration(d); got != want {
			t.Errorf("%v: %q, want %q", d, got, want)
		}
	}
}
