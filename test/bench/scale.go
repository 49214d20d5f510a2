package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
)

// The scaling phase (see doc.go, "Scaling with VMs"): N VM ports, N/2
// pairs, VM 2k-1 -> VM 2k, all pairs at once, every port on VID 100.

// ScaleContenderNames are the contenders the scaling phase knows: the
// vswitchd rows whose VMs sit on veth, and the kernel's macvlan-vepa.
var ScaleContenderNames = []string{VswitchdAFPacket, VswitchdAFXDP, VswitchdAFXDPXSK, MacvlanVEPA}

// DefaultScale is the port counts of the full run's scaling phase.
var DefaultScale = []int{2, 16, 64}

// DefaultScaleContenders are the scaling phase's rows unless told otherwise.
var DefaultScaleContenders = []string{VswitchdAFPacket, VswitchdAFXDP, MacvlanVEPA}

// MaxScalePorts bounds a scaling step (names, addresses and time).
const MaxScalePorts = 1024

// ScalingResult is the scaling phase of one run (Results.Scaling).
type ScalingResult struct {
	Ports     []int   `json:"ports"`      // port counts, ascending
	DurationS float64 `json:"duration_s"` // the throughput measurement of each step, one repetition
	// VLAN says how the ports are tagged: every port on VID 100 (one
	// learning domain, as many VMs of one network on a hypervisor).
	VLAN string `json:"vlan"`
	// The latency phase of each step: Probes probes ProbeIntervalMs apart
	// on pair 1 while every pair (pair 1 too) sends LoadPPSPerPair
	// frames/s of background ("light load").
	Probes          int              `json:"probes,omitempty"`
	ProbeIntervalMs float64          `json:"probe_interval_ms,omitempty"`
	LoadPPSPerPair  float64          `json:"load_pps_per_pair,omitempty"`
	ElapsedS        float64          `json:"elapsed_s"`
	Contenders      []ScaleContender `json:"contenders"`
}

// ScaleContender is one contender's row group in the scaling section.
type ScaleContender struct {
	Name     string      `json:"name"`
	Note     string      `json:"note,omitempty"`
	Status   string      `json:"status"` // ok, partial, cannot run
	Reason   string      `json:"reason,omitempty"`
	CPUKind  string      `json:"cpu_kind,omitempty"` // process or softirq, as in the main rows
	Topology string      `json:"topology,omitempty"`
	Steps    []ScaleStep `json:"steps,omitempty"`
}

// ScaleStep is one port count of one contender.
type ScaleStep struct {
	Ports int `json:"ports"`
	Pairs int `json:"pairs"`
	// Throughput: every pair's generator floods 64-byte frames at once
	// (one thread driving all pairs' TX rings in turn, so each pair is
	// offered the same load); received frames counted per sink VM.
	PPS        float64 `json:"pps"` // aggregate received
	Mpps       float64 `json:"mpps"`
	SentPPS    float64 `json:"sent_pps"`
	LossPct    float64 `json:"loss_pct"`
	CPUPct     float64 `json:"cpu_pct"` // see ScaleContender.CPUKind
	SoftirqPct float64 `json:"softirq_pct"`
	SysBusyPct float64 `json:"sys_busy_pct"`
	Seconds    float64 `json:"seconds"`
	// Fairness over the pairs' received rates: the slowest and fastest
	// pair, min/max, and Jain's index (1 = all equal, 1/pairs = one pair
	// gets everything).
	PairMinPPS  float64   `json:"pair_min_pps"`
	PairMaxPPS  float64   `json:"pair_max_pps"`
	PairMeanPPS float64   `json:"pair_mean_pps"`
	PairMinMax  float64   `json:"pair_min_max"`
	JainIndex   float64   `json:"jain_index"`
	PairPPS     []float64 `json:"pair_pps,omitempty"` // pair k (VM 2k+1 -> VM 2k+2) at index k
	// Latency: probes VM1 -> VM2 -> VM1 at light load (every pair at
	// ScalingResult.LoadPPSPerPair), with the switch's CPU meanwhile.
	Latency *LatencyPhase `json:"latency,omitempty"`
	// vswitchd only: /proc/PID/status and /proc/PID/fd of the daemon with
	// no port, with the ports attached (before any traffic) and after the
	// step's traffic; RSSPerPortKB = (RSSPortsKB - RSSNoneKB) / Ports.
	RSSNoneKB    int64   `json:"rss_none_kb,omitempty"`
	RSSPortsKB   int64   `json:"rss_ports_kb,omitempty"`
	RSSAfterKB   int64   `json:"rss_after_kb,omitempty"`
	RSSPerPortKB float64 `json:"rss_per_port_kb,omitempty"`
	ThreadsNone  int     `json:"threads_none,omitempty"`
	ThreadsPorts int     `json:"threads_ports,omitempty"`
	ThreadsAfter int     `json:"threads_after,omitempty"`
	FDsNone      int     `json:"fds_none,omitempty"`
	FDsPorts     int     `json:"fds_ports,omitempty"`
	// AttachS is how long adding the ports over the API took (each add
	// returns once the port is attached); StopS how long the daemon took
	// to exit on SIGTERM after the step.
	AttachS float64 `json:"attach_s,omitempty"`
	StopS   float64 `json:"stop_s,omitempty"`
	// SwitchDrops are vswitchd's drops over the whole step by place and
	// reason ("uplink/rx_overrun", "ports/rx_overrun" summed over the
	// ports); SwitchDropsLight those during the latency phase alone.
	SwitchDrops       map[string]uint64 `json:"switch_drops,omitempty"`
	SwitchDropsLight  map[string]uint64 `json:"switch_drops_light,omitempty"`
	Verified          string            `json:"verified,omitempty"`
	BackgroundBusyPct float64           `json:"background_busy_pct"`
	ElapsedS          float64           `json:"elapsed_s"` // the whole step, setup to teardown
	Error             string            `json:"error,omitempty"`
}

