package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Test names (JSON keys).
const (
	TestVM2VM64   = "vm2vm_64"
	TestUp2VM64   = "up2vm_64"
	TestVM2VM1500 = "vm2vm_1500"
)

// Config controls one harness run.
type Config struct {
	Duration   time.Duration // per repetition of each test
	Reps       int           // repetitions; the median is reported
	Contenders []string      // names from AllContenders; empty = all
	// VswitchdPath and VswctlPath point at prebuilt binaries; empty means
	// build them from RepoRoot with `go build`.
	VswitchdPath, VswctlPath string
	RepoRoot                 string        // module root; found from the working directory when empty
	BuildTimeout             time.Duration // bound on building vswitchd/vswctl
	Timeout                  time.Duration // bound on the whole run
	Progress                 io.Writer     // one line per finished test, may be nil
	// Generator is "ring" (TPACKET_V2 TX ring, default) or "mmsg" (sendmmsg).
	Generator string
	// Probes is the number of latency probes per phase (light, under
	// load), one every ProbeInterval; 0 skips the latency measurement.
	Probes        int
	ProbeInterval time.Duration
	// Scale lists the port counts of the scaling phase (even, 2 up to
	// MaxScalePorts: VM 2k-1 sends to VM 2k, all pairs at once); empty:
	// no scaling phase. ScaleContenders are its rows (of
	// ScaleContenderNames; empty: DefaultScaleContenders). Each step
	// floods for ScaleDuration (one repetition), then sends ScaleProbes
	// probes ScaleProbeInterval apart on pair 1 while every pair sends
	// ScaleLoadPPS frames/s (0: probes alone; ScaleProbes 0: no probes).
	Scale              []int
	ScaleContenders    []string
	ScaleDuration      time.Duration
	ScaleProbes        int
	ScaleProbeInterval time.Duration
	ScaleLoadPPS       float64
}

// blaster is a generator that sends one frame as fast as it can.
type blaster interface {
	sendFor(ctx context.Context, d time.Duration) (uint64, time.Duration, error)
	close()
}

// DefaultConfig is the full run: all contenders, 3 x 1 s per throughput
// test and 500 latency probes 10 ms apart per phase (5 s each), which
// keeps 12 contenders (9 on veth, 3 on taps) under 5 minutes on a 2-core
// machine (before the latency phases and the tap rows it was 3 x 2.5 s);
// then the scaling phase with 2, 16 and 64 ports: 1 x 1 s of flood and
// 200 probes 5 ms apart at 2,000 frames/s per pair per step.
func DefaultConfig() Config {
	return Config{Duration: time.Second, Reps: 3, BuildTimeout: 3 * time.Minute, Timeout: 6*time.Minute + 30*time.Second,
		Probes: 500, ProbeInterval: 10 * time.Millisecond,
		Scale: DefaultScale, ScaleDuration: time.Second, ScaleProbes: 200, ScaleProbeInterval: 5 * time.Millisecond, ScaleLoadPPS: 2000}
}

// ShortConfig is the smoke variant: 1 repetition of 1 s, 100 probes per
// latency phase, a vswitchd row and the two kernel references; no scaling
// phase (set Scale for one: its other settings are short ones).
func ShortConfig() Config {
	return Config{Duration: time.Second, Reps: 1, BuildTimeout: 90 * time.Second, Timeout: 2 * time.Minute,
		Contenders: []string{LinuxBridge, VswitchdAFPacket, MacvlanVEPA}, Probes: 100, ProbeInterval: 10 * time.Millisecond,
		ScaleContenders: []string{VswitchdAFPacket, MacvlanVEPA}, ScaleDuration: time.Second, ScaleProbes: 100,
		ScaleProbeInterval: 5 * time.Millisecond, ScaleLoadPPS: 2000}
}

