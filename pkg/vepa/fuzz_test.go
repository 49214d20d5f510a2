package vepa

import (
	"bytes"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/vswitch/vswitch/pkg/vlan"
)

// Fuzz targets for what arrives from the uplink: the EVB TLV and the ECP
// header on their own, and the three state machines (EVB station, ECP
// endpoint, VDP station) fed sequences of frames. The stateful targets
// read an operation stream from the fuzzer's bytes (ops): each operation
// builds a well-formed frame from a few choices (sender, tag, TTL, status
// bits, sequence number) or hands raw bytes over, so the fuzzer reaches
// deep states quickly and still tries every byte pattern. Seeds live in
// testdata/fuzz, so `go test` replays them.

// ops reads an operation stream; past the end every read is 0.
type ops struct{ b []byte }

func (o *ops) more() bool { return len(o.b) > 0 }

func (o *ops) byte() byte {
	if len(o.b) == 0 {
		return 0
	}
	c := o.b[0]
	o.b = o.b[1:]
	return c
}

func (o *ops) u16() uint16 { return uint16(o.byte())<<8 | uint16(o.byte()) }

// bytes takes up to n bytes (fewer at the end).
func (o *ops) bytes(n int) []byte {
	n = min(n, len(o.b))
	p := o.b[:n]
	o.b = o.b[n:]
	return p
}

// FuzzParseEVB: an EVB TLV value parses or is refused, never panics; what
// parses encodes back to the same bytes but for the reserved bits.
func FuzzParseEVB(f *testing.F) {
	f.Add(DefaultLocal.Append(nil))
	f.Add(EVB{BridgeStatus: BridgeBGID | BridgeRRCAP | BridgeRRCTR, StationStatus: StationSGID | StationRRREQ | RRStatYes, R: 7, RTE: 31,
		Mode: ModeBridge, ROLRWD: true, RWD: 31, ROLRKA: true, RKA: 31}.Append(nil))
	f.Add([]byte{0x00, 0x80, 0xc2, 0x0d, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0x00, 0x80, 0xc2, 0x0d})
	f.Fuzz(func(t *testing.T, v []byte) {
		e, err := ParseEVB(v)
		if err != nil {
			if IsEVBTLV(v) && len(v) == 4+evbInfoLen {
				t.Fatalf("refused a 9-byte EVB TLV % x: %v", v, err)
			}
			return
		}
		reserved := [...]byte{0x07, 0x0f, 0xff, 0xff, 0x3f} // bits each byte defines
		want := bytes.Clone(v)
		for i, m := range reserved {
			want[4+i] &= m
		}
		if got := e.Append(nil); !bytes.Equal(got, want) {
			t.Fatalf("% x parsed to %+v, encodes to % x, want % x", v, e, got, want)
		}
		if Timer(e.RTE) <= 0 || Timer(e.RKA) <= 0 {
			t.Fatalf("timers of %+v not positive", e)
		}
	})
}

// FuzzParseECP: an ECP frame parses or is refused, never panics; what
// parses is rebuilt by ECPFrame with the same header and payload.
func FuzzParseECP(f *testing.F) {
	f.Add(ECPFrame(bridgeMAC, ECPRequest, ECPSubtypeVDP, 0x1234, []byte{0xde, 0xad}))
	f.Add(ECPFrame(bridgeMAC, ECPAck, ECPSubtypeVDP, 0xffff, nil))
	f.Add(withTag(ECPFrame(bridgeMAC, ECPAck, ECPSubtypeVDP, 1, nil), 0x8100, 100))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, frame []byte) {
		h, payload, err := ParseECP(frame)
		if err != nil {
			return
		}
		if h.Version != ecpVersion || h.Op > ECPAck || h.Subtype > 0x3ff || len(frame) != 18+len(payload) {
			t.Fatalf("% x parsed to %+v with %d payload bytes", frame, h, len(payload))
		}
		again := ECPFrame([6]byte(frame[6:12]), h.Op, h.Subtype, h.Seq, payload)
		h2, p2, err := ParseECP(again)
		if err != nil || h2 != h || !bytes.HasPrefix(p2, payload) {
			t.Fatalf("rebuilt % x: %+v % x %v, want %+v % x", again, h2, p2, err, h, payload)
		}
	})
}

