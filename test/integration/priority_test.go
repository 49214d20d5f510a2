package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The datapath threads run SCHED_RR 1 by default (ahead of the VMs, as
// kernel switching in softirq is); --datapath-priority normal turns it off.
func TestDatapathPriority(t *testing.T) {
	for _, c := range []struct {
		flag   []string
		wantRR bool
		status string
	}{
		{nil, true, "SCHED_RR 1"},
		{[]string{"--datapath-priority", "normal"}, false, ""},
	} {
		t.Run(fmt.Sprint(c.wantRR), func(t *testing.T) {
			needBinaries(t)
			_, hvs := newLab(t, "afpacket", 1)
			h := hvs[0]
			vm1 := h.addVM(1)
			h.start(c.flag...)
			h.addPort(vm1.port, "--vlan", "100")
			h.waitState(vm1.port, "up", 10*time.Second)
			if got := h.status().DatapathPriority; got != c.status && !(c.status == "" && got == "normal") {
				t.Errorf("status datapath_priority %q, want %q", got, c.status)
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
