package integration

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vswitch/vswitch/test/topo"
)

// vswitchd started before its uplink exists (at boot: a bond being made,
// a NIC udev still renames) waits for it (--uplink-wait): systemd hears
// what it waits for and no READY=1, the API answers every request with
// what it waits for (not "cannot reach vswitchd"), and once the uplink's
// veth is made, 2 s later, it starts on it, says READY=1 and forwards.
func TestUplinkAppearsAfterStart(t *testing.T) {
	needBinaries(t)
	t.Parallel()
	l, hvs := newLab(t, "afpacket", 1)
	h := hvs[0]
	vm1, vm2 := h.addVM(1), h.addVM(2)
	if err := h.ns.DelLink("uplink"); err != nil { // and its bridge-side peer
		t.Fatal(err)
	}
	sd, notifyPath := listenNotify(t)
	h.startWith([]string{"NOTIFY_SOCKET=" + notifyPath}, "--uplink-wait", "30s")

	if got, want := sd.next(10*time.Second), "STATUS=waiting for uplink uplink to appear (up to 30s)\nEXTEND_TIMEOUT_USEC=60000000"; got != want {
		t.Fatalf("first notification %q, want %q (log:\n%s)", got, want, h.logTail(20))
	}
	const waiting = "vswctl: vswitchd is starting: it waits for its uplink uplink to appear ("
	for _, args := range [][]string{{"status"}, {"-o", "json", "status"}, {"add-port", vm1.port, "--vlan", "100"}} {
		r := h.ctl(args...)
		if r.code != 1 || !strings.HasPrefix(r.stderr, waiting) || !strings.Contains(r.stderr, "at most 30s: vswitchd --uplink-wait); try again once it runs\n") {
			t.Errorf("vswctl %v while waiting: exit %d, stderr %q; want 1 and what vswitchd waits for", args, r.code, r.stderr)
		}
	}
	// Nothing while the uplink does not exist: no READY=1.
	if got := sd.next(2 * time.Second); got != "" {
		t.Fatalf("%q before the uplink exists", got)
	}
	if h.d.exited() {
		t.Fatalf("vswitchd exited while waiting: %v\n%s", h.d.err, h.logTail(20))
	}
	if err := topo.VethPair(h.ns, "uplink", l.sw, h.swPort); err != nil {
		t.Fatal(err)
	}
	txVLANOff(t, l.sw, h.swPort)
	if err := topo.AddBridgePort(l.sw, "br0", topo.Port{Name: h.swPort, Hairpin: true}); err != nil {
		t.Fatal(err)
	}
	ready := sd.next(15 * time.Second)
	if !strings.HasPrefix(ready, "READY=1\nSTATUS=serving 0 ports on uplink uplink (datapath afpacket") {
		t.Fatalf("after the uplink appeared: %q, want READY=1 (log:\n%s)", ready, h.logTail(20))
	}
	if st := h.status(); st.Uplink != "uplink" || st.UplinkState != "up" {
		t.Errorf("status uplink %q %q, want uplink up", st.Uplink, st.UplinkState)
	}
	h.addPort(vm1.port, "--vlan", "100")
	h.addPort(vm2.port, "--vlan", "100")
	vm1.mustPing(vm2)
	vm2.mustPing(vm1)
	log := h.logTail(200)
	for _, want := range []string{`level=INFO msg="waiting for the uplink to appear" uplink=uplink up_to=30s`, `level=INFO msg="the uplink appeared" uplink=uplink after=`} {
		if n := strings.Count(log, want); n != 1 {
			t.Errorf("the log has %q %d times, want once:\n%s", want, n, log)
		}
	}
	if err := h.d.kill(syscall.SIGTERM, 10*time.Second); err != nil {
		t.Errorf("vswitchd after SIGTERM: %v, want exit 0", err)
	}
}

// An uplink that does not come within --uplink-wait: vswitchd exits 1 with
// one line naming it, never having said READY=1, and its socket is gone.
// (TestSystemdNotifyAndJournal checks that line's journal priority.)
func TestUplinkWaitTimesOut(t *testing.T) {
	needBinaries(t)
	t.Parallel()
	_, hvs := newLab(t, "afpacket", 1)
	h := hvs[0]
	sd, notifyPath := listenNotify(t)
	begin := time.Now()
	h.startWith([]string{"NOTIFY_SOCKET=" + notifyPath}, "--uplink", "bond7", "--uplink-wait", "1500ms")
	select {
	case <-h.d.done:
	case <-time.After(15 * time.Second):
		t.Fatal("vswitchd did not give up waiting for its uplink")
	}
	if took := time.Since(begin); took < 1500*time.Millisecond {
		t.Errorf("vswitchd gave up after %v, before --uplink-wait 1.5s", took)
	}
	if ee, ok := h.d.err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("vswitchd that gave up: %v, want exit 1", h.d.err)
	}
	lines := strings.Split(strings.TrimSpace(h.logTail(5)), "\n")
	if last, want := lines[len(lines)-1], "vswitchd: uplink bond7 did not appear within 1.5s (vswitchd --uplink-wait): check its name with `ip link`"; last != want {
		t.Errorf("last line %q, want %q", last, want)
	}
	if got := sd.next(time.Second); !strings.HasPrefix(got, "STATUS=waiting for uplink bond7 to appear (up to 1.5s)") {
		t.Errorf("notification %q, want the wait", got)
	}
	if got := sd.next(100 * time.Millisecond); got != "" {
		t.Errorf("%q from a vswitchd that gave up", got)
	}
	if _, err := os.Stat(h.sock); !os.IsNotExist(err) {
		t.Errorf("socket left behind: %v", err)
	}
}

// startWith starts vswitchd in h with env added to its environment and
// extra flags (a later --uplink overrides the lab's), without waiting for
// its API; h.d is the process, killed at the end of the test.
func (h *hv) startWith(env []string, extra ...string) {
	t := h.lab.t
	t.Helper()
	logf, err := os.OpenFile(h.logf, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	args := append([]string{"--config=", "--uplink", "uplink", "--datapath", "afpacket", "--state", h.state, "--socket", h.sock,
		"--uplink-queues", "1"}, extra...)
	cmd := h.ns.Command(context.Background(), vswitchdBin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start vswitchd: %v", err)
	}
	d := &daemon{cmd: cmd, done: make(chan struct{})}
	go func() { d.err = cmd.Wait(); close(d.done) }()
	h.d = d
	t.Cleanup(func() {
		if !d.exited() {
			_ = d.kill(syscall.SIGKILL, 5*time.Second)
		}
		if t.Failed() {
			h.dumpLog()
		}
	})
}
