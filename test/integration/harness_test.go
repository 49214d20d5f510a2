package integration

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vswitch/vswitch/pkg/afxdp"
	"github.com/vswitch/vswitch/pkg/api"
	"github.com/vswitch/vswitch/test/topo"
)

// allDatapaths are the backend variants every datapath test runs on:
//
//	afpacket   --datapath afpacket
//	afxdp      --datapath afxdp (AF_XDP uplink, VM ports on AF_PACKET, the default)
//	afxdp-xsk  --datapath afxdp --port-datapath afxdp (AF_XDP everywhere)
var allDatapaths = []string{"afpacket", "afxdp", "afxdp-xsk"}

// uplinkBackend is the backend of variant dp's uplink (status "datapath").
func uplinkBackend(dp string) string {
	if strings.HasPrefix(dp, "afxdp") {
		return "afxdp"
	}
	return dp
}

// portBackend is the backend of variant dp's VM ports (status "port_datapath").
func portBackend(dp string) string {
	if dp == "afxdp-xsk" {
		return "afxdp"
	}
	return "afpacket"
}

// datapathArgs are vswitchd's flags for variant dp.
func datapathArgs(dp string) []string {
	return []string{"--datapath", uplinkBackend(dp), "--port-datapath", portBackend(dp)}
}

// datapaths returns the backends to test: VSWITCH_DATAPATHS (comma
// separated) limits the list.
func datapaths(t testing.TB) []string {
	env := strings.TrimSpace(os.Getenv("VSWITCH_DATAPATHS"))
	if env == "" {
		return allDatapaths
	}
	var out []string
	for _, f := range strings.Split(env, ",") {
		if f = strings.TrimSpace(f); f != "" {
			if !slices.Contains(allDatapaths, f) {
				t.Fatalf("VSWITCH_DATAPATHS: unknown variant %q (known: %s)", f, strings.Join(allDatapaths, ", "))
			}
			out = append(out, f)
		}
	}
	return out
}

// forEachDatapath runs fn as a parallel subtest per backend.
func forEachDatapath(t *testing.T, fn func(t *testing.T, dp string)) {
	needBinaries(t)
	t.Parallel()
	for _, dp := range datapaths(t) {
		t.Run(dp, func(t *testing.T) {
			t.Parallel()
			fn(t, dp)
		})
	}
}

// Short timeouts: a ping that must work answers in milliseconds once ARP is
// done; one that must fail is given this long.
const (
	pingOK   = 5 * time.Second
	pingFail = 1500 * time.Millisecond
)

// lab is one test's topology: a switch namespace with bridge br0 and one or
// more hypervisors whose uplinks are ports of br0 (hairpin on).
type lab struct {
	t  *testing.T
	tp *topo.Topo
	dp string
	sw *topo.NS
	// started is set once a daemon of this lab came up.
	started bool
}

// hv is a hypervisor namespace running vswitchd.
type hv struct {
	lab    *lab
	name   string // "hv1"
	ns     *topo.NS
	swPort string // its port on br0 in the switch namespace ("p1")
	dir    string // state, socket and log
	sock   string
	state  string
	logf   string
	d      *daemon
	// wantDP overrides the [uplink, port] backends start expects in the
	// status (default: those of the lab's variant), for tests whose flags
	// override the variant's.
	wantDP [2]string
	// wrap is a command vswitchd runs under, e.g. setpriv limiting its
	// capabilities (empty: none).
	wrap []string
}

// vm is a VM namespace whose eth0 is a veth peer of a port in its hypervisor.
type vm struct {
	hv   *hv
	ns   *topo.NS
	port string // vnetN in the hypervisor
	ip   string // 10.0.0.N
	mac  net.HardwareAddr
	n    int
}

// newLab creates the switch namespace and nhv hypervisors, each with an
// uplink veth into br0 (hairpin on, txvlan off).
func newLab(t *testing.T, dp string, nhv int) (*lab, []*hv) {
	t.Helper()
	return newLabWith(t, dp, nhv, labConfig{})
}

// labConfig varies the topology.
type labConfig struct {
	// keepTxVLAN leaves TX VLAN offload on on the bridge ports (the kernel
	// default): tags towards the hypervisor then cross the veth in skb
	// metadata, as from a NIC with RX VLAN offload.
	keepTxVLAN bool
}

