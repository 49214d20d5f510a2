package integration

import (
	"strings"
	"testing"
	"time"
)

// The busy poll (--busy-poll, internal/rxwait.Group) catches the answer:
// a ping's echo reply, which the kernel of vm2 sends while vswitchd is
// still delivering the request, comes back on vm2's port during the spin
// that follows, and crosses the switch on the same thread, counted as a
// hit. With --busy-poll 0 nothing spins and neither status nor metrics
// mention it.
func TestBusyPollCatchesAnswer(t *testing.T) {
	forEachDatapath(t, func(t *testing.T, dp string) {
		_, hvs := newLab(t, dp, 1)
		vm1, vm2 := hvs[0].pairOnVLAN100()
		before := hvs[0].status().BusyPoll
		if before == nil || before.BudgetMicros != 100 {
			t.Fatalf("status busy_poll %+v, want the default budget of 100 us", before)
		}
		const pings = 20
		for i := 0; i < pings; i++ {
			vm1.mustPing(vm2)
			time.Sleep(5 * time.Millisecond) // apart, as at light load
		}
		after := hvs[0].status().BusyPoll
		hits := after.Hits - before.Hits
		t.Logf("vswitchd %s: %d pings, busy poll %+v (before %+v)", dp, pings, after, before)
		if hits < pings/2 {
			t.Errorf("%d busy-poll hits for %d round trips: the replies were not caught", hits, pings)
		}
		if after.SpunSeconds <= before.SpunSeconds || after.SpunSeconds > 1 {
			t.Errorf("spun %.6f s for %d pings (before %.6f s)", after.SpunSeconds, pings, before.SpunSeconds)
		}
		m := hvs[0].metrics()
		for _, s := range []string{`vswitch_busy_poll_total{result="hit"}`, `vswitch_busy_poll_total{result="miss"}`, `vswitch_busy_poll_total{result="skipped"}`, "vswitch_busy_poll_seconds_total"} {
			if !strings.Contains(m, s) {
				t.Errorf("metrics lack %s", s)
			}
		}

		// Off: the same pings work, and nothing spins.
		_, offs := newLab(t, dp, 1)
		off := offs[0]
		a, b := off.pairOnVLAN100("--busy-poll", "0")
		a.mustPing(b)
		if st := off.status(); st.BusyPoll != nil {
			t.Errorf("--busy-poll 0: status busy_poll %+v, want none", st.BusyPoll)
		}
		if m := off.metrics(); strings.Contains(m, "vswitch_busy_poll") {
			t.Error("--busy-poll 0: metrics have vswitch_busy_poll series")
		}
	})
}
