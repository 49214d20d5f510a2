package vepa

import (
	"bytes"
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// logLines is a log sink safe for concurrent use that counts lines.
type logLines struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logLines) count(substr string) int {
	n := 0
	for _, line := range strings.Split(l.String(), "\n") {
		if line != "" && strings.Contains(line, substr) {
			n++
		}
	}
	return n
}

// The hold-down's rule on a clock of its own: five changes at once, then
// one a second; a change held is overtaken by the next (suppressed), or
// undone (both suppressed); the episode is logged once when it starts and
// once when the credit is full again.
func TestHoldDownRule(t *testing.T) {
	var logs logLines
	h := holdDown{what: "reflective relay", log: slog.New(slog.NewTextHandler(&logs, nil))}
	t0 := time.Unix(1e9, 0)
	for i := range 5 {
		if !h.change(t0, false) {
			t.Fatalf("change %d of the burst held", i+1)
		}
	}
	if h.change(t0, false) || !h.pending || !h.Flapping {
		t.Fatalf("the sixth change applied at once: %+v", h)
	}
	if h.change(t0.Add(100*time.Millisecond), true) || h.pending || h.Suppressed != 2 {
		t.Fatalf("undone while held: %+v, want nothing held, 2 suppressed", h)
	}
	if h.change(t0.Add(200*time.Millisecond), false) || !h.pending {
		t.Fatalf("a new change: %+v", h)
	}
	if h.change(t0.Add(300*time.Millisecond), false) || h.Suppressed != 3 {
		t.Fatalf("overtaken: %+v, want 3 suppressed", h)
	}
	if apply, next := h.tick(t0.Add(500 * time.Millisecond)); apply || !next.Equal(t0.Add(time.Second)) {
		t.Fatalf("tick before the credit is back: %v, next %v", apply, next)
	}
	apply, next := h.tick(t0.Add(time.Second))
	if !apply || h.pending {
		t.Fatalf("the credit is back, the held change not applied: %+v", h)
	}
	if h.Changes != 9 || h.Suppressed != 3 {
		t.Fatalf("counts %+v, want 9 changes = 6 applied + 3 suppressed", h.HoldDown)
	}
	// Nothing more: the episode ends when the credit is full again.
	if next.IsZero() || next.Before(t0.Add(5*time.Second)) {
		t.Fatalf("next tick at %v, want when the credit is full (%v or later)", next, t0.Add(5*time.Second))
	}
	if apply, _ := h.tick(next); apply || h.Flapping {
		t.Fatalf("at %v: %+v, want the episode over", next, h)
	}
	if n := logs.count("changes faster than vswitchd follows"); n != 1 || logs.count("is stable again") != 1 || logs.count("level=") != 2 {
		t.Errorf("episode logs:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), `stable again" changes=4 suppressed=3`) {
		t.Errorf("the episode's end does not count its changes:\n%s", logs.String())
	}
}

// flipFrames are an EVB bridge's LLDPDUs that grant reflective relay and
// RKA 17, and refuse it (no RRCAP) with RKA 18.
func flipFrames(t *testing.T) (grant, refuse []byte) {
	t.Helper()
	mk := func(status, rka uint8) []byte {
		d := &LLDPDU{ChassisSubtype: ChassisIDMAC, ChassisID: bridgeMAC[:], PortSubtype: PortIDIfName, PortID: []byte("swp1"), TTL: 120,
			EVB: &EVB{BridgeStatus: status, Mode: ModeBridge, R: 3, RTE: 8, RWD: 20, RKA: rka}}
		f, err := d.Frame(NearestCustomerBridge, bridgeMAC)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	return mk(BridgeRRCAP|BridgeRRCTR, 17), mk(0, 18)
}

// flip hands the station 1000 LLDPDUs over about 2 s, alternating a and
// b, then last; it returns how long it took.
func flip(handle func([]byte), a, b, last []byte) time.Duration {
	start := time.Now()
	for i := range 1000 {
		f := a
		if i%2 == 1 {
			f = b
		}
		handle(f)
		if i%10 == 9 {
			time.Sleep(time.Until(start.Add(time.Duration(i+1) * 2 * time.Millisecond)))
		}
	}
	handle(last)
	return time.Since(start)
}

// A bridge (or anyone imitating it) whose answer flips with every LLDPDU,
// 1000 times in 2 s, granting and refusing reflective relay and changing
// RKA: the station tells its user (the daemon switches VEPA and VEB on
// OnChange, restarts keep-alives on OnTimers) at most five times at once
// and then once a second per kind, logs a bounded number of lines, counts
// the changes it suppressed, and ends on the bridge's last word.
func TestStationHoldsDownAFlappingBridge(t *testing.T) {
	var logs logLines
	var mu sync.Mutex
	var states []string
	var timers []NegotiatedTimers
	s, err := NewStation(StationConfig{MAC: stationMAC, Send: (&sink{}).send, RequestRelay: true, Local: EVB{R: 3, RTE: 8, RWD: 20, RKA: 14},
		Interval: time.Hour, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		OnChange: func(r Relay) { mu.Lock(); states = append(states, r.State); mu.Unlock() },
		OnTimers: func(n NegotiatedTimers) { mu.Lock(); timers = append(timers, n); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	grant, refuse := flipFrames(t)
	took := flip(s.Handle, grant, refuse, refuse)
	r := s.Relay()
	if !r.RelayHold.Flapping || r.RelayHold.Changes < 1000 || !r.TimersHold.Flapping {
		t.Errorf("after the flips: relay %+v, timers %+v", r.RelayHold, r.TimersHold)
	}
	// The last word (refused, RKA 18) is applied once its credit is back.
	deadline := time.Now().Add(3 * time.Second)
	for r = s.Relay(); r.State != RelayRefused || r.Timers.RKA != 18; r = s.Relay() {
		if time.Now().After(deadline) {
			t.Fatalf("the bridge's last word not applied 3 s after the flips: %s, RKA %d", r.State, r.Timers.RKA)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	mu.Lock()
	nStates, nTimers := len(states), len(timers)
	lastState, lastTimers := states[len(states)-1], timers[len(timers)-1]
	mu.Unlock()
	// At most 5 at once, then one a second while it lasted, then the last.
	bound := 5 + int(took/time.Second) + 2
	t.Logf("1001 LLDPDUs in %v: %d relay changes applied, %d timer changes; %d log lines", took, nStates, nTimers, logs.count("level="))
	if nStates > bound || nTimers > bound {
		t.Errorf("%d relay and %d timer changes applied for 1000 flips in %v, want at most %d each", nStates, nTimers, took, bound)
	}
	if lastState != RelayRefused || lastTimers.RKA != 18 {
		t.Errorf("last told: %s, RKA %d; want refused, 18", lastState, lastTimers.RKA)
	}
	r = s.Relay()
	if applied := r.RelayHold.Changes - r.RelayHold.Suppressed; applied != uint64(nStates) || r.RelayHold.Changes != 1000 {
		t.Errorf("relay hold-down %+v: %d applied, want %d of 1000 changes", r.RelayHold, applied, nStates)
	}
	if r.TimersHold.Suppressed < 900 {
		t.Errorf("timers hold-down %+v", r.TimersHold)
	}
	// Log lines: the timer changes of the burst, one warning per kind
	// when the flapping started; nothing per frame.
	if n := logs.count("level="); n > 12 {
		t.Errorf("%d log lines for 1000 flips:\n%s", n, logs.String())
	}
	if logs.count("changes faster than vswitchd follows") != 2 {
		t.Errorf("the flapping's start not logged once per kind:\n%s", logs.String())
	}
	// Quiet again: the episode ends (the credit is full after 5 s).
	deadline = time.Now().Add(8 * time.Second)
	for s.Relay().RelayHold.Flapping || s.Relay().TimersHold.Flapping {
		if time.Now().After(deadline) {
			t.Fatalf("still flapping 8 s after the last change: %+v", s.Relay())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := logs.count("is stable again"); n != 2 {
		t.Errorf("%d 'stable again' lines, want one per kind:\n%s", n, logs.String())
	}
	// A single change now applies at once again.
	s.Handle(grant)
	if r := s.Relay(); r.State != RelayGranted {
		t.Errorf("a change after the episode: %s, want granted at once", r.State)
	}
}

// The same for CDCP: a bridge granting and taking back an S-channel with
// every LLDPDU, 1000 times in 2 s, makes the agent report (the daemon
// attaches or detaches the ports on OnChange) a bounded number of
// changes, and the last answer (granted) wins.
func TestCDCPStationHoldsDownFlappingGrants(t *testing.T) {
	var logs logLines
	var mu sync.Mutex
	var told []bool
	st, err := NewCDCPStation(CDCPConfig{MAC: stationMAC[:], Interval: time.Hour, Required: true, Send: func([]byte) error { return nil },
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		OnChange: func(s CDCPState) {
			ok, _ := s.Channel(10)
			mu.Lock()
			told = append(told, ok)
			mu.Unlock()
		}})
	if err != nil {
		t.Fatal(err)
	}
	st.SetChannels([]uint16{10})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { st.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	answer := func(pairs ...SChannel) []byte {
		d := &LLDPDU{ChassisSubtype: ChassisIDMAC, ChassisID: bridgeMAC[:], PortSubtype: PortIDIfName, PortID: []byte("p1"), TTL: 120,
			CDCP: &CDCP{Role: CDCPRoleBridge, SComp: true, ChnCap: 8, Pairs: pairs}}
		f, err := d.Frame(NearestNonTPMRBridge, bridgeMAC)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	grant, deny := answer(SChannel{1, 1}, SChannel{2, 10}), answer(SChannel{1, 1})
	took := flip(st.Handle, grant, deny, grant)
	deadline := time.Now().Add(3 * time.Second)
	for {
		// Granted applied: the bridge's last word, so nothing is held.
		s := st.State()
		if ok, _ := s.Channel(10); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("S-VID 10 not granted 3 s after the bridge's last answer granted it: %+v", s)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	mu.Lock()
	n, last := len(told), told[len(told)-1]
	mu.Unlock()
	bound := 5 + int(took/time.Second) + 2
	t.Logf("1001 answers in %v: %d changes applied, %d log lines", took, n, logs.count("level="))
	if n > bound || !last {
		t.Errorf("%d changes reported for 1000 flips in %v (want at most %d), the last granting S-VID 10: %v", n, took, bound, last)
	}
	// 1001 changes: none to granted, then 999 flips among the 1000, then
	// the last answer.
	if h := st.State().Hold; h.Changes != 1001 || h.Changes-h.Suppressed != uint64(n) {
		t.Errorf("hold-down %+v, %d applied", h, n)
	}
	if c := logs.count("level="); c > 12 || logs.count("changes faster than vswitchd follows") != 1 {
		t.Errorf("%d log lines for 1000 flips:\n%s", c, logs.String())
	}
	if !slices.Contains(told, false) {
		t.Error("the burst's first changes were not applied at once")
	}
}
