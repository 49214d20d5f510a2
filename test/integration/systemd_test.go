package integration

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vswitch/vswitch/pkg/api"
)

// What vswitchd's systemd unit (contrib/systemd/vswitchd.service) relies
// on, tested on the real daemon in a namespace: the sd_notify messages and
// the journal's log form (with a fake systemd), and the capability set.

// notifications is a fake systemd's notification socket.
type notifications struct{ c *net.UnixConn }

func listenNotify(t *testing.T) (*notifications, string) {
	t.Helper()
	// A path, not an @abstract name: those are per network namespace.
	path := filepath.Join(t.TempDir(), "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &notifications{c}, path
}

// next is the next notification, "" after timeout.
func (n *notifications) next(timeout time.Duration) string {
	buf := make([]byte, 4096)
	n.c.SetReadDeadline(time.Now().Add(timeout))
	k, err := n.c.Read(buf)
	if err != nil {
		return ""
	}
	return string(buf[:k])
}

// journalStream is JOURNAL_STREAM for f ("DEV:INO"), as systemd sets it
// for the stream it gives a service as stderr.
func journalStream(t *testing.T, f *os.File) string {
	t.Helper()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return fmt.Sprintf("%d:%d", st.Dev, st.Ino)
}

// Under a fake systemd: READY=1 comes only once the API answers with every
// stored port, WATCHDOG=1 follows at half of WATCHDOG_USEC, SIGTERM sends
// STOPPING=1 before a clean exit; the log is in the journal's form (a
// priority prefix, no timestamp). A daemon that cannot start never says
// READY=1.
func TestSystemdNotifyAndJournal(t *testing.T) {
	needBinaries(t)
	t.Parallel()
	_, hvs := newLab(t, "afpacket", 1)
	h := hvs[0]
	h.start()
	h.mustCtl("add-port", "vnet1", "--vlan", "100") // no taps: absent ports
	h.mustCtl("add-port", "vnet2", "--vlan", "200")
	if err := h.d.kill(syscall.SIGTERM, 10*time.Second); err != nil {
		t.Fatal(err)
	}

	sd, notifyPath := listenNotify(t)
	logPath := filepath.Join(h.dir, "journal.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	run := func(uplink string, extra ...string) (*exec.Cmd, chan error) {
		cmd := h.ns.Command(context.Background(), vswitchdBin, append([]string{"--config=", "--uplink", uplink, "--datapath", "afpacket",
			"--state", h.state, "--socket", h.sock, "--uplink-queues", "1"}, extra...)...)
		cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+notifyPath, "WATCHDOG_USEC=400000", "JOURNAL_STREAM="+journalStream(t, logf))
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		t.Cleanup(func() { cmd.Process.Kill() })
		return cmd, done
	}

	// A start that fails (the uplink never comes): no READY=1, exit 1.
	_, done := run("no-such-uplink", "--uplink-wait", "1s")
	select {
	case err := <-done:
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
			t.Fatalf("vswitchd with a missing uplink: %v, want exit 1", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("vswitchd with a missing uplink did not exit")
	}
	if got := sd.next(100 * time.Millisecond); !strings.HasPrefix(got, "STATUS=waiting for uplink no-such-uplink to appear (up to 1s)\n") {
		t.Fatalf("a vswitchd waiting for its uplink sent %q", got)
	}
	if got := sd.next(100 * time.Millisecond); got != "" {
		t.Fatalf("a vswitchd that failed to start sent %q", got)
	}

	cmd, done := run("uplink")
	ready := sd.next(15 * time.Second)
	if !strings.HasPrefix(ready, "READY=1\nSTATUS=serving 2 ports on uplink uplink (datapath afpacket, ports afpacket, mode vepa); API on "+h.sock) {
		t.Fatalf("first notification %q, want READY=1 and the status (log:\n%s)", ready, h.logTail(20))
	}
	// At once, no retry: READY=1 means the API answers with the ports.
	c := api.NewClient(h.sock)
	defer c.Close()
	ports, err := c.ListPorts(context.Background())
	if err != nil || len(ports) != 2 {
		t.Fatalf("right after READY=1: %d ports, %v; want both stored ports", len(ports), err)
	}
	for range 2 {
		if got := sd.next(2 * time.Second); got != "WATCHDOG=1" {
			t.Fatalf("got %q, want WATCHDOG=1 every 200 ms", got)
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; {
		got := sd.next(time.Until(deadline))
		if strings.HasPrefix(got, "STOPPING=1") {
			break
		}
		if got != "WATCHDOG=1" {
			t.Fatalf("after SIGTERM: %q, want STOPPING=1", got)
		}
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("vswitchd after SIGTERM: %v, want exit 0", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("vswitchd did not stop after SIGTERM")
	}

	// The log: every line a journal entry with its priority, no time.
	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	prio := regexp.MustCompile(`^<[0-7]>level=`)
	var started, failed bool
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "<3>vswitchd: uplink no-such-uplink did not appear within 1s (vswitchd --uplink-wait)"):
			failed = true // the start error, the line as before, an err entry
			continue
		case !prio.MatchString(line) || strings.Contains(line, "time="):
			t.Errorf("log line not in the journal's form: %q", line)
		}
		started = started || strings.HasPrefix(line, `<6>level=INFO msg="vswitchd started"`)
	}
	if !started || !failed {
		t.Errorf("log lacks the start (%v) or the failed start's error (%v):\n%s", started, failed, b)
	}
}

// unitValues are the values of the unit's key= lines, in order.
func unitValues(t *testing.T, key string) []string {
	t.Helper()
	unit, err := os.ReadFile("../../contrib/systemd/vswitchd.service")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(key)+`=(.*)$`).FindAllSubmatch(unit, -1) {
		out = append(out, string(m[1]))
	}
	return out
}