// Results is everything one run measured; it is also the JSON document.
type Results struct {
	Started    time.Time         `json:"started"`
	Commit     string            `json:"commit,omitempty"`
	Kernel     string            `json:"kernel,omitempty"`
	CPUs       int               `json:"cpus"`
	DurationS  float64           `json:"duration_s"`
	Reps       int               `json:"reps"`
	Generator  string            `json:"generator"`
	ElapsedS   float64           `json:"elapsed_s"`
	Contenders []ContenderResult `json:"contenders"`
	// Prober describes the latency measurement (empty when it was off).
	Prober            string  `json:"prober,omitempty"`
	LatencyProbes     int     `json:"latency_probes,omitempty"` // per phase
	LatencyIntervalMs float64 `json:"latency_interval_ms,omitempty"`
	// Scaling is the scaling phase (nil when it did not run).
	Scaling *ScalingResult `json:"scaling,omitempty"`
}

// ContenderResult is one row.
type ContenderResult struct {
	Name    string                 `json:"name"`
	Note    string                 `json:"note,omitempty"`
	Status  string                 `json:"status"` // ok, partial, cannot run
	Reason  string                 `json:"reason,omitempty"`
	CPUKind string                 `json:"cpu_kind,omitempty"` // process (utime+stime of the switch) or softirq (system-wide)
	Tests   map[string]*TestResult `json:"tests,omitempty"`
	// Ratios of vm2vm_64 pps to macvlan-vepa's and to the best OVS row's
	// (rows whose VMs sit on veth or macvlan); for rows whose VMs sit on
	// taps, to macvtap-vepa's.
	RatioMacvlanVEPA *float64 `json:"ratio_macvlan_vepa,omitempty"`
	RatioBestOVS     *float64 `json:"ratio_best_ovs,omitempty"`
	RatioMacvtapVEPA *float64 `json:"ratio_macvtap_vepa,omitempty"`
	// Topology says how the VMs attach: veth, macvlan, wire, tap, macvtap.
	Topology string `json:"topology,omitempty"`
	// Latency is the probes' round-trip time VM1 -> VM2 -> VM1.
	Latency *LatencyResult `json:"latency,omitempty"`
	// BackgroundBusyPct is CPU busy (100 = one core) measured for a moment
	// before this contender was set up: load that is not ours and skews
	// every number of the row.
	BackgroundBusyPct float64 `json:"background_busy_pct"`
}

// Status values.
const (
	StatusOK        = "ok"
	StatusPartial   = "partial"
	StatusCannotRun = "cannot run"
)

// TestResult is one test of one contender: medians over the repetitions.
type TestResult struct {
	FrameSize  int         `json:"frame_size"` // bytes without FCS, untagged
	Tagged     bool        `json:"tagged"`     // frames on the uplink carry VID 100
	PPS        float64     `json:"pps"`
	Mpps       float64     `json:"mpps"`
	Gbps       float64     `json:"gbps"`
	CPUPct     float64     `json:"cpu_pct"` // of one core; see CPUKind
	SoftirqPct float64     `json:"softirq_pct"`
	SysBusyPct float64     `json:"sys_busy_pct"` // all CPUs, 100 = one core
	LossPct    float64     `json:"loss_pct"`
	Verified   string      `json:"verified,omitempty"`
	Error      string      `json:"error,omitempty"`
	Reps       []RepResult `json:"reps,omitempty"`
}

// RepResult is one repetition.
type RepResult struct {
	Sent       uint64  `json:"sent"`
	Received   uint64  `json:"received"`
	Seconds    float64 `json:"seconds"`
	PPS        float64 `json:"pps"`
	CPUPct     float64 `json:"cpu_pct"`
	SoftirqPct float64 `json:"softirq_pct"`
	SysBusyPct float64 `json:"sys_busy_pct"`
	LossPct    float64 `json:"loss_pct"`
}

// harness carries state shared by the contenders of one run.
type harness struct {
	cfg Config

	buildOnce        sync.Once
	vswitchd, vswctl string
	buildErr         error
	buildDir         string
}