func newLabWith(t *testing.T, dp string, nhv int, cfg labConfig) (*lab, []*hv) {
	t.Helper()
	tp := topo.New(t)
	l := &lab{t: t, tp: tp, dp: dp}
	var err error
	if l.sw, err = tp.NewNS("sw"); err != nil {
		t.Fatal(err)
	}
	var hvs []*hv
	var ports []topo.Port
	for i := 1; i <= nhv; i++ {
		h := &hv{lab: l, name: fmt.Sprintf("hv%d", i), swPort: fmt.Sprintf("p%d", i)}
		if h.ns, err = tp.NewNS(h.name); err != nil {
			t.Fatal(err)
		}
		if err := topo.VethPair(h.ns, "uplink", l.sw, h.swPort); err != nil {
			t.Fatal(err)
		}
		if !cfg.keepTxVLAN {
			txVLANOff(t, l.sw, h.swPort)
		}
		ports = append(ports, topo.Port{Name: h.swPort, Hairpin: true})
		h.dir, err = os.MkdirTemp("", "vsit-")
		if err != nil {
			t.Fatal(err)
		}
		dir := h.dir
		t.Cleanup(func() { os.RemoveAll(dir) })
		h.sock = filepath.Join(h.dir, "sock")
		h.state = filepath.Join(h.dir, "state.db")
		h.logf = filepath.Join(h.dir, "vswitchd.log")
		hvs = append(hvs, h)
	}
	if err := topo.Bridge(l.sw, "br0", ports...); err != nil {
		t.Fatal(err)
	}
	if uplinkBackend(dp) == "afxdp" {
		probeAFXDP(t, hvs[0].ns)
	}
	return l, hvs
}

// probeAFXDP skips the test when afxdp.Probe says AF_XDP cannot work on a
// veth in ns. It probes a throwaway veth, not the uplink: the kernel frees
// an XSK's queue binding in deferred work after close, so probing the uplink
// here could make vswitchd's own probe of it fail with EBUSY right after.
func probeAFXDP(t *testing.T, ns *topo.NS) {
	t.Helper()
	if err := topo.VethPair(ns, "xprobe0", ns, "xprobe1"); err != nil {
		t.Fatal(err)
	}
	err := ns.Do(func() error { return afxdp.Probe("xprobe0") })
	if derr := ns.DelLink("xprobe0"); derr != nil {
		t.Fatal(derr)
	}
	if err != nil {
		t.Skipf("afxdp cannot work on a veth here: %v", err)
	}
}