// fuzzSenders are the sources of the station fuzz: the bridge that
// becomes the peer, a third party, a second bridge, and the station itself.
var fuzzSenders = [...][6]byte{bridgeMAC, thirdMAC, {0x02, 0x77, 0, 0, 0, 2}, [6]byte(stationMAC)}

// stationFrame builds the LLDPDU an operation describes: sender, whether
// the chassis ID is the sender's own or the bridge's, a port ID, a TTL
// (0, or long enough that nothing expires during a run), an EVB TLV or
// none, and a tag or none.
func stationFrame(o *ops) (frame []byte, src [6]byte, ttl uint16) {
	who, flags, status, station := o.byte(), o.byte(), o.byte(), o.byte()
	src = fuzzSenders[int(who)%len(fuzzSenders)]
	chassis := src
	if flags&1 != 0 {
		chassis = bridgeMAC // claims the bridge's chassis ID
	}
	port := []byte("swp1")
	if flags&2 != 0 {
		port = []byte("swp2")
	}
	ttl = 120 + uint16(flags>>4)*60
	if flags&4 != 0 {
		ttl = 0
	}
	d := &LLDPDU{ChassisSubtype: ChassisIDMAC, ChassisID: chassis[:], PortSubtype: PortIDIfName, PortID: port, TTL: ttl}
	if flags&8 == 0 {
		d.EVB = &EVB{BridgeStatus: status & 7, StationStatus: station & 0x0f, Mode: station >> 6, R: 3, RTE: 8, RWD: 20, RKA: 20}
	}
	frame, _ = d.Frame(NearestCustomerBridge, src)
	if who&0x80 != 0 {
		frame = withTag(frame, 0x8100, uint16(status)<<4|uint16(station))
	}
	return frame, src, ttl
}

