package datapath

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vswitch/vswitch/pkg/backend/queuetest"
	portcfg "github.com/vswitch/vswitch/pkg/port"
)

func TestStatStartTime(t *testing.T) {
	for _, c := range []struct {
		stat  string
		start uint64
		ok    bool
	}{
		{"1234 (vswitchd) S 1 1234 1234 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 9 0 4711 1892412928 10236 18446744073709551615 1 1 0 0 0 0 0 0 2143420159 0 0 0 -1 0 0 0 0 0 0", 4711, true},
		// comm may hold spaces and parentheses
		{"77 (a) b (c)) R 1 77 77 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 99 0 0 0", 99, true},
		{"77 (short) R 1 2 3", 0, false},
		{"no comm at all", 0, false},
	} {
		start, ok := statStartTime(c.stat)
		if start != c.start || ok != c.ok {
			t.Errorf("statStartTime(%q) = %d, %v; want %d, %v", c.stat, start, ok, c.start, c.ok)
		}
	}
}

func TestPickSysmon(t *testing.T) {
	for _, c := range []struct {
		name string
		ts   []threadStart
		want int
	}{
		{"first after main", []threadStart{{100, 5}, {101, 5}, {102, 5}, {140, 900}}, 101},
		{"earliest start wins over a lower TID", []threadStart{{100, 5}, {90, 7}, {300, 6}}, 300},
		{"main alone", []threadStart{{100, 5}}, 0},
		{"nothing", nil, 0},
	} {
		if got := pickSysmon(c.ts, 100); got != c.want {
			t.Errorf("%s: pickSysmon = %d, want %d", c.name, got, c.want)
		}
	}
}

// processThreads sees this test process's threads, the main one among them,
// and picks another as sysmon.
func TestProcessThreads(t *testing.T) {
	tids, sysmon, err := processThreads()
	if err != nil {
		t.Fatal(err)
	}
	pid := os.Getpid()
	var main, found bool
	for _, tid := range tids {
		main = main || tid == pid
		found = found || tid == sysmon
	}
	if !main || !found || sysmon == pid || sysmon == 0 {
		t.Errorf("threads %v, sysmon %d (pid %d)", tids, sysmon, pid)
	}
}

// A worker gives its thread the datapath policy on its first batch and then
// checks only every prioCheckEvery batches. (Nice 5: raising one's nice
// value needs no privilege. The test thread is locked and never unlocked,
// so the runtime discards it afterwards.)
func TestWorkerPriority(t *testing.T) {
	s, err := New(Config{Uplink: "up0", Backend: queuetest.New(), Priority: Priority{Nice: 5}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	p := s.cfg.Priority
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread goes with us
		if threadHasPriority(0, p) {
			t.Error("fresh thread already at nice 5")
			return
		}
		var batches uint32
		s.workerPriority(&batches)
		if !threadHasPriority(0, p) {
			t.Error("first batch did not set the policy")
			return
		}
		if err := setThreadPriority(0, Priority{Nice: 6}); err != nil {
			t.Error(err)
			return
		}
		for i := 1; i < prioCheckEvery; i++ {
			s.workerPriority(&batches)
		}
		if threadHasPriority(0, p) {
			t.Error("checked before prioCheckEvery batches")
		}
		s.workerPriority(&batches)
		if os.Geteuid() == 0 && !threadHasPriority(0, p) { // 6 -> 5 needs privilege
			t.Error("the check after prioCheckEvery batches did not restore the policy")
		}
	}()
	<-done
	if s.prioFailed.Load() && os.Geteuid() == 0 {
		t.Error("priority reported as failing")
	}
}

// Start gives every thread but sysmon the policy. Root only: the test
// resets the process afterwards, and lowering nice needs privilege.
func TestApplyPriorityLeavesSysmon(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to reset the threads' nice value afterwards")
	}
	s, err := New(Config{Uplink: "up0", Backend: queuetest.New(), Priority: Priority{Nice: 3}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		tids, _, _ := processThreads()
		for _, tid := range tids {
			_ = setThreadPriority(tid, Priority{Nice: 0})
		}
	})
	// A thread that sysmon starts right after applyPriority has its
	// policy (none): check twice before calling that a failure.
	var bad []string
	for try := 0; try < 2; try++ {
		s.applyPriority()
		tids, sysmon, err := processThreads()
		if err != nil {
			t.Fatal(err)
		}
		bad = bad[:0]
		for _, tid := range tids {
			want := tid != sysmon
			if got := threadHasPriority(tid, s.cfg.Priority); got != want {
				bad = append(bad, fmt.Sprintf("thread %d (sysmon %d): nice 3 %v, want %v", tid, sysmon, got, want))
			}
		}
		if len(bad) == 0 {
			return
		}
	}
	t.Error(strings.Join(bad, "; "))
}

// Config.Workers hears the number of workers whenever it changes: one per
// uplink RX queue from Start, one more per attached port, none after Stop.
func TestWorkersCallback(t *testing.T) {
	var got []int
	s, err := New(Config{Uplink: "up0", UplinkQueues: 2, Backend: queuetest.New(), Logger: slog.New(slog.DiscardHandler),
		Workers: func(n int) { got = append(got, n) }}) // under s.mu: no race
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"vnet1", "vnet2"} {
		if err := s.AddPort(portcfg.Config{Name: name, VLAN: 100}); err != nil {
			t.Fatal(err)
		}
		if err := s.Attach(name); err != nil {
			t.Fatal(err)
		}
	}
	s.Detach("vnet1")
	if err := s.RestartUplink(); err != nil {
		t.Fatal(err)
	}
	s.Stop()
	// RestartUplink: vnet2 detached, uplink closed and reopened, vnet2 back.
	want := []int{2, 3, 4, 3, 2, 0, 2, 3, 2, 0}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Workers saw %v, want %v", got, want)
	}
}

// A policy the switch may not set is reported by PriorityErr, with what
// it lacks, for the status to show what the threads really got.
func TestPriorityErr(t *testing.T) {
	s, err := New(Config{Uplink: "up0", Backend: queuetest.New(), Priority: Priority{RealTime: 1}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PriorityErr(); err != nil {
		t.Fatalf("before any attempt: %v", err)
	}
	s.prioWarn(unix.EPERM)
	s.prioWarn(unix.EINVAL) // the first error stays
	if err := s.PriorityErr(); err == nil || err.Error() != "set SCHED_RR 1: operation not permitted (needs CAP_SYS_NICE)" || !errors.Is(err, unix.EPERM) {
		t.Errorf("PriorityErr %v", err)
	}
	if !s.prioFailed.Load() {
		t.Error("the workers keep trying")
	}
}
