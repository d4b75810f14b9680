package servebench

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// Target is one of the serving issue's load targets, measured.
type Target struct {
	Name  string
	Value string
	Want  string
	OK    bool
}

func (r *Report) cell(proto string, batching bool, conc, batch int) (Cell, bool) {
	for _, c := range r.Cells {
		if c.Protocol == proto && c.Batching == batching && c.Concurrency == conc && c.Batch == batch {
			return c, true
		}
	}
	return Cell{}, false
}

// Targets evaluates the report against the targets.
func (r *Report) Targets() []Target {
	top := r.Config.Concurrency[len(r.Config.Concurrency)-1]
	b1, _ := r.cell(InProcess, false, 1, 1)
	bN, _ := r.cell(InProcess, true, 1, r.Config.MaxBatch)
	off, _ := r.cell(V2JSON, false, top, 1)
	on, _ := r.cell(V2JSON, true, top, 1)
	binOn, _ := r.cell(V2Binary, true, top, 1)
	ideal := bN.RowsPerSecond() / b1.RowsPerSecond()
	gain := on.RowsPerSecond() / off.RowsPerSecond()
	captured := (gain - 1) / (ideal - 1)
	eff := on.RowsPerSecond() / bN.RowsPerSecond()
	effBin := binOn.RowsPerSecond() / bN.RowsPerSecond()
	errs := r.SoakErrors
	for _, c := range r.Cells {
		errs += c.Result.Errors
	}
	growth := float64(r.RSSEnd-r.RSSStart) / float64(r.RSSStart)
	ts := []Target{
		{fmt.Sprintf("batching gain at c=%d (on/off), share of the runtime's own batch-%d gain (%.2fx)", top, r.Config.MaxBatch, ideal),
			fmt.Sprintf("%.2fx on/off, %.0f%% of the gain", gain, 100*captured), ">= 80%", captured >= 0.8},
		{fmt.Sprintf("server req/s at c=%d, batching, against in-process rows/s at batch %d (v2 json)", top, r.Config.MaxBatch),
			fmt.Sprintf("%.0f%%", 100*eff), ">= 85%", eff >= 0.85},
		{fmt.Sprintf("the same, v2 binary"), fmt.Sprintf("%.0f%%", 100*effBin), "reported (binary should beat json)", true},
		{"errors, all runs", fmt.Sprint(errs), "0", errs == 0},
		{"exit codes after SIGTERM (off, on)", fmt.Sprint(r.ExitCodes), "[0 0]", r.ExitCodes == [2]int{}},
	}
	if r.RSSStart > 0 {
		ts = append(ts, Target{fmt.Sprintf("server RSS over a %v run at c=%d (%d requests)", r.Config.Soak, top, r.SoakRequests),
			fmt.Sprintf("%d -> %d MiB (%+.1f%%)", r.RSSStart>>20, r.RSSEnd>>20, 100*growth), "< +20%", growth < 0.2})
	}
	return ts
}

// Write prints the measurements and the targets as two tables.
func (r *Report) Write(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "protocol\tbatching\tclients\tbatch\trows/s\tp50\tp99\terrors\t")
	ms := func(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/1e6) }
	for _, c := range r.Cells {
		batching := "off"
		if c.Batching {
			batching = "on"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.0f\t%s\t%s\t%d\t\n", c.Protocol, batching, c.Concurrency, c.Batch, c.RowsPerSecond(),
			ms(c.Result.Percentile(0.5)), ms(c.Result.Percentile(0.99)), c.Result.Errors)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, t := range r.Targets() {
		mark := "ok"
		if !t.OK {
			mark = "MISSED"
		}
		fmt.Fprintf(tw, "%s\t%s\t(target %s)\t%s\n", t.Name, t.Value, t.Want, mark)
	}
	return tw.Flush()
}