// FuzzStation feeds the EVB station a sequence of LLDPDUs (built by
// stationFrame, or raw bytes) and expiries, and checks after each step:
//
//   - the relay is consistent: a peer has an address and a bridge TLV, no
//     peer means state unknown and neither (the bridge's last word; the
//     applied view, which the hold-down may keep behind it, is consistent
//     on its own and equal to it unless a change is held);
//   - a tagged frame changes nothing but the Tagged counter;
//   - while the peer's TTL runs, a frame from another address changes
//     neither state nor peer;
//   - a shutdown LLDPDU (TTL 0) never makes a peer;
//   - counters never go down.
func FuzzStation(f *testing.F) {
	// op 0: LLDPDU (sender|0x80 tagged, flags, bridge status, station
	// status|mode<<6); op 1: raw (length, bytes); op 2: the TTL runs out.
	grant := []byte{0, 0, 0, BridgeRRCAP | BridgeRRCTR, ModeBridge<<6 | StationRRREQ}
	cat := func(ops ...[]byte) []byte { return bytes.Join(ops, nil) }
	for _, seed := range [][]byte{
		grant,
		cat(grant, []byte{0, 1, 0, 0, ModeBridge << 6}, []byte{0, 1, 4, 0, ModeBridge << 6}),                                   // a third party refuses, shuts down
		cat(grant, []byte{0, 0x80, 0, 0, ModeBridge << 6}, []byte{2}, []byte{0, 1, 0, 0, ModeBridge << 6}),                     // tagged refusal, expiry, a new bridge
		cat(grant, []byte{0, 0, 4 | 8, 0, 0}, []byte{0, 2, 0, BridgeRRCAP, ModeBridge << 6}),                                   // the bridge's shutdown, a new bridge
		cat(grant, []byte{0, 2, 1, 0, ModeBridge << 6}, []byte{0, 0, 2, 0, ModeBridge << 6}),                                   // the bridge's chassis ID from elsewhere, another port
		{1, 26, 0x01, 0x80, 0xc2, 0, 0, 0, 2, 0, 0, 0, 0, 1, 0x88, 0xcc, 0x02, 0x07, 0x04, 2, 0, 0, 0, 0, 1, 0x04, 0x07, 0x04}, // raw, truncated
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := NewStation(StationConfig{MAC: stationMAC, Send: func([]byte) error { return nil }, RequestRelay: data != nil && len(data)%2 == 0,
			Local: DefaultLocal, Interval: time.Hour, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		o := &ops{b: data}
		for step := 0; o.more() && step < 200; step++ {
			before := s.Relay()
			s.mu.Lock()
			current := s.peer != nil && time.Until(s.expires) > time.Second
			var peerSrc [6]byte
			if s.peer != nil {
				peerSrc = s.peer.src
			}
			latestBefore := s.latest
			s.mu.Unlock()
			var frame []byte
			var src [6]byte
			ttl := uint16(1)
			switch o.byte() % 3 {
			case 0:
				frame, src, ttl = stationFrame(o)
			case 1:
				frame = o.bytes(int(o.byte()))
				if len(frame) >= 12 {
					src = [6]byte(frame[6:12])
				}
				if d, err := ParseFrame(frame); err == nil {
					ttl = d.TTL
				}
			case 2: // the peer's TTL runs out
				s.mu.Lock()
				s.expires = time.Now().Add(-time.Millisecond)
				s.mu.Unlock()
				s.tick(time.Now())
				after := s.Relay()
				checkRelay(t, step, s)
				if (after.Peer != "" || after.State != RelayUnknown) && !held(s) {
					t.Fatalf("step %d: after expiry %+v, no change held", step, after)
				}
				continue
			}
			s.Handle(frame)
			after := s.Relay()
			checkRelay(t, step, s)
			if after.Sent < before.Sent || after.Received < before.Received || after.Bad < before.Bad || after.Tagged < before.Tagged ||
				after.Foreign < before.Foreign || after.ForeignShutdown < before.ForeignShutdown {
				t.Fatalf("step %d: a counter went down: %+v -> %+v", step, before, after)
			}
			same := after.State == before.State && after.Peer == before.Peer && after.PeerMAC.String() == before.PeerMAC.String() &&
				(after.Bridge == nil) == (before.Bridge == nil) && (after.Bridge == nil || *after.Bridge == *before.Bridge)
			switch {
			case vlan.IsTagged(frame) && (!same || after.Tagged != before.Tagged+1):
				t.Fatalf("step %d: tagged frame % x moved %+v -> %+v", step, frame, before, after)
			case current && src != peerSrc && (!same || latestAfter(s) != latestBefore):
				t.Fatalf("step %d: a frame from %x, not the peer %s, moved %+v -> %+v", step, src, before.PeerMAC, before, after)
			case ttl == 0 && before.Peer == "" && after.Peer != "":
				t.Fatalf("step %d: a shutdown LLDPDU made %s the peer", step, after.Peer)
			}
		}
	})
}

func latestAfter(s *Station) relayView {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.latest
}

func held(s *Station) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.relayHold.pending
}

func checkRelay(t *testing.T, step int, s *Station) {
	t.Helper()
	r := s.Relay()
	s.mu.Lock()
	latest, pending := s.latest, s.relayHold.pending
	s.mu.Unlock()
	applied := relayView{state: r.State, peer: r.Peer, mac: string(r.PeerMAC), bgid: r.Bridge != nil && r.Bridge.BridgeStatus&BridgeBGID != 0}
	switch {
	case r.State != RelayUnknown && r.State != RelayGranted && r.State != RelayRefused:
		t.Fatalf("step %d: state %q", step, r.State)
	case r.Peer == "" && (r.PeerMAC != nil || r.State != RelayUnknown):
		t.Fatalf("step %d: no peer but %+v", step, r)
	case r.Peer != "" && len(r.PeerMAC) != 6:
		t.Fatalf("step %d: peer %s with %+v", step, r.Peer, r)
	case latest.peer == "" && (r.Bridge != nil || latest.mac != "" || latest.state != RelayUnknown):
		t.Fatalf("step %d: the bridge's last word: no peer but %+v, %+v", step, latest, r.Bridge)
	case latest.peer != "" && (len(latest.mac) != 6 || r.Bridge == nil || r.Bridge.Mode != ModeBridge):
		t.Fatalf("step %d: the bridge's last word: peer %+v with %+v", step, latest, r.Bridge)
	case !pending && latest != applied:
		t.Fatalf("step %d: applied %+v, the bridge's last word %+v, no change held", step, applied, latest)
	}
}

