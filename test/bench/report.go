package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
)

// WriteTable prints the results as an aligned table, one row per contender.
func (res *Results) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "contender\tvm->vm 64B\tup->vm 64B\tvm->vm 1500B\tCPU%\tloss%\tx macvlan-vepa\tx best-OVS\tnote")
	fmt.Fprintln(tw, "\tMpps\tMpps\tGbit/s\t(vm->vm 64B)\t(vm->vm 64B)\t(vm->vm 64B)\t(vm->vm 64B)\t")
	for _, c := range res.Contenders {
		if c.Status == StatusCannotRun {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\t-\t-\tcannot run: %s\n", c.Name, oneLine(c.Reason))
			continue
		}
		note := c.Note
		if c.Reason != "" {
			note += "; " + oneLine(c.Reason)
		}
		for _, n := range []string{TestVM2VM64, TestUp2VM64, TestVM2VM1500} {
			if t := c.Tests[n]; t != nil && t.Error != "" {
				note += "; " + n + ": " + oneLine(t.Error)
			}
		}
		cell := func(n string, gbps bool) string {
			t := c.Tests[n]
			if t == nil || t.Error != "" {
				return "-"
			}
			if gbps {
				return fmt.Sprintf("%.2f", t.Gbps)
			}
			return fmt.Sprintf("%.3f", t.Mpps)
		}
		cpu, loss := "-", "-"
		if t := c.Tests[TestVM2VM64]; t != nil && t.Error == "" {
			cpu = fmt.Sprintf("%.0f", t.CPUPct)
			if c.CPUKind == "softirq" {
				cpu += " sirq"
			}
			loss = fmt.Sprintf("%.1f", t.LossPct)
		}
		ratio := func(x *float64) string {
			if x == nil {
				return "-"
			}
			return fmt.Sprintf("%.2fx", *x)
		}
		up := cell(TestUp2VM64, false)
		if t := c.Tests[TestUp2VM64]; t != nil && t.Error == "" && !t.Tagged {
			up += " (untagged)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.Name, cell(TestVM2VM64, false), up,
			cell(TestVM2VM1500, true), cpu, loss, ratio(c.RatioMacvlanVEPA), ratio(c.RatioBestOVS), note)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, c := range res.Contenders {
		if c.BackgroundBusyPct > 20 && c.Status != StatusCannotRun {
			fmt.Fprintf(w, "warning: %s ran on a busy machine (%.0f%% CPU busy before it started): its numbers are low.\n", c.Name, c.BackgroundBusyPct)
		}
	}
	_, err := fmt.Fprintf(w, "\n%d rep(s) x %.1fs per test, median; kernel %s, %d CPUs, commit %s.\n"+
		"CPU%%: utime+stime of the switch process (100 = one core); \"sirq\" = system-wide softirq time for in-kernel switches.\n"+
		"64B = 60 bytes + FCS; 1500B = 1514-byte frames (1500-byte IP packets), Gbit/s of L2 bytes.\n",
		res.Reps, res.DurationS, res.Kernel, res.CPUs, orNone(res.Commit))
	return err
}

// WriteJSON writes the results as indented JSON to path.
func (res *Results) WriteJSON(path string) error {
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return fmt.Errorf("encode results: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 160 {
		s = s[:157] + "..."
	}
	return s
}

func orNone(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
