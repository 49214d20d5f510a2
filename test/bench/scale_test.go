package bench

import (
	"bytes"
	"math"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseScale(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []int
	}{
		{"", nil},
		{"none", nil},
		{"0", nil},
		{"2", []int{2}},
		{"64,2,16", []int{2, 16, 64}},
		{" 4, 4 ,2", []int{2, 4}},
		{"1024", []int{1024}},
	} {
		got, err := ParseScale(tc.in)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseScale(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"3", "0,2", "2,x", "-2", "1026", "2,,4"} {
		if got, err := ParseScale(bad); err == nil {
			t.Errorf("ParseScale(%q) = %v, want an error", bad, got)
		}
	}
}

func TestPairFairness(t *testing.T) {
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	if f := pairFairness(nil); f != (fairness{}) {
		t.Errorf("no pairs: %+v", f)
	}
	if f := pairFairness([]float64{0, 0}); f != (fairness{}) {
		t.Errorf("all zero: %+v", f)
	}
	f := pairFairness([]float64{100, 100, 100, 100})
	if f.Min != 100 || f.Max != 100 || f.Mean != 100 || f.MinMax != 1 || !near(f.Jain, 1) {
		t.Errorf("equal pairs: %+v", f)
	}
	// One pair gets everything: Jain = 1/n.
	f = pairFairness([]float64{0, 0, 0, 400})
	if f.Min != 0 || f.Max != 400 || f.Mean != 100 || f.MinMax != 0 || !near(f.Jain, 0.25) {
		t.Errorf("one pair takes all: %+v", f)
	}
	// (1+2+3+4)^2 / (4 * (1+4+9+16)) = 100/120.
	f = pairFairness([]float64{4, 1, 3, 2})
	if f.Min != 1 || f.Max != 4 || f.Mean != 2.5 || f.MinMax != 0.25 || !near(f.Jain, 100.0/120) {
		t.Errorf("1..4: %+v", f)
	}
}

func TestParseProcStatus(t *testing.T) {
	status := "Name:\tvswitchd\nUmask:\t0022\nState:\tS (sleeping)\nVmPeak:\t 1461300 kB\nVmHWM:\t  170240 kB\n" +
		"VmRSS:\t  166320 kB\nRssAnon:\t   20000 kB\nThreads:\t75\nSigQ:\t0/31425\n"
	ps, err := parseProcStatus([]byte(status))
	if err != nil || ps != (procStatus{RSSKB: 166320, HWMKB: 170240, Threads: 75}) {
		t.Errorf("parse: %+v, %v", ps, err)
	}
	for _, bad := range []string{
		"Name:\tkworker\nThreads:\t1\n",     // no VmRSS (kernel thread, zombie)
		"VmRSS:\t 12 kB\n",                  // no Threads
		"VmRSS:\t 12 MB\nThreads:\t1\n",     // unit
		"VmRSS:\t twelve kB\nThreads:\t1\n", // number
		"VmRSS:\t 12 kB\nThreads:\tmany\n",  // number
	} {
		if ps, err := parseProcStatus([]byte(bad)); err == nil {
			t.Errorf("parse %q = %+v, want an error", bad, ps)
		}
	}
	// Our own status parses.
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc")
	}
	if ps, err := parseProcStatus(b); err != nil || ps.RSSKB <= 0 || ps.Threads <= 0 {
		t.Errorf("/proc/self/status: %+v, %v", ps, err)
	}
	if got := perPort(166320, 23692, 64); got != 2228.6 {
		t.Errorf("perPort = %v, want 2228.6", got)
	}
	if got := perPort(10, 0, 0); got != 0 {
		t.Errorf("perPort with no ports = %v", got)
	}
}

func TestDropsDelta(t *testing.T) {
	a := map[string]uint64{"ports/rx_overrun": 10, "uplink/unknown_dst": 3}
	b := map[string]uint64{"ports/rx_overrun": 25, "uplink/unknown_dst": 3, "uplink/rx_overrun": 7}
	if got, want := dropsDelta(a, b), map[string]uint64{"ports/rx_overrun": 15, "uplink/rx_overrun": 7}; !reflect.DeepEqual(got, want) {
		t.Errorf("delta %v, want %v", got, want)
	}
	if got := dropsDelta(b, b); got != nil {
		t.Errorf("no change: %v", got)
	}
	if got := dropsDelta(nil, map[string]uint64{"x": 0, "y": 2}); !reflect.DeepEqual(got, map[string]uint64{"y": 2}) {
		t.Errorf("from nothing: %v", got)
	}
}

