package integration

import (
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vswitch/vswitch/pkg/api"
)

// TestCPUPoll: the CPU pollers (--cpu-poll, the default) receive the
// queues while frames come far apart: every round trip wakes a poller
// (each crossing of the switch starts with a frame waking the poller of
// the CPU that sent it) and no queue goes to a thread of its own. A
// stream does (hand-offs), and once it is over the pollers take the
// queues back: round trips wake them again. Without pollers
// (--cpu-poll=false) status and metrics say nothing of them.
func TestCPUPoll(t *testing.T) {
	forEachDatapath(t, func(t *testing.T, dp string) {
		_, hvs := newLab(t, dp, 1)
		h := hvs[0]
		// The default uplink queues (the harness asks for one): one per
		// CPU, on afxdp sockets sharing the veth's one NIC queue.
		vm1, vm2 := h.pairOnVLAN100("--uplink-queues", "0")
		if uplinkBackend(dp) == "afxdp" && runtime.NumCPU() > 1 {
			if log, _ := os.ReadFile(h.logf); !strings.Contains(string(log), "class=1 role=uplink-rx") {
				t.Errorf("afxdp with %d CPUs opened no uplink socket sharing the veth's one queue (class 1)", runtime.NumCPU())
			}
		}
		echo, _ := udpEcho(t, vm1, vm2)
		st := h.status()
		if st.BusyPoll != nil {
			t.Errorf("status busy_poll %+v with CPU pollers: no queue waits in the netpoller, where it spins", st.BusyPoll)
		}
		cp := func() *api.CPUPollStatus {
			t.Helper()
			c := h.status().CPUPoll
			if c == nil || c.Pollers != runtime.NumCPU() || c.PinError != "" {
				t.Fatalf("status cpu_poll %+v, want %d pinned pollers", c, runtime.NumCPU())
			}
			return c
		}
		const trips = 50
		roundTrips := func() {
			for range trips {
				echo()
				time.Sleep(2 * time.Millisecond)
			}
		}
		a := cp()
		roundTrips()
		b := cp()
		if w := b.Wakeups - a.Wakeups; w < trips {
			t.Errorf("%d round trips woke the pollers %d times: each crossing should", trips, w)
		}
		if b.Handoffs != a.Handoffs {
			t.Errorf("%d hand-offs at light load, want none", b.Handoffs-a.Handoffs)
		}

		// A stream of 20,000 datagrams as fast as one socket sends them.
		dst := udpIn(t, vm2.ns, vm2.ip, 19)
		go func() {
			buf := make([]byte, 64)
			for {
				if _, _, err := dst.ReadFromUDP(buf); err != nil {
					return
				}
			}
		}()
		src := udpIn(t, vm1.ns, vm1.ip, 0)
		to := &net.UDPAddr{IP: net.ParseIP(vm2.ip), Port: 19}
		for range 20000 {
			if _, err := src.WriteToUDP(make([]byte, 32), to); err != nil {
				t.Fatal(err)
			}
		}
		c := cp()
		if c.Handoffs == b.Handoffs {
			t.Errorf("a stream of 20,000 datagrams handed no queue to a thread of its own (%+v)", c)
		}
		time.Sleep(100 * time.Millisecond) // quiet: the queues go back
		roundTrips()
		d := cp()
		if w := d.Wakeups - c.Wakeups; w < trips {
			t.Errorf("after the stream, %d round trips woke the pollers %d times: the queues did not come back to them", trips, w)
		}
		if m := h.metrics(); !strings.Contains(m, `vswitch_cpu_poll_total{event="wakeup"}`) {
			t.Error("metrics lack vswitch_cpu_poll_total")
		}

		_, offs := newLab(t, dp, 1)
		off := offs[0]
		x, y := off.pairOnVLAN100("--cpu-poll=false")
		offEcho, _ := udpEcho(t, x, y)
		offEcho()
		if st := off.status(); st.CPUPoll != nil || st.BusyPoll == nil {
			t.Errorf("--cpu-poll=false: status cpu_poll %+v (want none), busy_poll %+v (want the default)", st.CPUPoll, st.BusyPoll)
		}
		if m := off.metrics(); strings.Contains(m, "vswitch_cpu_poll") {
			t.Error("--cpu-poll=false: metrics have vswitch_cpu_poll series")
		}
	})
}
