package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// LatencyResult is the round-trip time VM1 -> VM2 -> VM1 of one
// contender, measured with the in-repo prober (probe.go): first at light
// load (the probes alone), then under load (the probes plus a paced stream
// VM1 -> VM2 at half of the contender's vm2vm_64 rate).
type LatencyResult struct {
	IntervalMs float64       `json:"interval_ms"` // between probes
	FrameSize  int           `json:"frame_size"`  // probe bytes without FCS
	Light      *LatencyPhase `json:"light,omitempty"`
	Load       *LatencyPhase `json:"load,omitempty"`
	Error      string        `json:"error,omitempty"`
}

// LatencyPhase is one phase of probes. Times are round trips in
// microseconds over the answered probes; the percentiles are nearest-rank.
type LatencyPhase struct {
	Probes   int     `json:"probes"` // sent
	Received int     `json:"received"`
	Lost     int     `json:"lost"`
	LossPct  float64 `json:"loss_pct"`
	Corrupt  int     `json:"corrupt,omitempty"` // answers with bad checksums (also lost)
	MinUs    float64 `json:"min_us"`
	P50Us    float64 `json:"p50_us"`
	P99Us    float64 `json:"p99_us"`
	MaxUs    float64 `json:"max_us"`
	MeanUs   float64 `json:"mean_us"`
	StdevUs  float64 `json:"stdev_us"`
	Seconds  float64 `json:"seconds"`
	// The round trips less the time each probe spent inside the two VMs
	// (VM2: the kernel's receive timestamp to the echo's send; VM1: the
	// receive timestamp to the prober's read), over the NetProbes answers
	// where both VMs timestamped (packet sockets; not taps): what the
	// switch and the links took, apart from the VMs' own scheduling.
	NetProbes int     `json:"net_probes,omitempty"`
	NetP50Us  float64 `json:"net_p50_us,omitempty"`
	NetP99Us  float64 `json:"net_p99_us,omitempty"`
	NetMaxUs  float64 `json:"net_max_us,omitempty"`
	// CPU while the probes ran, as for the throughput tests: the switch
	// process (utime+stime, 100 = one core) or, for kernel switches
	// (cpu_kind softirq), the system-wide softirq time.
	CPUPct     float64 `json:"cpu_pct"`
	SoftirqPct float64 `json:"softirq_pct"`
	SysBusyPct float64 `json:"sys_busy_pct"`
	// The background stream of the load phase: the rate asked for (half of
	// vm2vm_64's pps), what the generator sent and what VM2 received.
	LoadTargetPPS float64 `json:"load_target_pps,omitempty"`
	LoadSentPPS   float64 `json:"load_sent_pps,omitempty"`
	LoadRxPPS     float64 `json:"load_rx_pps,omitempty"`
	Error         string  `json:"error,omitempty"`
}

// probeGrace is how long the prober waits for answers after its last probe.
const probeGrace = 500 * time.Millisecond

// loadWarmup runs the background stream this long before the first probe.
const loadWarmup = 200 * time.Millisecond

// probePath is what a latency phase needs: where the prober sends, the
// probes' addresses, how many probes how far apart, and the background
// stream of the load phase.
type probePath struct {
	link     probeLink
	addrs    probeAddrs
	probes   int
	interval time.Duration
	// pacer opens the background stream's sender (VM -> VM frames in
	// paced batches); counts returns the frames the stream's senders sent
	// and its sinks received so far, over their interfaces' counters.
	pacer  func() (batchSender, error)
	counts func() (tx, rx uint64, err error)
}

// measureLatency runs both latency phases on a topology whose switch is
// set up. satPPS is the contender's vm2vm_64 rate; 0 skips the load phase.
func (h *harness) measureLatency(ctx context.Context, t *topo, p *proc, satPPS float64) *LatencyResult {
	lr := &LatencyResult{IntervalMs: round(float64(h.cfg.ProbeInterval)/1e6, 3), FrameSize: probeLen}
	if err := learn(t); err != nil {
		lr.Error = err.Error()
		return lr
	}
	stop, err := t.nic2.responder()
	if err != nil {
		lr.Error = fmt.Sprintf("echo responder in VM2: %v", err)
		return lr
	}
	defer stop()
	link, err := t.nic1.probeLink()
	if err != nil {
		lr.Error = fmt.Sprintf("prober in VM1: %v", err)
		return lr
	}
	defer link.close()
	pp := probePath{
		link:     link,
		addrs:    probeAddrs{Src: vm1MAC, Dst: vm2MAC, SrcIP: vm1IP, DstIP: vm2IP},
		probes:   h.cfg.Probes,
		interval: h.cfg.ProbeInterval,
		pacer: func() (batchSender, error) {
			frame, err := buildFrame(frameSpec{Dst: vm2MAC, Src: vm1MAC, SrcIP: vm1IP, DstIP: vm2IP, Size: minFrame})
			if err != nil {
				return nil, err
			}
			return t.nic1.pacer(frame)
		},
		counts: func() (uint64, uint64, error) {
			tx, _, err := t.nic1.counts()
			if err != nil {
				return 0, 0, err
			}
			_, rx, err := t.nic2.counts()
			return tx, rx, err
		},
	}
	lr.Light = latencyPhase(ctx, p, pp, 0)
	switch {
	case ctx.Err() != nil:
	case satPPS <= 0:
		lr.Load = &LatencyPhase{Error: "no vm2vm_64 rate to take half of"}
	default:
		lr.Load = latencyPhase(ctx, p, pp, satPPS/2)
	}
	return lr
}

