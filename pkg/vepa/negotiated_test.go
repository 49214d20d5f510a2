package vepa

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// The negotiated timers drive ECP and VDP: tests over in-memory links
// that lose frames.

// ECP sends a request R+1 times, RTE apart with no back-off, with the R
// and RTE set last.
func TestECPRetriesFollowTimers(t *testing.T) {
	l, _, _ := newLink(t)
	sentTimes := loseAll(l)
	l.a.SetTimers(5, 12) // 6 tries, 40.96 ms apart
	start := time.Now()
	if err := l.a.Request(context.Background(), []byte("x")); !errors.Is(err, ErrNoAck) {
		t.Fatalf("err %v, want ErrNoAck", err)
	}
	el := time.Since(start)
	if s := l.a.Stats(); s.Sent != 1 || s.Retransmitted != 5 || s.Failed != 1 {
		t.Errorf("stats %+v, want 1 sent, 5 retransmitted, 1 failed", s)
	}
	ack := Timer(12)
	if el < 6*ack || el > 6*ack+400*time.Millisecond {
		t.Errorf("6 tries took %v, want 6 × %v (no back-off)", el, ack)
	}
	sent := sentTimes()
	for i := 1; i < len(sent); i++ {
		if gap := sent[i].Sub(sent[i-1]); gap < ack || gap > ack+150*time.Millisecond {
			t.Errorf("try %d came %v after the one before, want %v", i, gap, ack)
		}
	}
	l.a.SetTimers(0, 10) // R 0: one try
	if err := l.a.Request(context.Background(), []byte("y")); !errors.Is(err, ErrNoAck) {
		t.Fatalf("err %v, want ErrNoAck", err)
	}
	if s := l.a.Stats(); s.Sent != 2 || s.Retransmitted != 5 || s.Failed != 2 {
		t.Errorf("stats %+v after a request with R 0, want no retransmission", s)
	}
}

// orderedLink connects two ECP endpoints over a link that keeps frames in
// order (as an Ethernet link does) and loses every third one each way.
type orderedLink struct {
	a, b   *ECP
	ab, ba chan []byte
}

func newOrderedLink(t *testing.T, deliver func([]byte)) *orderedLink {
	t.Helper()
	l := &orderedLink{ab: make(chan []byte, 64), ba: make(chan []byte, 64)}
	lossy := func(ch chan []byte) func([]byte) error {
		n := 0
		var mu sync.Mutex
		return func(f []byte) error {
			mu.Lock()
			n++
			lost := n%3 == 0
			mu.Unlock()
			if !lost {
				ch <- append([]byte(nil), f...)
			}
			return nil
		}
	}
	var err error
	l.a, err = NewECP(ECPConfig{MAC: [6]byte{2, 0, 0, 0, 0, 0xa}, Peer: [6]byte{2, 0, 0, 0, 0, 0xb}, Send: lossy(l.ab), Deliver: func([]byte) {}})
	if err != nil {
		t.Fatal(err)
	}
	l.b, err = NewECP(ECPConfig{MAC: [6]byte{2, 0, 0, 0, 0, 0xb}, Peer: [6]byte{2, 0, 0, 0, 0, 0xa}, Send: lossy(l.ba), Deliver: deliver})
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, d := range []struct {
		ch chan []byte
		to *ECP
	}{{l.ab, l.b}, {l.ba, l.a}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case f := <-d.ch:
					d.to.Handle(f)
				case <-stop:
					return
				}
			}
		}()
	}
	t.Cleanup(func() { close(stop); wg.Wait() })
	return l
}