// Run builds each contender's topology in turn, measures it and tears it
// down. It needs root. Errors of single contenders land in their rows; the
// returned error is for the run as a whole (not root, bad config).
func Run(ctx context.Context, cfg Config) (*Results, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("the benchmark needs root (network namespaces, packet sockets)")
	}
	if cfg.Duration <= 0 || cfg.Reps <= 0 {
		return nil, fmt.Errorf("duration %v and reps %d must be positive", cfg.Duration, cfg.Reps)
	}
	names := cfg.Contenders
	switch {
	case len(names) == 0:
		names = AllContenders
	case len(names) == 1 && names[0] == "none": // only the scaling phase
		names = nil
	}
	var cs []contender
	for _, n := range names {
		c, ok := contenderByName(n)
		if !ok {
			return nil, fmt.Errorf("unknown contender %q (known: %s)", n, strings.Join(AllContenders, ", "))
		}
		cs = append(cs, c)
	}
	if err := checkScaleConfig(&cfg); err != nil {
		return nil, err
	}
	if cfg.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Timeout)
		defer cancel()
	}
	h := &harness{cfg: cfg}
	defer h.cleanup()
	removeStale(ctx)

	res := &Results{Started: time.Now().UTC(), CPUs: runtime.NumCPU(), DurationS: cfg.Duration.Seconds(), Reps: cfg.Reps}
	switch cfg.Generator {
	case "", "ring":
		h.cfg.Generator = "ring"
		res.Generator = "in-repo Go AF_PACKET TPACKET_V2 TX ring (512 slots), PACKET_QDISC_BYPASS, 1 thread"
	case "mmsg":
		res.Generator = "in-repo Go AF_PACKET sendmmsg x64, PACKET_QDISC_BYPASS, 1 thread"
	default:
		return nil, fmt.Errorf("unknown generator %q (ring or mmsg)", cfg.Generator)
	}
	if cfg.Probes > 0 {
		if cfg.ProbeInterval <= 0 {
			return nil, fmt.Errorf("probe interval %v must be positive", cfg.ProbeInterval)
		}
		res.Prober = "in-repo Go: 60-byte UDP/IPv4 probes VM1 -> echo in VM2 -> VM1 on a fixed schedule, " +
			"CLOCK_MONOTONIC send time in the payload; packet sockets with a BPF filter (veth), the tap's file descriptor (taps)"
		res.LatencyProbes = cfg.Probes
		res.LatencyIntervalMs = round(float64(cfg.ProbeInterval)/1e6, 3)
	}
	res.Kernel = kernelRelease()
	res.Commit = gitCommit(cfg.RepoRoot)
	for _, c := range cs {
		var r ContenderResult
		if ctx.Err() != nil {
			r = ContenderResult{Name: c.name, Note: c.note, Status: StatusCannotRun, Reason: "harness time limit reached: " + ctx.Err().Error()}
		} else {
			bg := backgroundBusy(300 * time.Millisecond)
			r = h.runContender(ctx, c)
			r.BackgroundBusyPct = bg
			if bg > 20 {
				slog.Warn("machine busy before this contender ran; its numbers are skewed", "contender", c.name, "busy_pct", bg)
			}
		}
		res.Contenders = append(res.Contenders, r)
		if cfg.Progress != nil {
			fmt.Fprintf(cfg.Progress, "%-18s %s\n", r.Name, r.summary())
		}
	}
	res.computeRatios()
	if len(cfg.Scale) > 0 {
		res.Scaling = h.runScaling(ctx)
	}
	res.ElapsedS = time.Since(res.Started).Seconds()
	return res, nil
}

