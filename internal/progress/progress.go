// Package progress reports a long loop's progress on a terminal or a log:
// on a terminal one line redrawn in place (bar, counts, loss, throughput,
// ETA); elsewhere (a file, a pipe, CI) plain lines at a fixed interval, so
// logs stay readable and small.
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// IsTerminal reports whether w is a character device (a terminal) rather
// than a file or a pipe.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// Bar tracks done out of Total units of work.
type Bar struct {
	W     io.Writer
	Total int
	// Terminal redraws one line with a carriage return; otherwise a plain
	// line is printed at most every Every (0 means 30 s) and on Done.
	Terminal bool
	Every    time.Duration
	// Width is the bar's width in characters (0 means 24).
	Width int

	start, last time.Time
	done0       int // units already done when the bar started (resume)
	drawn       bool
}

// New returns a bar over total units, detecting whether w is a terminal.
func New(w io.Writer, total int) *Bar {
	return &Bar{W: w, Total: total, Terminal: IsTerminal(w)}
}

// Start marks the beginning of timing with done units already complete
// (a resumed run), which the ETA excludes from its rate.
func (b *Bar) Start(now time.Time, done int) {
	b.start, b.last, b.done0 = now, now, done
}

// ETA estimates the time left from the rate since Start.
func (b *Bar) ETA(now time.Time, done int) (time.Duration, bool) {
	el := now.Sub(b.start)
	if done <= b.done0 || el <= 0 {
		return 0, false
	}
	per := el / time.Duration(done-b.done0)
	return per * time.Duration(max(0, b.Total-done)), true
}

// Line formats the progress line without drawing it.
func (b *Bar) Line(now time.Time, done int, status string) string {
	var sb strings.Builder
	if b.Terminal {
		w := b.Width
		if w <= 0 {
			w = 24
		}
		fill := 0
		if b.Total > 0 {
			fill = min(w, w*done/b.Total)
		}
		sb.WriteString("[" + strings.Repeat("=", fill) + strings.Repeat(" ", w-fill) + "] ")
	}
	pct := 0.0
	if b.Total > 0 {
		pct = 100 * float64(done) / float64(b.Total)
	}
	fmt.Fprintf(&sb, "%d/%d (%.0f%%)", done, b.Total, pct)
	if status != "" {
		sb.WriteString(" " + status)
	}
	if eta, ok := b.ETA(now, done); ok && done < b.Total {
		sb.WriteString(" ETA " + FormatDuration(eta))
	}
	return sb.String()
}

// Update reports done units with a status such as "loss 4.1 320 img/s".
// Off a terminal it prints only when Every has passed since the last line.
func (b *Bar) Update(now time.Time, done int, status string) {
	if b.Terminal {
		fmt.Fprintf(b.W, "\r\x1b[K%s", b.Line(now, done, status))
		b.drawn = true
		return
	}
	every := b.Every
	if every <= 0 {
		every = 30 * time.Second
	}
	if now.Sub(b.last) >= every {
		b.last = now
		fmt.Fprintln(b.W, b.Line(now, done, status))
	}
}

// Println prints a message on its own line, keeping the bar below it.
func (b *Bar) Println(msg string) {
	if b.Terminal && b.drawn {
		fmt.Fprint(b.W, "\r\x1b[K")
		b.drawn = false
	}
	fmt.Fprintln(b.W, msg)
}

// Clear erases the bar's line on a terminal, so that a message printed next
// (an error) starts on a clean line; off a terminal it does nothing.
func (b *Bar) Clear() {
	if b.Terminal && b.drawn {
		fmt.Fprint(b.W, "\r\x1b[K")
		b.drawn = false
	}
}

// Done ends the bar's line (terminal) or prints a final line (log).
func (b *Bar) Done(now time.Time, done int, status string) {
	if b.Terminal {
		fmt.Fprintf(b.W, "\r\x1b[K%s\n", b.Line(now, done, status))
		b.drawn = false
		return
	}
	b.last = now
	fmt.Fprintln(b.W, b.Line(now, done, status))
}

// FormatDuration prints d compactly: 45s, 12m05s, 3h20m.
func FormatDuration(d time.Duration) string {
	s := int(d.Round(time.Second).Seconds())
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	}
	return fmt.Sprintf("%dh%02dm", s/3600, s%3600/60)
}