// unitCapabilities are the capabilities of the unit's key
// (CapabilityBoundingSet, AmbientCapabilities): in setpriv's form (+net_admin,+net_raw,...)
// and as the mask /proc/PID/status shows.
func unitCapabilities(t *testing.T, key string) (setpriv string, mask uint64) {
	t.Helper()
	m := unitValues(t, key)
	if len(m) != 1 {
		t.Fatalf("%d %s= lines in the unit, want 1", len(m), key)
	}
	bits := map[string]int{"CAP_CHOWN": unix.CAP_CHOWN, "CAP_NET_ADMIN": unix.CAP_NET_ADMIN, "CAP_NET_RAW": unix.CAP_NET_RAW,
		"CAP_IPC_LOCK": unix.CAP_IPC_LOCK, "CAP_SYS_NICE": unix.CAP_SYS_NICE, "CAP_BPF": unix.CAP_BPF, "CAP_PERFMON": unix.CAP_PERFMON,
		"CAP_SYS_ADMIN": unix.CAP_SYS_ADMIN, "CAP_SYS_RESOURCE": unix.CAP_SYS_RESOURCE}
	var caps []string
	for _, c := range strings.Fields(m[0]) {
		bit, ok := bits[c]
		if !ok {
			t.Fatalf("the unit's %s is not known to this test: add it", c)
		}
		mask |= 1 << bit
		caps = append(caps, "+"+strings.ToLower(strings.TrimPrefix(c, "CAP_")))
	}
	return strings.Join(caps, ","), mask
}

// schedPolicies counts the threads of pid by scheduling policy (0 normal,
// 2 SCHED_RR), from /proc/PID/task/*/stat.
func schedPolicies(t *testing.T, pid int) map[string]int {
	t.Helper()
	stats, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
	n := map[string]int{}
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // the thread ended
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 38 {
			n[f[38]]++ // field 41, policy
		}
	}
	return n
}