// checkScaleConfig checks (and sorts) the scaling phase's settings.
func checkScaleConfig(cfg *Config) error {
	if len(cfg.Scale) == 0 {
		return nil
	}
	for _, n := range cfg.Scale {
		if err := checkScalePorts(n); err != nil {
			return err
		}
	}
	cfg.Scale = sortedInts(cfg.Scale)
	for _, n := range cfg.ScaleContenders {
		if _, ok := scaleContenderByName(n); !ok {
			return fmt.Errorf("unknown scaling contender %q (known: %s)", n, strings.Join(ScaleContenderNames, ", "))
		}
	}
	if cfg.ScaleDuration <= 0 {
		return fmt.Errorf("scale duration %v must be positive", cfg.ScaleDuration)
	}
	if cfg.ScaleProbes > 0 && cfg.ScaleProbeInterval <= 0 {
		return fmt.Errorf("scale probe interval %v must be positive", cfg.ScaleProbeInterval)
	}
	if cfg.ScaleLoadPPS < 0 {
		return fmt.Errorf("scale load %v frames/s per pair must not be negative", cfg.ScaleLoadPPS)
	}
	return nil
}

func (h *harness) cleanup() {
	if h.buildDir != "" {
		_ = os.RemoveAll(h.buildDir)
	}
}

// vswitchdBinaries returns the daemon and CLI paths, building them once.
func (h *harness) vswitchdBinaries(ctx context.Context) (string, string, error) {
	h.buildOnce.Do(func() {
		if h.cfg.VswitchdPath != "" && h.cfg.VswctlPath != "" {
			h.vswitchd, h.vswctl = h.cfg.VswitchdPath, h.cfg.VswctlPath
			return
		}
		root := h.cfg.RepoRoot
		if root == "" {
			var err error
			if root, err = findRepoRoot(); err != nil {
				h.buildErr = err
				return
			}
		}
		dir, err := os.MkdirTemp("", "vsb-build-")
		if err != nil {
			h.buildErr = fmt.Errorf("build dir: %w", err)
			return
		}
		h.buildDir = dir
		h.vswitchd, h.vswctl = h.cfg.VswitchdPath, h.cfg.VswctlPath
		bctx, cancel := context.WithTimeout(ctx, h.cfg.BuildTimeout)
		defer cancel()
		for _, b := range []struct {
			pkg string
			out *string
		}{{"./cmd/vswitchd", &h.vswitchd}, {"./cmd/vswctl", &h.vswctl}} {
			if *b.out != "" {
				continue
			}
			bin := filepath.Join(dir, filepath.Base(b.pkg))
			cmd := exec.CommandContext(bctx, "go", "build", "-o", bin, b.pkg)
			cmd.Dir = root
			if out, err := cmd.CombinedOutput(); err != nil {
				msg := strings.TrimSpace(string(out))
				if i := strings.IndexByte(msg, '\n'); i > 0 {
					msg = msg[:i]
				}
				h.buildErr = fmt.Errorf("go build %s: %v: %s", b.pkg, err, msg)
				return
			}
			*b.out = bin
		}
	})
	return h.vswitchd, h.vswctl, h.buildErr
}

// findRepoRoot walks up from the working directory to the go.mod of this module.
func findRepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("getwd: %w", err)
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(b), "module github.com/vswitch/vswitch") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("repository root (go.mod of github.com/vswitch/vswitch) not found above the working directory; pass -vswitchd and -vswctl")
		}
		dir = parent
	}
}