// latencyPhase sends pp.probes probes, with a background stream of
// loadPPS frames/s when loadPPS > 0.
func latencyPhase(ctx context.Context, p *proc, pp probePath, loadPPS float64) *LatencyPhase {
	ph := &LatencyPhase{}
	err := runLatencyPhase(ctx, p, pp, loadPPS, ph)
	if err != nil {
		ph.Error = err.Error()
	}
	return ph
}

func runLatencyPhase(ctx context.Context, p *proc, pp probePath, loadPPS float64, ph *LatencyPhase) error {
	session := uint16(rand.Uint32())
	tmpl, err := buildProbe(make([]byte, probeLen), pp.addrs, session)
	if err != nil {
		return err
	}
	pr := newProber(pp.probes, session)

	// The background stream: the throughput test's frames, paced.
	var (
		bgStop   = make(chan struct{})
		bgDone   = make(chan struct{})
		bgSent   uint64
		bgTime   time.Duration
		bgErr    error
		tx0, rx0 uint64
	)
	if loadPPS <= 0 {
		close(bgDone)
	} else {
		ph.LoadTargetPPS = round(loadPPS, 0)
		s, err := pp.pacer()
		if err != nil {
			return fmt.Errorf("background generator: %w", err)
		}
		defer s.close()
		if tx0, rx0, err = pp.counts(); err != nil {
			return err
		}
		go func() {
			defer close(bgDone)
			bgSent, bgTime, bgErr = pace(ctx, s, loadPPS, bgStop)
		}()
	}
	stopped := false
	stopBG := func() {
		if !stopped {
			stopped = true
			close(bgStop)
			<-bgDone
		}
	}
	defer stopBG() // before s.close
	if loadPPS > 0 {
		time.Sleep(loadWarmup)
	}

	m, err := startCPU(p)
	if err != nil {
		return err
	}
	run, err := pr.run(ctx, pp.link, tmpl, pp.interval, probeGrace)
	cpu, cerr := m.stop()
	stopBG()
	if err != nil {
		return err
	}
	if cerr != nil {
		return cerr
	}
	ph.Probes, ph.Received = run.Sent, run.Received
	ph.Lost = run.Sent - run.Received
	if run.Sent > 0 {
		ph.LossPct = round(float64(ph.Lost)/float64(run.Sent)*100, 2)
	}
	ph.Corrupt = run.Corrupt
	us := func(d time.Duration) float64 { return round(float64(d)/1e3, 1) }
	ph.MinUs, ph.P50Us, ph.P99Us, ph.MaxUs = us(run.Min), us(run.P50), us(run.P99), us(run.Max)
	ph.MeanUs, ph.StdevUs = us(run.Mean), us(run.Stdev)
	if run.NetProbes > 0 {
		ph.NetProbes = run.NetProbes
		ph.NetP50Us, ph.NetP99Us, ph.NetMaxUs = us(run.Net.P50), us(run.Net.P99), us(run.Net.Max)
	}
	ph.Seconds = round(run.Elapsed.Seconds(), 3)
	ph.CPUPct, ph.SoftirqPct, ph.SysBusyPct = cpu.pct, cpu.softirqPct, cpu.busyPct

	if loadPPS > 0 {
		if bgErr != nil && !errors.Is(bgErr, context.Canceled) && !errors.Is(bgErr, context.DeadlineExceeded) {
			return fmt.Errorf("background stream: %w", bgErr)
		}
		time.Sleep(drainWait)
		tx1, rx1, err := pp.counts()
		if err != nil {
			return err
		}
		if secs := bgTime.Seconds(); secs > 0 {
			// The counters include the probes (1 per interval): noise.
			ph.LoadSentPPS = round(float64(tx1-tx0)/secs, 0)
			ph.LoadRxPPS = round(float64(rx1-rx0)/secs, 0)
		}
		if bgSent == 0 {
			return errors.New("background stream sent nothing")
		}
	}
	if run.Received == 0 {
		return fmt.Errorf("no probe of %d answered", run.Sent)
	}
	return nil
}

// cpuMeter measures the CPU a contender burns over an interval, the way the
// throughput repetitions do: utime+stime of the switch process when there
// is one, else the system-wide softirq time; plus all-CPU busy time.
type cpuMeter struct {
	p                 *proc
	proc0, si0, busy0 uint64
	t0                time.Time
}

type cpuUse struct{ pct, softirqPct, busyPct float64 }

func startCPU(p *proc) (*cpuMeter, error) {
	m := &cpuMeter{p: p, t0: time.Now()}
	var err error
	if p != nil {
		if m.proc0, err = cpuTicks(p.pid()); err != nil {
			return nil, err
		}
	}
	if m.si0, m.busy0, err = sysTicks(); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *cpuMeter) stop() (cpuUse, error) {
	var u cpuUse
	secs := time.Since(m.t0).Seconds()
	si1, busy1, err := sysTicks()
	if err != nil {
		return u, err
	}
	pct := func(ticks uint64) float64 { return round(float64(ticks)/clkTck/secs*100, 1) }
	u.softirqPct, u.busyPct = pct(si1-m.si0), pct(busy1-m.busy0)
	u.pct = u.softirqPct
	if m.p != nil {
		t1, err := cpuTicks(m.p.pid())
		if err != nil {
			return u, fmt.Errorf("switch process: %w", err)
		}
		u.pct = pct(t1 - m.proc0)
	}
	return u, nil
}
