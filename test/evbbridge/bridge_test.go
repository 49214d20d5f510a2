package evbbridge

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"
)

// link is the wire between the bridge and a test playing the station:
// every frame the bridge sends is kept.
type link struct {
	mu     sync.Mutex
	frames [][]byte
	more   chan struct{}
}

func newLink() *link { return &link{more: make(chan struct{}, 1)} }

func (l *link) send(f []byte) error {
	l.mu.Lock()
	l.frames = append(l.frames, append([]byte(nil), f...))
	l.mu.Unlock()
	select {
	case l.more <- struct{}{}:
	default:
	}
	return nil
}

// next waits for a frame the bridge sent that match accepts, taking it and
// every frame before it off the link.
func (l *link) next(t *testing.T, what string, match func(frameHdr) bool) frameHdr {
	t.Helper()
	deadline := time.After(3 * time.Second)
	for {
		l.mu.Lock()
		for len(l.frames) > 0 {
			f := l.frames[0]
			l.frames = l.frames[1:]
			if h, err := readFrame(f); err == nil && match(h) {
				l.mu.Unlock()
				return h
			}
		}
		l.mu.Unlock()
		select {
		case <-l.more:
		case <-deadline:
			t.Fatalf("the bridge never sent %s", what)
		}
	}
}

var (
	stationMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x51}
	bridgeMAC  = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xb1}
)

func startBridge(t *testing.T, cfg Config) (*Bridge, *link) {
	t.Helper()
	l := newLink()
	cfg.MAC = bridgeMAC
	if cfg.Interval == 0 {
		cfg.Interval = time.Hour // LLDPDUs only when the test pokes
	}
	b, err := New(cfg, l.send)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); b.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return b, l
}

// stationVDP is an ECP request carrying one VSI TLV, S-tagged when svid.
func stationVDP(svid, seq uint16, v VSITLV) []byte {
	body := VDPDU{Manager: [16]byte{'v', 's'}, VSIs: []VSITLV{v}}.bytes()
	return writeFrame(NearestCustomerBridge, stationMAC, svid, etherECP, writeECP(ecpReq, seq, body))
}

func isECP(op int, svid uint16) func(frameHdr) bool {
	return func(h frameHdr) bool {
		if h.etype != etherECP || h.tci&0xfff != svid || (svid != 0) != (h.tpid == tpidS) {
			return false
		}
		p, err := readECP(h.payload)
		return err == nil && p.op == op
	}
}

func answerOf(t *testing.T, h frameHdr) (uint16, VSITLV) {
	t.Helper()
	p, err := readECP(h.payload)
	if err != nil {
		t.Fatal(err)
	}
	d, err := readVDP(p.body)
	if err != nil || len(d.VSIs) != 1 {
		t.Fatalf("answer %+v: %v", d, err)
	}
	return p.seq, d.VSIs[0]
}

// The station's request is acknowledged with its sequence number and
// answered in a request of the bridge's own, which the bridge retransmits
// until the station acknowledges it.
func TestVDPAcceptAssignAndRetransmit(t *testing.T) {
	b, l := startBridge(t, Config{EVB: EVBConfig{R: 2, RTE: 14}, VDP: Answer{VID: 300}}) // RTE 14: 164 ms
	id := [16]byte{1, 2, 3}
	req := VSITLV{Mode: Assoc, TypeID: 7, TypeVersion: 1, IDFormat: 5, ID: id, FilterFormat: 2,
		Filters: []Filter{{MAC: stationMAC, VID: 0}}}
	b.Handle(stationVDP(0, 41, req))
	ackH := l.next(t, "the ECP ack", isECP(ecpAck, 0))
	if p, _ := readECP(ackH.payload); p.seq != 41 || ackH.dst.String() != NearestCustomerBridge.String() || ackH.src.String() != bridgeMAC.String() {
		t.Fatalf("ack %+v seq %d", ackH, p.seq)
	}
	first := l.next(t, "the VDP answer", isECP(ecpReq, 0))
	seq, ans := answerOf(t, first)
	if ans.Mode != Assoc || ans.Status != StatusAck || ans.Filters[0].VID != 300 || ans.Filters[0].MAC.String() != stationMAC.String() || ans.ID != id {
		t.Fatalf("answer %+v", ans)
	}
	// Not acknowledged: sent again with the same sequence number.
	again := l.next(t, "the retransmitted answer", isECP(ecpReq, 0))
	if s, _ := answerOf(t, again); s != seq {
		t.Fatalf("retransmission has sequence %d, first %d", s, seq)
	}
	b.Handle(writeFrame(NearestCustomerBridge, stationMAC, 0, etherECP, writeECP(ecpAck, seq, nil)))
	if err := b.Wait(2*time.Second, "answer acknowledged", func(s Snapshot) bool { return s.ECP.Acked == 1 }); err != nil {
		t.Fatal(err)
	}
	if st := b.ECPStats(); st.Sent != 1 || st.Retransmitted < 1 || st.Requests != 1 || st.AcksSent != 1 {
		t.Errorf("stats %+v", st)
	}
	vs := b.VSIs()
	if len(vs) != 1 || vs[0].VSI.Filters[0].VID != 300 || vs[0].SVID != 0 {
		t.Fatalf("held VSIs %+v", vs)
	}
	// A repeat of request 41 (its ack was lost) is acknowledged, not taken.
	b.Handle(stationVDP(0, 41, req))
	l.next(t, "the second ack", isECP(ecpAck, 0))
	if st := b.ECPStats(); st.Duplicates != 1 || len(b.Requests()) != 1 {
		t.Errorf("repeat: stats %+v, %d requests", st, len(b.Requests()))
	}
	// A keep-alive (new sequence) is taken and recorded.
	b.Handle(stationVDP(0, 42, req))
	if got := b.Arrivals(id, Assoc); len(got) != 2 {
		t.Errorf("arrivals %v", got)
	}
	// De-association: acknowledged, forgotten.
	req.Mode = Deassoc
	b.Handle(stationVDP(0, 43, req))
	if err := b.Wait(2*time.Second, "VSI forgotten", func(s Snapshot) bool { return len(s.VSIs) == 0 }); err != nil {
		t.Fatal(err)
	}
}