// txVLANOff turns TX VLAN offload off on a link (ethtool -K IF txvlan off)
// so the tag is in the frame bytes when it crosses the veth. test/topo has
// no helper for it; this uses the ethtool binary when it is installed.
func txVLANOff(t *testing.T, ns *topo.NS, ifname string) {
	t.Helper()
	if _, err := exec.LookPath("ethtool"); err != nil {
		t.Logf("ethtool not installed: tags towards the hypervisor travel out of band (AF_XDP sees them untagged)")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if out, err := ns.Run(ctx, "ethtool", "-K", ifname, "txvlan", "off"); err != nil {
		t.Fatalf("txvlan off on %s: %v (%s)", ifname, err, out)
	}
}

// addVM creates VM namespace vmN joined by veth (eth0 <-> vnetN in h) with
// IP 10.0.0.N/24, MAC 52:54:00:00:00:NN and TX offloads off. The port is not
// configured in vswitchd.
func (h *hv) addVM(n int) *vm {
	t := h.lab.t
	t.Helper()
	ns, err := h.lab.tp.NewNS(fmt.Sprintf("vm%d", n))
	if err != nil {
		t.Fatal(err)
	}
	v := &vm{hv: h, ns: ns, port: fmt.Sprintf("vnet%d", n), ip: fmt.Sprintf("10.0.0.%d", n), n: n,
		mac: net.HardwareAddr{0x52, 0x54, 0x00, 0x00, 0x00, byte(n)}}
	v.plug()
	return v
}

// plug (re)creates the VM's veth pair and configures eth0.
func (v *vm) plug() {
	t := v.hv.lab.t
	t.Helper()
	if err := topo.VethPair(v.hv.ns, v.port, v.ns, "eth0"); err != nil {
		t.Fatal(err)
	}
	if err := v.ns.SetDown("eth0"); err != nil {
		t.Fatal(err)
	}
	if err := v.ns.SetMAC("eth0", v.mac.String()); err != nil {
		t.Fatal(err)
	}
	if err := v.ns.SetUp("eth0"); err != nil {
		t.Fatal(err)
	}
	if err := topo.AddrAdd(v.ns, "eth0", v.ip+"/24"); err != nil {
		t.Fatal(err)
	}
	if err := topo.DisableOffloads(v.ns, "eth0"); err != nil {
		t.Fatal(err)
	}
	// Neighbour entries stay REACHABLE for 30-90 s instead of 15-45 s, so
	// a VM sends no ARP probe of its own during a test: what crosses the
	// switch is what the test caused, and a test that needs the switch to
	// know a MAC cannot pass by luck of a probe's timing. (Only init_net
	// has neigh.default; the per-device value applies at once.)
	if err := v.ns.Sysctl("net.ipv4.neigh.eth0.base_reachable_time_ms", "60000"); err != nil {
		t.Fatal(err)
	}
}

// ping checks that v reaches dst (an IP) within timeout.
func (v *vm) ping(dst string, timeout time.Duration) error {
	return topo.Ping(v.ns, v.ip, dst, timeout)
}

func (v *vm) mustPing(dst *vm) {
	t := v.hv.lab.t
	t.Helper()
	if err := v.ping(dst.ip, pingOK); err != nil {
		t.Fatalf("%s -> %s must work: %v", v.ip, dst.ip, err)
	}
}

func (v *vm) mustNotPing(dst *vm, why string) {
	t := v.hv.lab.t
	t.Helper()
	if err := v.ping(dst.ip, pingFail); err == nil {
		t.Fatalf("%s -> %s answered, but must not (%s)", v.ip, dst.ip, why)
	}
}

// ---- the daemon ----

// daemon is one vswitchd process.
type daemon struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func (d *daemon) pid() int { return d.cmd.Process.Pid }

func (d *daemon) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// kill sends sig and waits up to timeout for the exit.
func (d *daemon) kill(sig syscall.Signal, timeout time.Duration) error {
	if d.exited() {
		return d.err
	}
	_ = d.cmd.Process.Signal(sig)
	select {
	case <-d.done:
		return d.err
	case <-time.After(timeout):
		return fmt.Errorf("vswitchd (pid %d) still running %v after %v", d.pid(), timeout, sig)
	}
}

// errStartFailed marks a daemon that exited or never answered.
var errStartFailed = errors.New("vswitchd did not start")

// tryStart starts vswitchd in h with h's datapath and extra flags, and waits
// until its API answers. The log goes to h.logf (appended across restarts).
func (h *hv) tryStart(extra ...string) error {
	t := h.lab.t
	t.Helper()
	if h.d != nil && !h.d.exited() {
		t.Fatalf("vswitchd already running in %s", h.name)
	}
	logf, err := os.OpenFile(h.logf, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	fmt.Fprintf(logf, "=== start %s %s\n", time.Now().Format(time.StampMilli), strings.Join(extra, " "))
	// --config=: the host's /etc/vswitch/vswitchd.conf, if any, is not the test's.
	args := append(append([]string{"netns", "exec", h.ns.Name}, h.wrap...), vswitchdBin, "--config=", "--uplink", "uplink")
	args = append(args, datapathArgs(h.lab.dp)...)
	args = append(append(args, "--state", h.state, "--socket", h.sock,
		"--log-level", "debug", "--uplink-queues", "1"), extra...)
	cmd := exec.Command("ip", args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group (a ^C of go test does not race our cleanup) and
	// SIGKILL should this test process die.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start vswitchd: %v", err)
	}
	d := &daemon{cmd: cmd, done: make(chan struct{})}
	go func() { d.err = cmd.Wait(); close(d.done) }()
	if h.d == nil {
		// First start: register the cleanup once. It runs before topo's
		// (registered earlier), so the daemon dies before its namespace.
		t.Cleanup(func() {
			if t.Failed() && h.d != nil && !h.d.exited() {
				r := runCtl(t, "--socket", h.sock, "-o", "json", "stats")
				t.Logf("vswctl stats of %s at failure (exit %d):\n%s%s", h.name, r.code, r.stdout, r.stderr)
			}
			if h.d != nil && !h.d.exited() {
				if err := h.d.kill(syscall.SIGKILL, 5*time.Second); err != nil && !h.d.exited() {
					t.Errorf("kill vswitchd: %v", err)
				}
			}
			if t.Failed() {
				h.dumpLog()
			}
		})
	}
	h.d = d
	c := api.NewClient(h.sock)
	defer c.Close()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		st, err := c.Status(ctx)
		cancel()
		if err == nil {
			want := [2]string{uplinkBackend(h.lab.dp), portBackend(h.lab.dp)}
			if h.wantDP[0] != "" {
				want = h.wantDP
			}
			if st.Datapath != want[0] || st.PortDatapath != want[1] {
				t.Fatalf("vswitchd started with %v reports datapath %q, port datapath %q (%s)", datapathArgs(h.lab.dp), st.Datapath, st.PortDatapath, st.DatapathReason)
			}
			return nil
		}
		if d.exited() {
			return fmt.Errorf("%w: exited (%v); log:\n%s", errStartFailed, d.err, h.logTail(40))
		}
		if time.Now().After(deadline) {
			_ = d.kill(syscall.SIGKILL, 5*time.Second)
			return fmt.Errorf("%w: API on %s not answering after 15 s: %v", errStartFailed, h.sock, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// start is tryStart that skips an afxdp test whose first daemon cannot
// start (the backend is unavailable here) and fails any other: once one
// daemon of the lab ran with afxdp, a later start (restart, second
// hypervisor) that fails is a bug.
func (h *hv) start(extra ...string) {
	t := h.lab.t
	t.Helper()
	err := h.tryStart(extra...)
	if err == nil {
		h.lab.started = true
		return
	}
	if uplinkBackend(h.lab.dp) == "afxdp" && !h.lab.started && !t.Failed() {
		t.Skipf("vswitchd cannot start with %v here: %v", datapathArgs(h.lab.dp), err)
	}
	t.Fatal(err)
}

func (h *hv) logTail(n int) string {
	b, _ := os.ReadFile(h.logf)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (h *hv) dumpLog() {
	b, err := os.ReadFile(h.logf)
	if err != nil {
		h.lab.t.Logf("vswitchd log of %s: %v", h.name, err)
		return
	}
	const max = 64 << 10
	if len(b) > max {
		b = append([]byte("...\n"), b[len(b)-max:]...)
	}
	h.lab.t.Logf("vswitchd log of %s (%s):\n%s", h.name, h.logf, b)
}

// ---- vswctl ----

// ctlResult is one vswctl run.
type ctlResult struct {
	stdout, stderr string
	code           int
}

// runCtl runs the vswctl binary with args (no implicit --socket).
func runCtl(t *testing.T, args ...string) ctlResult {
	t.Helper()
	return runCtlIn(t, nil, args...)
}

// runCtlIn is runCtl with stdin.
func runCtlIn(t *testing.T, stdin io.Reader, args ...string) ctlResult {
	t.Helper()
	return runCtlEnv(t, nil, stdin, args...)
}

// runCtlEnv is runCtlIn with more environment variables (KEY=VALUE).
func runCtlEnv(t *testing.T, env []string, stdin io.Reader, args ...string) ctlResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, vswctlBin, args...)
	cmd.Stdin = stdin
	cmd.Env = append(append(os.Environ(), "VSWITCHD_SOCKET=/nonexistent/vsit.sock"), env...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	r := ctlResult{stdout: so.String(), stderr: se.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("run vswctl %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// ctl runs vswctl against h's daemon.
func (h *hv) ctl(args ...string) ctlResult {
	h.lab.t.Helper()
	return runCtl(h.lab.t, append([]string{"--socket", h.sock}, args...)...)
}

// mustCtl runs vswctl against h's daemon and fails the test unless it exits 0.
func (h *hv) mustCtl(args ...string) string {
	t := h.lab.t
	t.Helper()
	r := h.ctl(args...)
	if r.code != 0 {
		t.Fatalf("vswctl %s: exit %d: %s", strings.Join(args, " "), r.code, strings.TrimSpace(r.stderr))
	}
	return r.stdout
}

// addPort configures v's port with vswctl add-port and waits until it is up.
func (h *hv) addPort(port string, args ...string) {
	h.lab.t.Helper()
	h.mustCtl(append([]string{"add-port", port}, args...)...)
	h.waitState(port, "up", 10*time.Second)
}

// ports returns `vswctl -o json list-ports`.
func (h *hv) ports() []api.Port {
	t := h.lab.t
	t.Helper()
	out := h.mustCtl("-o", "json", "list-ports")
	var ps []api.Port
	if err := json.Unmarshal([]byte(out), &ps); err != nil {
		t.Fatalf("list-ports JSON: %v\n%s", err, out)
	}
	return ps
}

// waitState polls the API until port is in state (up|down|absent).
func (h *hv) waitState(port, state string, timeout time.Duration) {
	t := h.lab.t
	t.Helper()
	c := api.NewClient(h.sock)
	defer c.Close()
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		p, err := c.GetPort(ctx, port)
		cancel()
		if err == nil {
			last = p.State
			if p.State == state {
				return
			}
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			t.Fatalf("port %s in %s: not %q after %v (last: %s)", port, h.name, state, timeout, last)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stats returns `vswctl -o json stats`.
func (h *hv) stats() api.Stats {
	t := h.lab.t
	t.Helper()
	out := h.mustCtl("-o", "json", "stats")
	var st api.Stats
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("stats JSON: %v\n%s", err, out)
	}
	return st
}

// drops returns the drop counter of port for reason, from vswctl stats.
func (h *hv) drops(port, reason string) uint64 {
	h.lab.t.Helper()
	for _, p := range h.stats().Ports {
		if p.Name == port {
			return p.Drops[reason]
		}
	}
	h.lab.t.Fatalf("port %s missing from vswctl stats", port)
	return 0
}

// waitDrops polls until the drop counter reaches want; it returns the last
// value (the caller asserts).
func (h *hv) waitDrops(port, reason string, want uint64, timeout time.Duration) uint64 {
	h.lab.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := h.drops(port, reason)
		if got >= want || time.Now().After(deadline) {
			return got
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// alive fails the test if the daemon exited or stopped answering.
func (h *hv) alive() {
	t := h.lab.t
	t.Helper()
	if h.d.exited() {
		t.Fatalf("vswitchd in %s exited: %v", h.name, h.d.err)
	}
	c := api.NewClient(h.sock)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := c.Status(ctx); err != nil {
		t.Fatalf("vswitchd in %s does not answer: %v", h.name, err)
	}
}

// ---- /proc ----

func fdCount(pid int) (int, error) {
	es, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return 0, err
	}
	return len(es), nil
}

func threadCount(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			return strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return 0, fmt.Errorf("no Threads line in /proc/%d/status", pid)
}

// ---- frames ----

// marker returns a payload unique to this test and kind, to find frames.
func marker(t *testing.T, kind string) []byte {
	return []byte(fmt.Sprintf("vsit:%s:%s:%d", t.Name(), kind, time.Now().UnixNano()))
}

// etherTypeTest is the IEEE local experimental ethertype 1.
const etherTypeTest = 0x88b5

// buildARPRequest builds "who has tip? tell sip" from smac.
func buildARPRequest(smac net.HardwareAddr, sip, tip net.IP) []byte {
	p := make([]byte, 28)
	binary.BigEndian.PutUint16(p[0:], 1)      // Ethernet
	binary.BigEndian.PutUint16(p[2:], 0x0800) // IPv4
	p[4], p[5] = 6, 4
	binary.BigEndian.PutUint16(p[6:], 1) // request
	copy(p[8:], smac)
	copy(p[14:], sip.To4())
	copy(p[24:], tip.To4())
	return topo.BuildEth(topo.BroadcastMAC(), smac, topo.EtherTypeARP, p)
}

// parseARPReply returns the sender of an ARP reply frame.
func parseARPReply(f []byte) (mac net.HardwareAddr, ip net.IP, ok bool) {
	if len(f) < 42 || binary.BigEndian.Uint16(f[12:]) != topo.EtherTypeARP {
		return nil, nil, false
	}
	a := f[14:]
	if binary.BigEndian.Uint16(a[6:]) != 2 {
		return nil, nil, false
	}
	return net.HardwareAddr(append([]byte(nil), a[8:14]...)), net.IP(append([]byte(nil), a[14:18]...)), true
}

// buildEcho builds an ICMP echo request frame.
func buildEcho(dmac, smac net.HardwareAddr, sip, dip net.IP, id, seq uint16, payload []byte) []byte {
	m := make([]byte, 8+len(payload))
	m[0] = 8
	binary.BigEndian.PutUint16(m[4:], id)
	binary.BigEndian.PutUint16(m[6:], seq)
	copy(m[8:], payload)
	binary.BigEndian.PutUint16(m[2:], topo.Checksum(m))
	return topo.BuildEth(dmac, smac, topo.EtherTypeIPv4, topo.BuildIPv4(sip, dip, 1, m))
}

// isEchoReply reports whether f is an ICMP echo reply from sip with id/seq.
func isEchoReply(f []byte, sip net.IP, id, seq uint16) bool {
	if len(f) < 14+20+8 || binary.BigEndian.Uint16(f[12:]) != topo.EtherTypeIPv4 {
		return false
	}
	ip := f[14:]
	ihl := int(ip[0]&0x0f) * 4
	if ip[9] != 1 || !net.IP(ip[12:16]).Equal(sip) || len(ip) < ihl+8 {
		return false
	}
	icmp := ip[ihl:]
	return icmp[0] == 0 && binary.BigEndian.Uint16(icmp[4:]) == id && binary.BigEndian.Uint16(icmp[6:]) == seq
}

// readTap reads frames from a tap fd until match accepts one or timeout.
func readTap(f *os.File, timeout time.Duration, match func([]byte) bool) ([]byte, error) {
	deadline := time.Now().Add(timeout)
	if err := f.SetReadDeadline(deadline); err != nil {
		return nil, err
	}
	buf := make([]byte, 65536)
	for {
		n, err := f.Read(buf)
		if err != nil {
			return nil, err
		}
		if match(buf[:n]) {
			return append([]byte(nil), buf[:n]...), nil
		}
	}
}

// countFrames reads from c until timeout and counts frames containing mark.
func countFrames(c *topo.PacketConn, mark []byte, timeout time.Duration) int {
	deadline := time.Now().Add(timeout)
	n := 0
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return n
		}
		f, err := c.ReadFrame(left)
		if err != nil {
			return n
		}
		if bytes.Contains(f, mark) {
			n++
		}
	}
}

// framesWith returns the captured frames that contain mark.
func framesWith(fs []topo.Frame, mark []byte) []topo.Frame {
	var out []topo.Frame
	for _, f := range fs {
		if bytes.Contains(f.Data, mark) {
			out = append(out, f)
		}
	}
	return out
}

func parseIP4(s string) net.IP { return net.ParseIP(s).To4() }

// dropDelta returns the per-reason drop increase of port between two stats.
func dropDelta(before, after api.Stats, port string) map[string]uint64 {
	var b, a map[string]uint64
	for _, p := range before.Ports {
		if p.Name == port {
			b = p.Drops
		}
	}
	for _, p := range after.Ports {
		if p.Name == port {
			a = p.Drops
		}
	}
	out := map[string]uint64{}
	for k, v := range a {
		if d := v - b[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

// metrics fetches GET /metrics over the API socket.
func (h *hv) metrics() string {
	t := h.lab.t
	t.Helper()
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", h.sock)
		},
	}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get("http://vswitchd/metrics")
	if err != nil {
		t.Fatalf("GET /metrics on %s: %v", h.sock, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics on %s: status %d, err %v", h.sock, resp.StatusCode, err)
	}
	return string(b)
}

// pairOnVLAN100 adds vm1 and vm2, starts vswitchd with extra flags, puts
// both on access VLAN 100 and checks vm1 reaches vm2.
func (h *hv) pairOnVLAN100(startArgs ...string) (vm1, vm2 *vm) {
	h.lab.t.Helper()
	vm1, vm2 = h.addVM(1), h.addVM(2)
	h.start(startArgs...)
	h.addPort(vm1.port, "--vlan", "100")
	h.addPort(vm2.port, "--vlan", "100")
	vm1.mustPing(vm2)
	return vm1, vm2
}
