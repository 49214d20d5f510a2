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
	if len(res.Contenders) > 0 || res.Scaling == nil {
		if err := res.writeRows(w); err != nil {
			return err
		}
	}
	if res.Scaling != nil {
		return res.Scaling.write(w)
	}
	return nil
}

// writeRows prints the contenders' rows and their notes.
func (res *Results) writeRows(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "contender\tvm->vm 64B\tup->vm 64B\tvm->vm 1500B\tCPU%\tloss%\tx macvlan-vepa\tx best-OVS\tRTT light us\tCPU%\tRTT load us\tprobe loss%\tnote")
	fmt.Fprintln(tw, "\tMpps\tMpps\tGbit/s\t(vm->vm 64B)\t(vm->vm 64B)\t(vm->vm 64B)\t(vm->vm 64B)\tp50/p99/max\t(RTT light)\tp50/p99/max\tlight/load\t")
	for _, c := range res.Contenders {
		if c.Status == StatusCannotRun {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\tcannot run: %s\n", c.Name, oneLine(c.Reason))
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
		if l := c.Latency; l != nil {
			for _, e := range []struct {
				name string
				ph   *LatencyPhase
			}{{"latency", &LatencyPhase{Error: l.Error}}, {"latency light", l.Light}, {"latency load", l.Load}} {
				if e.ph != nil && e.ph.Error != "" {
					note += "; " + e.name + ": " + oneLine(e.ph.Error)
				}
			}
			if p := l.Load; p != nil && p.Error == "" && p.LoadSentPPS < 0.9*p.LoadTargetPPS {
				note += fmt.Sprintf("; load stream reached %.0f of %.0f kpps", p.LoadSentPPS/1e3, p.LoadTargetPPS/1e3)
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
		mv := ratio(c.RatioMacvlanVEPA)
		if c.RatioMacvtapVEPA != nil {
			mv = ratio(c.RatioMacvtapVEPA) + " mvtap"
		}
		light, lcpu, load, ploss := "-", "-", "-", "-"
		if l := c.Latency; l != nil {
			light, load = l.Light.cell(), l.Load.cell()
			if l.Light != nil && l.Light.Error == "" {
				lcpu = fmt.Sprintf("%.1f", l.Light.CPUPct)
				if c.CPUKind == "softirq" {
					lcpu += " sirq"
				}
			}
			ploss = l.Light.lossCell() + "/" + l.Load.lossCell()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.Name, cell(TestVM2VM64, false), up,
			cell(TestVM2VM1500, true), cpu, loss, mv, ratio(c.RatioBestOVS), light, lcpu, load, ploss, note)
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
	if err != nil {
		return err
	}
	if res.LatencyProbes > 0 {
		_, err = fmt.Fprintf(w, "RTT: round trip VM1 -> VM2 -> VM1 of %d 60-byte UDP probes per phase, one every %g ms, microseconds "+
			"(nearest-rank p50/p99/max); light: the probes alone, with the switch's CPU%% meanwhile; load: plus a stream "+
			"VM1 -> VM2 at half the row's vm->vm 64B rate.\n", res.LatencyProbes, res.LatencyIntervalMs)
	}
	for _, c := range res.Contenders {
		if c.RatioMacvtapVEPA != nil {
			_, err = fmt.Fprintln(w, "Rows on taps (vswitchd-*-tap, macvtap-vepa): the VMs are tap file descriptors; \"mvtap\" ratios are to macvtap-vepa.")
			break
		}
	}
	return err
}

// cell formats p50/p99/max in microseconds.
func (p *LatencyPhase) cell() string {
	switch {
	case p == nil || p.Error != "" && p.Received == 0:
		return "-"
	case p.Received == 0:
		return "all lost"
	}
	us := func(v float64) string {
		if v < 10 {
			return fmt.Sprintf("%.1f", v)
		}
		return fmt.Sprintf("%.0f", v)
	}
	return us(p.P50Us) + "/" + us(p.P99Us) + "/" + us(p.MaxUs)
}

// netCell is " (net p50/p99/max)", the round trips less the time in the
// VMs, or "" where it was not measured.
func (p *LatencyPhase) netCell() string {
	if p == nil || p.NetProbes == 0 {
		return ""
	}
	return fmt.Sprintf(" (net %.0f/%.0f/%.0f)", p.NetP50Us, p.NetP99Us, p.NetMaxUs)
}

func (p *LatencyPhase) lossCell() string {
	if p == nil || p.Probes == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", p.LossPct)
}

// failed reports whether the latency measurement (or one of its phases)
// went wrong.
func (l *LatencyResult) failed() bool {
	if l == nil {
		return false
	}
	return l.Error != "" || l.Light == nil || l.Light.Error != "" || l.Load == nil || l.Load.Error != ""
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