// Over a link that loses every third frame each way, every request is
// delivered exactly once and in order, lost ones retransmitted, lost acks
// answered by duplicates that are acknowledged but not delivered again.
func TestECPLossyLink(t *testing.T) {
	const n = 50
	got := make(chan string, 2*n)
	l := newOrderedLink(t, func(p []byte) { got <- strings.TrimRight(string(p), "\x00") })
	l.a.SetTimers(7, 10)
	for i := 0; i < n; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := l.a.Request(ctx, []byte{'p', byte('0' + i/10), byte('0' + i%10)})
		cancel()
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	time.Sleep(100 * time.Millisecond) // late duplicates, if any, arrive
	if len(got) != n {
		t.Fatalf("%d deliveries for %d requests", len(got), n)
	}
	for i := 0; i < n; i++ {
		if p, want := <-got, string([]byte{'p', byte('0' + i/10), byte('0' + i%10)}); p != want {
			t.Fatalf("delivery %d is %q, want %q (in order, once each)", i, p, want)
		}
	}
	a, b := l.a.Stats(), l.b.Stats()
	if a.Sent != n || a.Acked != n || a.Failed != 0 || a.Retransmitted == 0 {
		t.Errorf("sender %+v, want %d sent and acked, retransmissions, no failure", a, n)
	}
	if b.Received != n || b.Duplicates == 0 {
		t.Errorf("receiver %+v, want %d received and duplicates (lost acks)", b, n)
	}
}

// timedBridge answers every VDP request (unless silent) and records when
// each arrived.
type timedBridge struct {
	ecp *ECP
	st  *VDPStation

	mu     sync.Mutex
	silent bool // acknowledge in ECP, never answer in VDP
	times  []time.Time
	modes  []uint8
}

func newTimedBridge(t *testing.T, timers Timers) *timedBridge {
	t.Helper()
	b := &timedBridge{}
	mac := [6]byte{0x52, 0x54, 0, 0, 0, 0x77}
	var err error
	b.st, err = NewVDPStation(VDPConfig{MAC: mac, ManagerID: ManagerID("vswitchd"),
		Send: func(f []byte) error { go b.ecp.Handle(append([]byte(nil), f...)); return nil }})
	if err != nil {
		t.Fatal(err)
	}
	b.st.SetTimers(timers)
	b.ecp, err = NewECP(ECPConfig{MAC: bridgeMAC, Peer: mac, RTE: 10, Send: func(f []byte) error { go b.st.Handle(append([]byte(nil), f...)); return nil },
		Deliver: func(p []byte) {
			pdu, err := ParseVDP(p)
			if err != nil {
				t.Errorf("bridge got a bad PDU: %v", err)
				return
			}
			b.mu.Lock()
			for _, v := range pdu.VSIs {
				b.times = append(b.times, time.Now())
				b.modes = append(b.modes, v.Mode)
			}
			silent := b.silent
			b.mu.Unlock()
			if silent {
				return
			}
			for i := range pdu.VSIs {
				pdu.VSIs[i].Status = VDPStatusAck
			}
			resp, _ := pdu.Append(nil)
			go func() { _ = b.ecp.Request(context.Background(), resp) }()
		}})
	if err != nil {
		t.Fatal(err)
	}
	b.st.SetBridge(bridgeMAC[:])
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { b.st.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return b
}

// arrivals returns the arrival times of the requests after the first skip.
func (b *timedBridge) arrivals(skip int) []time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.times[min(skip, len(b.times)):])
}

