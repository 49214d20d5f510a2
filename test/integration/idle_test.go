package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// An idle switch burns no CPU (DESIGN.md, "Backends"): with idlePorts ports
// attached and no traffic, vswitchd may use at most idleBudget of one core
// over idleWindow. What it must not do: poll on short timeouts, run tickers
// per port, or spin.
const (
	idlePorts  = 8
	idleWindow = 10 * time.Second
	idleBudget = 0.02
	// userHZ is the unit of utime and stime in /proc/PID/stat: USER_HZ,
	// 100 on every Linux ABI Go supports.
	userHZ = 100
)

func TestIdleCPU(t *testing.T) {
	if testing.Short() {
		t.Skip("idle CPU measurement (10 s) skipped with -short")
	}
	forEachDatapath(t, func(t *testing.T, dp string) {
		idleCPU(t, dp, "--uplink-queues", "0") // the default: one per CPU at least
	})
}

// TestIdleCPUNetpoller is TestIdleCPU without CPU pollers, where workers
// wait in the netpoller and the busy poll may spin (its looks are checked).
func TestIdleCPUNetpoller(t *testing.T) {
	if testing.Short() {
		t.Skip("idle CPU measurement (10 s) skipped with -short")
	}
	needBinaries(t)
	t.Parallel()
	idleCPU(t, "afpacket", "--cpu-poll=false")
}

// idleCPU measures vswitchd (datapath dp, started with args) with
// idlePorts idle ports.
func idleCPU(t *testing.T, dp string, args ...string) {
	_, hvs := newLab(t, dp, 1)
	h := hvs[0]
	vms := make([]*vm, idlePorts)
	for i := range vms {
		vms[i] = h.addVM(i + 1)
	}
	h.start(args...)
	for _, v := range vms {
		h.addPort(v.port, "--vlan", "100")
	}
	vms[0].mustPing(vms[1]) // the datapath works; then leave it alone
	time.Sleep(time.Second) // attach logs, the ping's ARP and FDB updates settle

	looks, frames, wakes := h.busyLooks(), h.framesIn(), h.cpuWakeups()
	pid := h.d.pid()
	before, err := procCPU(pid)
	if err != nil {
		t.Fatal(err)
	}
	tb, _ := threadCPU(pid)
	start := time.Now()
	time.Sleep(idleWindow)
	after, err := procCPU(pid)
	if err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	share := (after - before).Seconds() / elapsed.Seconds()
	t.Logf("vswitchd %s with %d ports idle for %v: %v CPU (%.2f %% of one core)",
		dp, idlePorts, elapsed.Round(time.Millisecond), after-before, 100*share)
	if share >= idleBudget {
		ta, _ := threadCPU(pid)
		t.Errorf("vswitchd %s uses %.2f %% of one core while idle, want < %.0f %%; busiest threads: %s",
			dp, 100*share, 100*idleBudget, busiest(tb, ta, 5))
	}
	// The busy poll looks (spins, or finds work ready, or skips) only
	// after a queue received frames (a VM's IPv6 router solicitation,
	// say), never on its own; one look may follow a frame counted
	// just before the first reading.
	if n, f := h.busyLooks()-looks, h.framesIn()-frames; n > f+1 {
		t.Errorf("vswitchd %s: %d busy-poll looks while idle, after %d frames", dp, n, f)
	}
	// The CPU pollers (the default) wake for frames only, and park
	// after a second without any.
	if n, f := h.cpuWakeups()-wakes, h.framesIn()-frames; n > f+2 {
		t.Errorf("vswitchd %s: CPU pollers woke %d times while idle, after %d frames", dp, n, f)
	}
	netpoller := slices.Contains(args, "--cpu-poll=false")
	if c := h.status().CPUPoll; !netpoller && (c == nil || c.Parks == 0) {
		t.Errorf("vswitchd %s: no CPU poller parked while idle (status %+v)", dp, c)
	}
	if netpoller && h.status().BusyPoll == nil {
		t.Errorf("vswitchd %s %v: no busy poll in status", dp, args)
	}
	h.alive()
}

// busyLooks counts the busy poll's looks: spins, found ready, skipped, backed off.
func (h *hv) busyLooks() uint64 {
	b := h.status().BusyPoll
	if b == nil {
		return 0 // off: the CPU pollers (the default) receive idle queues
	}
	return b.Spins + b.Ready + b.Skipped + b.BackedOff
}

// cpuWakeups counts the CPU pollers' wake-ups (0 without pollers).
func (h *hv) cpuWakeups() uint64 {
	if c := h.status().CPUPoll; c != nil {
		return c.Wakeups
	}
	return 0
}

// framesIn counts the frames the switch received, from the ports and the
// uplink.
func (h *hv) framesIn() uint64 {
	st := h.stats()
	n := st.Uplink.RxPackets
	for _, p := range st.Ports {
		n += p.RxPackets
	}
	return n
}

// procCPU returns the user plus system time the process has used, all its
// threads together (/proc/PID/stat fields 14 and 15).
func procCPU(pid int) (time.Duration, error) {
	return statCPU(fmt.Sprintf("/proc/%d/stat", pid))
}

func statCPU(path string) (time.Duration, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	s := string(b)
	// comm (field 2) may hold spaces and parentheses: fields count from
	// after its closing parenthesis, where field 3 (state) starts.
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("%s: no comm field in %q", path, s)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("%s: %d fields after comm", path, len(f))
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseUint(f[12], 10, 64) // field 15
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("%s: utime %q stime %q", path, f[11], f[12])
	}
	return time.Duration(utime+stime) * time.Second / userHZ, nil
}

// threadCPU returns the CPU time of each thread of the process by TID.
func threadCPU(pid int) (map[string]time.Duration, error) {
	paths, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
	if err != nil {
		return nil, err
	}
	out := map[string]time.Duration{}
	for _, p := range paths {
		if d, err := statCPU(p); err == nil {
			out[filepath.Base(filepath.Dir(p))] = d
		}
	}
	return out, nil
}

// busiest lists the n threads that used the most CPU between two samples.
func busiest(before, after map[string]time.Duration, n int) string {
	type th struct {
		tid string
		d   time.Duration
	}
	var ts []th
	for tid, d := range after {
		ts = append(ts, th{tid, d - before[tid]})
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].d > ts[j].d })
	var parts []string
	for i := 0; i < len(ts) && i < n; i++ {
		parts = append(parts, fmt.Sprintf("tid %s %v", ts[i].tid, ts[i].d))
	}
	return strings.Join(parts, ", ")
}