// vswitchd does all it does with just the unit's capabilities, as the
// unit runs it (root, that bounding set, no new privileges): every
// datapath starts and forwards, the datapath threads get SCHED_RR, and
// --socket-group gives the socket away. The same as another user (a
// User= drop-in) with the unit's AmbientCapabilities.
func TestUnitCapabilities(t *testing.T) {
	if _, err := exec.LookPath("setpriv"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("setpriv is not installed (CI=1: make deps installs util-linux)")
		}
		t.Skip("setpriv (util-linux) is not installed")
	}
	caps, mask := unitCapabilities(t, "CapabilityBoundingSet")
	if ambient, _ := unitCapabilities(t, "AmbientCapabilities"); ambient != caps {
		t.Fatalf("AmbientCapabilities %s, CapabilityBoundingSet %s: want the same", ambient, caps)
	}
	forEachDatapath(t, func(t *testing.T, dp string) {
		for _, user := range []string{"root", "nobody"} {
			t.Run(user, func(t *testing.T) {
				_, hvs := newLab(t, dp, 1)
				h := hvs[0]
				h.wrap = []string{"setpriv", "--bounding-set=-all," + caps, "--inh-caps=-all", "--no-new-privs"}
				group := "65534" // not root's: CAP_CHOWN
				if user != "root" {
					if err := os.Chown(h.dir, 65534, 65534); err != nil {
						t.Fatal(err)
					}
					h.wrap = []string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--bounding-set=-all," + caps,
						"--inh-caps=-all," + caps, "--ambient-caps=-all," + caps, "--no-new-privs"}
					group = "0" // not nobody's
				}
				h.wrap = append(h.wrap, "--")
				// newLab checked that AF_XDP works here with every capability:
				// a start that fails now fails the test (h.start would skip).
				vm1, vm2 := h.addVM(1), h.addVM(2)
				if err := h.tryStart("--socket-group", group); err != nil {
					t.Fatalf("as %s with the unit's capabilities (%s): %v", user, caps, err)
				}
				h.addPort(vm1.port, "--vlan", "100")
				h.addPort(vm2.port, "--vlan", "100")
				vm1.mustPing(vm2)
				status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", h.d.pid()))
				if err != nil {
					t.Fatal(err)
				}
				uid := map[string]string{"root": "0", "nobody": "65534"}[user]
				for _, want := range []string{"NoNewPrivs:\t1\n", fmt.Sprintf("CapBnd:\t%016x\n", mask), fmt.Sprintf("CapEff:\t%016x\n", mask),
					fmt.Sprintf("Uid:\t%s\t%[1]s\t%[1]s\t%[1]s\n", uid)} {
					if !strings.Contains(string(status), want) {
						t.Fatalf("vswitchd does not run with the unit's limits (%q):\n%s", want, status)
					}
				}
				if pol := schedPolicies(t, h.d.pid()); pol["2"] == 0 {
					t.Errorf("no SCHED_RR thread (threads by policy %v): CAP_SYS_NICE missing?", pol)
				}
				fi, err := os.Stat(h.sock)
				if err != nil {
					t.Fatal(err)
				}
				if gid := fmt.Sprint(fi.Sys().(*syscall.Stat_t).Gid); gid != group {
					t.Errorf("socket group %s, want %s (--socket-group)", gid, group)
				}
				if log := h.logTail(200); strings.Contains(log, "level=WARN") && !strings.Contains(log, "VMs must not use TX checksum offload") ||
					strings.Contains(log, "level=ERROR") || strings.Contains(log, "operation not permitted") {
					t.Errorf("vswitchd complained with the unit's capabilities:\n%s", log)
				}
			})
		}
	})
}

// systemd's watchdog kills a vswitchd that stopped pinging with SIGABRT.
// Under the unit's Environment= the real vswitchd then dies by that signal,
// every goroutine's stack in its log, and not with exit status 2 (the Go
// runtime's default), which the unit's RestartPreventExitStatus= keeps from
// restarting. cmd/vswitchd's TestUnitRestartsAfterCrash covers a panic.
func TestWatchdogKillIsRestarted(t *testing.T) {
	needBinaries(t)
	t.Parallel()
	_, hvs := newLab(t, "afpacket", 1)
	h := hvs[0]
	h.wrap = []string{"env"}
	for _, v := range unitValues(t, "Environment") {
		h.wrap = append(h.wrap, strings.Fields(v)...)
	}
	h.start()
	err := h.d.kill(syscall.SIGABRT, 10*time.Second)
	ee, ok := err.(*exec.ExitError)
	if !ok {
		t.Fatalf("vswitchd after SIGABRT: %v", err)
	}
	ws := ee.Sys().(syscall.WaitStatus)
	for _, v := range unitValues(t, "RestartPreventExitStatus") {
		for _, f := range strings.Fields(v) {
			if ws.Exited() && f == fmt.Sprint(ws.ExitStatus()) {
				t.Errorf("vswitchd killed by the watchdog exits with status %s: RestartPreventExitStatus=%s keeps systemd from restarting it", f, v)
			}
		}
	}
	if !ws.Signaled() || ws.Signal() != syscall.SIGABRT {
		t.Errorf("vswitchd after the watchdog's SIGABRT: %v, want killed by SIGABRT (Restart=on-failure restarts that)", ee.ProcessState)
	}
	if n := strings.Count(h.logTail(100000), "\ngoroutine "); n < 2 {
		t.Errorf("%d goroutine stacks in the log, want every goroutine's", n)
	}
}
