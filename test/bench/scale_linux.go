package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/vswitch/vswitch/pkg/api"
	vtopo "github.com/vswitch/vswitch/test/topo"
)

// scaleContender is a row of the scaling phase.
type scaleContender struct {
	name, note string
	kind       vmLinkKind // vmVeth (vswitchd) or vmMacvlan
	dpArgs     []string   // vswitchd's datapath flags; nil for the kernel
}

func scaleContenderByName(name string) (scaleContender, bool) {
	switch name {
	case VswitchdAFPacket, VswitchdAFXDP, VswitchdAFXDPXSK:
		c, _ := contenderByName(name)
		return scaleContender{name: name, note: c.note, kind: vmVeth, dpArgs: vswitchdArgs[name]}, true
	case MacvlanVEPA:
		return scaleContender{name: name, note: "kernel, untagged via hairpin", kind: vmMacvlan}, true
	}
	return scaleContender{}, false
}

// scaleTopo is the topology of the scaling phase: SW and HV as for the
// other rows (no REM), and one namespace VMS holding every VM's interface
// vmK: the HV end of a veth pair vnetK (vswitchd's ports) or a macvlan in
// mode vepa on HV's uplink. One namespace for all VMs instead of one each:
// the switch under test only ever sees vnetK or the macvlans, a VM's
// namespace changes nothing on the wire, and one netlink dump then reads
// every VM's counters at once; 64 namespaces would cost seconds to make and
// to delete on this machine.
type scaleTopo struct {
	*topo
	vms  *vtopo.NS
	kind vmLinkKind
	n    int // VMs made so far: vm1..vmN
}

// scaleVM returns the name, MAC and IPv4 address of VM k (1-based).
func scaleVM(k int) (string, net.HardwareAddr, net.IP) {
	return fmt.Sprintf("vm%d", k), net.HardwareAddr{0x02, 0x76, 0x73, 0x63, byte(k >> 8), byte(k)}, net.IPv4(198, 19, byte(k>>8), byte(k))
}

// scalePort is the HV-side name of VM k's veth: vswitchd's port.
func scalePort(k int) string { return fmt.Sprintf("vnet%d", k) }

func buildScaleTopo(ctx context.Context, kind vmLinkKind) (st *scaleTopo, err error) {
	t := &topo{id: newID()}
	st = &scaleTopo{topo: t, kind: kind}
	defer func() {
		if err != nil {
			t.teardown()
			st = nil
		}
	}()
	if t.tmp, err = os.MkdirTemp("", t.id+"-"); err != nil {
		return st, fmt.Errorf("temp dir: %w", err)
	}
	for _, s := range []struct {
		ns     **vtopo.NS
		suffix string
	}{{&t.sw, "-sw"}, {&t.hv, "-hv"}, {&st.vms, "-vms"}} {
		ns, err := vtopo.NewNS(t.id + s.suffix)
		if err != nil {
			return st, err
		}
		*s.ns = ns
		t.nsAll = append(t.nsAll, ns)
	}
	return st, t.buildSwitchSide(ctx, true)
}

// ensureVMs makes VMs up to n.
func (st *scaleTopo) ensureVMs(n int) error {
	for k := st.n + 1; k <= n; k++ {
		name, mac, _ := scaleVM(k)
		var err error
		if st.kind == vmMacvlan {
			err = vtopo.MacvlanVEPA(st.hv, uplinkIf, st.vms, name)
		} else {
			err = vtopo.VethPair(st.vms, name, st.hv, scalePort(k))
		}
		if err != nil {
			return fmt.Errorf("VM %d: %w", k, err)
		}
		if err := st.vms.SetMAC(name, mac.String()); err != nil {
			return fmt.Errorf("VM %d: %w", k, err)
		}
		st.n = k
	}
	return nil
}

// linkCounts are rx_packets and tx_packets of every link in VMS.
type linkCounts map[string][2]uint64

