package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The datapath threads run SCHED_RR 1 by default (ahead of the VMs, as
// kernel switching in softirq is); --datapath-priority normal turns it off.
// Without CAP_SYS_NICE they stay at normal priority, and the status says
// so: what was asked for, what the threads got and why.
func TestDatapathPriority(t *testing.T) {
	for _, c := range []struct {
		name      string
		flag      []string
		wrap      []string // setpriv
		wantRR    bool
		status    string
		effective string
	}{
		{"rt", nil, nil, true, "SCHED_RR 1", "SCHED_RR 1"},
		{"normal", []string{"--datapath-priority", "normal"}, nil, false, "normal", "normal"},
		{"no-cap-sys-nice", nil, []string{"setpriv", "--bounding-set=-sys_nice", "--inh-caps=-all", "--"}, false, "SCHED_RR 1", "normal"},
	} {
		t.Run(c.name, func(t *testing.T) {
			needBinaries(t)
			if c.wrap != nil {
				if _, err := exec.LookPath("setpriv"); err != nil {
					t.Skip("setpriv (util-linux) is not installed")
				}
			}
			_, hvs := newLab(t, "afpacket", 1)
			h := hvs[0]
			h.wrap = c.wrap
			vm1 := h.addVM(1)
			h.start(c.flag...)
			h.addPort(vm1.port, "--vlan", "100")
			h.waitState(vm1.port, "up", 10*time.Second)
			st := h.status()
			if st.DatapathPriority != c.status || st.DatapathPriorityEffective != c.effective {
				t.Errorf("status datapath_priority %q, effective %q; want %q, %q", st.DatapathPriority, st.DatapathPriorityEffective, c.status, c.effective)
			}
			text := h.mustCtl("status")
			if c.effective != c.status {
				if want := "set SCHED_RR 1: operation not permitted (needs CAP_SYS_NICE)"; st.DatapathPriorityError != want {
					t.Errorf("status datapath_priority_error %q, want %q", st.DatapathPriorityError, want)
				}
				if want := "normal, not SCHED_RR 1 as configured: set SCHED_RR 1: operation not permitted (needs CAP_SYS_NICE)"; threadsLine(text) != want {
					t.Errorf("vswctl status: datapath threads %q, want %q:\n%s", threadsLine(text), want, text)
				}
			} else if st.DatapathPriorityError != "" || threadsLine(text) != c.status {
				t.Errorf("datapath_priority_error %q; vswctl status:\n%s", st.DatapathPriorityError, text)
			}
			rr, err := rrThreads(h.d.pid())
			if err != nil {
				t.Fatal(err)
			}
			// uplink worker(s) + vnet1's egress worker
			if c.wantRR && rr < 2 || !c.wantRR && rr != 0 {
				t.Errorf("%d SCHED_RR threads in vswitchd (want RR: %v)", rr, c.wantRR)
			}
		})
	}
}

// threadsLine is the value of vswctl status's "datapath threads" line.
func threadsLine(status string) string {
	m := regexp.MustCompile(`(?m)^datapath threads:\s+(.*)$`).FindStringSubmatch(status)
	if m == nil {
		return ""
	}
	return m[1]
}

// rrThreads counts the process's threads with policy SCHED_RR (field 41 of
// /proc/PID/task/TID/stat).
func rrThreads(pid int) (int, error) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
	if err != nil {
		return 0, err
	}
	n := 0
	for _, p := range tasks {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // thread exited
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:]) // fields from 3 on
		if len(f) > 38 && f[38] == "2" {
			n++
		}
	}
	return n, nil
}