// runContender builds, measures and tears down one contender.
func (h *harness) runContender(ctx context.Context, c contender) (r ContenderResult) {
	r = ContenderResult{Name: c.name, Note: c.note, Tests: map[string]*TestResult{}, Topology: c.kind.String()}
	t, err := buildTopo(ctx, c.kind, !c.noHairpin)
	if err != nil {
		return cannot(r, fmt.Errorf("build topology: %w", err))
	}
	defer t.teardown()
	p, err := c.setup(ctx, h, t)
	if err != nil {
		return cannot(r, err)
	}
	r.CPUKind = "softirq"
	if p != nil {
		r.CPUKind = "process"
	}

	type spec struct {
		name      string
		nic       vmNIC
		src       net.HardwareAddr
		srcIP     net.IP
		size, vid int
	}
	up := uplinkVID(c)
	specs := []spec{
		{TestVM2VM64, t.nic1, vm1MAC, vm1IP, minFrame, 0},
		{TestUp2VM64, t.nicRem, remMAC, remIP, minFrame, up},
		{TestVM2VM1500, t.nic1, vm1MAC, vm1IP, 1514, 0},
	}

	failed := 0
	for _, s := range specs {
		if s.name == TestUp2VM64 && c.noUplink || s.name != TestVM2VM64 && c.only64 {
			continue
		}
		tr := &TestResult{FrameSize: s.size, Tagged: s.vid != 0}
		r.Tests[s.name] = tr
		frame, err := buildFrame(frameSpec{Dst: vm2MAC, Src: s.src, SrcIP: s.srcIP, DstIP: vm2IP, VID: s.vid, Size: s.size})
		if err != nil {
			return cannot(r, err)
		}
		err = h.measure(ctx, t, p, s.nic, frame, tr)
		if err != nil {
			tr.Error = err.Error()
			failed++
			if ctx.Err() != nil {
				break
			}
		}
	}
	switch {
	case failed == 0:
		r.Status = StatusOK
	case failed == len(r.Tests):
		r.Status = StatusCannotRun
		for _, n := range []string{TestVM2VM64, TestUp2VM64, TestVM2VM1500} {
			if tr := r.Tests[n]; tr != nil && tr.Error != "" {
				r.Reason = n + ": " + tr.Error
				break
			}
		}
	default:
		r.Status = StatusPartial
	}
	if h.cfg.Probes > 0 && ctx.Err() == nil {
		if tr := r.Tests[TestVM2VM64]; tr != nil && tr.Error == "" {
			r.Latency = h.measureLatency(ctx, t, p, tr.PPS)
		} else {
			r.Latency = &LatencyResult{Error: "not measured: vm2vm_64 failed"}
		}
		if r.Status == StatusOK && r.Latency.failed() {
			r.Status = StatusPartial
		}
	}
	if p != nil && !p.alive() {
		r.Status = StatusPartial
		r.Reason = "switch process died: " + p.tail()
	}
	return r
}

func uplinkVID(c contender) int {
	if c.tagUp {
		return benchVID
	}
	return 0
}

func cannot(r ContenderResult, err error) ContenderResult {
	r.Status = StatusCannotRun
	r.Reason = err.Error()
	r.Tests = nil
	return r
}

// learn makes every switch on the path know both VMs: VM2 talks first (so
// the adjacent bridge and FDBs learn it), then VM1.
func learn(t *topo) error {
	for _, d := range []struct {
		nic      vmNIC
		src, dst net.HardwareAddr
		sip, dip net.IP
	}{{t.nic2, vm2MAC, vm1MAC, vm2IP, vm1IP}, {t.nic1, vm1MAC, vm2MAC, vm1IP, vm2IP}} {
		f, err := buildFrame(frameSpec{Dst: d.dst, Src: d.src, SrcIP: d.sip, DstIP: d.dip, Size: minFrame})
		if err != nil {
			return err
		}
		if err := d.nic.sendN(f, 3); err != nil {
			return fmt.Errorf("learning frames: %w", err)
		}
		time.Sleep(30 * time.Millisecond)
	}
	return nil
}

