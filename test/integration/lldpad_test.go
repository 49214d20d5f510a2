package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vswitch/vswitch/pkg/api"
	"github.com/vswitch/vswitch/test/topo"
)

// lldpad runs Debian's lldpad (intel/openlldp) as the EVB bridge on a port
// of the switch namespace. lldpad keeps its pid in POSIX shared memory
// (/dev/shm/lldpad.state) and refuses to start when another one runs, so
// it gets a private mount namespace with its own /dev/shm; its control
// socket is abstract, hence per network namespace, so lldptool runs in
// the same network namespace.
type lldpad struct {
	t   *testing.T
	ns  *topo.NS
	cmd *exec.Cmd
	log string
}

func startLLDPAD(t *testing.T, ns *topo.NS) *lldpad {
	t.Helper()
	if _, err := exec.LookPath("lldpad"); err != nil {
		t.Skip("lldpad not installed (apt-get install lldpad; scripts/install-deps.sh does)")
	}
	dir := t.TempDir()
	l := &lldpad{t: t, ns: ns, log: filepath.Join(dir, "lldpad.log")}
	logf, err := os.Create(l.log)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	l.cmd = exec.Command("ip", "netns", "exec", ns.Name, "unshare", "-m", "--propagation", "private", "sh", "-c",
		"mount -t tmpfs lldpad-shm /dev/shm && exec lldpad -p -V 7 -f "+filepath.Join(dir, "lldpad.conf"))
	l.cmd.Stdout, l.cmd.Stderr = logf, logf
	l.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := l.cmd.Start(); err != nil {
		t.Fatalf("start lldpad: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = l.cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-l.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			_ = syscall.Kill(-l.cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			b, _ := os.ReadFile(l.log)
			if len(b) > 4000 {
				b = b[len(b)-4000:]
			}
			t.Logf("lldpad log (tail):\n%s", b)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := l.tool("-p"); err == nil {
			return l
		}
		select {
		case <-done:
			b, _ := os.ReadFile(l.log)
			t.Fatalf("lldpad exited: %s", b)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("lldpad's control socket did not answer within 10 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// tool runs lldptool ARGS in the namespace.
func (l *lldpad) tool(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", l.ns.Name, "lldptool"}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("lldptool %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func (l *lldpad) mustTool(args ...string) string {
	l.t.Helper()
	out, err := l.tool(args...)
	if err != nil {
		l.t.Fatal(err)
	}
	return out
}

// bridgeRole makes lldpad an EVB bridge on port, with or without the
// reflective relay capability.
func (l *lldpad) bridgeRole(port string, rrcap bool) {
	l.t.Helper()
	cap := "no"
	if rrcap {
		cap = "yes"
	}
	l.mustTool("-L", "-i", port, "-g", "ncb", "adminStatus=rxtx")
	l.mustTool("-T", "-i", port, "-g", "ncb", "-V", "evb", "-c", "evbmode=bridge")
	l.mustTool("-T", "-i", port, "-g", "ncb", "-V", "evb", "-c", "evbrrcap="+cap)
	l.mustTool("-T", "-i", port, "-g", "ncb", "-V", "evb", "-c", "enableTx=yes")
}

// Interoperability with lldpad as the bridge: it grants reflective relay
// to vswitchd's request and shows, in what it received, that vswitchd
// asked (RRREQ) and understood (RRSTAT yes). Without the capability it
// refuses and vswitchd falls back to VEB.
func TestEVBWithLLDPAD(t *testing.T) {
	needBinaries(t)
	t.Parallel()
	l, hvs := newLab(t, "afpacket", 1)
	h := hvs[0]
	stpOn(t, l.sw, "br0", h.swPort)
	lp := startLLDPAD(t, l.sw)
	lp.bridgeRole(h.swPort, true)
	mac, err := l.sw.MAC(h.swPort)
	if err != nil {
		t.Fatal(err)
	}
	vm1, vm2 := h.addVM(1), h.addVM(2)
	h.start("--lldp-interval", "1s")
	h.addPort(vm1.port, "--vlan", "100")
	h.addPort(vm2.port, "--vlan", "100")

	st := h.waitRelay("granted by lldpad", 15*time.Second, func(st api.Status) bool { return st.Relay.State == "granted" })
	if st.Relay.Peer != mac.String() || st.Mode != "vepa" {
		t.Errorf("granted: peer %s mode %s, want %s vepa", st.Relay.Peer, st.Mode, mac)
	}
	vm1.mustPing(vm2)
	// lldpad's view of the station: RRREQ and RRSTAT yes (0x5).
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := lp.tool("-t", "-n", "-i", h.swPort, "-g", "ncb", "-V", "evb")
		if err == nil && strings.Contains(out, "station:rrreq,rrstat(0x5)") && strings.Contains(out, "mode:station") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lldpad never saw RRREQ with RRSTAT yes from vswitchd:\n%s (%v)", out, err)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Take the capability away and restart vswitchd: its first LLDPDU
	// (RRSTAT unknown again) makes lldpad answer with the new policy.
	lp.mustTool("-T", "-i", h.swPort, "-g", "ncb", "-V", "evb", "-c", "evbrrcap=no")
	if err := h.d.kill(syscall.SIGTERM, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := topo.Hairpin(l.sw, h.swPort, false); err != nil {
		t.Fatal(err)
	}
	h.start("--lldp-interval", "1s")
	st = h.waitRelay("refused by lldpad", 15*time.Second, func(st api.Status) bool { return st.Relay.State == "refused" })
	if st.Mode != "veb" || st.ConfiguredMode != "vepa" {
		t.Errorf("refused: mode %s configured %s, want veb vepa", st.Mode, st.ConfiguredMode)
	}
	vm2.mustPing(vm1) // switched locally, the bridge reflects nothing now
}

// stpOn turns the kernel's STP on for bridge br and waits until port
// forwards. With STP off a Linux bridge forwards frames to the bridge group
// address 01:80:c2:00:00:00 itself (br_handle_frame), so a packet socket
// bound to LLDP on the port, like lldpad's, never sees the station's
// LLDPDUs; with STP on they go up the port's stack, as on a real bridge.
func stpOn(t *testing.T, ns *topo.NS, br, port string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "ip", "-n", ns.Name, "link", "set", br, "type", "bridge", "forward_delay", "200", "stp_state", "1").CombinedOutput(); err != nil {
		t.Fatalf("STP on %s: %v: %s", br, err, out)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := exec.CommandContext(ctx, "bridge", "-n", ns.Name, "link", "show", "dev", port).CombinedOutput()
		if err == nil && strings.Contains(string(out), "state forwarding") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("bridge port %s not forwarding 10 s after STP on: %s", port, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
