package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	vtopo "github.com/vswitch/vswitch/test/topo"
)

// Addresses of the generated traffic. MACs are locally administered, IPs are
// from the RFC 2544 benchmarking range and never configured on an interface,
// so no stack answers (no ICMP back-traffic) and nothing can route them.
var (
	vm1MAC = net.HardwareAddr{0x02, 0x76, 0x73, 0x62, 0x00, 0x01}
	vm2MAC = net.HardwareAddr{0x02, 0x76, 0x73, 0x62, 0x00, 0x02}
	remMAC = net.HardwareAddr{0x02, 0x76, 0x73, 0x62, 0x00, 0x03}
	vm1IP  = net.IPv4(198, 18, 0, 1)
	vm2IP  = net.IPv4(198, 18, 0, 2)
	remIP  = net.IPv4(198, 18, 0, 3)
)

// benchVID is the VLAN of both VM ports on tagging contenders.
const benchVID = 100

// Interface names inside the namespaces.
const (
	vmIf     = "eth0"   // in VM1 and VM2
	vnet1    = "vnet1"  // HV side of VM1
	vnet2    = "vnet2"  // HV side of VM2
	uplinkIf = "uplink" // HV side of the uplink
	swUpIf   = "up-sw"  // SW side of the uplink (hairpin on)
	remIf    = "rem0"   // in REM
	swRemIf  = "rem-sw" // SW side of REM
	swBridge = "br0"
)

// vmLinkKind says how the VMs attach.
type vmLinkKind int

const (
	vmVeth    vmLinkKind = iota // veth pair VMn eth0 <-> HV vnetN
	vmMacvlan                   // macvlan (mode vepa) on HV's uplink moved into VMn
	vmWire                      // VM1 eth0 <-> VM2 eth0 directly, no switch at all
	vmTap                       // tap vnetN in HV; the VM is the tap's file descriptor
	vmMacvtap                   // macvtap (mode vepa) macvtapN on HV's uplink; the VM is /dev/tapN
)

// Topology names (ContenderResult.Topology).
const (
	topoVeth    = "veth"
	topoMacvlan = "macvlan"
	topoWire    = "wire"
	topoTap     = "tap"
	topoMacvtap = "macvtap"
)

func (k vmLinkKind) String() string {
	return [...]string{vmVeth: topoVeth, vmMacvlan: topoMacvlan, vmWire: topoWire, vmTap: topoTap, vmMacvtap: topoMacvtap}[k]
}

// onTaps reports whether the VMs are file descriptors (tap, macvtap)
// rather than interfaces in VM namespaces.
func (k vmLinkKind) onTaps() bool { return k == vmTap || k == vmMacvtap }

// nsPrefix is the prefix of every namespace this harness creates.
const nsPrefix = "vsb"

// topo is one contender's set of namespaces, processes and temp files.
type topo struct {
	id    string // unique prefix, e.g. vsb1234x9f3a
	sw    *vtopo.NS
	hv    *vtopo.NS
	vm1   *vtopo.NS // nil on taps
	vm2   *vtopo.NS // nil on taps
	rem   *vtopo.NS
	tmp   string
	nsAll []*vtopo.NS

	// The NICs of the generator VM, the sink VM and the remote host.
	nic1, nic2, nicRem vmNIC

	mu      sync.Mutex
	procs   []*proc
	closers []func() // run at teardown after the processes stop
}

// proc is a child process the harness started (and alone may stop).
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *vtopo.SyncBuffer
	done chan struct{}
	err  error
}

func newID() string {
	var b [2]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s%dx%s", nsPrefix, os.Getpid(), hex.EncodeToString(b[:]))
}