// TestScalingTable: the scaling section prints a row per step with the
// growth, fairness, latency and vswitchd's resources, and a row that
// could not run says why; the main table stays as it was.
func TestScalingTable(t *testing.T) {
	res := &Results{Reps: 1, DurationS: 1,
		Contenders: []ContenderResult{{Name: MacvlanVEPA, Status: StatusOK, Tests: map[string]*TestResult{TestVM2VM64: {PPS: 1e6, Mpps: 1}}}},
		Scaling: &ScalingResult{Ports: []int{2, 64}, DurationS: 1, VLAN: "VID 100", Probes: 200, ProbeIntervalMs: 5, LoadPPSPerPair: 2000,
			Contenders: []ScaleContender{
				{Name: VswitchdAFPacket, Status: StatusOK, CPUKind: "process", Steps: []ScaleStep{
					{Ports: 2, Pairs: 1, PPS: 600000, Mpps: 0.6, PairMinPPS: 600000, PairMaxPPS: 600000, PairMinMax: 1, JainIndex: 1,
						Latency:   &LatencyPhase{Probes: 200, Received: 200, P50Us: 2000, P99Us: 2600, MaxUs: 3000, CPUPct: 4},
						RSSNoneKB: 20000, RSSPortsKB: 25000, RSSPerPortKB: 2500, ThreadsNone: 10, ThreadsPorts: 12, FDsNone: 18, FDsPorts: 27, AttachS: 0.05, StopS: 0.2},
					{Ports: 64, Pairs: 32, PPS: 300000, Mpps: 0.3, PairMinPPS: 5000, PairMaxPPS: 15000, PairMinMax: 0.33, JainIndex: 0.9,
						Latency:   &LatencyPhase{Probes: 200, Received: 100, LossPct: 50, P50Us: 10000, P99Us: 90000, MaxUs: 99000, CPUPct: 98},
						RSSNoneKB: 20000, RSSPortsKB: 164000, RSSPerPortKB: 2250, ThreadsNone: 10, ThreadsPorts: 74, FDsNone: 18, FDsPorts: 275, AttachS: 1.5, StopS: 2.9,
						Error: "vswitchd still running"},
				}},
				{Name: MacvlanVEPA, Status: StatusCannotRun, Reason: "build topology: no macvlan"},
			}}}
	var out bytes.Buffer
	if err := res.WriteTable(&out); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	for _, want := range []string{
		"Scaling with VMs (2, 64 ports)", "RSS KiB", "0.600", "0.50x", "600/600", "5/15", "0.33", "2000/2600/3000",
		"2500", "10->12", "18->275", "1.50/2.90", "50.0", "vswitchd still running", "cannot run: build topology: no macvlan",
		"x macvlan-vepa", // the main table is still there
	} {
		if !strings.Contains(s, want) {
			t.Errorf("table lacks %q:\n%s", want, s)
		}
	}
	// Only the scaling phase: no empty main table.
	res.Contenders = nil
	out.Reset()
	if err := res.WriteTable(&out); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "x macvlan-vepa") || !strings.Contains(out.String(), "Scaling with VMs") {
		t.Errorf("scaling only:\n%s", out.String())
	}
}

func TestCheckScaleConfig(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Scale = []int{64, 2, 16, 2}
	if err := checkScaleConfig(&cfg); err != nil || !reflect.DeepEqual(cfg.Scale, []int{2, 16, 64}) {
		t.Errorf("check: %v, scale %v", err, cfg.Scale)
	}
	for _, mod := range []func(*Config){
		func(c *Config) { c.Scale = []int{3} },
		func(c *Config) { c.ScaleContenders = []string{OVSAFXDP} },
		func(c *Config) { c.ScaleDuration = 0 },
		func(c *Config) { c.ScaleProbeInterval = 0 },
		func(c *Config) { c.ScaleLoadPPS = -1 },
	} {
		c := DefaultConfig()
		mod(&c)
		if err := checkScaleConfig(&c); err == nil {
			t.Errorf("accepted %+v", c)
		}
	}
	c := DefaultConfig()
	c.Scale, c.ScaleDuration = nil, 0 // no scaling phase: nothing else matters
	if err := checkScaleConfig(&c); err != nil {
		t.Error(err)
	}
}