func (st *scaleTopo) counts() (linkCounts, error) {
	var err error
	for i := 0; i < 5; i++ { // netlink can fail with EINTR under churn
		ls, lerr := st.vms.Netlink().LinkList()
		if lerr == nil {
			c := make(linkCounts, len(ls))
			for _, l := range ls {
				if s := l.Attrs().Statistics; s != nil {
					c[l.Attrs().Name] = [2]uint64{s.RxPackets, s.TxPackets}
				}
			}
			return c, nil
		}
		err = lerr
		time.Sleep(10 * time.Millisecond)
	}
	return nil, fmt.Errorf("list links of %s: %w", st.vms.Name, err)
}

// pairFrame is the 64-byte frame of pair k (0-based): VM 2k+1 -> VM 2k+2,
// or back when reverse.
func pairFrame(k int, reverse bool) ([]byte, error) {
	_, smac, sip := scaleVM(2*k + 1)
	_, dmac, dip := scaleVM(2*k + 2)
	if reverse {
		smac, dmac, sip, dip = dmac, smac, dip, sip
	}
	return buildFrame(frameSpec{Dst: dmac, Src: smac, SrcIP: sip, DstIP: dip, Size: minFrame})
}

// vmSenders are a step's sendmmsg sockets, one per VM, each with the VM's
// frame (a source's to its sink, a sink's back, for learning), opened on
// first use and shared by learning, verification and the paced background.
// Closing a packet socket waits for an RCU grace period (synchronize_net
// in packet_release; 1-40 ms each on the shared 2-core machine), so
// closeAll closes them all at once instead of one after the other.
type vmSenders struct {
	st *scaleTopo
	m  map[int]*sender
}

func newVMSenders(st *scaleTopo) *vmSenders { return &vmSenders{st: st, m: map[int]*sender{}} }

// get returns VM k's sender (1-based).
func (v *vmSenders) get(k int) (*sender, error) {
	if s := v.m[k]; s != nil {
		return s, nil
	}
	f, err := pairFrame((k-1)/2, k%2 == 0)
	if err != nil {
		return nil, err
	}
	name, _, _ := scaleVM(k)
	s, err := openSender(v.st.vms, name, f)
	if err != nil {
		return nil, err
	}
	v.m[k] = s
	return s, nil
}

func (v *vmSenders) closeAll() {
	cs := make([]func(), 0, len(v.m))
	for _, s := range v.m {
		cs = append(cs, s.close)
	}
	closeAll(cs)
	clear(v.m)
}

// closeAll runs every close at once and waits for them (see vmSenders).
func closeAll(cs []func()) {
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Go(c)
	}
	wg.Wait()
}

// learnPairs makes the switches know every VM of the first pairs pairs: the
// sinks talk first, then the sources.
func learnPairs(vs *vmSenders, pairs int) error {
	for _, sink := range []bool{true, false} {
		for k := 0; k < pairs; k++ {
			vm := 2*k + 1
			if sink {
				vm++
			}
			s, err := vs.get(vm)
			if err != nil {
				return err
			}
			if _, err := s.sendN(3); err != nil {
				return fmt.Errorf("learning frames from VM %d: %w", vm, err)
			}
		}
		time.Sleep(30 * time.Millisecond)
	}
	return nil
}

// verifyPairs checks that the first and the last pair's frames reach their
// sink untagged and intact.
func verifyPairs(vs *vmSenders, pairs int) (string, error) {
	var parts []string
	for _, k := range sortedInts([]int{0, pairs - 1}) {
		src, err := vs.get(2*k + 1)
		if err != nil {
			return "", err
		}
		dst, dmac, _ := scaleVM(2*k + 2)
		r, err := (&vethNIC{ns: vs.st.vms, ifname: dst}).watch()
		if err != nil {
			return "", err
		}
		_, err = src.sendN(64)
		var v verifyResult
		if err == nil {
			v, err = r.collect(dmac, 16, time.Second)
		}
		r.close()
		if err != nil {
			return "", err
		}
		parts = append(parts, fmt.Sprintf("pair %d: %d ok, %d tagged, %d other of 64", k+1, v.OK, v.Tagged, v.Other))
		if v.OK == 0 {
			return strings.Join(parts, "; "), fmt.Errorf("no frame of pair %d reached %s untagged (%s)", k+1, dst, parts[len(parts)-1])
		}
	}
	return strings.Join(parts, "; "), nil
}