// Refusals, group IDs and S-channels.
func TestVDPAnswers(t *testing.T) {
	b, l := startBridge(t, Config{EVB: EVBConfig{R: 0, RTE: 20}})
	refused, grouped := [16]byte{9}, [16]byte{8}
	b.SetAnswer(refused, Answer{Reason: ReasonResources, Hard: true, RefuseWithDeassoc: true})
	b.SetAnswer(grouped, Answer{VID: 5, GroupVIDs: map[uint32]uint16{0xabc: 700}})

	b.Handle(stationVDP(0, 1, VSITLV{Mode: Assoc, IDFormat: 5, ID: refused, FilterFormat: 1, Filters: []Filter{{VID: 10}}}))
	_, ans := answerOf(t, l.next(t, "the refusal", isECP(ecpReq, 0)))
	if ans.Mode != Deassoc || ans.Status != StatusAck|StatusHard|ReasonResources {
		t.Fatalf("refusal %+v", ans)
	}
	if len(b.VSIs()) != 0 {
		t.Fatal("a refused VSI is held")
	}

	// Format 4 on S-channel 20: group 0xabc gets its VID, another group
	// the default one, a VID the station gave stays; all S-tagged.
	b.Handle(stationVDP(20, 1, VSITLV{Mode: PreAssoc, IDFormat: 5, ID: grouped, FilterFormat: 4, Filters: []Filter{
		{GroupID: 0xabc, MAC: stationMAC}, {GroupID: 0xdef, MAC: stationMAC}, {GroupID: 0xabc, MAC: stationMAC, VID: 33}}}))
	l.next(t, "the S-tagged ack", isECP(ecpAck, 20))
	seq, ans := answerOf(t, l.next(t, "the S-tagged answer", isECP(ecpReq, 20)))
	b.Handle(writeFrame(NearestCustomerBridge, stationMAC, 20, etherECP, writeECP(ecpAck, seq, nil)))
	if ans.Mode != PreAssoc || ans.Status != StatusAck || ans.Filters[0].VID != 700 || ans.Filters[1].VID != 5 || ans.Filters[2].VID != 33 {
		t.Fatalf("group answer %+v", ans)
	}
	if r := b.Requests(); len(r) != 2 || r[1].SVID != 20 || r[1].VSI.FilterFormat != 4 {
		t.Fatalf("requests %+v", r)
	}

	// Lost requests: neither acknowledged nor recorded.
	b.DropAcks(1)
	b.Handle(stationVDP(0, 2, VSITLV{Mode: Assoc, IDFormat: 5, ID: [16]byte{7}, FilterFormat: 1, Filters: []Filter{{VID: 10}}}))
	if st := b.ECPStats(); st.AcksDropped != 1 || len(b.Requests()) != 2 {
		t.Fatalf("dropped: %+v, %d requests", st, len(b.Requests()))
	}

	// The bridge's own DEASSOC of a VSI it holds.
	if !b.Deassociate(20, grouped) {
		t.Fatal("Deassociate: VSI not held")
	}
	_, ans = answerOf(t, l.next(t, "the bridge's DEASSOC", isECP(ecpReq, 20)))
	if ans.Mode != Deassoc || ans.Status != 0 || ans.ID != grouped {
		t.Fatalf("bridge DEASSOC %+v", ans)
	}
}

