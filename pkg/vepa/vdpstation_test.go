package vepa

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"
)

// fakeBridge is the bridge side of VDP over an in-memory ECP link: it
// answers every VSI request with the same TLV and status ack (or a hard
// error), like lldpad's bridge role.
type fakeBridge struct {
	t   *testing.T
	ecp *ECP
	st  *VDPStation

	mu       sync.Mutex
	hard     bool
	mute     bool  // the station's frames are lost
	refuse   uint8 // non-zero: answer requests with a DEASSOC of this status, as lldpad refuses
	received []VSI
	managers [][16]byte // the manager ID of each received VSI's PDU
}

func newVDPPair(t *testing.T) (*VDPStation, *fakeBridge) {
	t.Helper()
	b := &fakeBridge{t: t}
	var err error
	stationMAC := [6]byte{0x52, 0x54, 0, 0, 0, 0x5a}
	b.st, err = NewVDPStation(VDPConfig{MAC: stationMAC, ManagerID: ManagerID("vswitchd"), RKA: 17, RWD: 17, RTE: 10,
		Send: func(f []byte) error {
			b.mu.Lock()
			mute := b.mute
			b.mu.Unlock()
			if !mute {
				go b.ecp.Handle(append([]byte(nil), f...))
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	b.ecp, err = NewECP(ECPConfig{MAC: bridgeMAC, Peer: stationMAC, RTE: 10, Send: func(f []byte) error { go b.st.Handle(append([]byte(nil), f...)); return nil },
		Deliver: func(p []byte) {
			pdu, err := ParseVDP(p)
			if err != nil {
				t.Errorf("bridge got a bad PDU: %v", err)
				return
			}
			b.mu.Lock()
			b.received = append(b.received, pdu.VSIs...)
			for range pdu.VSIs {
				b.managers = append(b.managers, pdu.ManagerID)
			}
			hard, refuse := b.hard, b.refuse
			b.mu.Unlock()
			for i := range pdu.VSIs {
				pdu.VSIs[i].Status = VDPStatusAck
				if hard && pdu.VSIs[i].Mode == VDPAssoc {
					pdu.VSIs[i].Status |= VDPStatusHard | 5
				}
				if refuse != 0 && pdu.VSIs[i].Mode != VDPDeassoc {
					pdu.VSIs[i].Mode, pdu.VSIs[i].Status = VDPDeassoc, refuse
				}
			}
			resp, _ := pdu.Append(nil)
			go func() { _ = b.ecp.Request(context.Background(), resp) }()
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { b.st.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return b.st, b
}

func (b *fakeBridge) got() []VSI {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]VSI(nil), b.received...)
}

// mgrs are the manager IDs of what got returns.
func (b *fakeBridge) mgrs() [][16]byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([][16]byte(nil), b.managers...)
}

func waitVSI(t *testing.T, s *VDPStation, key, state string) VSIStatus {
	t.Helper()
	deadline := time.Now().Add(4 * time.Second)
	for {
		for _, v := range s.VSIs() {
			if v.Key == key && v.State == state {
				return v
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("VSI %s not %s: %v", key, state, s.VSIs())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func testVSI(mac net.HardwareAddr, vid uint16) VSI {
	return VSI{IDFormat: VSIIDMAC, ID: MACVSIID(mac), FilterFormat: FilterMACVID, Filters: []Filter{{VID: vid, MAC: mac}}}
}

func TestVDPAssociateLifecycle(t *testing.T) {
	s, b := newVDPPair(t)
	mac := net.HardwareAddr{0x52, 0x54, 0, 0, 0, 1}
	s.Associate("vnet1", testVSI(mac, 100))
	time.Sleep(300 * time.Millisecond)
	if v := waitVSI(t, s, "vnet1", VSIWaiting); len(b.got()) != 0 {
		t.Fatalf("sent %d VSI TLVs without an EVB bridge (%v)", len(b.got()), v)
	}
	s.SetBridge(bridgeMAC[:])
	waitVSI(t, s, "vnet1", VSIAssociated)
	got := b.got()
	if len(got) != 1 || got[0].Mode != VDPAssoc || got[0].ID != MACVSIID(mac) || got[0].Filters[0].VID != 100 {
		t.Fatalf("bridge received %+v", got)
	}
	// Keep-alive: RKA 17 is 1.3 s.
	deadline := time.Now().Add(3 * time.Second)
	for len(b.got()) < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if len(b.got()) < 2 {
		t.Fatal("no keep-alive ASSOC after RKA")
	}
	// The bridge forgets it and says so: the station associates again.
	before := len(b.got())
	resp, _ := (&VDPPDU{ManagerID: ManagerID("x"), VSIs: []VSI{func() VSI { v := testVSI(mac, 100); v.Mode = VDPDeassoc; return v }()}}).Append(nil)
	if err := b.ecp.Request(context.Background(), resp); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(time.Second)
	for len(b.got()) == before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if len(b.got()) == before {
		t.Fatal("no new ASSOC after the bridge de-associated the VSI")
	}
	waitVSI(t, s, "vnet1", VSIAssociated)

	s.Deassociate(MACVSIID(mac))
	deadline = time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		if g := b.got(); g[len(g)-1].Mode == VDPDeassoc {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if g := b.got(); g[len(g)-1].Mode != VDPDeassoc {
		t.Fatalf("no DEASSOC reached the bridge: last %+v", g[len(g)-1])
	}
	if n := len(s.VSIs()); n != 0 {
		t.Errorf("%d VSIs left after Deassociate", n)
	}
}

func TestVDPHardErrorAndReflection(t *testing.T) {
	s, b := newVDPPair(t)
	b.mu.Lock()
	b.hard = true
	b.mu.Unlock()
	s.SetBridge(bridgeMAC[:])
	mac := net.HardwareAddr{0x52, 0x54, 0, 0, 0, 2}
	s.Associate("vnet2", testVSI(mac, 7))
	v := waitVSI(t, s, "vnet2", VSIFailed)
	if v.Reason != VDPReasons[5] {
		t.Errorf("reason %q", v.Reason)
	}
	// A DEASSOC without the ACK bit from the bridge would make the
	// station associate again at once; the same frame with our own source
	// address (reflected by a relay that floods the group address) must not.
	before := len(b.got())
	pdu, _ := (&VDPPDU{ManagerID: ManagerID("vswitchd"), VSIs: []VSI{func() VSI { v := testVSI(mac, 7); v.Mode = VDPDeassoc; return v }()}}).Append(nil)
	s.Handle(ECPFrame(s.cfg.MAC, ECPRequest, ECPSubtypeVDP, 999, pdu))
	time.Sleep(300 * time.Millisecond)
	if st := s.ECPStats(); st.Received != 1 {
		t.Errorf("ECP received %d requests, want only the bridge's one (reflection ignored)", st.Received)
	}
	if n := len(b.got()); n != before {
		t.Errorf("the reflected DEASSOC triggered %d new requests", n-before)
	}
}

// A keep-alive the bridge never answers (lost) is re-sent within a second,
// and the VSI shows associating until the bridge answers again, instead of
// waiting another keep-alive period (the bridge would have dropped it).
func TestVDPLostKeepAlive(t *testing.T) {
	s, b := newVDPPair(t)
	s.SetBridge(bridgeMAC[:])
	mac := net.HardwareAddr{0x52, 0x54, 0, 0, 0, 3}
	s.Associate("vnet3", testVSI(mac, 9))
	waitVSI(t, s, "vnet3", VSIAssociated)
	b.mu.Lock()
	b.mute = true
	b.mu.Unlock()
	v := waitVSI(t, s, "vnet3", VSIAssociating) // RKA 17 = 1.3 s, then 1 s without an answer
	if v.Reason != "no answer to the keep-alive" {
		t.Errorf("reason %q", v.Reason)
	}
	b.mu.Lock()
	b.mute = false
	b.mu.Unlock()
	start := time.Now()
	waitVSI(t, s, "vnet3", VSIAssociated)
	if el := time.Since(start); el > 1500*time.Millisecond {
		t.Errorf("associated again after %v, want within about a second", el)
	}
}

// waitGot waits until the bridge received n VSI TLVs and returns them.
func (b *fakeBridge) waitGot(n int) []VSI {
	b.t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		g := b.got()
		if len(g) >= n {
			return g
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("the bridge received %d VSI TLVs, want %d: %+v", len(g), n, g)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A VM migrating in: its VSI is pre-associated (PRE-ASSOC, under the
// registration's own manager, type and version) and, when it runs,
// associated with the M bit; the keep-alives keep the bit. Leaving, it is
// de-associated with the S bit.
func TestVDPMigration(t *testing.T) {
	s, b := newVDPPair(t)
	s.SetBridge(bridgeMAC[:])
	mac := net.HardwareAddr{0x52, 0x54, 0, 0, 0, 6}
	mgr := [16]byte{12}
	v := testVSI(mac, 100)
	v.TypeID, v.TypeVersion, v.Mode = 0x123457, 2, VDPPreAssoc
	s.Register("vnet6", mgr, v)
	st := waitVSI(t, s, "vnet6", VSIPreAssociated)
	if st.Manager != mgr {
		t.Errorf("status %+v", st)
	}
	g := b.waitGot(1)
	if g[0].Mode != VDPPreAssoc || g[0].TypeID != 0x123457 || g[0].TypeVersion != 2 || g[0].Status != 0 || b.mgrs()[0] != mgr {
		t.Fatalf("bridge received %+v under manager % x", g[0], b.mgrs()[0])
	}
	s.Register("vnet6", mgr, v) // the same again: nothing new
	v.Mode, v.Status = VDPAssoc, VDPHintM
	s.Register("vnet6", mgr, v)
	waitVSI(t, s, "vnet6", VSIAssociated)
	g = b.waitGot(2)
	if g[1].Mode != VDPAssoc || g[1].Status != VDPHintM {
		t.Fatalf("after the pre-association the bridge received %+v, want ASSOC with the M bit", g[1:])
	}
	g = b.waitGot(3) // keep-alive after RKA (1.3 s)
	if g[2].Mode != VDPAssoc || g[2].Status != VDPHintM {
		t.Errorf("keep-alive %+v", g[2])
	}
	n := len(b.got())
	s.DeassociateWith(v.ID, VDPHintS)
	g = b.waitGot(n + 1)
	if d := g[n]; d.Mode != VDPDeassoc || d.Status != VDPHintS || d.ID != v.ID {
		t.Errorf("de-association %+v, want DEASSOC with the S bit", d)
	}
	if len(s.VSIs()) != 0 {
		t.Errorf("VSIs left: %v", s.VSIs())
	}
}

// lldpad refuses a request by answering with a DEASSOC carrying the ack
// bit and the reason (qbg/vdp22sm.c, vdp22br_deassoc): the VSI fails with
// that reason, and a pre-association too.
func TestVDPRefusedAsLLDPADDoes(t *testing.T) {
	s, b := newVDPPair(t)
	b.mu.Lock()
	b.refuse = VDPStatusAck | VDPStatusHard | 2
	b.mu.Unlock()
	s.SetBridge(bridgeMAC[:])
	mac := net.HardwareAddr{0x52, 0x54, 0, 0, 0, 7}
	v := testVSI(mac, 100)
	v.Mode = VDPPreAssoc
	s.Register("vnet7", ManagerID("vswitchd"), v)
	if st := waitVSI(t, s, "vnet7", VSIFailed); st.Reason != "insufficient resources" {
		t.Errorf("reason %q", st.Reason)
	}
	b.mu.Lock()
	b.refuse = VDPStatusAck | VDPStatusKeep | 4
	b.mu.Unlock()
	s.Associate("vnet8", testVSI(net.HardwareAddr{0x52, 0x54, 0, 0, 0, 8}, 100))
	if st := waitVSI(t, s, "vnet8", VSIFailed); st.Reason != "other failure (the bridge keeps its previous state)" {
		t.Errorf("reason %q", st.Reason)
	}
}

// A registration whose identity changes (here its manager and type) is
// de-associated as the bridge knows it before it is registered anew, so
// the bridge does not keep the old one until its keep-alive runs out; an
// answer for the old one does not count for the new.
func TestVDPIdentityChange(t *testing.T) {
	s, b := newVDPPair(t)
	s.SetBridge(bridgeMAC[:])
	mac := net.HardwareAddr{0x52, 0x54, 0, 0, 0, 9}
	v := testVSI(mac, 100)
	s.Associate("vnet9", v)
	waitVSI(t, s, "vnet9", VSIAssociated)
	v.TypeID = 77
	s.Register("vnet9", [16]byte{3}, v)
	g := b.waitGot(3)
	m := b.mgrs()
	if g[1].Mode != VDPDeassoc || g[1].TypeID != 0 || m[1] != ManagerID("vswitchd") {
		t.Errorf("second TLV %+v under % x, want the old registration's DEASSOC", g[1], m[1])
	}
	if g[2].Mode != VDPAssoc || g[2].TypeID != 77 || m[2] != [16]byte{3} {
		t.Errorf("third TLV %+v under % x, want the new ASSOC", g[2], m[2])
	}
	if st := waitVSI(t, s, "vnet9", VSIAssociated); st.VSI.TypeID != 77 || st.Manager != [16]byte{3} {
		t.Errorf("status %+v", st)
	}
}

// PDUs leave at least pduGap apart, as lldpad needs (it reads a PDU 2 ms
// after acknowledging it, from one buffer): three VSIs registered at once
// take three PDUs spread over two gaps.
func TestVDPSpacesPDUs(t *testing.T) {
	var mu sync.Mutex
	var sent []time.Time
	seen := map[uint16]bool{}
	st, err := NewVDPStation(VDPConfig{MAC: [6]byte{0x52, 0x54, 0, 0, 0, 0x5b}, ManagerID: ManagerID("vswitchd"), R: 1, RTE: 8,
		Send: func(f []byte) error {
			if h, _, err := ParseECP(f); err == nil && h.Op == ECPRequest {
				mu.Lock()
				if !seen[h.Seq] { // not a retransmission
					seen[h.Seq] = true
					sent = append(sent, time.Now())
				}
				mu.Unlock()
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	st.SetBridge(bridgeMAC[:])
	for i := byte(1); i <= 3; i++ {
		st.Associate("vnet", testVSI(net.HardwareAddr{0x52, 0x54, 0, 0, 1, i}, 100))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go st.Run(ctx)
	deadline := time.Now().Add(3 * time.Second)
	for {
		mu.Lock()
		n := len(sent)
		mu.Unlock()
		if n >= 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(sent) < 3 {
		t.Fatalf("%d PDUs sent, want 3", len(sent))
	}
	for i := 1; i < 3; i++ {
		if gap := sent[i].Sub(sent[i-1]); gap < pduGap {
			t.Errorf("PDUs %d and %d %v apart, want at least %v", i-1, i, gap, pduGap)
		}
	}
}
