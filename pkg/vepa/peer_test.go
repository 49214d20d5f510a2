package vepa

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"
)

// The peer rules of Station.Handle and ECP.Handle, one crafted frame per
// rule: untagged only, one peer at a time, a new one only after the old
// one's TTL or its own shutdown.

// lldpFrom is an LLDPDU from src with the given chassis and port IDs and
// TTL; evb nil leaves the EVB TLV out (as a shutdown LLDPDU does).
func lldpFrom(t *testing.T, src [6]byte, chassis []byte, portID string, ttl uint16, evb *EVB) []byte {
	t.Helper()
	d := &LLDPDU{ChassisSubtype: ChassisIDMAC, ChassisID: chassis, PortSubtype: PortIDIfName, PortID: []byte(portID), TTL: ttl, EVB: evb}
	f, err := d.Frame(NearestCustomerBridge, src)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func grantTLV() *EVB {
	return &EVB{BridgeStatus: BridgeRRCAP | BridgeRRCTR, Mode: ModeBridge, R: 3, RTE: 8, RWD: 20, RKA: 20}
}

func refuseTLV() *EVB { return &EVB{Mode: ModeBridge, R: 3, RTE: 8, RWD: 20, RKA: 20} }

// withTag inserts a tag behind the addresses.
func withTag(f []byte, tpid, vid uint16) []byte {
	return append(append(append([]byte{}, f[:12]...), byte(tpid>>8), byte(tpid), byte(vid>>8), byte(vid)), f[12:]...)
}

func expectNoChange(t *testing.T, ch chan Relay, what string) {
	t.Helper()
	select {
	case r := <-ch:
		t.Fatalf("%s changed the relay state: %+v", what, r)
	default:
	}
}

var (
	thirdMAC = [6]byte{0x02, 0x66, 0x66, 0x66, 0x66, 0x01}
	peerName = net.HardwareAddr(bridgeMAC[:]).String()
)

// A tagged LLDPDU is refused whoever sent it and whatever the tag: a
// C-tag (the VLAN 100), an S-tag, a priority tag (VID 0), two tags.
func TestStationRefusesTaggedLLDP(t *testing.T) {
	s, _, changes := newTestStation(t, true)
	grant := bridgeFrame(t, BridgeRRCAP|BridgeRRCTR, 120)
	for _, f := range [][]byte{
		withTag(grant, 0x8100, 100), withTag(grant, 0x88a8, 5), withTag(grant, 0x8100, 0), withTag(withTag(grant, 0x8100, 100), 0x88a8, 5),
	} {
		s.Handle(f)
	}
	expectNoChange(t, changes, "a tagged LLDPDU")
	if r := s.Relay(); r.Tagged != 4 || r.Received != 0 || r.State != RelayUnknown || r.Peer != "" {
		t.Fatalf("relay %+v, want 4 tagged and nothing followed", r)
	}
	// The established peer's own LLDPDU, tagged, neither refreshes nor
	// changes anything; a tagged shutdown does not end it.
	s.Handle(grant)
	expectChange(t, changes, RelayGranted, peerName)
	s.Handle(withTag(bridgeFrame(t, 0, 120), 0x8100, 100))
	s.Handle(withTag(bridgeFrame(t, BridgeRRCAP|BridgeRRCTR, 0), 0x8100, 100))
	expectNoChange(t, changes, "the peer's tagged LLDPDUs")
	if r := s.Relay(); r.Tagged != 6 || r.State != RelayGranted {
		t.Fatalf("relay %+v, want granted and 6 tagged", r)
	}
}

// While the peer's TTL runs, the EVB TLV of anyone else is ignored and
// counted: another sender with the peer's chassis ID, the peer's address
// with another chassis ID, the peer's chassis and address on another port.
func TestStationIgnoresForeignBridge(t *testing.T) {
	s, _, changes := newTestStation(t, true)
	s.Handle(lldpFrom(t, bridgeMAC, bridgeMAC[:], "swp1", 120, grantTLV()))
	expectChange(t, changes, RelayGranted, peerName)
	for _, f := range [][]byte{
		lldpFrom(t, thirdMAC, thirdMAC[:], "swp1", 120, refuseTLV()),   // a third party as itself
		lldpFrom(t, thirdMAC, bridgeMAC[:], "swp1", 120, refuseTLV()),  // claiming the bridge's chassis ID
		lldpFrom(t, bridgeMAC, thirdMAC[:], "swp1", 120, refuseTLV()),  // the bridge's address, another chassis
		lldpFrom(t, bridgeMAC, bridgeMAC[:], "swp9", 120, refuseTLV()), // another port of the bridge
		lldpFrom(t, thirdMAC, thirdMAC[:], "x", 65535, grantTLV()),     // a grant of its own
	} {
		s.Handle(f)
	}
	expectNoChange(t, changes, "another bridge's LLDPDU")
	r := s.Relay()
	if r.Foreign != 5 || r.State != RelayGranted || r.Peer != peerName || r.PeerMAC.String() != peerName || !r.Bridge.Granted() {
		t.Fatalf("relay %+v, want granted by %s and 5 foreign", r, peerName)
	}
	// The peer itself is still followed.
	s.Handle(lldpFrom(t, bridgeMAC, bridgeMAC[:], "swp1", 120, refuseTLV()))
	expectChange(t, changes, RelayRefused, peerName)
	// Another station's LLDPDU (EVB mode station) is not a bridge's: not
	// counted as foreign, just ignored.
	s.Handle(lldpFrom(t, thirdMAC, thirdMAC[:], "eth0", 120, &EVB{StationStatus: StationRRREQ, Mode: ModeStation}))
	if r := s.Relay(); r.Foreign != 5 {
		t.Errorf("a station's LLDPDU counted as a foreign bridge: %+v", r)
	}
}

// A shutdown LLDPDU (TTL 0) ends the peer only when the peer sends it: one
// from a third party, or with the peer's chassis ID from another address,
// is ignored and counted; the peer's own, without an EVB TLV as 802.1AB
// sends it, makes the state unknown, and then a new bridge is followed at
// once.
func TestStationShutdownOnlyFromPeer(t *testing.T) {
	s, _, changes := newTestStation(t, true)
	s.Handle(lldpFrom(t, thirdMAC, thirdMAC[:], "x", 0, nil)) // no peer yet: nothing to end
	s.Handle(lldpFrom(t, bridgeMAC, bridgeMAC[:], "swp1", 120, grantTLV()))
	expectChange(t, changes, RelayGranted, peerName)
	for _, f := range [][]byte{
		lldpFrom(t, thirdMAC, thirdMAC[:], "x", 0, nil),
		lldpFrom(t, thirdMAC, bridgeMAC[:], "swp1", 0, grantTLV()), // the peer's IDs, another address
		lldpFrom(t, bridgeMAC, bridgeMAC[:], "swp2", 0, nil),       // the peer's address, another port
	} {
		s.Handle(f)
	}
	expectNoChange(t, changes, "a foreign shutdown LLDPDU")
	if r := s.Relay(); r.ForeignShutdown != 4 || r.State != RelayGranted || r.Bridge == nil {
		t.Fatalf("relay %+v, want granted and 4 foreign shutdowns", r)
	}
	// Our own shutdown, reflected by the relay, is not anyone's.
	own := s.LLDPDU()
	own.TTL = 0
	f, err := own.Frame(NearestCustomerBridge, [6]byte(stationMAC))
	if err != nil {
		t.Fatal(err)
	}
	s.Handle(f)
	if r := s.Relay(); r.ForeignShutdown != 4 || r.State != RelayGranted {
		t.Fatalf("our own reflected shutdown: %+v", r)
	}

	s.Handle(lldpFrom(t, bridgeMAC, bridgeMAC[:], "swp1", 0, nil))
	expectChange(t, changes, RelayUnknown, "")
	if r := s.Relay(); r.Bridge != nil || r.PeerMAC != nil {
		t.Fatalf("after the peer's shutdown: %+v", r)
	}
	s.Handle(lldpFrom(t, thirdMAC, thirdMAC[:], "x", 120, refuseTLV()))
	expectChange(t, changes, RelayRefused, net.HardwareAddr(thirdMAC[:]).String())
	if r := s.Relay(); r.PeerMAC.String() != net.HardwareAddr(thirdMAC[:]).String() {
		t.Errorf("new peer's address %s", r.PeerMAC)
	}
}

// Once the peer's TTL has run out another bridge is followed, even before
// Run's expiry pass noticed (Handle looks at the clock itself).
func TestStationNewPeerAfterTTL(t *testing.T) {
	s, _, changes := newTestStation(t, true)
	s.Handle(lldpFrom(t, bridgeMAC, bridgeMAC[:], "swp1", 120, grantTLV()))
	expectChange(t, changes, RelayGranted, peerName)
	other := lldpFrom(t, thirdMAC, thirdMAC[:], "x", 120, refuseTLV())
	s.Handle(other)
	expectNoChange(t, changes, "a second bridge within the peer's TTL")
	s.mu.Lock()
	s.expires = time.Now().Add(-time.Millisecond) // the 120 s are over
	s.mu.Unlock()
	s.Handle(other)
	expectChange(t, changes, RelayRefused, net.HardwareAddr(thirdMAC[:]).String())
	if r := s.Relay(); r.Foreign != 1 || r.PeerMAC.String() != net.HardwareAddr(thirdMAC[:]).String() {
		t.Fatalf("relay %+v", r)
	}
	// and now the old one is the foreigner.
	s.Handle(lldpFrom(t, bridgeMAC, bridgeMAC[:], "swp1", 120, grantTLV()))
	expectNoChange(t, changes, "the old bridge after the new one took over")
	if r := s.Relay(); r.Foreign != 2 || r.State != RelayRefused {
		t.Fatalf("relay %+v", r)
	}
}

// ECP takes acknowledgements only from the peer: one from anyone else, or
// tagged, does not complete the request (it fails after its retries) and is
// counted; the peer's does.
func TestECPAcksOnlyFromPeer(t *testing.T) {
	station, peer, third := [6]byte{2, 0, 0, 0, 0, 0xa}, [6]byte{2, 0, 0, 0, 0, 0xb}, [6]byte{2, 0, 0, 0, 0, 0xc}
	var e *ECP
	ackFrom := func(src [6]byte, tag bool) func([]byte) error {
		return func(f []byte) error {
			h, _, err := ParseECP(f)
			if err != nil || h.Op != ECPRequest {
				return nil
			}
			ack := ECPFrame(src, ECPAck, ECPSubtypeVDP, h.Seq, nil)
			if tag {
				ack = withTag(ack, 0x8100, 100)
			}
			go e.Handle(ack)
			return nil
		}
	}
	var send func([]byte) error
	e, err := NewECP(ECPConfig{MAC: station, Peer: peer, RTE: 7, Retries: 1, Send: func(f []byte) error { return send(f) }, Deliver: func([]byte) {}})
	if err != nil {
		t.Fatal(err)
	}
	send = ackFrom(third, false)
	if err := e.Request(context.Background(), []byte("x")); !errors.Is(err, ErrNoAck) {
		t.Fatalf("a third party's ack: %v, want ErrNoAck", err)
	}
	send = ackFrom(peer, true)
	if err := e.Request(context.Background(), []byte("x")); !errors.Is(err, ErrNoAck) {
		t.Fatalf("the peer's tagged ack: %v, want ErrNoAck", err)
	}
	send = ackFrom(peer, false)
	if err := e.Request(context.Background(), []byte("x")); err != nil {
		t.Fatalf("the peer's ack: %v", err)
	}
	if s := e.Stats(); s.Foreign != 2 || s.Tagged != 2 || s.Acked != 1 || s.Failed != 2 {
		t.Errorf("stats %+v, want 2 foreign, 2 tagged (two tries each), 1 acked, 2 failed", s)
	}
	// With no peer (the bridge's LLDP went away) even the old peer's ack
	// is refused.
	e.SetPeer(nil)
	if err := e.Request(context.Background(), []byte("x")); !errors.Is(err, ErrNoAck) {
		t.Fatalf("with no peer: %v, want ErrNoAck", err)
	}
}

// ECP requests from anyone but the peer are neither acknowledged nor
// delivered; with Latch and no peer the first sender becomes the peer.
func TestECPRequestsOnlyFromPeer(t *testing.T) {
	for _, latch := range []bool{false, true} {
		own, peer, third := [6]byte{2, 0, 0, 0, 0, 0xa}, [6]byte{2, 0, 0, 0, 0, 0xb}, [6]byte{2, 0, 0, 0, 0, 0xc}
		var acks, delivered int
		cfg := ECPConfig{MAC: own, Latch: latch, Send: func([]byte) error { acks++; return nil }, Deliver: func([]byte) { delivered++ }}
		if !latch {
			cfg.Peer = peer
		}
		e, err := NewECP(cfg)
		if err != nil {
			t.Fatal(err)
		}
		e.Handle(ECPFrame(peer, ECPRequest, ECPSubtypeVDP, 1, []byte("first"))) // with Latch: the peer from now on
		e.Handle(ECPFrame(third, ECPRequest, ECPSubtypeVDP, 2, []byte("other")))
		e.Handle(withTag(ECPFrame(peer, ECPRequest, ECPSubtypeVDP, 3, []byte("tagged")), 0x8100, 1))
		e.Handle(ECPFrame(peer, ECPRequest, ECPSubtypeVDP, 4, []byte("second")))
		if s := e.Stats(); acks != 2 || delivered != 2 || s.Received != 2 || s.Foreign != 1 || s.Tagged != 1 {
			t.Errorf("latch %v: %d acks, %d delivered, stats %+v; want 2, 2, 1 foreign, 1 tagged", latch, acks, delivered, s)
		}
	}
}

// A VDP de-association from another sender than the bridge leaves an
// associated VSI alone (from the bridge it makes the station associate
// again: TestVDPAssociateLifecycle).
func TestVDPIgnoresForeignDeassoc(t *testing.T) {
	s, b := newVDPPair(t)
	s.SetBridge(bridgeMAC[:])
	mac := net.HardwareAddr{0x52, 0x54, 0, 0, 0, 4}
	s.Associate("vnet4", testVSI(mac, 4))
	waitVSI(t, s, "vnet4", VSIAssociated)
	before := len(b.got())
	v := testVSI(mac, 4)
	v.Mode = VDPDeassoc
	pdu, _ := (&VDPPDU{ManagerID: ManagerID("x"), VSIs: []VSI{v}}).Append(nil)
	s.Handle(ECPFrame(thirdMAC, ECPRequest, ECPSubtypeVDP, 4242, pdu))
	s.Handle(withTag(ECPFrame(bridgeMAC, ECPRequest, ECPSubtypeVDP, 4243, pdu), 0x8100, 100))
	time.Sleep(300 * time.Millisecond)
	if st := s.ECPStats(); st.Foreign != 1 || st.Tagged != 1 {
		t.Errorf("ECP stats %+v, want 1 foreign and 1 tagged", st)
	}
	if n := len(b.got()); n != before {
		t.Errorf("the foreign DEASSOC made the station send %d requests", n-before)
	}
	for _, x := range s.VSIs() {
		if x.State != VSIAssociated || x.Reason != "" {
			t.Errorf("VSI %v after a foreign DEASSOC", x)
		}
	}
}

// Another bridge (the old one's TTL ran out) knows none of the VSIs: each
// is associated again at once, and the old bridge's answers no longer
// count.
func TestVDPNewBridgeReassociates(t *testing.T) {
	s, b := newVDPPair(t)
	s.SetBridge(bridgeMAC[:])
	mac := net.HardwareAddr{0x52, 0x54, 0, 0, 0, 5}
	s.Associate("vnet5", testVSI(mac, 5))
	waitVSI(t, s, "vnet5", VSIAssociated)
	s.SetBridge(bridgeMAC[:]) // the same bridge again: nothing to do
	if v := s.VSIs(); len(v) != 1 || v[0].State != VSIAssociated {
		t.Fatalf("the same bridge again: %v", v)
	}
	before := len(b.got())
	s.SetBridge(thirdMAC[:])
	if v := s.VSIs(); len(v) != 1 || v[0].State != VSIAssociating || v[0].Reason != "the bridge changed" {
		t.Fatalf("after the bridge changed: %v", v)
	}
	// The fake bridge answers from bridgeMAC, no longer the peer: the
	// ASSOC goes out at once but stays unanswered.
	deadline := time.Now().Add(time.Second)
	for len(b.got()) == before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if len(b.got()) == before {
		t.Fatal("no ASSOC to the new bridge")
	}
	time.Sleep(200 * time.Millisecond)
	if v := s.VSIs(); v[0].State != VSIAssociating {
		t.Errorf("the old bridge's answer counted: %v", v)
	}
	if st := s.ECPStats(); st.Foreign == 0 {
		t.Errorf("ECP stats %+v: the old bridge's frames not counted as foreign", st)
	}
}

// ECP frames count only when sent to the nearest-customer-bridge address,
// as the bridge's ECP sends them (and lldpad's, and ours): an 802.1Q
// bridge never forwards that address, so such a frame came from the
// adjacent bridge and not, with the bridge's source address forged, from
// a host elsewhere in the bridge's network whose unicast or broadcast
// frame the bridge forwarded to the uplink (a native VLAN). A VDP answer
// carried that way would assign a VLAN. Refused frames are neither
// acknowledged nor delivered, and do not complete a request; they count
// as Foreign.
func TestECPOnlyToNearestCustomerBridge(t *testing.T) {
	own, peer := [6]byte{2, 0, 0, 0, 0, 0xa}, [6]byte{2, 0, 0, 0, 0, 0xb}
	var acks, delivered int
	e, err := NewECP(ECPConfig{MAC: own, Peer: peer, RTE: 7, Retries: 1,
		Send: func(f []byte) error {
			if h, _, err := ParseECP(f); err == nil && h.Op == ECPAck {
				acks++
			}
			return nil
		},
		Deliver: func([]byte) { delivered++ }})
	if err != nil {
		t.Fatal(err)
	}
	to := func(dst [6]byte, op uint8, seq uint16) []byte {
		f := ECPFrame(peer, op, ECPSubtypeVDP, seq, []byte("answer"))
		copy(f[:6], dst[:])
		return f
	}
	for i, dst := range [][6]byte{own, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, {0x01, 0x80, 0xc2, 0, 0, 0x0e}, {0x01, 0x80, 0xc2, 0, 0, 0x03}} {
		e.Handle(to(dst, ECPRequest, uint16(10+i)))
	}
	if s := e.Stats(); acks != 0 || delivered != 0 || s.Received != 0 || s.Foreign != 4 {
		t.Fatalf("requests to other addresses than 01:80:c2:00:00:00: %d acks, %d delivered, stats %+v; want none, 4 foreign", acks, delivered, s)
	}
	e.Handle(to(NearestCustomerBridge, ECPRequest, 20))
	if s := e.Stats(); acks != 1 || delivered != 1 || s.Received != 1 {
		t.Fatalf("the bridge's request: %d acks, %d delivered, stats %+v; want 1, 1", acks, delivered, s)
	}

	// An acknowledgement to our unicast address does not complete a
	// request.
	var seq uint16
	e.cfg.Send = func(f []byte) error {
		if h, _, err := ParseECP(f); err == nil && h.Op == ECPRequest {
			seq = h.Seq
			go e.Handle(to(own, ECPAck, h.Seq))
		}
		return nil
	}
	if err := e.Request(context.Background(), []byte("x")); !errors.Is(err, ErrNoAck) {
		t.Fatalf("an ack to our unicast address: %v, want ErrNoAck", err)
	}
	e.Handle(to(NearestCustomerBridge, ECPAck, seq)) // too late: nothing waits
	if s := e.Stats(); s.Foreign != 6 || s.Acked != 0 {
		t.Errorf("stats %+v, want 6 foreign (two tries), none acked", s)
	}
}