// ParseScale parses a -scale list: comma-separated even port counts
// 2..MaxScalePorts; "" and "none" mean no scaling phase. The result is
// sorted and without duplicates (steps run from few ports to many).
func ParseScale(s string) ([]int, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "none" || s == "0" {
		return nil, nil
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("scale %q: %q is not a port count", s, f)
		}
		if err := checkScalePorts(n); err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

func checkScalePorts(n int) error {
	if n < 2 || n > MaxScalePorts || n%2 != 0 {
		return fmt.Errorf("scale: %d ports: want an even count 2..%d (VM 2k-1 sends to VM 2k)", n, MaxScalePorts)
	}
	return nil
}

// fairness summarizes per-pair rates: min, max, mean, min/max and Jain's
// fairness index (sum x)^2 / (n * sum x^2). No pairs, or all zero: zeros.
type fairness struct {
	Min, Max, Mean, MinMax, Jain float64
}

func pairFairness(pps []float64) fairness {
	if len(pps) == 0 {
		return fairness{}
	}
	f := fairness{Min: pps[0], Max: pps[0]}
	var sum, sq float64
	for _, x := range pps {
		f.Min, f.Max = min(f.Min, x), max(f.Max, x)
		sum += x
		sq += x * x
	}
	f.Mean = sum / float64(len(pps))
	if f.Max > 0 {
		f.MinMax = f.Min / f.Max
	}
	if sq > 0 {
		f.Jain = sum * sum / (float64(len(pps)) * sq)
	}
	return f
}

// procStatus is what the scaling phase reads from /proc/PID/status.
type procStatus struct {
	RSSKB, HWMKB int64 // VmRSS, VmHWM
	Threads      int
}

// parseProcStatus reads VmRSS, VmHWM and Threads from the text of
// /proc/PID/status. VmRSS and Threads must be there (a zombie or kernel
// thread has no VmRSS).
func parseProcStatus(b []byte) (procStatus, error) {
	var ps procStatus
	var haveRSS, haveThreads bool
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fs := strings.Fields(v)
		if len(fs) == 0 {
			continue
		}
		switch k {
		case "VmRSS", "VmHWM":
			if len(fs) != 2 || fs[1] != "kB" {
				return ps, fmt.Errorf("status: %s: %q", k, strings.TrimSpace(v))
			}
			n, err := strconv.ParseInt(fs[0], 10, 64)
			if err != nil {
				return ps, fmt.Errorf("status: %s: %w", k, err)
			}
			if k == "VmRSS" {
				ps.RSSKB, haveRSS = n, true
			} else {
				ps.HWMKB = n
			}
		case "Threads":
			n, err := strconv.Atoi(fs[0])
			if err != nil {
				return ps, fmt.Errorf("status: Threads: %w", err)
			}
			ps.Threads, haveThreads = n, true
		}
	}
	if !haveRSS || !haveThreads {
		return ps, fmt.Errorf("status: no VmRSS or Threads (process gone or a zombie?)")
	}
	return ps, nil
}

// perPort is (with - none) / ports, rounded to 0.1.
func perPort(with, none int64, ports int) float64 {
	if ports <= 0 {
		return 0
	}
	return round(float64(with-none)/float64(ports), 1)
}

// Contender returns the scaling rows of the named contender, or nil.
func (s *ScalingResult) Contender(name string) *ScaleContender {
	for i := range s.Contenders {
		if s.Contenders[i].Name == name {
			return &s.Contenders[i]
		}
	}
	return nil
}