// stepper is one generator step: a TX ring flush or a sendmmsg batch.
type stepper interface {
	step() (uint64, error)
	close()
}

func openStepper(ns *vtopo.NS, ifname string, frame []byte, gen string) (stepper, error) {
	if gen == "ring" {
		return openRingSender(ns, ifname, frame)
	}
	return openSender(ns, ifname, frame)
}

// roundRobin is a batchSender over many senders: frame i of a batch goes
// to sender (next+i) mod len, so every pair gets the same paced rate. It
// does not own the senders (close does nothing).
type roundRobin struct {
	ss   []*sender
	next int
}

func (r *roundRobin) sendBatch(n int) (int, error) {
	sent := 0
	for i := 0; i < n; i++ {
		k, err := r.ss[r.next].sendBatch(1)
		r.next = (r.next + 1) % len(r.ss)
		sent += k
		if err != nil {
			return sent, err
		}
	}
	return sent, nil
}

func (r *roundRobin) close() {}

// readProc reads VmRSS, VmHWM and Threads of pid and counts its open
// file descriptors.
func readProc(pid int) (procStatus, int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procStatus{}, 0, err
	}
	ps, err := parseProcStatus(b)
	if err != nil {
		return ps, 0, fmt.Errorf("pid %d: %w", pid, err)
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return ps, 0, err
	}
	return ps, len(fds), nil
}

// runScaling runs the scaling phase: for each contender and port count a
// step. Two contenders of the same kind in a row share one topology.
func (h *harness) runScaling(ctx context.Context) *ScalingResult {
	cfg := h.cfg
	sr := &ScalingResult{Ports: cfg.Scale, DurationS: cfg.ScaleDuration.Seconds(),
		VLAN: fmt.Sprintf("every VM port on VID %d (one network: one learning domain, floods reach every port)", benchVID)}
	if cfg.ScaleProbes > 0 {
		sr.Probes, sr.ProbeIntervalMs, sr.LoadPPSPerPair = cfg.ScaleProbes, round(float64(cfg.ScaleProbeInterval)/1e6, 3), cfg.ScaleLoadPPS
	}
	start := time.Now()
	var cur *scaleTopo
	defer func() {
		if cur != nil {
			cur.teardown()
		}
	}()
	names := cfg.ScaleContenders
	if len(names) == 0 {
		names = DefaultScaleContenders
	}
	for _, name := range names {
		c, _ := scaleContenderByName(name) // checked by Run
		sc := ScaleContender{Name: c.name, Note: c.note, Topology: c.kind.String(), CPUKind: "softirq"}
		if c.dpArgs != nil {
			sc.CPUKind = "process"
		}
		if cur != nil && cur.kind != c.kind {
			cur.teardown()
			cur = nil
		}
		var err error
		switch {
		case ctx.Err() != nil:
			err = errors.New("harness time limit reached: " + ctx.Err().Error())
		case cur == nil:
			if cur, err = buildScaleTopo(ctx, c.kind); err != nil {
				err = fmt.Errorf("build topology: %w", err)
			}
		}
		if err != nil {
			sc.Status, sc.Reason = StatusCannotRun, err.Error()
			sr.Contenders = append(sr.Contenders, sc)
			continue
		}
		failed := 0
		for _, n := range cfg.Scale {
			if ctx.Err() != nil {
				sc.Reason = "harness time limit reached before " + fmt.Sprint(n) + " ports: " + ctx.Err().Error()
				break
			}
			st := ScaleStep{Ports: n, Pairs: n / 2, BackgroundBusyPct: backgroundBusy(200 * time.Millisecond)}
			t0 := time.Now()
			if err := h.scaleStep(ctx, c, cur, &st); err != nil {
				st.Error = err.Error()
				failed++
			}
			st.ElapsedS = round(time.Since(t0).Seconds(), 2)
			sc.Steps = append(sc.Steps, st)
			if cfg.Progress != nil {
				fmt.Fprintf(cfg.Progress, "%-18s %4d ports %s\n", c.name, n, st.summary())
			}
		}
		switch {
		case failed == 0 && len(sc.Steps) == len(cfg.Scale):
			sc.Status = StatusOK
		case failed == len(sc.Steps):
			sc.Status = StatusCannotRun
			if sc.Reason == "" && len(sc.Steps) > 0 {
				sc.Reason = sc.Steps[0].Error
			}
		default:
			sc.Status = StatusPartial
		}
		sr.Contenders = append(sr.Contenders, sc)
	}
	sr.ElapsedS = round(time.Since(start).Seconds(), 1)
	return sr
}