// FuzzECP feeds an ECP endpoint requests and acknowledgements from its
// peer, a third party and itself, tagged or not, raw frames and peer
// changes (with a fixed peer or latching the first sender), and compares
// with what the rules say: a request is
// acknowledged when it is untagged, well-formed and from the peer, and
// delivered when its sequence number also differs from the last one
// delivered from that peer; an acknowledgement reaches the waiting
// request only on the same terms.
func FuzzECP(f *testing.F) {
	// op 0/1: frame (sender|0x80 tagged, op, seq u16, payload length,
	// payload); op 2: raw (length, bytes); op 3: SetPeer (peer, third, nil).
	for _, seed := range [][]byte{
		{0, 0, 0, 0, 1, 2, 0xaa, 0xbb},                                                     // a request from the peer
		{0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 0, 2, 0, 0, 0x80, 0, 0, 3, 0},        // the peer twice, a third party, tagged
		{1, 0, 1, 0, 7, 0, 1, 1, 1, 0, 7, 0, 1, 0x80, 1, 0, 7, 0},                          // acks: the peer, a third party, tagged
		{3, 1, 0, 1, 0, 0, 5, 0, 3, 2, 0, 1, 0, 0, 6, 0, 3, 0, 0, 0, 0, 0, 5, 0},           // peer changes
		{0x40, 1, 0, 0, 9, 0, 0, 0, 0, 0, 10, 0},                                           // latch: the first sender is the peer
		{2, 18, 1, 0x80, 0xc2, 0, 0, 0, 2, 0, 0, 0, 0, 0x0b, 0x89, 0x40, 0x10, 0x01, 0, 9}, // raw
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		own, peer, third := [6]byte{2, 0, 0, 0, 0, 0xa}, [6]byte{2, 0, 0, 0, 0, 0xb}, [6]byte{2, 0, 0, 0, 0, 0xc}
		senders := [...][6]byte{peer, third, own}
		// With the first byte's bit 6 the endpoint starts without a peer
		// and latches the first sender (ECP without LLDP).
		latch := len(data) > 0 && data[0]&0x40 != 0
		cfgPeer := peer
		if latch {
			cfgPeer = [6]byte{}
		}
		var acked, delivered int
		e, err := NewECP(ECPConfig{MAC: own, Peer: cfgPeer, Latch: latch, Send: func(f []byte) error {
			if h, _, err := ParseECP(f); err != nil || h.Op != ECPAck || [6]byte(f[6:12]) != own {
				t.Fatalf("sent % x, want an ack from us", f)
			}
			acked++
			return nil
		}, Deliver: func([]byte) { delivered++ }})
		if err != nil {
			t.Fatal(err)
		}
		waiting := make(chan uint16, 1024)
		e.waiting = waiting // an outstanding request of ours (Request, without its timers)
		// The model: the peer, and the last sequence number delivered.
		curPeer, hasPeer := cfgPeer, !latch
		var lastRx uint16
		haveRx := false
		wantAcked, wantDelivered, wantWaiting := 0, 0, 0
		o := &ops{b: data}
		for step := 0; o.more() && step < 500; step++ {
			var frame []byte
			switch o.byte() % 4 {
			case 0, 1:
				// sender and tag, op, sequence, payload
				who := o.byte()
				op := o.byte() & 1
				seq := o.u16()
				frame = ECPFrame(senders[int(who&0x7f)%len(senders)], op, ECPSubtypeVDP, seq, o.bytes(int(o.byte()%64)))
				if who&0x80 != 0 {
					frame = withTag(frame, 0x8100, seq&0xfff)
				}
			case 2:
				frame = o.bytes(int(o.byte()))
			case 3:
				switch p := o.byte() % 3; p {
				case 2:
					e.SetPeer(nil)
					if hasPeer {
						haveRx = false
					}
					hasPeer = false
				default:
					e.SetPeer(senders[p][:])
					if !hasPeer || curPeer != senders[p] {
						haveRx = false
					}
					curPeer, hasPeer = senders[p], true
				}
				continue
			}
			h, _, perr := ParseECP(frame)
			valid := !vlan.IsTagged(frame) && perr == nil && h.Subtype == ECPSubtypeVDP
			if valid && latch && !hasPeer && [6]byte(frame[6:12]) != ([6]byte{}) {
				curPeer, hasPeer = [6]byte(frame[6:12]), true
			}
			ok := valid && hasPeer && [6]byte(frame[6:12]) == curPeer
			switch {
			case ok && h.Op == ECPAck:
				wantWaiting++
			case ok:
				wantAcked++
				if !haveRx || lastRx != h.Seq {
					wantDelivered++
				}
				lastRx, haveRx = h.Seq, true
			}
			e.Handle(frame)
			if acked != wantAcked || delivered != wantDelivered || len(waiting) != min(wantWaiting, cap(waiting)) {
				t.Fatalf("step %d: frame % x: %d acked, %d delivered, %d acks to the request; want %d, %d, %d",
					step, frame, acked, delivered, len(waiting), wantAcked, wantDelivered, wantWaiting)
			}
		}
		s := e.Stats()
		if s.Received+s.Duplicates != uint64(wantAcked) || s.Received != uint64(wantDelivered) {
			t.Fatalf("stats %+v, want %d requests of which %d new", s, wantAcked, wantDelivered)
		}
	})
}