// measure verifies delivery once and then runs the repetitions of one test.
func (h *harness) measure(ctx context.Context, t *topo, p *proc, src vmNIC, frame []byte, tr *TestResult) error {
	if err := learn(t); err != nil {
		return err
	}
	bl, err := src.blaster(frame, h.cfg.Generator)
	if err != nil {
		return err
	}
	defer bl.close()

	// Verify: frames must reach VM2 untagged and intact.
	rcv, err := t.nic2.watch()
	if err != nil {
		return err
	}
	if err := src.sendN(frame, 64); err != nil {
		rcv.close()
		return err
	}
	v, err := rcv.collect(vm2MAC, 16, time.Second)
	rcv.close()
	if err != nil {
		return err
	}
	tr.Verified = fmt.Sprintf("%d ok, %d tagged, %d other of 64", v.OK, v.Tagged, v.Other)
	if v.OK == 0 {
		if hold := os.Getenv("VSBENCH_HOLD"); hold != "" { // debugging aid
			d, _ := time.ParseDuration(hold)
			slog.Warn("verify failed, holding topology", "id", t.id, "for", d)
			time.Sleep(d)
		}
		return fmt.Errorf("no generated frame reached VM2 untagged (verify: %s)", tr.Verified)
	}

	for i := 0; i < h.cfg.Reps; i++ {
		if err := learn(t); err != nil {
			return err
		}
		rep, err := h.rep(ctx, p, src, t.nic2, bl)
		if err != nil {
			return err
		}
		rep.Seconds = round(rep.Seconds, 3)
		tr.Reps = append(tr.Reps, rep)
	}
	med := func(f func(RepResult) float64) float64 {
		xs := make([]float64, len(tr.Reps))
		for i, r := range tr.Reps {
			xs[i] = f(r)
		}
		return median(xs)
	}
	tr.PPS = round(med(func(r RepResult) float64 { return r.PPS }), 0)
	tr.Mpps = round(tr.PPS/1e6, 4)
	tr.Gbps = round(tr.PPS*float64(tr.FrameSize)*8/1e9, 3)
	tr.CPUPct = round(med(func(r RepResult) float64 { return r.CPUPct }), 1)
	tr.SoftirqPct = round(med(func(r RepResult) float64 { return r.SoftirqPct }), 1)
	tr.SysBusyPct = round(med(func(r RepResult) float64 { return r.SysBusyPct }), 1)
	tr.LossPct = round(med(func(r RepResult) float64 { return r.LossPct }), 2)
	if tr.PPS == 0 {
		return errors.New("no frames received during the measurement")
	}
	return nil
}

// drainWait lets frames still queued in switches arrive before counting.
const drainWait = 150 * time.Millisecond

// rep runs the generator for the configured duration and counts.
func (h *harness) rep(ctx context.Context, p *proc, src, dst vmNIC, snd blaster) (RepResult, error) {
	var rep RepResult
	_, rx0, err := dst.counts()
	if err != nil {
		return rep, err
	}
	tx0, _, err := src.counts()
	if err != nil {
		return rep, err
	}
	var cpu0 uint64
	if p != nil {
		if cpu0, err = cpuTicks(p.pid()); err != nil {
			return rep, err
		}
	}
	si0, busy0, err := sysTicks()
	if err != nil {
		return rep, err
	}
	_, elapsed, err := snd.sendFor(ctx, h.cfg.Duration)
	if err != nil {
		return rep, err
	}
	si1, busy1, err := sysTicks()
	if err != nil {
		return rep, err
	}
	var cpu1 uint64
	if p != nil {
		if cpu1, err = cpuTicks(p.pid()); err != nil {
			return rep, fmt.Errorf("switch process: %w", err)
		}
	}
	time.Sleep(drainWait)
	_, rx1, err := dst.counts()
	if err != nil {
		return rep, err
	}
	tx1, _, err := src.counts()
	if err != nil {
		return rep, err
	}
	sent := tx1 - tx0 // what really left the generator's interface
	secs := elapsed.Seconds()
	rep.Sent = sent
	rep.Received = rx1 - rx0
	rep.Seconds = secs
	rep.PPS = round(float64(rep.Received)/secs, 0)
	pct := func(ticks uint64) float64 { return round(float64(ticks)/clkTck/secs*100, 1) }
	if p != nil {
		rep.CPUPct = pct(cpu1 - cpu0)
	} else {
		rep.CPUPct = pct(si1 - si0)
	}
	rep.SoftirqPct = pct(si1 - si0)
	rep.SysBusyPct = pct(busy1 - busy0)
	if sent > 0 && rep.Received < sent {
		rep.LossPct = round(float64(sent-rep.Received)/float64(sent)*100, 2)
	}
	return rep, nil
}