// buildTopo creates the namespaces and links for one contender.
func buildTopo(ctx context.Context, kind vmLinkKind, hairpin bool) (t *topo, err error) {
	id := newID()
	t = &topo{id: id}
	defer func() {
		if err != nil {
			t.teardown()
			t = nil
		}
	}()
	if t.tmp, err = os.MkdirTemp("", id+"-"); err != nil {
		return t, fmt.Errorf("temp dir: %w", err)
	}
	type nsSlot struct {
		ns     **vtopo.NS
		suffix string
	}
	var slots []nsSlot
	if !kind.onTaps() {
		slots = append(slots, nsSlot{&t.vm1, "-vm1"}, nsSlot{&t.vm2, "-vm2"})
	}
	if kind != vmWire {
		slots = append(slots, nsSlot{&t.sw, "-sw"}, nsSlot{&t.hv, "-hv"}, nsSlot{&t.rem, "-rem"})
	}
	for _, s := range slots {
		// NewNS brings lo up and turns IPv6 off: no autoconf, DAD or MLD
		// noise in the counters.
		ns, err := vtopo.NewNS(id + s.suffix)
		if err != nil {
			return t, err
		}
		*s.ns = ns
		t.nsAll = append(t.nsAll, ns)
	}
	if kind == vmWire {
		if err := ipCmd(ctx, "-n", t.vm1.Name, "link", "add", vmIf, "type", "veth", "peer", "name", vmIf, "netns", t.vm2.Name); err != nil {
			return t, err
		}
		if err := t.vmUp(ctx); err != nil {
			return t, err
		}
		return t, t.vethNICs()
	}

	if err := t.buildSwitchSide(ctx, hairpin); err != nil {
		return t, err
	}

	switch kind {
	case vmVeth:
		if err := ipCmd(ctx, "-n", t.vm1.Name, "link", "add", vmIf, "type", "veth", "peer", "name", vnet1, "netns", t.hv.Name); err != nil {
			return t, err
		}
		if err := ipCmd(ctx, "-n", t.vm2.Name, "link", "add", vmIf, "type", "veth", "peer", "name", vnet2, "netns", t.hv.Name); err != nil {
			return t, err
		}
		for _, v := range []string{vnet1, vnet2} {
			if err := ipCmd(ctx, "-n", t.hv.Name, "link", "set", v, "up"); err != nil {
				return t, err
			}
		}
	case vmMacvlan:
		for _, m := range []struct{ tmp, ns string }{{"mv1", t.vm1.Name}, {"mv2", t.vm2.Name}} {
			if err := ipCmd(ctx, "-n", t.hv.Name, "link", "add", "link", uplinkIf, "name", m.tmp, "type", "macvlan", "mode", "vepa"); err != nil {
				return t, err
			}
			if err := ipCmd(ctx, "-n", t.hv.Name, "link", "set", m.tmp, "netns", m.ns); err != nil {
				return t, err
			}
			if err := ipCmd(ctx, "-n", m.ns, "link", "set", m.tmp, "name", vmIf); err != nil {
				return t, err
			}
		}
	case vmTap, vmMacvtap:
		return t, t.tapNICs(ctx, kind)
	}
	if err := t.vmUp(ctx); err != nil {
		return t, err
	}
	return t, t.vethNICs()
}

