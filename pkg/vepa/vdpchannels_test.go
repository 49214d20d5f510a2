package vepa

import (
	"net"
	"reflect"
	"testing"
	"time"
)

// ecpTimers are the R and RTE an endpoint uses for its next request.
func ecpTimers(e *ECP) (int, uint8) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.cfg.Retries, e.cfg.RTE
}

// The negotiated R and RTE drive the ECP endpoint of every channel: the
// untagged link's, an S-channel's made before SetTimers and one made
// after (R 0 included, which NewECP alone would take for its default 3).
func TestVDPTimersOnEveryChannel(t *testing.T) {
	s, err := NewVDPStation(VDPConfig{MAC: [6]byte{0x52, 0x54, 0, 0, 0, 0x61}, Send: func([]byte) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	if tm := s.Timers(); tm.R != 3 || tm.RTE != 8 {
		t.Errorf("initial timers %+v, want ECP's defaults R 3, RTE 8", tm)
	}
	s.RegisterOn(30, "a", ManagerID("vswitchd"), testVSI(net.HardwareAddr{0x52, 0x54, 0, 0, 6, 1}, 5))
	s.SetTimers(Timers{R: 0, RTE: 12, RWD: 20, RKA: 20})
	s.RegisterOn(40, "b", ManagerID("vswitchd"), testVSI(net.HardwareAddr{0x52, 0x54, 0, 0, 6, 2}, 5))
	s.mu.Lock()
	chans := map[uint16]*ECP{}
	for svid, c := range s.chans {
		chans[svid] = c.ecp
	}
	s.mu.Unlock()
	if len(chans) != 3 {
		t.Fatalf("channels %v, want 0, 30 and 40", chans)
	}
	for svid, e := range chans {
		if r, rte := ecpTimers(e); r != 0 || rte != 12 {
			t.Errorf("channel %d: ECP R %d RTE %d, want 0 and 12 (SetTimers)", svid, r, rte)
		}
	}
}

// ECPStats.add sums every counter: the S-channels' endpoints are summed
// with it, and a counter it missed would vanish from GET /v1/lldp.
func TestECPStatsAddEveryField(t *testing.T) {
	var a, b ECPStats
	bv := reflect.ValueOf(&b).Elem()
	for i := range bv.NumField() {
		if bv.Field(i).Kind() != reflect.Uint64 {
			t.Fatalf("ECPStats.%s is not a uint64 counter: teach add and this test", bv.Type().Field(i).Name)
		}
		bv.Field(i).SetUint(uint64(i + 1))
	}
	a.add(b)
	a.add(b)
	av := reflect.ValueOf(a)
	for i := range av.NumField() {
		if got := av.Field(i).Uint(); got != 2*uint64(i+1) {
			t.Errorf("ECPStats.%s: %d after adding %d twice", av.Type().Field(i).Name, got, i+1)
		}
	}
}

// Run does not spin on a VSI it may not send: one with a group ID while
// the bridge has no BGID is never due, so wake keeps its 200 ms cap.
func TestVDPWakeSkipsHeldBackVSIs(t *testing.T) {
	s, err := NewVDPStation(VDPConfig{MAC: [6]byte{0x52, 0x54, 0, 0, 0, 0x62}, Send: func([]byte) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	s.SetBridge(bridgeMAC[:])
	mac := net.HardwareAddr{0x52, 0x54, 0, 0, 6, 3}
	v := VSI{IDFormat: VSIIDMAC, ID: MACVSIID(mac), FilterFormat: FilterGroupMACVID, Filters: []Filter{{VID: 5, MAC: mac, GroupID: 7}}}
	s.Register("g", ManagerID("vswitchd"), v)
	now := time.Now()
	if w := s.wake(now); w != 200*time.Millisecond {
		t.Errorf("a group VSI without BGID: wake in %v, want the 200ms cap", w)
	}
	if due := s.due(now); len(due) != 0 {
		t.Fatalf("due %+v without BGID", due)
	}
	s.SetGroups(true)
	if w := s.wake(now); w != time.Millisecond {
		t.Errorf("with BGID: wake in %v, want at once", w)
	}
}

// sentOn counts the frames the station sent with S-VID svid.
func (b *chanBridge) sentOn(svid uint16) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, t := range b.sentTags {
		if t == svid {
			n++
		}
	}
	return n
}

// A held S-channel (CDCP did not grant it) carries no VDP: its VSIs wait
// with the reason and nothing goes out with its S-tag, not even a DEASSOC,
// while the untagged link's VSIs associate. Released, its VSIs associate
// at once; held again, they lose the VID the bridge assigned and wait.
func TestVDPHeldSChannel(t *testing.T) {
	b := newChanBridge(t, 10)
	s := b.st
	b.setAnswer(assign(42))
	const why = "S-channel S-VID 10 (SCID 2): not granted by the bridge"
	s.SetHeldChannels(map[uint16]string{10: why})
	s.SetBridge(bridgeMAC[:])
	macA, macC := net.HardwareAddr{0x52, 0x54, 0, 0, 7, 1}, net.HardwareAddr{0x52, 0x54, 0, 0, 7, 3}
	s.RegisterOn(10, "a", ManagerID("vswitchd"), testVSI(macA, 0))
	s.Register("c", ManagerID("vswitchd"), testVSI(macC, 100))
	waitVSI(t, s, "c", VSIAssociated)
	time.Sleep(300 * time.Millisecond)
	if v := waitVSI(t, s, "a", VSIWaiting); v.Reason != why || v.Answer != nil {
		t.Errorf("held VSI %+v, want waiting with the hold's reason", v)
	}
	if n := b.sentOn(10); n != 0 {
		t.Errorf("%d frames sent on the held S-channel", n)
	}
	if w := s.wake(time.Now()); w < 100*time.Millisecond {
		t.Errorf("wake in %v with only a held VSI unsent: Run would spin", w)
	}

	// Granted: associated at once, with the bridge's VID, on the S-channel.
	released := time.Now()
	s.SetHeldChannels(nil)
	v := waitVSI(t, s, "a", VSIAssociated)
	if d := time.Since(released); d > 2*time.Second || v.Reason != "" || len(v.Answer) != 1 || v.Answer[0].VID != 42 {
		t.Errorf("released VSI %+v after %v, want associated with VID 42 at once", v, d)
	}
	b.waitGot(0, time.Second, func(g chanVSI) bool { return g.ID == MACVSIID(macA) && g.svid == 10 && g.Mode == VDPAssoc })

	// Held again: waiting, the VID forgotten; nothing sent there, and a
	// removal sends no DEASSOC.
	time.Sleep(100 * time.Millisecond) // the last acknowledgement's way
	changes := b.changes.Load()
	s.SetHeldChannels(map[uint16]string{10: why})
	if v := waitVSI(t, s, "a", VSIWaiting); v.Answer != nil || v.Reason != why {
		t.Errorf("held again: %+v", v)
	}
	if b.changes.Load() == changes {
		t.Error("holding the S-channel did not call OnChange")
	}
	n := b.sentOn(10)
	s.Deassociate(MACVSIID(macA))
	time.Sleep(300 * time.Millisecond)
	if got := b.sentOn(10); got != n {
		t.Errorf("%d frames sent on the held S-channel after the removal", got-n)
	}
	for _, v := range s.VSIs() {
		if v.Key == "a" {
			t.Errorf("removed VSI still listed: %+v", v)
		}
	}
	if v := waitVSI(t, s, "c", VSIAssociated); v.SVID != 0 {
		t.Errorf("untagged VSI %+v", v)
	}
}

// An answer on its way when the S-channel is held (a keep-alive's ACK
// that crossed CDCP's withdrawal) changes nothing: the VSI keeps waiting,
// with no VID, until the S-channel is granted again.
func TestVDPHeldSChannelIgnoresLateAnswers(t *testing.T) {
	s, err := NewVDPStation(VDPConfig{MAC: [6]byte{0x52, 0x54, 0, 0, 0, 0x63}, Send: func([]byte) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	s.SetBridge(bridgeMAC[:])
	mac := net.HardwareAddr{0x52, 0x54, 0, 0, 6, 4}
	v := testVSI(mac, 0)
	s.RegisterOn(20, "p", ManagerID("vswitchd"), v)
	if due := s.due(time.Now()); len(due) != 1 || due[0].svid != 20 {
		t.Fatalf("due %+v", due)
	}
	ack := v
	ack.Mode, ack.Status, ack.Filters = VDPAssoc, VDPStatusAck, []Filter{{VID: 300, MAC: mac}}
	b, err := (&VDPPDU{ManagerID: ManagerID("vswitchd"), VSIs: []VSI{ack}}).Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	const why = "S-channel S-VID 20: not granted"
	s.SetHeldChannels(map[uint16]string{20: why})
	s.deliver(20, b)
	if vs := s.VSIs(); len(vs) != 1 || vs[0].State != VSIWaiting || vs[0].Reason != why || vs[0].Answer != nil {
		t.Fatalf("after a late answer on the held S-channel: %+v", vs)
	}
	s.SetHeldChannels(nil)
	if due := s.due(time.Now()); len(due) != 1 || due[0].pdu.VSIs[0].Filters[0].VID != 0 {
		t.Fatalf("granted again: due %+v, want the request with VID 0 again", due)
	}
	s.deliver(20, b)
	if vs := s.VSIs(); len(vs) != 1 || vs[0].State != VSIAssociated || len(vs[0].Answer) != 1 || vs[0].Answer[0].VID != 300 {
		t.Fatalf("answered once granted: %+v", vs)
	}
}

// An S-channel whose bridge side never acknowledges ECP (not set up on
// the bridge: a static S-channel it does not have) does not hold up VDP
// on the other channels: each channel sends on its own, so the untagged
// link's keep-alives keep their period while every PDU on the dead
// S-channel waits out its R retries (here 4 × 164 ms). Before, one
// sender took the channels' PDUs in turn: behind five dead VSIs the
// healthy VSI's keep-alives came about 4 s apart, past the 3.7 s after
// which the bridge drops a VSI (BridgeKeepAliveTimeout), and with it the
// VLAN it assigned.
func TestVDPDeadSChannelDoesNotStallOthers(t *testing.T) {
	b := newChanBridge(t) // the bridge answers on the untagged link only
	s := b.st
	tm := Timers{R: 3, RTE: 14, RWD: 17, RKA: 17}
	s.SetTimers(tm)
	s.SetBridge(bridgeMAC[:])
	mac := net.HardwareAddr{0x52, 0x54, 0, 0, 7, 0}
	s.Associate("ok", testVSI(mac, 100))
	waitVSI(t, s, "ok", VSIAssociated)
	for i := byte(1); i <= 5; i++ {
		s.RegisterOn(7, "dead", ManagerID("vswitchd"), testVSI(net.HardwareAddr{0x52, 0x54, 0, 0, 7, i}, 100))
	}
	start := time.Now()
	n := len(b.got())
	time.Sleep(6 * time.Second)
	var times []time.Time
	for _, v := range b.got()[n:] {
		if v.svid == 0 && v.Mode == VDPAssoc {
			times = append(times, v.at)
		}
	}
	gap, last := time.Duration(0), start
	for _, at := range append(times, time.Now()) {
		gap, last = max(gap, at.Sub(last)), at
	}
	if limit := tm.KeepAlive() + 700*time.Millisecond; gap > limit {
		t.Errorf("the healthy VSI's keep-alives came up to %v apart (%d in 6 s), want about %v (at most %v; the bridge drops it after %v)",
			gap.Round(time.Millisecond), len(times), tm.KeepAlive(), limit, tm.BridgeKeepAliveTimeout())
	}
	if st := s.VSIs(); st[len(st)-1].Key != "ok" || st[len(st)-1].State != VSIAssociated {
		t.Errorf("VSIs %v", st)
	}
}