// vdpView is what the fuzz compares of the registered VSIs.
func vdpView(s *VDPStation) string {
	var b bytes.Buffer
	for _, v := range s.VSIs() {
		b.WriteString(v.Key + " " + v.State + " " + v.Reason + "\n")
	}
	return b.String()
}

// FuzzVDPStation drives the VDP station with associations, removals,
// bridge changes, time, and ECP requests carrying VDP PDUs (answers built
// from the fuzzer's choices, or raw payloads) from the bridge, a third
// party and the station itself, and checks after each step:
//
//   - received frames never add VSIs: there are at most as many as were
//     associated (bounded by the four MACs used);
//   - states are the six known ones, and a pre-associated VSI was
//     registered to be;
//   - a frame that is tagged or not from the current bridge changes no
//     VSI;
//   - what is due encodes, and nothing is due without a bridge.
func FuzzVDPStation(f *testing.F) {
	// op 0: Register (key|0x80 pre-associate|0x40 M hint, MAC, VID
	// u16); 1: Deassociate (MAC|0x80 S hint);
	// 2: SetBridge (0: none, 1: the bridge, 2: another); 3: ECP request
	// (sender|0x80 tagged, MAC|0x80 raw, mode, status, seq u16, then the
	// VID or the raw payload's length and bytes); 4: time passes (100 ms
	// units), what is due.
	bridgeUp, assoc, due := []byte{2, 1}, []byte{0, 0, 0, 0, 100}, []byte{4, 0}
	cat := func(ops ...[]byte) []byte { return bytes.Join(ops, nil) }
	ack := []byte{3, 0, 0, VDPAssoc - 1, VDPStatusAck, 0, 1, 100}
	preassoc := []byte{0, 0x80, 0, 0, 100}
	for _, seed := range [][]byte{
		cat(bridgeUp, assoc, due, ack),
		cat(bridgeUp, preassoc, due, []byte{3, 0, 0, VDPPreAssoc - 1, VDPStatusAck, 0, 6, 100}, []byte{0, 0x40, 0, 0, 100}, due, ack), // pre-assoc, then assoc with M
		cat(bridgeUp, assoc, due, []byte{3, 0, 0, VDPDeassoc - 1, VDPStatusAck | 2, 0, 7, 100}),                                       // refused as lldpad does
		cat(bridgeUp, assoc, due, ack, []byte{1, 0x80}, due),                                                                          // de-associated with S
		cat(bridgeUp, assoc, due, ack, []byte{3, 1, 0, VDPDeassoc - 1, 0, 0, 2, 100}, due),                                            // a third party de-associates
		cat(bridgeUp, assoc, due, []byte{3, 0, 0, VDPAssoc - 1, VDPStatusAck | VDPStatusHard | 5, 0, 3, 100}),                         // hard error
		cat(bridgeUp, assoc, due, ack, []byte{3, 0x80, 0, VDPDeassoc - 1, 0, 0, 4, 100}, []byte{1, 0}, due),                           // tagged, then removed
		cat(bridgeUp, []byte{3, 0, 0x80, 0, 0, 0, 5, 6, 0x0a, 0x10, 0, 0, 0, 0}, []byte{2, 0}, ack),                                   // raw payload, bridge gone
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		own := [6]byte(stationMAC)
		senders := [...][6]byte{bridgeMAC, thirdMAC, own}
		s, err := NewVDPStation(VDPConfig{MAC: own, ManagerID: ManagerID("vswitchd"), Send: func([]byte) error { return nil },
			Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		macs := [4]net.HardwareAddr{}
		for i := range macs {
			macs[i] = net.HardwareAddr{0x52, 0x54, 0, 0, 0, byte(i + 1)}
		}
		associated := map[[16]byte]bool{}
		pre := map[[16]byte]bool{} // registered last to be pre-associated
		bridge, curBridge := false, [6]byte{}
		now := time.Now()
		o := &ops{b: data}
		for step := 0; o.more() && step < 300; step++ {
			before := vdpView(s)
			var frame []byte
			switch o.byte() % 5 {
			case 0: // register key k with MAC m on a VID
				k, m, vid := o.byte(), o.byte()%4, o.u16()%4096
				v := testVSI(macs[m], vid)
				if k&0x80 != 0 {
					v.Mode = VDPPreAssoc
				}
				if k&0x40 != 0 {
					v.Status = VDPHintM
				}
				s.Register(string('a'+rune(k%4)), ManagerID("vswitchd"), v)
				associated[v.ID] = true
				pre[v.ID] = v.Mode == VDPPreAssoc
				continue
			case 1:
				m := o.byte()
				s.DeassociateWith(MACVSIID(macs[m%4]), m&0x80>>2)
				continue
			case 2: // no bridge, the bridge, or another one
				switch o.byte() % 3 {
				case 0:
					bridge = false
					s.SetBridge(nil)
				case 1:
					bridge, curBridge = true, bridgeMAC
					s.SetBridge(bridgeMAC[:])
				case 2:
					bridge, curBridge = true, thirdMAC
					s.SetBridge(thirdMAC[:])
				}
				continue
			case 3: // an ECP request with a VDP PDU
				who, m, mode, status := o.byte(), o.byte(), o.byte(), o.byte()
				seq := o.u16()
				var payload []byte
				if m&0x80 != 0 {
					payload = o.bytes(int(o.byte() % 96))
				} else {
					v := testVSI(macs[m%4], uint16(o.byte()))
					v.Mode, v.Status = VDPPreAssoc+mode%4, status
					payload, _ = (&VDPPDU{ManagerID: ManagerID("vswitchd"), VSIs: []VSI{v}}).Append(nil)
				}
				frame = ECPFrame(senders[int(who&0x7f)%len(senders)], ECPRequest, ECPSubtypeVDP, seq, payload)
				if who&0x80 != 0 {
					frame = withTag(frame, 0x8100, 100)
				}
			case 4: // time passes; what is due goes out
				now = now.Add(time.Duration(o.byte()) * 100 * time.Millisecond)
				pdus := s.due(now)
				if !bridge && len(pdus) != 0 {
					t.Fatalf("step %d: %d PDUs due without a bridge", step, len(pdus))
				}
				for _, p := range pdus {
					if _, err := p.pdu.Append(nil); err != nil {
						t.Fatalf("step %d: due PDU %+v does not encode: %v", step, p, err)
					}
				}
				continue
			}
			s.Handle(frame)
			after := vdpView(s)
			if (vlan.IsTagged(frame) || [6]byte(frame[6:12]) != curBridge || !bridge) && after != before {
				t.Fatalf("step %d: frame % x (bridge present %v) changed the VSIs:\n%s->\n%s", step, frame, bridge, before, after)
			}
			vs := s.VSIs()
			if len(vs) > len(associated) {
				t.Fatalf("step %d: %d VSIs, %d associated", step, len(vs), len(associated))
			}
			for _, v := range vs {
				switch v.State {
				case VSIWaiting, VSIAssociating, VSIAssociated, VSIFailed:
				case VSIPreAssociating, VSIPreAssociated:
					if !pre[v.VSI.ID] {
						t.Fatalf("step %d: VSI %v registered to associate shows %s", step, v, v.State)
					}
				default:
					t.Fatalf("step %d: VSI %v", step, v)
				}
				if !associated[v.VSI.ID] {
					t.Fatalf("step %d: VSI %v was never associated", step, v)
				}
			}
		}
	})
}