func (b *timedBridge) waitArrivals(t *testing.T, skip, n int, within time.Duration) []time.Time {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		a := b.arrivals(skip)
		if len(a) >= n {
			return a
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d requests within %v, want %d", len(a), within, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func gaps(ts []time.Time) []time.Duration {
	var out []time.Duration
	for i := 1; i < len(ts); i++ {
		out = append(out, ts[i].Sub(ts[i-1]))
	}
	return out
}

// The keep-alive period is the negotiated RKA and changes live: a VSI
// refreshed every 1.31 s (RKA 17) is refreshed every 328 ms once RKA 15
// is set, and the counters tell keep-alives from associations.
func TestVDPKeepAliveFollowsRKA(t *testing.T) {
	b := newTimedBridge(t, Timers{R: 3, RTE: 8, RWD: 20, RKA: 17})
	mac := net.HardwareAddr{0x52, 0x54, 0, 0, 1, 1}
	b.st.Associate("vnet1", testVSI(mac, 100))
	waitVSI(t, b.st, "vnet1", VSIAssociated)
	a := b.waitArrivals(t, 0, 3, 4*time.Second)
	for _, g := range gaps(a[:3]) {
		if g < Timer(17)-20*time.Millisecond || g > Timer(17)+100*time.Millisecond {
			t.Errorf("keep-alive %v after the request before, want %v (RKA 17)", g, Timer(17))
		}
	}
	n := len(b.arrivals(0))
	b.st.SetTimers(Timers{R: 3, RTE: 8, RWD: 20, RKA: 15})
	changed := time.Now()
	a = b.waitArrivals(t, n, 6, 3*time.Second)
	if d := a[0].Sub(changed); d > 100*time.Millisecond {
		t.Errorf("first keep-alive %v after the change, want at once", d)
	}
	for _, g := range gaps(a[1:6]) {
		if g < Timer(15)-20*time.Millisecond || g > Timer(15)+100*time.Millisecond {
			t.Errorf("keep-alive %v after the one before, want %v (RKA 15)", g, Timer(15))
		}
	}
	s := b.st.Stats()
	if s.Associations != 1 || s.KeepAlives < 8 || s.Acknowledged < 9 || s.Timeouts != 0 {
		t.Errorf("stats %+v, want 1 association, keep-alives, acknowledgements", s)
	}
	if b.st.Timers().RKA != 15 {
		t.Errorf("Timers() %+v", b.st.Timers())
	}
}

// A bridge that never answers: the station asks again every second and,
// once the response wait delay (RWD, R and RTE: 41.5.5.9) has passed, the
// VSI fails; it is asked again after the keep-alive period. A long RWD
// keeps it associating instead.
func TestVDPResponseWaitFollowsRWD(t *testing.T) {
	tm := Timers{R: 3, RTE: 8, RWD: 14, RKA: 17} // respWait 1.5 × (17.92 + 163.84) ms = 272.64 ms
	b := newTimedBridge(t, tm)
	b.mu.Lock()
	b.silent = true
	b.mu.Unlock()
	mac := net.HardwareAddr{0x52, 0x54, 0, 0, 1, 2}
	start := time.Now()
	b.st.Associate("vnet2", testVSI(mac, 100))
	v := waitVSI(t, b.st, "vnet2", VSIFailed)
	if el := time.Since(start); el < tm.ResponseWait() || el > tm.ResponseWait()+500*time.Millisecond {
		t.Errorf("failed after %v, want about %v", el, tm.ResponseWait())
	}
	if v.Reason != "no answer from the bridge within the response wait delay (273ms)" {
		t.Errorf("reason %q", v.Reason)
	}
	if s := b.st.Stats(); s.Timeouts != 1 || s.Associations != 1 || s.Unacknowledged != 0 {
		t.Errorf("stats %+v, want 1 association, 1 timeout, ECP fine", s)
	}
	// Asked again after RKA (1.31 s), failing again.
	a := b.waitArrivals(t, 0, 2, 3*time.Second)
	if g := a[1].Sub(a[0]); g < Timer(17)-20*time.Millisecond || g > Timer(17)+400*time.Millisecond {
		t.Errorf("asked again %v after the first request, want after RKA (%v)", g, Timer(17))
	}
	// A resource wait delay of 42.9 s (RWD 22): no failure, a request a second.
	b.st.SetTimers(Timers{R: 3, RTE: 8, RWD: 22, RKA: 17})
	n := len(b.arrivals(0))
	time.Sleep(2500 * time.Millisecond)
	for _, s := range b.st.VSIs() {
		if s.State != VSIAssociating {
			t.Errorf("with RWD 22, state %s (%s), want associating", s.State, s.Reason)
		}
	}
	if got := len(b.arrivals(n)); got < 2 || got > 4 {
		t.Errorf("%d requests in 2.5 s without an answer, want one a second", got)
	}
	b.mu.Lock()
	b.silent = false
	b.mu.Unlock()
	waitVSI(t, b.st, "vnet2", VSIAssociated)
}

// Run sleeps until the next request is due, not to a fixed tick: no
// sooner (an idle station without a bridge wakes 5 times a second) and
// no later than each keep-alive, re-send or response wait.
func TestVDPWake(t *testing.T) {
	st, err := NewVDPStation(VDPConfig{MAC: [6]byte{0x52, 0x54, 0, 0, 0, 0x5c}, ManagerID: ManagerID("vswitchd"), Send: func([]byte) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	st.SetTimers(Timers{R: 3, RTE: 8, RWD: 14, RKA: 15})
	mac := net.HardwareAddr{0x52, 0x54, 0, 0, 1, 3}
	st.Associate("vnet3", testVSI(mac, 100))
	now := time.Now()
	if w := st.wake(now); w != 200*time.Millisecond {
		t.Errorf("without a bridge, wake in %v, want 200ms", w)
	}
	st.SetBridge(bridgeMAC[:])
	if w := st.wake(now); w != time.Millisecond {
		t.Errorf("with a request due, wake in %v, want at once (1ms)", w)
	}
	st.due(now) // sent, unanswered: the response wait (273 ms) runs out before the re-send (1 s)
	if w := st.wake(now); w != 200*time.Millisecond {
		t.Errorf("unanswered, wake in %v, want the 200ms cap", w)
	}
	if w := st.wake(now.Add(150 * time.Millisecond)); w != (Timers{R: 3, RTE: 8, RWD: 14}).ResponseWait()-150*time.Millisecond {
		t.Errorf("unanswered 150ms, wake in %v, want when the response wait runs out", w)
	}
	st.mu.Lock()
	e := st.vsis[MACVSIID(mac)]
	e.answered, e.asked = true, time.Time{}
	st.mu.Unlock()
	if w := st.wake(now.Add(300 * time.Millisecond)); w != Timer(15)-300*time.Millisecond {
		t.Errorf("answered 300ms ago, wake in %v, want at the keep-alive (RKA 15: %v)", w, Timer(15))
	}
}

// A longer keep-alive period is announced at once: a keep-alive goes when
// RKA grows, not one new period after the last (the bridge would time the
// VSI out under the old period first), then one every new period.
func TestVDPKeepAliveAtOnceWhenRKAGrows(t *testing.T) {
	b := newTimedBridge(t, Timers{R: 3, RTE: 8, RWD: 20, RKA: 15})
	b.st.Associate("vnet4", testVSI(net.HardwareAddr{0x52, 0x54, 0, 0, 1, 4}, 100))
	waitVSI(t, b.st, "vnet4", VSIAssociated)
	b.waitArrivals(t, 0, 2, 2*time.Second) // the association and a keep-alive
	n := len(b.arrivals(0))
	b.st.SetTimers(Timers{R: 3, RTE: 8, RWD: 20, RKA: 17})
	changed := time.Now()
	a := b.waitArrivals(t, n, 2, 3*time.Second)
	if d := a[0].Sub(changed); d > 100*time.Millisecond {
		t.Errorf("keep-alive %v after RKA grew, want at once (before the bridge's old timeout, %v)", d, (Timers{R: 3, RTE: 8, RKA: 15}).BridgeKeepAliveTimeout())
	}
	if g := a[1].Sub(a[0]); g < Timer(17)-20*time.Millisecond || g > Timer(17)+100*time.Millisecond {
		t.Errorf("then %v apart, want %v", g, Timer(17))
	}
	// Other timers changing sends nothing early.
	n = len(b.arrivals(0))
	b.st.SetTimers(Timers{R: 4, RTE: 9, RWD: 21, RKA: 17})
	time.Sleep(300 * time.Millisecond)
	if got := len(b.arrivals(n)); got != 0 {
		t.Errorf("%d requests right after R, RTE and RWD changed, want none", got)
	}
}

// A request under way follows the timers set while it waits: the bridge
// that raised RTE to 31 (an ECP timer of 6 h) and lowers it again, or
// lowers R, must not leave VDP stuck behind one lost frame for hours
// (R + 1 tries 6 h apart). The new timer counts from the last try.
func TestECPRequestUnderWayFollowsNewTimers(t *testing.T) {
	l, _, _ := newLink(t)
	loseAll(l)
	l.a.SetTimers(7, MaxExponent) // 8 tries, 6 h apart
	errc := make(chan error, 1)
	go func() { errc <- l.a.Request(context.Background(), []byte("x")) }()
	time.Sleep(50 * time.Millisecond)
	l.a.SetTimers(2, 12) // 3 tries, 40.96 ms apart
	select {
	case err := <-errc:
		if !errors.Is(err, ErrNoAck) {
			t.Fatalf("err %v, want ErrNoAck", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the request still waits on the 6 h timer it started with after the bridge lowered RTE to 12")
	}
	if s := l.a.Stats(); s.Sent != 1 || s.Retransmitted != 2 || s.Failed != 1 {
		t.Errorf("stats %+v, want 1 sent, 2 retransmitted (R 2), 1 failed", s)
	}

	// R lowered below the tries already made: given up when the timer of
	// the last try runs out.
	l.a.SetTimers(7, 12)
	go func() { errc <- l.a.Request(context.Background(), []byte("y")) }()
	time.Sleep(100 * time.Millisecond) // 3 tries out
	l.a.SetTimers(0, 12)
	select {
	case err := <-errc:
		if !errors.Is(err, ErrNoAck) {
			t.Fatalf("err %v, want ErrNoAck", err)
		}
	case <-time.After(time.Second):
		t.Fatal("R lowered to 0 after three tries: the request goes on")
	}
}

// A request under way is given up when the peer changes or goes (the
// bridge's TTL ran out, another bridge took over): it was for a bridge
// that is not there, and VDP must be free to talk to the next one.
func TestECPRequestAbandonedWhenPeerChanges(t *testing.T) {
	for _, next := range []net.HardwareAddr{nil, {2, 0, 0, 0, 0, 0xc}} {
		l, _, _ := newLink(t)
		l.drop = func(string, []byte) bool { return true }
		l.a.SetTimers(7, MaxExponent)
		errc := make(chan error, 1)
		go func() { errc <- l.a.Request(context.Background(), []byte("x")) }()
		time.Sleep(50 * time.Millisecond)
		l.a.SetPeer(net.HardwareAddr{2, 0, 0, 0, 0, 0xb}) // the same peer again: nothing changes
		select {
		case err := <-errc:
			t.Fatalf("the same peer named again ended the request: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
		l.a.SetPeer(next)
		select {
		case err := <-errc:
			if !errors.Is(err, ErrPeerChanged) {
				t.Fatalf("peer %v: err %v, want ErrPeerChanged", next, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("peer %v: the request for the old bridge still waits", next)
		}
	}
}

// VDP behind an ECP request stuck on a bridge's huge timer (RTE 31: 6 h,
// the station's request lost): the bridge goes (its TTL ran out) and comes
// back, or lowers its RTE, and the VSIs are associated within moments, not
// after the old request's 8 × 6 h.
func TestVDPNotStuckBehindHugeECPTimer(t *testing.T) {
	for _, how := range []string{"bridge back", "RTE lowered"} {
		t.Run(how, func(t *testing.T) {
			s, b := newVDPPair(t)
			huge := Timers{R: 7, RTE: MaxExponent, RWD: 17, RKA: 17}
			s.SetTimers(huge)
			b.mu.Lock()
			b.mute = true
			b.mu.Unlock()
			s.SetBridge(bridgeMAC[:])
			for i := byte(1); i <= 3; i++ {
				s.Associate(fmt.Sprintf("vnet%d", i), testVSI(net.HardwareAddr{0x52, 0x54, 0, 0, 1, i}, 10))
			}
			time.Sleep(100 * time.Millisecond) // the first ASSOC is out, lost
			b.mu.Lock()
			b.mute = false
			b.mu.Unlock()
			switch how {
			case "bridge back":
				s.SetBridge(nil)
				s.SetBridge(bridgeMAC[:]) // timers as before: RTE 31
			case "RTE lowered":
				s.SetTimers(Timers{R: 3, RTE: 10, RWD: 17, RKA: 17})
			}
			for i := byte(1); i <= 3; i++ {
				waitVSI(t, s, fmt.Sprintf("vnet%d", i), VSIAssociated)
			}
			if st := s.Stats(); how == "bridge back" && st.Unacknowledged != 0 {
				t.Errorf("stats %+v: a request given up for a bridge that went is not an unacknowledged one", st)
			}
		})
	}
}

// loseAll makes l lose every frame and returns what tells the times a
// sent its frames so far.
func loseAll(l *link) (sentTimes func() []time.Time) {
	var mu sync.Mutex
	var sent []time.Time
	l.drop = func(from string, _ []byte) bool {
		if from == "a" {
			mu.Lock()
			sent = append(sent, time.Now())
			mu.Unlock()
		}
		return true
	}
	return func() []time.Time {
		mu.Lock()
		defer mu.Unlock()
		return append([]time.Time(nil), sent...)
	}
}