func (s ScaleStep) summary() string {
	if s.Error != "" && s.PPS == 0 {
		return "error: " + s.Error
	}
	out := fmt.Sprintf("%.3f Mpps, pairs %.0f-%.0f kpps (Jain %.2f)", s.Mpps, s.PairMinPPS/1e3, s.PairMaxPPS/1e3, s.JainIndex)
	if s.Latency != nil {
		out += ", rtt " + s.Latency.cell()
	}
	if s.RSSPortsKB > 0 {
		out += fmt.Sprintf(", RSS %.0f KiB/port, threads %d->%d, fds %d->%d, attach %.2fs", s.RSSPerPortKB, s.ThreadsNone, s.ThreadsPorts, s.FDsNone, s.FDsPorts, s.AttachS)
	}
	if s.Error != "" {
		out += ", error: " + s.Error
	}
	return out
}

// scaleStopGrace is how long a scaling step waits for vswitchd to exit
// on SIGTERM (the other rows wait 3 s): how long it takes is measured.
const scaleStopGrace = 20 * time.Second

// switchDrops returns vswitchd's drop counters by place and reason
// ("uplink/rx_overrun", "ports/rx_overrun": the ports summed).
func switchDrops(ctx context.Context, cl *api.Client) (map[string]uint64, error) {
	st, err := cl.Stats(ctx)
	if err != nil {
		return nil, err
	}
	m := map[string]uint64{}
	for k, v := range st.Uplink.Drops {
		m["uplink/"+k] += v
	}
	for _, p := range st.Ports {
		for k, v := range p.Drops {
			m["ports/"+k] += v
		}
	}
	return m, nil
}

// dropsDelta is b - a without the zero entries; nil when nothing changed.
func dropsDelta(a, b map[string]uint64) map[string]uint64 {
	var d map[string]uint64
	for k, v := range b {
		if v > a[k] {
			if d == nil {
				d = map[string]uint64{}
			}
			d[k] = v - a[k]
		}
	}
	return d
}

