package vepa

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"
)

var (
	stationMAC = net.HardwareAddr{0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc}
	bridgeMAC  = [6]byte{0x02, 0x00, 0x00, 0x00, 0x00, 0x01}
)

type sink struct {
	mu     sync.Mutex
	frames [][]byte
}

func (s *sink) send(f []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.frames = append(s.frames, append([]byte(nil), f...))
	return nil
}

func (s *sink) all() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]byte(nil), s.frames...)
}

func newTestStation(t *testing.T, request bool) (*Station, *sink, chan Relay) {
	t.Helper()
	out := &sink{}
	changes := make(chan Relay, 16)
	s, err := NewStation(StationConfig{MAC: stationMAC, Send: out.send, RequestRelay: request, Local: DefaultLocal,
		Interval: time.Hour, OnChange: func(r Relay) { changes <- r }, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return s, out, changes
}

// bridgeFrame is an LLDPDU of an EVB bridge with the given status bits.
func bridgeFrame(t *testing.T, status uint8, ttl uint16) []byte {
	t.Helper()
	d := &LLDPDU{ChassisSubtype: ChassisIDMAC, ChassisID: bridgeMAC[:], PortSubtype: PortIDIfName, PortID: []byte("swp1"), TTL: ttl,
		EVB: &EVB{BridgeStatus: status, Mode: ModeBridge, R: 3, RTE: 8, RWD: 20, RKA: 20}}
	f, err := d.Frame(NearestCustomerBridge, bridgeMAC)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func expectChange(t *testing.T, ch chan Relay, state, peer string) {
	t.Helper()
	select {
	case r := <-ch:
		if r.State != state || r.Peer != peer {
			t.Fatalf("change to %s/%q, want %s/%q", r.State, r.Peer, state, peer)
		}
	case <-time.After(time.Second):
		t.Fatalf("no change to %s/%q", state, peer)
	}
}

func TestStationFollowsBridge(t *testing.T) {
	s, _, changes := newTestStation(t, true)
	if r := s.Relay(); r.State != RelayUnknown {
		t.Fatalf("initial state %s", r.State)
	}
	if e := s.LLDPDU().EVB; e.StationStatus != StationRRREQ|RRStatUnknown || e.Mode != ModeStation || e.BridgeStatus != 0 {
		t.Fatalf("initial TLV %+v", e)
	}
	peer := net.HardwareAddr(bridgeMAC[:]).String()

	// A bridge that can reflect but has not seen our request yet.
	s.Handle(bridgeFrame(t, BridgeBGID|BridgeRRCAP, 120))
	expectChange(t, changes, RelayUnknown, peer)

	s.Handle(bridgeFrame(t, BridgeRRCAP|BridgeRRCTR, 120))
	expectChange(t, changes, RelayGranted, peer)
	if e := s.LLDPDU().EVB; e.RRStat() != RRStatYes || e.StationStatus&StationRRREQ == 0 {
		t.Errorf("after the grant the TLV says %+v", e)
	}
	s.Handle(bridgeFrame(t, BridgeRRCAP|BridgeRRCTR, 120)) // same again: no change reported
	select {
	case r := <-changes:
		t.Fatalf("unchanged TLV reported a change: %+v", r)
	default:
	}

	s.Handle(bridgeFrame(t, 0, 120))
	expectChange(t, changes, RelayRefused, peer)
	if e := s.LLDPDU().EVB; e.RRStat() != RRStatNo {
		t.Errorf("after the refusal RRSTAT is %d", e.RRStat())
	}

	s.Handle(bridgeFrame(t, BridgeRRCAP|BridgeRRCTR, 0)) // shutdown LLDPDU
	expectChange(t, changes, RelayUnknown, "")

	r := s.Relay()
	if r.Received != 5 || r.Bad != 0 || r.Bridge != nil {
		t.Errorf("relay after the shutdown LLDPDU %+v, want 5 received and the bridge forgotten", r)
	}
	if e := s.LLDPDU().EVB; e.RRStat() != RRStatUnknown {
		t.Errorf("RRSTAT %d with no bridge, want unknown", e.RRStat())
	}
}

// A bridge that echoes our RRREQ (lldpad copies the station's status byte
// into its TLV) and still sets no RRCTR has refused, capability or not.
// While a bridge TLV without RRCTR is in effect the station says RRSTAT no.
func TestStationEchoedRequestWithoutGrant(t *testing.T) {
	s, _, changes := newTestStation(t, true)
	peer := net.HardwareAddr(bridgeMAC[:]).String()
	s.Handle(bridgeFrame(t, BridgeRRCAP, 120))
	expectChange(t, changes, RelayUnknown, peer)
	if e := s.LLDPDU().EVB; e.RRStat() != RRStatNo {
		t.Errorf("RRSTAT %d after a bridge TLV without RRCTR, want no", e.RRStat())
	}
	d := &LLDPDU{ChassisSubtype: ChassisIDMAC, ChassisID: bridgeMAC[:], PortSubtype: PortIDIfName, PortID: []byte("swp1"), TTL: 120,
		EVB: &EVB{BridgeStatus: BridgeRRCAP, StationStatus: StationRRREQ | RRStatNo, Mode: ModeBridge}}
	f, err := d.Frame(NearestCustomerBridge, bridgeMAC)
	if err != nil {
		t.Fatal(err)
	}
	s.Handle(f)
	expectChange(t, changes, RelayRefused, peer)
}

// Only the nearest-customer-bridge agent carries EVB: the same TLV sent to
// the nearest-bridge address (01:80:c2:00:00:0e) changes nothing.
func TestStationIgnoresOtherAgents(t *testing.T) {
	s, _, changes := newTestStation(t, true)
	f := bridgeFrame(t, BridgeRRCAP|BridgeRRCTR, 120)
	f[5] = 0x0e
	s.Handle(f)
	select {
	case r := <-changes:
		t.Fatalf("an EVB TLV to 01:80:c2:00:00:0e changed the state: %+v", r)
	default:
	}
	if r := s.Relay(); r.State != RelayUnknown || r.Received != 1 {
		t.Errorf("relay %+v", r)
	}
}

// SetMAC: a replaced uplink's new address goes into the next LLDPDU.
func TestStationSetMAC(t *testing.T) {
	s, _, _ := newTestStation(t, true)
	mac := net.HardwareAddr{0x52, 0x54, 0x00, 0x11, 0x22, 0x33}
	s.SetMAC(mac)
	d := s.LLDPDU()
	if string(d.ChassisID) != string(mac) || string(d.PortID) != string(mac) {
		t.Errorf("chassis % x port % x after SetMAC(%s)", d.ChassisID, d.PortID, mac)
	}
	s.SetMAC(net.HardwareAddr{1, 2, 3}) // not a MAC: ignored
	if string(s.LLDPDU().ChassisID) != string(mac) {
		t.Error("SetMAC took a 3-byte address")
	}
}

func TestStationIgnoresAndCounts(t *testing.T) {
	s, _, changes := newTestStation(t, true)
	// Another station's LLDPDU (EVB mode station) and one without EVB.
	d := &LLDPDU{ChassisSubtype: ChassisIDMAC, ChassisID: bridgeMAC[:], PortSubtype: PortIDMAC, PortID: bridgeMAC[:], TTL: 120,
		EVB: &EVB{StationStatus: StationRRREQ, Mode: ModeStation}}
	f, _ := d.Frame(NearestCustomerBridge, bridgeMAC)
	s.Handle(f)
	d.EVB = nil
	f, _ = d.Frame(NearestCustomerBridge, bridgeMAC)
	s.Handle(f)
	s.Handle([]byte{1, 2, 3})
	s.Handle(append(bridgeFrame(t, BridgeRRCTR, 120)[:20], 0xff))
	select {
	case r := <-changes:
		t.Fatalf("ignored frames changed the state: %+v", r)
	default:
	}
	if r := s.Relay(); r.Received != 2 || r.Bad != 2 || r.State != RelayUnknown {
		t.Errorf("relay %+v, want 2 received, 2 bad, unknown", r)
	}
}

func TestStationWithoutRequest(t *testing.T) {
	s, _, _ := newTestStation(t, false)
	if e := s.LLDPDU().EVB; e.StationStatus&StationRRREQ != 0 {
		t.Error("RRREQ set although VEB was configured")
	}
	s.Handle(bridgeFrame(t, 0, 120)) // a bridge without RRCAP refuses nobody who did not ask
	if r := s.Relay(); r.State != RelayUnknown {
		t.Errorf("state %s without a request, want unknown", r.State)
	}
}

func TestStationExpires(t *testing.T) {
	s, _, changes := newTestStation(t, true)
	s.Handle(bridgeFrame(t, BridgeRRCAP|BridgeRRCTR, 2))
	expectChange(t, changes, RelayGranted, net.HardwareAddr(bridgeMAC[:]).String())
	s.tick(time.Now().Add(time.Second))
	if s.Relay().State != RelayGranted {
		t.Fatal("expired before its TTL")
	}
	s.tick(time.Now().Add(3 * time.Second))
	expectChange(t, changes, RelayUnknown, "")
}

// Run sends at once, fast-starts a second apart, and sends at once when
// the bridge's answer changes what the station says.
func TestStationRunSends(t *testing.T) {
	s, out, _ := newTestStation(t, true)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(1500 * time.Millisecond)
	for len(out.all()) < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := len(out.all()); n != 2 {
		t.Fatalf("%d LLDPDUs in the first 1.5 s, want 2 (at once and after 1 s)", n)
	}
	s.Handle(bridgeFrame(t, BridgeRRCAP|BridgeRRCTR, 120))
	deadline = time.Now().Add(300 * time.Millisecond)
	for len(out.all()) < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	fs := out.all()
	if len(fs) < 3 {
		t.Fatalf("no LLDPDU sent right after the grant (%d frames)", len(fs))
	}
	d, err := ParseFrame(fs[2])
	if err != nil || d.EVB == nil || d.EVB.RRStat() != RRStatYes {
		t.Fatalf("LLDPDU after the grant: %+v, %v", d, err)
	}
	if d.TTL < 120 || string(d.ChassisID) != string(stationMAC) {
		t.Errorf("TTL %d chassis % x", d.TTL, d.ChassisID)
	}
	if s.Relay().Sent < 3 {
		t.Errorf("Sent %d", s.Relay().Sent)
	}
}

// 802.1AB's transmit credit (txCreditMax 5, one back a second): a bridge
// whose answer flips with every LLDPDU (or a sender that imitates it) makes
// the station say its new RRSTAT at once, but not once per frame it
// receives; the last word still goes out within a second or so.
func TestStationTxCredit(t *testing.T) {
	out := &sink{}
	s, err := NewStation(StationConfig{MAC: stationMAC, Send: out.send, RequestRelay: true, Local: DefaultLocal,
		Interval: time.Hour, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	grant, refuse := bridgeFrame(t, BridgeRRCAP|BridgeRRCTR, 120), bridgeFrame(t, 0, 120)
	start := time.Now()
	for i := 0; time.Since(start) < 1500*time.Millisecond; i++ {
		if i%2 == 0 {
			s.Handle(grant)
		} else {
			s.Handle(refuse)
		}
		time.Sleep(200 * time.Microsecond)
	}
	s.Handle(grant)
	n, recv := len(out.all()), s.Relay().Received
	t.Logf("%d LLDPDUs sent for %d received", n, recv)
	if n > txCreditMax+2 {
		t.Errorf("%d LLDPDUs sent in 1.5 s for %d received: want at most 5 at once and one a second", n, recv)
	}
	deadline := time.Now().Add(2500 * time.Millisecond)
	for {
		fs := out.all()
		d, err := ParseFrame(fs[len(fs)-1])
		if err == nil && d.EVB.RRStat() == RRStatYes {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the final RRSTAT (yes) was not sent")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The bridge's information is forgotten when its TTL runs out, not at the
// station's next transmission (up to --lldp-interval later: 30 s by
// default, an hour here).
func TestStationExpiresOnTime(t *testing.T) {
	s, out, changes := newTestStation(t, true)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	s.Handle(bridgeFrame(t, BridgeRRCAP|BridgeRRCTR, 120))
	expectChange(t, changes, RelayGranted, peerName)
	for deadline := time.Now().Add(6 * time.Second); len(out.all()) < fastCount+1; {
		if time.Now().After(deadline) {
			t.Fatalf("fast start: %d LLDPDUs", len(out.all()))
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)                   // the fast start is over: next one in an hour
	s.Handle(bridgeFrame(t, BridgeRRCAP|BridgeRRCTR, 1)) // the same answer, TTL 1 s
	select {
	case r := <-changes:
		if r.State != RelayUnknown || r.Peer != "" {
			t.Fatalf("change %+v, want unknown without a peer", r)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the bridge's TTL of 1 s ran out 2 s ago, and it is still followed")
	}
}
