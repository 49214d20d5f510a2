package integration

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/vswitch/vswitch/pkg/api"
)

// The busy poll (--busy-poll, internal/rxwait.Group) catches the answer: a
// UDP echo from a process in vm2, which needs a wake-up of its own and so
// comes back tens of microseconds after vswitchd delivered the request,
// arrives on vm2's port during the spin that follows the delivery and
// crosses the switch on the same thread: a hit. (A ping would not show
// it: vm2's kernel answers inside vswitchd's own transmit, and the answer
// is there before any spin, counted as ready.) With --busy-poll 0 nothing
// spins and neither status nor metrics mention it. The busy poll is for
// queues that wait in the netpoller, so the test turns the CPU pollers
// (the default, TestCPUPoll) off.
func TestBusyPollCatchesAnswer(t *testing.T) {
	forEachDatapath(t, func(t *testing.T, dp string) {
		_, hvs := newLab(t, dp, 1)
		h := hvs[0]
		// The busy poll is for queues the netpoller waits for: with CPU
		// pollers (the default) none does.
		vm1, vm2 := h.pairOnVLAN100("--cpu-poll=false")
		echo, oneWay := udpEcho(t, vm1, vm2)
		const (
			trips    = 40  // unanswered datagrams, the control
			wantHits = 5   // answers caught
			maxTrips = 400 // round trips to catch them in
		)
		busy := func() *api.BusyPollStatus {
			b := h.status().BusyPoll
			if b == nil || b.BudgetMicros != 100 {
				t.Fatalf("status busy_poll %+v, want the default budget of 100 us", b)
			}
			return b
		}
		// The control: datagrams nobody answers, apart as at light load.
		// Their spins must miss (a stray frame, an IPv6 solicitation, may
		// come during one).
		before := busy()
		for i := 0; i < trips; i++ {
			oneWay()
			time.Sleep(5 * time.Millisecond)
		}
		mid := busy()
		if control := mid.Hits - before.Hits; control > 2 {
			t.Errorf("%d busy-poll hits for %d datagrams nobody answered: hits are not answers (%+v)", control, trips, mid)
		}
		// Round trips until wantHits answers were caught. An answer is
		// caught unless the echo process took longer than the budget to
		// run, which on a loaded 2-CPU machine it often does (measured:
		// 8-25 of 40 with the three datapaths' tests side by side, 2 of
		// 40 during the whole make test); without the busy poll none is.
		n := 0
		for ; n < maxTrips && busy().Hits-mid.Hits < wantHits; n++ {
			echo()
			time.Sleep(5 * time.Millisecond)
		}
		end := busy()
		t.Logf("vswitchd %s: %d one-way datagrams, then %d round trips: busy poll %+v (before %+v, between %+v)", dp, trips, n, end, before, mid)
		if hits := end.Hits - mid.Hits; hits < wantHits || hits > uint64(n) {
			t.Errorf("%d busy-poll hits for %d round trips: the answers were not caught, or counted twice", hits, n)
		}
		after := h.status().BusyPoll
		if after.Ready < uint64(trips+n) {
			t.Errorf("busy poll %+v: fewer than one ready per datagram (the frame each transmit reflects onto the uplink's ring)", after)
		}
		if after.Spins != after.Hits+after.Misses || after.SpunSeconds <= 0 || after.SpunSeconds > 1 {
			t.Errorf("inconsistent counters %+v", after)
		}
		m := h.metrics()
		for _, r := range []string{"hit", "miss", "ready", "skipped", "backoff"} {
			if s := `vswitch_busy_poll_total{result="` + r + `"}`; !strings.Contains(m, s) {
				t.Errorf("metrics lack %s", s)
			}
		}
		if !strings.Contains(m, "vswitch_busy_poll_seconds_total") {
			t.Error("metrics lack vswitch_busy_poll_seconds_total")
		}

		// Off: the same traffic works, and nothing spins.
		_, offs := newLab(t, dp, 1)
		off := offs[0]
		a, b := off.pairOnVLAN100("--cpu-poll=false", "--busy-poll", "0")
		offEcho, _ := udpEcho(t, a, b)
		offEcho()
		if st := off.status(); st.BusyPoll != nil {
			t.Errorf("--busy-poll 0: status busy_poll %+v, want none", st.BusyPoll)
		}
		if m := off.metrics(); strings.Contains(m, "vswitch_busy_poll") {
			t.Error("--busy-poll 0: metrics have vswitch_busy_poll series")
		}
	})
}

// udpEcho starts UDP echo (port 7) and discard (port 9) processes, each
// a goroutine with a socket in dst's namespace, and returns clients in
// src's: echo sends a datagram and waits for its answer, oneWay sends one
// to the discard process and waits until it was read.
func udpEcho(t *testing.T, src, dst *vm) (echo, oneWay func()) {
	t.Helper()
	srv, sink := udpIn(t, dst.ns, dst.ip, 7), udpIn(t, dst.ns, dst.ip, 9)
	cli := udpIn(t, src.ns, src.ip, 0)
	read := make(chan struct{}, 1)
	go func() {
		buf := make([]byte, 64)
		for {
			n, from, err := srv.ReadFromUDP(buf)
			if err != nil {
				return
			}
			_, _ = srv.WriteToUDP(buf[:n], from)
		}
	}()
	go func() {
		buf := make([]byte, 64)
		for {
			if _, _, err := sink.ReadFromUDP(buf); err != nil {
				return
			}
			read <- struct{}{}
		}
	}()
	send := func(port int) {
		t.Helper()
		if _, err := cli.WriteToUDP([]byte("busy-poll probe"), &net.UDPAddr{IP: net.ParseIP(dst.ip), Port: port}); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 64)
	echo = func() {
		t.Helper()
		send(7)
		_ = cli.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, _, err := cli.ReadFromUDP(buf); err != nil {
			t.Fatalf("UDP echo %s -> %s: %v", src.ip, dst.ip, err)
		}
	}
	oneWay = func() {
		t.Helper()
		send(9)
		select {
		case <-read:
		case <-time.After(2 * time.Second):
			t.Fatalf("UDP datagram %s -> %s:9 not received", src.ip, dst.ip)
		}
	}
	return echo, oneWay
}