// scaleStep measures one port count: switch up with n ports, learn,
// verify, flood with every pair at once, then probe pair 1 at light load.
func (h *harness) scaleStep(ctx context.Context, c scaleContender, st *scaleTopo, s *ScaleStep) (err error) {
	n, pairs := s.Ports, s.Pairs
	if err := st.ensureVMs(n); err != nil {
		return err
	}
	var p *proc
	var cl *api.Client
	if c.dpArgs != nil {
		var sock string
		p, sock, err = startVswitchd(ctx, h, st.topo, fmt.Sprintf("-%s-%d", c.name, n), c.dpArgs...)
		if err != nil {
			return err
		}
		defer func() {
			t0 := time.Now()
			killed := p.stopWithin(scaleStopGrace)
			s.StopS = round(time.Since(t0).Seconds(), 2)
			switch {
			case err != nil:
			case killed:
				err = fmt.Errorf("vswitchd still running %v after SIGTERM: killed", scaleStopGrace)
			case p.err != nil:
				err = fmt.Errorf("vswitchd exit: %v: %s", p.err, p.tail())
			}
		}()
		cl = api.NewClient(sock)
		defer cl.Close()
		time.Sleep(300 * time.Millisecond) // uplink queues open, runtime settled
		ps0, fds0, err := readProc(p.pid())
		if err != nil {
			return fmt.Errorf("vswitchd with no port: %w", err)
		}
		t0 := time.Now()
		for k := 1; k <= n; k++ {
			vid := benchVID
			port, err := cl.AddPort(ctx, api.PortSpec{Name: scalePort(k), VLAN: &vid})
			if err != nil {
				return fmt.Errorf("add port %d of %d: %w", k, n, err)
			}
			if port.State != "up" {
				return fmt.Errorf("port %s (%d of %d) added but %s, not attached", port.Name, k, n, port.State)
			}
		}
		s.AttachS = round(time.Since(t0).Seconds(), 2)
		time.Sleep(200 * time.Millisecond)
		ps1, fds1, err := readProc(p.pid())
		if err != nil {
			return fmt.Errorf("vswitchd with %d ports: %w (%s)", n, err, p.tail())
		}
		s.RSSNoneKB, s.RSSPortsKB, s.RSSPerPortKB = ps0.RSSKB, ps1.RSSKB, perPort(ps1.RSSKB, ps0.RSSKB, n)
		s.ThreadsNone, s.ThreadsPorts, s.FDsNone, s.FDsPorts = ps0.Threads, ps1.Threads, fds0, fds1
	}
	vs := newVMSenders(st)
	defer vs.closeAll()
	if err := learnPairs(vs, pairs); err != nil {
		return err
	}
	if s.Verified, err = verifyPairs(vs, pairs); err != nil {
		return err
	}
	if err := h.scaleThroughput(ctx, p, st, s); err != nil {
		return err
	}
	if h.cfg.ScaleProbes > 0 && ctx.Err() == nil {
		var d0 map[string]uint64
		if cl != nil {
			d0, _ = switchDrops(ctx, cl)
		}
		s.Latency = h.scaleLatency(ctx, p, vs, pairs)
		if d0 != nil {
			if d1, err := switchDrops(ctx, cl); err == nil {
				s.SwitchDropsLight = dropsDelta(d0, d1)
			}
		}
	}
	if p != nil {
		if !p.alive() {
			return fmt.Errorf("vswitchd died: %s", p.tail())
		}
		ps2, _, err := readProc(p.pid())
		if err != nil {
			return err
		}
		s.RSSAfterKB, s.ThreadsAfter = ps2.RSSKB, ps2.Threads
		if d, err := switchDrops(ctx, cl); err == nil {
			s.SwitchDrops = dropsDelta(nil, d)
		}
	}
	if s.Latency != nil && s.Latency.Error != "" {
		return errors.New("latency: " + s.Latency.Error)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("stopped: %w", ctx.Err())
	}
	return nil
}