// TestScaling runs the scaling phase alone, short: 2 and 4 ports for
// vswitchd with AF_PACKET and for macvlan-vepa. Every pair's frames must
// arrive, the per-pair, latency and (vswitchd) resource fields must be
// filled, the JSON must carry it, and nothing may be left behind.
func TestScaling(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespaces and packet sockets")
	}
	cfg := ShortConfig()
	cfg.Contenders = []string{"none"}
	cfg.Scale = []int{4, 2}
	cfg.ScaleProbes = 50
	cfg.Timeout = 45 * time.Second
	_, table, back := runShort(t, cfg)
	sr := back.Scaling
	if len(back.Contenders) != 0 || sr == nil || !reflect.DeepEqual(sr.Ports, []int{2, 4}) || len(sr.Contenders) != 2 {
		t.Fatalf("want only a scaling section with 2 and 4 ports, 2 rows: %d rows, %+v", len(back.Contenders), sr)
	}
	if sr.Probes != 50 || sr.LoadPPSPerPair != cfg.ScaleLoadPPS || sr.DurationS != 1 || sr.VLAN == "" {
		t.Errorf("settings: %+v", sr)
	}
	for _, c := range sr.Contenders {
		if c.Status != StatusOK || len(c.Steps) != 2 {
			t.Errorf("%s: status %s (%s), %d steps", c.Name, c.Status, c.Reason, len(c.Steps))
			continue
		}
		for i, s := range c.Steps {
			if want := []int{2, 4}[i]; s.Ports != want || s.Pairs != want/2 || len(s.PairPPS) != want/2 {
				t.Errorf("%s step %d: %d ports, %d pairs, %d pair rates", c.Name, i, s.Ports, s.Pairs, len(s.PairPPS))
				continue
			}
			if s.PPS <= 0 || s.PairMinPPS <= 0 || s.PairMinPPS > s.PairMaxPPS || s.JainIndex <= 0 || s.JainIndex > 1.0001 || s.Seconds <= 0 {
				t.Errorf("%s %d ports: %v pps, pairs %v..%v, Jain %v", c.Name, s.Ports, s.PPS, s.PairMinPPS, s.PairMaxPPS, s.JainIndex)
			}
			if !strings.Contains(s.Verified, "pair 1: ") || s.Ports == 4 && !strings.Contains(s.Verified, "pair 2: ") {
				t.Errorf("%s %d ports: verified %q", c.Name, s.Ports, s.Verified)
			}
			l := s.Latency
			if l == nil || l.Error != "" || l.Received <= 0 || !(l.MinUs > 0 && l.MinUs <= l.P50Us && l.P50Us <= l.P99Us && l.P99Us <= l.MaxUs) ||
				l.LoadTargetPPS != cfg.ScaleLoadPPS*float64(s.Pairs) || l.LoadSentPPS <= 0 {
				t.Errorf("%s %d ports: latency %+v", c.Name, s.Ports, l)
			}
			vsd := c.Name == VswitchdAFPacket
			if got := s.RSSNoneKB > 0 && s.RSSPortsKB > 0 && s.RSSAfterKB > 0 && s.ThreadsPorts > 0 && s.FDsPorts > s.FDsNone && s.FDsNone > 0; got != vsd {
				t.Errorf("%s %d ports: vswitchd process fields %v, want %v: %+v", c.Name, s.Ports, got, vsd, s)
			}
			if vsd && (s.RSSPerPortKB != perPort(s.RSSPortsKB, s.RSSNoneKB, s.Ports) || s.AttachS <= 0 || s.StopS <= 0) {
				t.Errorf("%s %d ports: rss/port %v, attach %v, stop %v", c.Name, s.Ports, s.RSSPerPortKB, s.AttachS, s.StopS)
			}
		}
	}
	if !strings.Contains(table, "Scaling with VMs (2, 4 ports)") {
		t.Error("no scaling section in the table")
	}
	checkNoNamespacesLeft(t)
}