// write prints the scaling section of the table.
func (s *ScalingResult) write(w io.Writer) error {
	ports := make([]string, len(s.Ports))
	for i, p := range s.Ports {
		ports[i] = strconv.Itoa(p)
	}
	fmt.Fprintf(w, "\nScaling with VMs (%s ports): N ports = N/2 pairs VM 2k-1 -> VM 2k flooding 64B frames all at once, %s; 1 x %.1fs per step.\n",
		strings.Join(ports, ", "), s.VLAN, s.DurationS)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "contender\tports\tvm->vm 64B\tx fewest\tper pair kpps\tpair\tJain\tloss%\tCPU%\tRTT light load us\tprobe\tCPU%\tRSS KiB\tthreads\tfds\tattach/stop\tnote")
	fmt.Fprintln(tw, "\t\tMpps (all)\tports\tmin/max\tmin/max\tindex\t\t\tp50/p99/max (pair 1)\tloss%\t(RTT)\tper port\tnone->N\tnone->N\ts\t")
	for _, c := range s.Contenders {
		if c.Status == StatusCannotRun && len(c.Steps) == 0 {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\tcannot run: %s\n", c.Name, oneLine(c.Reason))
			continue
		}
		var first float64
		for _, st := range c.Steps {
			if st.Error == "" && st.PPS > 0 {
				first = st.PPS
				break
			}
		}
		for _, st := range c.Steps {
			note := ""
			if st.Error != "" {
				note = oneLine(st.Error)
			}
			dash := func(ok bool, f string, a ...any) string {
				if !ok {
					return "-"
				}
				return fmt.Sprintf(f, a...)
			}
			tp := st.PPS > 0
			cpu := dash(tp, "%.0f", st.CPUPct)
			if tp && c.CPUKind == "softirq" {
				cpu += " sirq"
			}
			rtt, ploss, lcpu := "-", "-", "-"
			if l := st.Latency; l != nil {
				rtt, ploss = l.cell(), l.lossCell()
				if l.Error == "" {
					lcpu = fmt.Sprintf("%.1f", l.CPUPct)
					if c.CPUKind == "softirq" {
						lcpu += " sirq"
					}
				} else if note == "" {
					note = "latency: " + oneLine(l.Error)
				}
				if l.Error == "" && l.LoadTargetPPS > 0 && l.LoadSentPPS < 0.9*l.LoadTargetPPS {
					note = strings.TrimPrefix(note+fmt.Sprintf("; load stream reached %.0f of %.0f kpps", l.LoadSentPPS/1e3, l.LoadTargetPPS/1e3), "; ")
				}
			}
			vsd := st.RSSPortsKB > 0
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
				c.Name, st.Ports,
				dash(tp, "%.3f", st.Mpps),
				dash(tp && first > 0, "%.2fx", st.PPS/first),
				dash(tp, "%.0f/%.0f", st.PairMinPPS/1e3, st.PairMaxPPS/1e3),
				dash(tp, "%.2f", st.PairMinMax),
				dash(tp, "%.2f", st.JainIndex),
				dash(tp, "%.1f", st.LossPct),
				cpu, rtt, ploss, lcpu,
				dash(vsd, "%.0f", st.RSSPerPortKB),
				dash(vsd, "%d->%d", st.ThreadsNone, st.ThreadsPorts),
				dash(vsd, "%d->%d", st.FDsNone, st.FDsPorts),
				dash(vsd, "%.2f/%.2f", st.AttachS, st.StopS),
				note)
		}
		if c.Reason != "" && c.Status != StatusOK {
			fmt.Fprintf(tw, "%s\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t%s: %s\n", c.Name, c.Status, oneLine(c.Reason))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "Per pair: received frames/s of each sink VM (one generator thread offers every pair the same load); pair min/max and Jain's index: 1.00 = fair.")
	if s.Probes > 0 {
		fmt.Fprintf(w, "RTT light load: %d probes VM1 -> VM2 -> VM1 every %g ms while every pair sends %.0f frames/s, with the switch's CPU%% meanwhile.\n",
			s.Probes, s.ProbeIntervalMs, s.LoadPPSPerPair)
	}
	_, err := fmt.Fprintln(w, "RSS per port = (VmRSS of vswitchd with N ports attached - with none) / N; threads and fds of vswitchd with none and with N ports; attach/stop: adding the N ports over the API, and vswitchd's exit on SIGTERM.")
	return err
}

// sortedInts returns xs sorted ascending without duplicates.
func sortedInts(xs []int) []int {
	s := slices.Clone(xs)
	sort.Ints(s)
	return slices.Compact(s)
}