// scaleThroughput floods from every pair at once for ScaleDuration: one
// thread steps each source's generator in turn (a TX ring flush or a
// sendmmsg batch), so each pair is offered the same load.
func (h *harness) scaleThroughput(ctx context.Context, p *proc, st *scaleTopo, s *ScaleStep) error {
	pairs := s.Pairs
	gens := make([]stepper, 0, pairs)
	defer func() {
		cs := make([]func(), len(gens))
		for i, g := range gens {
			cs[i] = g.close
		}
		closeAll(cs)
	}()
	for k := 0; k < pairs; k++ {
		f, err := pairFrame(k, false)
		if err != nil {
			return err
		}
		name, _, _ := scaleVM(2*k + 1)
		g, err := openStepper(st.vms, name, f, h.cfg.Generator)
		if err != nil {
			return err
		}
		gens = append(gens, g)
	}
	c0, err := st.counts()
	if err != nil {
		return err
	}
	m, err := startCPU(p)
	if err != nil {
		return err
	}
	_, elapsed, err := blast(ctx, h.cfg.ScaleDuration, 1, func() (uint64, error) {
		var sum uint64
		for _, g := range gens {
			k, err := g.step()
			sum += k
			if err != nil {
				return sum, err
			}
		}
		return sum, nil
	})
	if err != nil {
		return err
	}
	cpu, err := m.stop()
	if err != nil {
		return err
	}
	time.Sleep(drainWait)
	c1, err := st.counts()
	if err != nil {
		return err
	}
	secs := elapsed.Seconds()
	var sent, rcvd uint64
	s.PairPPS = make([]float64, pairs)
	for k := 0; k < pairs; k++ {
		src, _, _ := scaleVM(2*k + 1)
		dst, _, _ := scaleVM(2*k + 2)
		sent += c1[src][1] - c0[src][1]
		r := c1[dst][0] - c0[dst][0]
		rcvd += r
		s.PairPPS[k] = round(float64(r)/secs, 0)
	}
	s.Seconds = round(secs, 3)
	s.PPS = round(float64(rcvd)/secs, 0)
	s.Mpps = round(s.PPS/1e6, 4)
	s.SentPPS = round(float64(sent)/secs, 0)
	if sent > 0 && rcvd < sent {
		s.LossPct = round(float64(sent-rcvd)/float64(sent)*100, 2)
	}
	s.CPUPct, s.SoftirqPct, s.SysBusyPct = cpu.pct, cpu.softirqPct, cpu.busyPct
	f := pairFairness(s.PairPPS)
	s.PairMinPPS, s.PairMaxPPS, s.PairMeanPPS = f.Min, f.Max, round(f.Mean, 0)
	s.PairMinMax, s.JainIndex = round(f.MinMax, 3), round(f.Jain, 3)
	if rcvd == 0 {
		return errors.New("no frames received during the measurement")
	}
	if f.Min == 0 {
		return fmt.Errorf("a pair received nothing (%d of %d pairs starved)", countZero(s.PairPPS), pairs)
	}
	return nil
}

func countZero(xs []float64) int {
	z := 0
	for _, x := range xs {
		if x == 0 {
			z++
		}
	}
	return z
}

// scaleLatency probes pair 1 while every pair sends ScaleLoadPPS frames/s.
func (h *harness) scaleLatency(ctx context.Context, p *proc, vs *vmSenders, pairs int) *LatencyPhase {
	st := vs.st
	vm1, mac1, ip1 := scaleVM(1)
	vm2, mac2, ip2 := scaleVM(2)
	stop, err := (&vethNIC{ns: st.vms, ifname: vm2}).responder()
	if err != nil {
		return &LatencyPhase{Error: fmt.Sprintf("echo responder in %s: %v", vm2, err)}
	}
	defer stop()
	link, err := (&vethNIC{ns: st.vms, ifname: vm1}).probeLink()
	if err != nil {
		return &LatencyPhase{Error: fmt.Sprintf("prober in %s: %v", vm1, err)}
	}
	defer link.close()
	pp := probePath{
		link:     link,
		addrs:    probeAddrs{Src: mac1, Dst: mac2, SrcIP: ip1, DstIP: ip2},
		probes:   h.cfg.ScaleProbes,
		interval: h.cfg.ScaleProbeInterval,
		pacer: func() (batchSender, error) {
			rr := &roundRobin{}
			for k := 0; k < pairs; k++ {
				s, err := vs.get(2*k + 1)
				if err != nil {
					return nil, err
				}
				rr.ss = append(rr.ss, s)
			}
			return rr, nil
		},
		counts: func() (uint64, uint64, error) {
			c, err := st.counts()
			if err != nil {
				return 0, 0, err
			}
			var tx, rx uint64
			for k := 0; k < pairs; k++ {
				src, _, _ := scaleVM(2*k + 1)
				dst, _, _ := scaleVM(2*k + 2)
				tx += c[src][1]
				rx += c[dst][0]
			}
			return tx, rx, nil
		},
	}
	return latencyPhase(ctx, p, pp, h.cfg.ScaleLoadPPS*float64(pairs))
}