// buildSwitchSide makes SW's bridge br0 with the uplink veth (HV uplink
// <-> SW up-sw, hairpin on up-sw unless told not to) and, when t has a REM
// namespace, REM's port on it.
func (t *topo) buildSwitchSide(ctx context.Context, hairpin bool) error {
	// SW: the adjacent bridge, reflective relay on the uplink port.
	steps := [][]string{
		{"-n", t.sw.Name, "link", "add", swBridge, "type", "bridge"},
		{"-n", t.hv.Name, "link", "add", uplinkIf, "type", "veth", "peer", "name", swUpIf, "netns", t.sw.Name},
		{"-n", t.sw.Name, "link", "set", swUpIf, "master", swBridge},
		{"-n", t.sw.Name, "link", "set", swBridge, "up"},
		{"-n", t.sw.Name, "link", "set", swUpIf, "up"},
		{"-n", t.hv.Name, "link", "set", uplinkIf, "up"},
	}
	if t.rem != nil {
		steps = append(steps, [][]string{
			{"-n", t.rem.Name, "link", "add", remIf, "address", remMAC.String(), "type", "veth", "peer", "name", swRemIf, "netns", t.sw.Name},
			{"-n", t.sw.Name, "link", "set", swRemIf, "master", swBridge},
			{"-n", t.sw.Name, "link", "set", swRemIf, "up"},
			{"-n", t.rem.Name, "link", "set", remIf, "up"},
		}...)
	}
	for _, s := range steps {
		if err := ipCmd(ctx, s...); err != nil {
			return err
		}
	}
	// The SW bridge receives tagged frames with the tag moved into skb
	// metadata, and veth would hand it over that way: XDP/AF_XDP on the
	// uplink would then see untagged frames. With TX VLAN offload off on
	// up-sw the kernel writes the tag back into the frame bytes, as a real
	// wire would carry it.
	if _, err := exec.LookPath("ethtool"); err == nil {
		if _, err := run(ctx, nil, "ip", "netns", "exec", t.sw.Name, "ethtool", "-K", swUpIf, "txvlan", "off"); err != nil {
			return err
		}
	} else {
		slog.Warn("ethtool not installed: uplink frames carry VLAN tags out of band, AF_XDP contenders will see them untagged (apt-get install ethtool)")
	}
	if hairpin {
		if _, err := run(ctx, nil, "bridge", "-n", t.sw.Name, "link", "set", "dev", swUpIf, "hairpin", "on"); err != nil {
			return err
		}
	}
	for _, k := range []string{"net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables", "net.bridge.bridge-nf-call-arptables"} {
		if err := t.sw.Sysctl(k, "0"); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// vethNICs makes the NICs of VMs that are namespaces.
func (t *topo) vethNICs() error {
	for _, n := range []struct {
		nic    *vmNIC
		ns     *vtopo.NS
		ifname string
	}{{&t.nic1, t.vm1, vmIf}, {&t.nic2, t.vm2, vmIf}, {&t.nicRem, t.rem, remIf}} {
		if n.ns == nil {
			continue
		}
		v, err := newVethNIC(n.ns, n.ifname)
		if err != nil {
			return err
		}
		t.onTeardown(v.close)
		*n.nic = v
	}
	return nil
}

// vmUp sets the VM MACs and brings their interfaces up.
func (t *topo) vmUp(ctx context.Context) error {
	for _, v := range []struct {
		ns  *vtopo.NS
		mac net.HardwareAddr
	}{{t.vm1, vm1MAC}, {t.vm2, vm2MAC}} {
		if err := ipCmd(ctx, "-n", v.ns.Name, "link", "set", vmIf, "address", v.mac.String(), "up"); err != nil {
			return err
		}
	}
	return nil
}

// start runs a long-lived child process inside namespace ns (or in the
// harness's namespace when ns is ""). Its output is kept for error messages.
func (t *topo) start(name, ns string, env []string, bin string, args ...string) (*proc, error) {
	var cmd *exec.Cmd
	if ns != "" {
		cmd = exec.Command("ip", append([]string{"netns", "exec", ns, bin}, args...)...)
	} else {
		cmd = exec.Command(bin, args...)
	}
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	p := &proc{name: name, cmd: cmd, out: &vtopo.SyncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.mu.Lock()
	t.procs = append(t.procs, p)
	t.mu.Unlock()
	return p, nil
}

func (p *proc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// tail returns the last lines of the process output, one line.
func (p *proc) tail() string {
	s := strings.TrimSpace(p.out.String())
	if i := strings.LastIndex(s, "\n"); i >= 0 && len(s) > 300 {
		s = s[i+1:]
	}
	if len(s) > 300 {
		s = s[len(s)-300:]
	}
	return strings.ReplaceAll(s, "\n", " | ")
}

// stop sends SIGTERM, then SIGKILL after a grace period of 3 s, to this
// one pid.
func (p *proc) stop() { p.stopWithin(3 * time.Second) }

// stopWithin sends SIGTERM, then SIGKILL if the process is still there
// after grace. It reports whether the process had to be killed.
func (p *proc) stopWithin(grace time.Duration) (killed bool) {
	if !p.alive() {
		return false
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return false
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
		return true
	}
}

// onTeardown registers f to run at teardown, after the processes stop and
// before the namespaces go.
func (t *topo) onTeardown(f func()) {
	t.mu.Lock()
	t.closers = append(t.closers, f)
	t.mu.Unlock()
}

// teardown stops our processes and deletes our namespaces (which deletes
// every interface in them) and the temp dir. Safe to call twice.
func (t *topo) teardown() {
	t.mu.Lock()
	procs, closers := t.procs, t.closers
	t.procs, t.closers = nil, nil
	t.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		procs[i].stop()
	}
	for i := len(closers) - 1; i >= 0; i-- {
		closers[i]()
	}
	for i := len(t.nsAll) - 1; i >= 0; i-- {
		if err := t.nsAll[i].Close(); err != nil {
			slog.Warn("delete netns", "ns", t.nsAll[i].Name, "err", err)
		}
	}
	t.nsAll = nil
	if t.tmp != "" {
		if keep := os.Getenv("VSBENCH_KEEP_LOGS"); keep != "" {
			// Debugging aid: keep the logs of the switches under test.
			_ = exec.Command("cp", "-r", t.tmp, keep).Run()
		}
		_ = os.RemoveAll(t.tmp)
		t.tmp = ""
	}
}

// removeStale deletes namespaces left by an earlier harness run that died
// without cleaning up: only names with our prefix whose pid is gone.
func removeStale(ctx context.Context) {
	ents, err := os.ReadDir("/run/netns")
	if err != nil {
		return
	}
	for _, e := range ents {
		n := e.Name()
		if !strings.HasPrefix(n, nsPrefix) {
			continue
		}
		rest := strings.TrimPrefix(n, nsPrefix)
		x := strings.IndexByte(rest, 'x')
		if x <= 0 {
			continue
		}
		pid, err := strconv.Atoi(rest[:x])
		if err != nil || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid))); err == nil {
			continue // its owner still runs
		}
		slog.Info("removing stale benchmark namespace", "ns", n)
		_ = ipCmd(ctx, "netns", "delete", n)
	}
}

// cpuTicks returns utime+stime of pid in clock ticks.
func cpuTicks(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read stat of pid %d: %w", pid, err)
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("parse stat of pid %d", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("parse stat of pid %d: short", pid)
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	s, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("parse stat of pid %d: bad times", pid)
	}
	return u + s, nil
}

// sysTicks returns (softirq, busy) ticks summed over all CPUs from /proc/stat.
func sysTicks() (softirq, busy uint64, err error) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, 0, fmt.Errorf("open /proc/stat: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return 0, 0, fmt.Errorf("read /proc/stat: empty")
	}
	fs := strings.Fields(sc.Text())
	if len(fs) < 9 || fs[0] != "cpu" {
		return 0, 0, fmt.Errorf("parse /proc/stat: %q", sc.Text())
	}
	var v [8]uint64
	for i := range v {
		v[i], _ = strconv.ParseUint(fs[i+1], 10, 64)
	}
	// user nice system idle iowait irq softirq steal
	busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7]
	return v[6], busy, nil
}

// clkTck is USER_HZ; 100 on every Linux architecture Go supports here.
const clkTck = 100