// backgroundBusy samples the machine's CPU busy percentage over d.
func backgroundBusy(d time.Duration) float64 {
	_, b0, err := sysTicks()
	if err != nil {
		return 0
	}
	time.Sleep(d)
	_, b1, err := sysTicks()
	if err != nil {
		return 0
	}
	return round(float64(b1-b0)/clkTck/d.Seconds()*100, 0)
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func round(x float64, digits int) float64 {
	p := 1.0
	for i := 0; i < digits; i++ {
		p *= 10
	}
	return float64(int64(x*p+0.5)) / p
}

// computeRatios fills the ratio columns from vm2vm_64.
func (res *Results) computeRatios() {
	pps := func(name string) float64 {
		for _, c := range res.Contenders {
			if c.Name == name && c.Tests != nil {
				if t := c.Tests[TestVM2VM64]; t != nil && t.Error == "" {
					return t.PPS
				}
			}
		}
		return 0
	}
	mv := pps(MacvlanVEPA)
	mvt := pps(MacvtapVEPA)
	ovs := max(pps(OVSAFPacket), pps(OVSAFXDP))
	for i := range res.Contenders {
		c := &res.Contenders[i]
		p := pps(c.Name)
		if p == 0 {
			continue
		}
		if c.Topology == topoTap || c.Topology == topoMacvtap {
			if mvt > 0 {
				x := round(p/mvt, 2)
				c.RatioMacvtapVEPA = &x
			}
			continue
		}
		if mv > 0 {
			x := round(p/mv, 2)
			c.RatioMacvlanVEPA = &x
		}
		if ovs > 0 {
			x := round(p/ovs, 2)
			c.RatioBestOVS = &x
		}
	}
}

// Contender returns the row of the named contender, or nil.
func (res *Results) Contender(name string) *ContenderResult {
	for i := range res.Contenders {
		if res.Contenders[i].Name == name {
			return &res.Contenders[i]
		}
	}
	return nil
}

func (r ContenderResult) summary() string {
	if r.Status == StatusCannotRun {
		return "cannot run: " + r.Reason
	}
	var parts []string
	for _, n := range []string{TestVM2VM64, TestUp2VM64, TestVM2VM1500} {
		t := r.Tests[n]
		switch {
		case t == nil:
		case t.Error != "":
			parts = append(parts, n+" error: "+t.Error)
		case n == TestVM2VM1500:
			parts = append(parts, fmt.Sprintf("%s %.2f Gbit/s", n, t.Gbps))
		default:
			parts = append(parts, fmt.Sprintf("%s %.3f Mpps", n, t.Mpps))
		}
	}
	if l := r.Latency; l != nil {
		switch {
		case l.Error != "":
			parts = append(parts, "latency error: "+l.Error)
		default:
			parts = append(parts, "rtt light "+l.Light.cell()+l.Light.netCell())
			if l.Load != nil {
				parts = append(parts, "load "+l.Load.cell()+l.Load.netCell())
			}
		}
	}
	return strings.Join(parts, ", ")
}

func kernelRelease() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func gitCommit(root string) string {
	cmd := exec.Command("git", "rev-parse", "--short", "HEAD")
	if root != "" {
		cmd.Dir = root
	}
	out, err := cmd.Output()
	if err != nil {
		slog.Debug("git rev-parse", "err", err)
		return ""
	}
	return strings.TrimSpace(string(out))
}
