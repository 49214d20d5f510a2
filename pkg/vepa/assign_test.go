package vepa

import (
	"context"
	"encoding/binary"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vswitch/vswitch/pkg/vlan"
)

// chanBridge is the bridge side of VDP on the untagged link and on
// S-channels, over an in-memory link that may lose frames: one ECP
// endpoint per channel, each answering every request with the same TLVs,
// ack set, after answer (when set) had its say: it may assign VIDs, map
// group IDs, refuse.
type chanBridge struct {
	t  *testing.T
	st *VDPStation

	mu       sync.Mutex
	ecps     map[uint16]*ECP
	answer   func(svid uint16, v *VSI)
	received []chanVSI
	sentTags []uint16 // the S-VID of each frame the station sent (0: untagged)
	lose     func(n int) bool
	frames   int
	changes  atomic.Int64 // OnChange calls
}

// chanVSI is a VSI TLV the bridge received, with its channel and when.
type chanVSI struct {
	svid uint16
	VSI
	at time.Time
}

func newChanBridge(t *testing.T, svids ...uint16) *chanBridge {
	t.Helper()
	b := &chanBridge{t: t, ecps: map[uint16]*ECP{}}
	stationMAC := [6]byte{0x52, 0x54, 0, 0, 0, 0x5c}
	var err error
	b.st, err = NewVDPStation(VDPConfig{MAC: stationMAC, ManagerID: ManagerID("vswitchd"), RKA: 17, RWD: 17, RTE: 10,
		OnChange: func() { b.changes.Add(1) },
		Send: func(f []byte) error {
			svid := uint16(0)
			if binary.BigEndian.Uint16(f[12:]) == vlan.TPIDSTag {
				svid = binary.BigEndian.Uint16(f[14:]) & 0xfff
				u := make([]byte, len(f))
				f = u[:vlan.PopTo(u, f)]
			} else {
				f = append([]byte(nil), f...)
			}
			b.mu.Lock()
			b.sentTags = append(b.sentTags, svid)
			lost := b.lostLocked()
			e := b.ecps[svid]
			b.mu.Unlock()
			if !lost && e != nil {
				go e.Handle(f)
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	for _, svid := range append([]uint16{0}, svids...) {
		tag := vlan.Tag{TPID: vlan.TPIDSTag, TCI: svid}
		b.ecps[svid], err = NewECP(ECPConfig{MAC: bridgeMAC, Peer: stationMAC, RTE: 10,
			Send: func(f []byte) error {
				if svid != 0 {
					g := make([]byte, len(f)+vlan.TagLen)
					f = g[:vlan.PushTo(g, f, tag)]
				} else {
					f = append([]byte(nil), f...)
				}
				b.mu.Lock()
				lost := b.lostLocked()
				b.mu.Unlock()
				if !lost {
					go b.st.Handle(f)
				}
				return nil
			},
			Deliver: func(p []byte) { b.deliver(svid, p) }})
		if err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { b.st.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return b
}

// lostLocked counts a frame and says whether the link loses it.
func (b *chanBridge) lostLocked() bool {
	b.frames++
	return b.lose != nil && b.lose(b.frames)
}

func (b *chanBridge) deliver(svid uint16, p []byte) {
	pdu, err := ParseVDP(p)
	if err != nil {
		b.t.Errorf("bridge got a bad PDU on channel %d: %v", svid, err)
		return
	}
	rec, _ := ParseVDP(p) // a copy the answer does not change
	b.mu.Lock()
	answer := b.answer
	for _, v := range rec.VSIs {
		b.received = append(b.received, chanVSI{svid: svid, VSI: v, at: time.Now()})
	}
	e := b.ecps[svid]
	b.mu.Unlock()
	for i := range pdu.VSIs {
		v := &pdu.VSIs[i]
		v.Status = VDPStatusAck
		if answer != nil && v.Mode != VDPDeassoc {
			answer(svid, v)
		}
	}
	resp, err := pdu.Append(nil)
	if err != nil {
		b.t.Errorf("bridge answer does not encode: %v", err)
		return
	}
	go func() { _ = e.Request(context.Background(), resp) }()
}

func (b *chanBridge) setAnswer(f func(svid uint16, v *VSI)) {
	b.mu.Lock()
	b.answer = f
	b.mu.Unlock()
}

func (b *chanBridge) got() []chanVSI {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]chanVSI(nil), b.received...)
}

// waitGot waits until the bridge received a VSI TLV after the first skip
// that match accepts, and returns it.
func (b *chanBridge) waitGot(skip int, timeout time.Duration, match func(chanVSI) bool) chanVSI {
	b.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		g := b.got()
		for i := skip; i < len(g); i++ {
			if match(g[i]) {
				return g[i]
			}
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("the bridge never received the VSI TLV asked for; it received %+v", g[min(skip, len(g)):])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// assign is an answer that gives every VID 0 the VID vid.
func assign(vid uint16) func(uint16, *VSI) {
	return func(_ uint16, v *VSI) {
		for i := range v.Filters {
			if v.Filters[i].VID == 0 {
				v.Filters[i].VID = vid
			}
		}
	}
}

// A VSI asking for its VID (VID 0, 802.1Qbg-2012 clause 41.2.9) takes the
// VID the bridge's acknowledgement carries; its keep-alives carry that
// VID, as lldpad's station's do. De-associated by the bridge, it asks
// again with VID 0, and takes the new VID.
func TestVDPBridgeAssignsVID(t *testing.T) {
	b := newChanBridge(t)
	s := b.st
	b.setAnswer(assign(200))
	mac := net.HardwareAddr{0x52, 0x54, 0, 0, 2, 1}
	s.SetBridge(bridgeMAC[:])
	s.Associate("vnet1", testVSI(mac, 0))
	st := waitVSI(t, s, "vnet1", VSIAssociated)
	if len(st.Answer) != 1 || st.Answer[0].VID != 200 || st.VSI.Filters[0].VID != 0 {
		t.Fatalf("status %+v: want the request's VID 0 and the answer's 200", st)
	}
	if g := b.got(); g[0].Filters[0].VID != 0 || g[0].Mode != VDPAssoc {
		t.Fatalf("first request %+v, want an ASSOC with VID 0", g[0])
	}
	if b.changes.Load() == 0 {
		t.Error("OnChange was not called for the assignment")
	}
	// The keep-alive (RKA 17: 1.3 s) carries the assigned VID.
	n := len(b.got())
	b.waitGot(n, 3*time.Second, func(v chanVSI) bool { return v.Mode == VDPAssoc && v.Filters[0].VID == 200 })
	// Registering the same VSI again keeps the assignment.
	s.Associate("vnet1", testVSI(mac, 0))
	if st := s.VSIs()[0]; st.Answer == nil || st.Answer[0].VID != 200 {
		t.Fatalf("the same registration again dropped the assignment: %+v", st)
	}

	// The bridge de-associates the VSI: asked again with VID 0.
	b.setAnswer(assign(300))
	n = len(b.got())
	d := testVSI(mac, 200)
	d.Mode = VDPDeassoc
	resp, _ := (&VDPPDU{ManagerID: ManagerID("vswitchd"), VSIs: []VSI{d}}).Append(nil)
	if err := b.ecps[0].Request(context.Background(), resp); err != nil {
		t.Fatal(err)
	}
	b.waitGot(n, 2*time.Second, func(v chanVSI) bool { return v.Mode == VDPAssoc && v.Filters[0].VID == 0 })
	deadline := time.Now().Add(2 * time.Second)
	for {
		st := s.VSIs()[0]
		if st.State == VSIAssociated && st.Answer != nil && st.Answer[0].VID == 300 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the bridge's DEASSOC: %+v, want associated with VID 300", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The DEASSOC names the VID the bridge knows.
	n = len(b.got())
	s.Deassociate(MACVSIID(mac))
	if v := b.waitGot(n, 2*time.Second, func(v chanVSI) bool { return v.Mode == VDPDeassoc }); v.Filters[0].VID != 300 {
		t.Errorf("DEASSOC with VID %d, want the assigned 300", v.Filters[0].VID)
	}
}

// A bridge that acknowledges a VID-0 request without assigning a VID
// (lldpad's bridge role echoes the request) or with a reserved one fails
// the VSI with the reason; nothing is assigned.
func TestVDPBridgeAssignsNoVID(t *testing.T) {
	for _, tc := range []struct {
		vid  uint16
		want string
	}{{0, "VID 0"}, {4095, "VID 4095, which is reserved"}} {
		b := newChanBridge(t)
		s := b.st
		b.setAnswer(func(_ uint16, v *VSI) { v.Filters[0].VID = tc.vid })
		s.SetBridge(bridgeMAC[:])
		s.Associate("vnet2", testVSI(net.HardwareAddr{0x52, 0x54, 0, 0, 2, 2}, 0))
		st := waitVSI(t, s, "vnet2", VSIFailed)
		if !strings.Contains(st.Reason, tc.want) || st.Answer != nil {
			t.Errorf("answer VID %d: status %+v, want failed with %q and no answer", tc.vid, st, tc.want)
		}
	}
}

// Group IDs (filter formats 3 and 4) only go to a bridge that takes them
// (BGID): until then the VSI fails with that reason and nothing is sent.
// Then the bridge's answer maps the group to a VID, taken like an
// assigned one; a group sent with a VID of its own that the bridge maps
// elsewhere fails with both VIDs in the reason.
func TestVDPGroupIDs(t *testing.T) {
	b := newChanBridge(t)
	s := b.st
	groupVID := map[uint32]uint16{0x11223344: 77, 9: 99}
	b.setAnswer(func(_ uint16, v *VSI) {
		for i := range v.Filters {
			v.Filters[i].VID = groupVID[v.Filters[i].GroupID]
		}
	})
	s.SetBridge(bridgeMAC[:])
	mac := net.HardwareAddr{0x52, 0x54, 0, 0, 2, 3}
	g3 := VSI{IDFormat: VSIIDMAC, ID: MACVSIID(mac), FilterFormat: FilterGroupVID, Filters: []Filter{{GroupID: 0x11223344}}}
	s.Associate("vnet3", g3)
	if st := waitVSI(t, s, "vnet3", VSIFailed); st.Reason != reasonNoGroups {
		t.Errorf("reason %q", st.Reason)
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(b.got()); n != 0 {
		t.Fatalf("%d VSI TLVs sent to a bridge without BGID", n)
	}
	// One held back and removed: the bridge never knew it, nothing is sent.
	gx := g3
	gx.ID = MACVSIID(net.HardwareAddr{0x52, 0x54, 0, 0, 2, 9})
	s.Associate("vnetx", gx)
	waitVSI(t, s, "vnetx", VSIFailed)
	s.Deassociate(gx.ID)
	s.SetGroups(true)
	st := waitVSI(t, s, "vnet3", VSIAssociated)
	for _, v := range b.got() {
		if v.ID == gx.ID {
			t.Errorf("a VSI held back for want of BGID and then removed was sent: %+v", v)
		}
	}
	if st.Answer[0].VID != 77 {
		t.Errorf("group answer %+v, want VID 77", st.Answer)
	}
	if g := b.got()[0]; g.FilterFormat != FilterGroupVID || g.Filters[0].GroupID != 0x11223344 || g.Filters[0].VID != 0 {
		t.Errorf("the bridge received %+v", g)
	}

	mac4 := net.HardwareAddr{0x52, 0x54, 0, 0, 2, 4}
	g4 := VSI{IDFormat: VSIIDMAC, ID: MACVSIID(mac4), FilterFormat: FilterGroupMACVID, Filters: []Filter{{GroupID: 9, MAC: mac4, VID: 100}}}
	s.Associate("vnet4", g4)
	if st := waitVSI(t, s, "vnet4", VSIFailed); !strings.Contains(st.Reason, "maps group 9 to VID 99, not to the VID 100") {
		t.Errorf("reason %q", st.Reason)
	}
}

// VSIs of S-channels talk VDP on their channel: every frame the station
// sends for them carries the S-tag, the bridge's answers come back on it,
// and an answer on another channel does not touch them. The transport
// counters add up over the channels.
func TestVDPOnSChannels(t *testing.T) {
	b := newChanBridge(t, 10, 20)
	s := b.st
	b.setAnswer(assign(42))
	s.SetBridge(bridgeMAC[:])
	macA, macB, macC := net.HardwareAddr{0x52, 0x54, 0, 0, 3, 1}, net.HardwareAddr{0x52, 0x54, 0, 0, 3, 2}, net.HardwareAddr{0x52, 0x54, 0, 0, 3, 3}
	s.RegisterOn(10, "a", ManagerID("vswitchd"), testVSI(macA, 100))
	s.RegisterOn(20, "b", ManagerID("vswitchd"), testVSI(macB, 0))
	s.Register("c", ManagerID("vswitchd"), testVSI(macC, 100))
	for _, k := range []string{"a", "b", "c"} {
		waitVSI(t, s, k, VSIAssociated)
	}
	byKey := map[string]VSIStatus{}
	for _, v := range s.VSIs() {
		byKey[v.Key] = v
	}
	if byKey["a"].SVID != 10 || byKey["b"].SVID != 20 || byKey["c"].SVID != 0 || byKey["b"].Answer[0].VID != 42 {
		t.Errorf("VSIs %+v", s.VSIs())
	}
	for _, g := range b.got() {
		want := map[byte]uint16{1: 10, 2: 20, 3: 0}[g.ID[15]]
		if g.svid != want {
			t.Errorf("VSI of MAC %x went on channel %d, want %d", g.ID[10:], g.svid, want)
		}
	}
	b.mu.Lock()
	tags := map[uint16]int{}
	for _, t := range b.sentTags {
		tags[t]++
	}
	b.mu.Unlock()
	if tags[10] == 0 || tags[20] == 0 || tags[0] == 0 || len(tags) != 3 {
		t.Errorf("the station sent frames with S-VIDs %v, want 0, 10 and 20", tags)
	}
	// The bridge de-associates a's VSI, but on channel 20: not a's.
	n := len(b.got())
	d := testVSI(macA, 100)
	d.Mode = VDPDeassoc
	resp, _ := (&VDPPDU{ManagerID: ManagerID("vswitchd"), VSIs: []VSI{d}}).Append(nil)
	if err := b.ecps[20].Request(context.Background(), resp); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	for _, g := range b.got()[n:] {
		if g.ID == d.ID {
			t.Errorf("a DEASSOC on channel 20 made the VSI of channel 10 register again: %+v", g)
		}
	}
	// On channel 10 it is a's.
	if err := b.ecps[10].Request(context.Background(), resp); err != nil {
		t.Fatal(err)
	}
	b.waitGot(n, 2*time.Second, func(v chanVSI) bool { return v.ID == d.ID && v.Mode == VDPAssoc && v.svid == 10 })
	// Four requests acknowledged (three ASSOCs, a's again), the last ack
	// maybe still on its way; five answers and DEASSOCs received.
	deadline := time.Now().Add(2 * time.Second)
	for st := s.ECPStats(); st.Acked < 4 || st.Received < 4; st = s.ECPStats() {
		if time.Now().After(deadline) {
			t.Fatalf("ECP stats %+v: want the requests and answers of all three channels", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// An S-channel no VSI uses any more gives up its ECP endpoint after
// channelLinger; its counters stay in ECPStats.
func TestVDPSChannelPruned(t *testing.T) {
	s, err := NewVDPStation(VDPConfig{MAC: [6]byte{0x52, 0x54, 0, 0, 0, 0x5d}, Send: func([]byte) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	s.SetBridge(bridgeMAC[:])
	mac := net.HardwareAddr{0x52, 0x54, 0, 0, 4, 1}
	s.RegisterOn(30, "p", ManagerID("vswitchd"), testVSI(mac, 5))
	now := time.Now()
	due := s.due(now)
	if len(due) != 1 || due[0].svid != 30 {
		t.Fatalf("due %+v", due)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_ = due[0].ch.ecp.Request(ctx, []byte{0}) // unanswered: counted as sent
	s.Deassociate(MACVSIID(mac))
	if due := s.due(now); len(due) != 1 || due[0].pdu.VSIs[0].Mode != VDPDeassoc || due[0].svid != 30 {
		t.Fatalf("due %+v, want the DEASSOC on channel 30", due)
	}
	s.due(now.Add(time.Second))
	if s.chans[30] == nil {
		t.Fatal("channel closed at once: the DEASSOC's acknowledgement would be lost")
	}
	s.due(now.Add(channelLinger + 2*time.Second))
	if s.chans[30] != nil || s.chans[0] == nil {
		t.Fatalf("channels %v after the linger", s.chans)
	}
	if st := s.ECPStats(); st.Sent != 1 {
		t.Errorf("ECP stats %+v: the closed channel's request is not counted", st)
	}
}

// Over a link that loses every third frame either way, a VID-0 request
// still gets its VID (ECP retransmits, VDP re-sends unanswered requests)
// and keeps it over keep-alives.
func TestVDPAssignOverLossyLink(t *testing.T) {
	b := newChanBridge(t, 7)
	b.mu.Lock()
	b.lose = func(n int) bool { return n%3 == 0 }
	b.mu.Unlock()
	b.setAnswer(assign(123))
	s := b.st
	s.SetBridge(bridgeMAC[:])
	s.RegisterOn(7, "vnet5", ManagerID("vswitchd"), testVSI(net.HardwareAddr{0x52, 0x54, 0, 0, 5, 1}, 0))
	st := waitVSI(t, s, "vnet5", VSIAssociated)
	if st.Answer[0].VID != 123 {
		t.Fatalf("status %+v", st)
	}
	// Three keep-alive periods later it still has its VID.
	deadline := time.Now().Add(4 * time.Second)
	for time.Now().Before(deadline) {
		st := s.VSIs()[0]
		if st.State == VSIFailed || st.Answer != nil && st.Answer[0].VID != 123 {
			t.Fatalf("over the lossy link: %+v", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st := s.ECPStats(); st.Retransmitted == 0 {
		t.Errorf("ECP stats %+v: the link lost frames but nothing was retransmitted", st)
	}
}

// An answer counts only while the station waits for one (41.5.5: the
// station's state machine takes the bridge's response after it sent a
// request; associated, it acts only on its keep-alive timer, its own
// commands and the bridge's DEASSOC). An acknowledgement that answers
// nothing (a forged one, or one that crossed the bridge's own DEASSOC)
// neither moves the VSI to another VLAN nor fails it; the answer to the
// next keep-alive may.
func TestVDPUnsolicitedAnswerIgnored(t *testing.T) {
	b := newChanBridge(t)
	s := b.st
	b.setAnswer(assign(200))
	mac := net.HardwareAddr{0x52, 0x54, 0, 0, 2, 9}
	s.SetBridge(bridgeMAC[:])
	s.Associate("vnet1", testVSI(mac, 0))
	waitVSI(t, s, "vnet1", VSIAssociated)
	n := len(b.got())

	for _, status := range []uint8{VDPStatusAck, VDPStatusAck | VDPStatusHard | 2} {
		v := testVSI(mac, 400)
		v.Mode, v.Status = VDPAssoc, status
		resp, _ := (&VDPPDU{ManagerID: ManagerID("vswitchd"), VSIs: []VSI{v}}).Append(nil)
		if err := b.ecps[0].Request(context.Background(), resp); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		if len(b.got()) != n {
			t.Skip("a keep-alive went out meanwhile (the machine is slow): the answer was not unsolicited")
		}
		st := s.VSIs()[0]
		if st.State != VSIAssociated || len(st.Answer) != 1 || st.Answer[0].VID != 200 || st.Reason != "" {
			t.Fatalf("after an unsolicited answer (status %#x) with VID 400: %+v, want associated with VID 200", status, st)
		}
	}

	if st := s.Stats(); st.Unsolicited != 2 || st.Refused != 0 {
		t.Errorf("stats %+v, want 2 unsolicited answers, none refused", st)
	}

	// The bridge answers the next keep-alive with another VID: taken.
	b.setAnswer(func(_ uint16, v *VSI) { v.Filters[0].VID = 400 })
	b.waitGot(n, 3*time.Second, func(v chanVSI) bool { return v.Mode == VDPAssoc && v.Filters[0].VID == 200 })
	deadline := time.Now().Add(2 * time.Second)
	for {
		st := s.VSIs()[0]
		if st.State == VSIAssociated && st.Answer != nil && st.Answer[0].VID == 400 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the keep-alive's answer with VID 400: %+v", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