// The EVB TLV: RRCTR for a station that asks, the station's status echoed,
// timers as set, changed live.
func TestEVBTLVFollowsTheStation(t *testing.T) {
	b, l := startBridge(t, Config{EVB: DefaultEVB})
	isLLDP := func(dst net.HardwareAddr) func(frameHdr) bool {
		return func(h frameHdr) bool { return h.etype == etherLLDP && h.dst.String() == dst.String() }
	}
	evbOf := func(h frameHdr) EVBTLV {
		d, err := readLLDPDU(h.payload)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range d.orgs {
			if info, ok := orgTLV(o, subEVB); ok {
				e, err := readEVB(info)
				if err != nil {
					t.Fatal(err)
				}
				return e
			}
		}
		t.Fatal("no EVB TLV")
		return EVBTLV{}
	}
	first := evbOf(l.next(t, "an LLDPDU", isLLDP(NearestCustomerBridge)))
	if first.Mode != 1 || !first.RRCAP || first.RRCTR || first.RRSTAT != 3 || first.RKA != 20 {
		t.Fatalf("before the station: %+v", first)
	}
	st := EVBTLV{RRREQ: true, RRSTAT: 3, Mode: 2, R: 3, RTE: 8, RWD: 20, RKA: 20}
	b.Handle(writeFrame(NearestCustomerBridge, stationMAC, 0, etherLLDP, writeLLDPDU(stationMAC, "uplink", 121, st.info())))
	got := evbOf(l.next(t, "the granting LLDPDU", isLLDP(NearestCustomerBridge)))
	if !got.RRCTR || !got.RRREQ || got.RRSTAT != 3 {
		t.Fatalf("after RRREQ: %+v", got)
	}
	c := DefaultEVB
	c.RKA, c.ROLRKA, c.RefuseRelay = 12, true, true
	b.SetEVB(c)
	got = evbOf(l.next(t, "the changed LLDPDU", isLLDP(NearestCustomerBridge)))
	if got.RRCTR || got.RKA != 12 || !got.ROLRKA {
		t.Fatalf("after SetEVB: %+v", got)
	}
	if s, ok := b.Station(0); !ok || !s.RRREQ || s.TTL != 121 {
		t.Fatalf("station %+v %v", s, ok)
	}
}

// CDCP: the bridge answers the station's pairs per its policy.
func TestCDCPGrants(t *testing.T) {
	b, l := startBridge(t, Config{EVB: EVBConfig{Off: true}, CDCP: &CDCPConfig{ChnCap: 3}})
	cdcpOf := func() CDCPTLV {
		t.Helper()
		h := l.next(t, "a CDCP LLDPDU", func(h frameHdr) bool {
			return h.etype == etherLLDP && h.dst.String() == NearestNonTPMRBridge.String() && h.tpid == 0
		})
		d, err := readLLDPDU(h.payload)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range d.orgs {
			if info, ok := orgTLV(o, subCDCP); ok {
				c, err := readCDCP(info)
				if err != nil {
					t.Fatal(err)
				}
				return c
			}
		}
		t.Fatal("no CDCP TLV")
		return CDCPTLV{}
	}
	if c := cdcpOf(); c.Role != RoleB || !c.SComp || c.ChnCap != 3 || len(c.Pairs) != 1 || c.Pairs[0] != (Pair{1, 1}) {
		t.Fatalf("before the station: %+v", c)
	}
	ask := CDCPTLV{Role: RoleS, SComp: true, ChnCap: 167, Pairs: []Pair{{1, 1}, {2, 10}, {3, 20}, {4, 30}}}
	station := func() {
		b.Handle(writeFrame(NearestNonTPMRBridge, stationMAC, 0, etherLLDP, writeLLDPDU(stationMAC, "uplink", 121, ask.info())))
	}
	station()
	// ChnCap 3: the default channel and two more.
	if c := cdcpOf(); len(c.Pairs) != 3 || c.Pairs[1] != (Pair{2, 10}) || c.Pairs[2] != (Pair{3, 20}) {
		t.Fatalf("grant all, ChnCap 3: %+v", c.Pairs)
	}
	b.SetCDCP(&CDCPConfig{ChnCap: 16, Grant: GrantSVIDs(20, 30)})
	if c := cdcpOf(); len(c.Pairs) != 3 || c.Pairs[1] != (Pair{3, 20}) || c.Pairs[2] != (Pair{4, 30}) {
		t.Fatalf("grant 20 and 30: %+v", c.Pairs)
	}
	b.SetCDCP(&CDCPConfig{Grant: DenyAll})
	if c := cdcpOf(); len(c.Pairs) != 1 {
		t.Fatalf("deny: %+v", c.Pairs)
	}
	// S-VID 0 asks the bridge to pick from its pool.
	ask.Pairs = []Pair{{1, 1}, {2, 0}, {3, 0}}
	b.SetCDCP(&CDCPConfig{Pool: []uint16{500}})
	station()
	if c := cdcpOf(); len(c.Pairs) != 2 || c.Pairs[1] != (Pair{2, 500}) {
		t.Fatalf("pool: %+v", c.Pairs)
	}
	// A TLV with role B is not a station's.
	ask.Role = RoleB
	ask.Pairs = nil
	station()
	if s, ok := b.StationCDCP(); !ok || len(s.Pairs) != 3 {
		t.Fatalf("station's TLV replaced by a role B one: %+v", s)
	}
}
