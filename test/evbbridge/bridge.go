package evbbridge

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"sync"
	"time"
)

// EVBConfig is what the bridge says in its EVB TLV. It can be changed while
// the bridge runs (SetEVB): the next LLDPDU, sent at once, carries it.
type EVBConfig struct {
	// Off: no EVB TLV at all (the bridge is no EVB bridge).
	Off bool
	// RRCap: the bridge can do reflective relay (RRCAP). It grants it
	// (RRCTR) to a station asking with RRREQ unless RefuseRelay.
	RRCap, RefuseRelay bool
	// BGID: the bridge supports VSI group IDs.
	BGID bool
	// Timer proposals and their ROL bits (the bridge's values; exponents,
	// 10 µs × 2^exp). Zero R and RTE stay zero on the wire.
	R, RTE, RWD, RKA uint8
	ROLRWD, ROLRKA   bool
}

// DefaultEVB is a bridge that grants reflective relay with lldpad's timer
// defaults (R 3, RTE 8, RWD 20, RKA 20).
var DefaultEVB = EVBConfig{RRCap: true, BGID: true, R: 3, RTE: 8, RWD: 20, RKA: 20}

// Config configures a Bridge.
type Config struct {
	// MAC is the bridge port's address: source of its frames and its
	// chassis ID. Attach fills it from the interface when empty.
	MAC net.HardwareAddr
	// PortID is the LLDP port ID (an interface name; default "bridge").
	PortID string
	// Interval between LLDPDUs (default 1 s); TTL is 4 intervals + 1 s.
	Interval time.Duration
	// EVB is the EVB TLV (see EVBConfig).
	EVB EVBConfig
	// EVBChannels are the S-VIDs of S-channels on which the bridge's
	// C-VLAN component also runs its EVB agent (LLDPDUs S-tagged with the
	// S-VID); untagged (the default S-channel) it always does.
	EVBChannels []uint16
	// CDCP, when set, makes the bridge's S-VLAN component send the CDCP
	// TLV and answer the station's (see CDCPConfig).
	CDCP *CDCPConfig
	// VDP is the answer to VSIs that have none of their own (SetAnswer);
	// its zero value accepts.
	VDP Answer
	// Logf, when set, logs what the bridge does (t.Logf).
	Logf func(format string, args ...any)
}

// Answer programs the VDP responder's answer to a VSI.
type Answer struct {
	// Reason refuses with this error code (ReasonResources, ...; 1-15);
	// 0 accepts. Hard and Keep set those bits of a refusal.
	Reason     uint8
	Hard, Keep bool
	// RefuseWithDeassoc answers a refusal with a DEASSOC TLV rather
	// than the request's mode (lldpad does that).
	RefuseWithDeassoc bool
	// VID is given to filters asking VID 0 (the bridge assigns the VLAN).
	// GroupVIDs gives the VID of filters that name a group ID (formats 3
	// and 4) and ask VID 0; a group without an entry gets VID.
	VID       uint16
	GroupVIDs map[uint32]uint16
	// Silent acknowledges the ECPDU but sends no VDP answer.
	Silent bool
}

// Request is one VSI TLV the station sent, as the bridge received it, and
// the answer given.
type Request struct {
	Time    time.Time
	SVID    uint16 // S-tag of the ECPDU (0: untagged, the default S-channel)
	Seq     uint16 // ECP sequence number
	Manager [16]byte
	VSI     VSITLV
	// Answer is the TLV the bridge answered with (nil: silent).
	Answer *VSITLV
}

// VSIState is a VSI the bridge holds (acknowledged and not de-associated).
type VSIState struct {
	SVID    uint16
	Manager [16]byte
	VSI     VSITLV // as answered: assigned VIDs filled in
	Since   time.Time
	Last    time.Time // last request (keep-alive) accepted
}

// StationEVB is the last EVB TLV heard from the station on a channel.
type StationEVB struct {
	EVBTLV
	SVID uint16
	Time time.Time
	TTL  int
}

// ECPStats counts the peer's ECP traffic.
type ECPStats struct {
	Requests, Duplicates, AcksSent, AcksDropped uint64 // the station's requests
	Sent, Retransmitted, Acked, TimedOut        uint64 // the bridge's requests (VDP answers)
	Bad                                         uint64 // ECPDUs that did not parse
}

// Bridge is the bridge side of EVB on one port. Feed it received frames
// with Handle and run it with Run; it transmits through the send function
// it was made with.
type Bridge struct {
	cfg  Config
	send func([]byte) error
	kick chan struct{}
	outq chan outPDU
	acks chan ack

	mu        sync.Mutex
	evb       EVBConfig
	channels  []uint16
	cdcp      *CDCPConfig
	def       Answer
	answers   map[[16]byte]Answer
	requests  []Request
	vsis      map[vsiKey]*VSIState
	stations  map[uint16]StationEVB
	station   *StationCDCP
	lastRx    map[uint16]uint16 // per S-VID: last request sequence delivered
	haveRx    map[uint16]bool
	seq       map[uint16]uint16 // per S-VID: last sequence sent
	dropAcks  int
	stats     ECPStats
	lldpSent  uint64
	lldpRecvd uint64
	changed   chan struct{} // closed and replaced on every recorded event
}

type vsiKey struct {
	svid uint16
	id   [16]byte
}

type outPDU struct {
	svid uint16
	body []byte
}

type ack struct {
	svid, seq uint16
}

// New returns a bridge (not yet running) that sends through send.
func New(cfg Config, send func([]byte) error) (*Bridge, error) {
	if len(cfg.MAC) != 6 {
		return nil, fmt.Errorf("evbbridge: MAC %q is not an Ethernet address", cfg.MAC)
	}
	if send == nil {
		return nil, errors.New("evbbridge: no send function")
	}
	if cfg.PortID == "" {
		cfg.PortID = "bridge"
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	b := &Bridge{cfg: cfg, send: send, kick: make(chan struct{}, 1), outq: make(chan outPDU, 256), acks: make(chan ack, 16),
		evb: cfg.EVB, channels: slices.Clone(cfg.EVBChannels), def: cfg.VDP, answers: map[[16]byte]Answer{},
		vsis: map[vsiKey]*VSIState{}, stations: map[uint16]StationEVB{}, lastRx: map[uint16]uint16{},
		haveRx: map[uint16]bool{}, seq: map[uint16]uint16{}, changed: make(chan struct{})}
	if cfg.CDCP != nil {
		c := cfg.CDCP.clone()
		b.cdcp = &c
	}
	return b, nil
}

func (b *Bridge) logf(format string, args ...any) {
	if b.cfg.Logf != nil {
		b.cfg.Logf("evbbridge: "+format, args...)
	}
}

func (b *Bridge) poke() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// eventLocked wakes the waiters (Wait*); b.mu is held.
func (b *Bridge) eventLocked() {
	close(b.changed)
	b.changed = make(chan struct{})
}

// Run sends LLDPDUs (every Interval, and at once after a change) and the
// bridge's ECP requests (VDP answers, its own DEASSOCs) until ctx ends;
// then it sends shutdown LLDPDUs (TTL 0).
func (b *Bridge) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); b.runECP(ctx) }()
	t := time.NewTicker(b.cfg.Interval)
	defer t.Stop()
	for {
		b.sendLLDP(false)
		select {
		case <-ctx.Done():
			b.sendLLDP(true)
			wg.Wait()
			return
		case <-t.C:
		case <-b.kick:
		}
	}
}

// sendLLDP sends the EVB LLDPDUs (untagged and on each EVB channel) and,
// with CDCP, the S-VLAN component's LLDPDU.
func (b *Bridge) sendLLDP(shutdown bool) {
	ttl := int((4*b.cfg.Interval + time.Second) / time.Second)
	if shutdown {
		ttl = 0
	}
	b.mu.Lock()
	var frames [][]byte
	if !b.evb.Off {
		for _, svid := range append([]uint16{0}, b.channels...) {
			var orgs [][]byte
			if !shutdown { // a shutdown LLDPDU has only the mandatory TLVs
				orgs = append(orgs, b.evbTLVLocked(svid).info())
			}
			frames = append(frames, writeFrame(NearestCustomerBridge, b.cfg.MAC, svid, etherLLDP,
				writeLLDPDU(b.cfg.MAC, b.cfg.PortID, ttl, orgs...)))
		}
	}
	if b.cdcp != nil {
		var orgs [][]byte
		if !shutdown {
			orgs = append(orgs, b.cdcpTLVLocked().info())
		}
		frames = append(frames, writeFrame(NearestNonTPMRBridge, b.cfg.MAC, 0, etherLLDP,
			writeLLDPDU(b.cfg.MAC, b.cfg.PortID, ttl, orgs...)))
	}
	b.mu.Unlock()
	for _, f := range frames {
		if err := b.send(f); err != nil {
			b.logf("send LLDPDU: %v", err)
			continue
		}
		b.mu.Lock()
		b.lldpSent++
		b.mu.Unlock()
	}
}

// evbTLVLocked is the bridge's EVB TLV on channel svid: RRCTR granted to
// a station that asked (RRREQ) when the bridge can and does not refuse;
// the station status echoes what the station last said there.
func (b *Bridge) evbTLVLocked(svid uint16) EVBTLV {
	c := b.evb
	e := EVBTLV{BGID: c.BGID, RRCAP: c.RRCap, Mode: 1, R: c.R, RTE: c.RTE, RWD: c.RWD, RKA: c.RKA, ROLRWD: c.ROLRWD, ROLRKA: c.ROLRKA}
	if st, ok := b.stations[svid]; ok {
		e.SGID, e.RRREQ, e.RRSTAT = st.SGID, st.RRREQ, st.RRSTAT
		e.RRCTR = c.RRCap && !c.RefuseRelay && st.RRREQ
	} else {
		e.RRSTAT = 3
	}
	return e
}

// Handle takes a frame received on the bridge port.
func (b *Bridge) Handle(frame []byte) {
	h, err := readFrame(frame)
	if err != nil {
		return
	}
	var svid uint16
	switch h.tpid {
	case 0:
	case tpidS:
		svid = h.tci & 0xfff
	default:
		return // C-tagged control frames are no station's
	}
	if h.src.String() == b.cfg.MAC.String() {
		return
	}
	switch h.etype {
	case etherLLDP:
		b.handleLLDP(h, svid)
	case etherECP:
		b.handleECP(h, svid)
	}
}

func (b *Bridge) handleLLDP(h frameHdr, svid uint16) {
	d, err := readLLDPDU(h.payload)
	if err != nil {
		b.logf("bad LLDPDU from %s: %v", h.src, err)
		return
	}
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.lldpRecvd++
	for _, t := range d.orgs {
		if info, ok := orgTLV(t, subEVB); ok && h.dst.String() == NearestCustomerBridge.String() {
			e, err := readEVB(info)
			if err != nil {
				b.logf("bad EVB TLV from %s: %v", h.src, err)
				continue
			}
			old, had := b.stations[svid]
			b.stations[svid] = StationEVB{EVBTLV: e, SVID: svid, Time: now, TTL: d.ttl}
			if !had || old.EVBTLV != e {
				b.poke() // answer RRREQ at once
			}
			b.eventLocked()
		}
		if info, ok := orgTLV(t, subCDCP); ok && svid == 0 && h.dst.String() == NearestNonTPMRBridge.String() {
			c, err := readCDCP(info)
			if err != nil {
				b.logf("bad CDCP TLV from %s: %v", h.src, err)
				continue
			}
			b.stationCDCPLocked(c, now)
		}
	}
	if d.ttl == 0 {
		if svid == 0 && h.dst.String() == NearestNonTPMRBridge.String() {
			b.station = nil
		} else {
			delete(b.stations, svid)
		}
		b.eventLocked()
	}
}

func (b *Bridge) handleECP(h frameHdr, svid uint16) {
	p, err := readECP(h.payload)
	if err != nil || p.version != 1 || p.subtype != ecpVDP || p.op > ecpAck {
		b.mu.Lock()
		b.stats.Bad++
		b.mu.Unlock()
		return
	}
	if p.op == ecpAck {
		select {
		case b.acks <- ack{svid, p.seq}:
		default:
		}
		return
	}
	b.mu.Lock()
	b.stats.Requests++
	if b.dropAcks > 0 {
		b.dropAcks--
		b.stats.AcksDropped++
		b.eventLocked()
		b.mu.Unlock()
		return // as if lost: neither acknowledged nor taken
	}
	dup := b.haveRx[svid] && b.lastRx[svid] == p.seq
	b.lastRx[svid], b.haveRx[svid] = p.seq, true
	b.stats.AcksSent++
	if dup {
		b.stats.Duplicates++
	}
	b.mu.Unlock()
	if err := b.send(writeFrame(NearestCustomerBridge, b.cfg.MAC, svid, etherECP, writeECP(ecpAck, p.seq, nil))); err != nil {
		b.logf("send ECP ack: %v", err)
	}
	if !dup {
		b.handleVDP(svid, p.seq, p.body)
	}
}

// handleVDP answers the VSI TLVs of a station's VDPDU, one answer PDU for
// the lot.
func (b *Bridge) handleVDP(svid, seq uint16, body []byte) {
	p, err := readVDP(body)
	if err != nil {
		b.logf("bad VDPDU on S-VID %d: %v", svid, err)
		return
	}
	now := time.Now()
	out := VDPDU{Manager: p.Manager}
	b.mu.Lock()
	for _, v := range p.VSIs {
		if v.Status&StatusAck != 0 {
			continue // a response, not for a bridge
		}
		a, ok := b.answers[v.ID]
		if !ok {
			a = b.def
		}
		r := Request{Time: now, SVID: svid, Seq: seq, Manager: p.Manager, VSI: v}
		if !a.Silent {
			ans := b.answerLocked(svid, p.Manager, v, a, now)
			r.Answer = &ans
			out.VSIs = append(out.VSIs, ans)
		}
		b.requests = append(b.requests, r)
		b.logf("VDP %s on S-VID %d: %s", modeName(v.Mode), svid, describeAnswer(r.Answer))
	}
	b.eventLocked()
	b.mu.Unlock()
	if len(out.VSIs) > 0 {
		b.outq <- outPDU{svid: svid, body: out.bytes()}
	}
}

// answerLocked builds the answer TLV to request v and updates the
// bridge's VSI table.
func (b *Bridge) answerLocked(svid uint16, mgr [16]byte, v VSITLV, a Answer, now time.Time) VSITLV {
	ans := v
	ans.Filters = slices.Clone(v.Filters)
	key := vsiKey{svid, v.ID}
	if v.Mode == Deassoc {
		ans.Status = StatusAck
		delete(b.vsis, key)
		return ans
	}
	if a.Reason != 0 {
		ans.Status = StatusAck | a.Reason&0x0f
		if a.Hard {
			ans.Status |= StatusHard
		}
		if a.Keep {
			ans.Status |= StatusKeep
		} else {
			delete(b.vsis, key)
		}
		if a.RefuseWithDeassoc {
			ans.Mode = Deassoc
		}
		return ans
	}
	ans.Status = StatusAck
	for i := range ans.Filters {
		f := &ans.Filters[i]
		if f.VID != 0 {
			continue
		}
		f.VID = a.VID
		if v.FilterFormat >= 3 {
			if vid, ok := a.GroupVIDs[f.GroupID]; ok {
				f.VID = vid
			}
		}
	}
	st, ok := b.vsis[key]
	if !ok {
		st = &VSIState{SVID: svid, Since: now}
		b.vsis[key] = st
	}
	st.Manager, st.VSI, st.Last = mgr, ans, now
	return ans
}

// runECP hands the bridge's ECP requests to one sender per channel (each
// S-channel has its own ECP, clause 43) and the station's acks to the
// sender of their channel.
func (b *Bridge) runECP(ctx context.Context) {
	type tx struct {
		q    chan []byte
		acks chan uint16
	}
	txs := map[uint16]*tx{}
	var wg sync.WaitGroup
	defer wg.Wait()
	get := func(svid uint16) *tx {
		c, ok := txs[svid]
		if !ok {
			c = &tx{q: make(chan []byte, 64), acks: make(chan uint16, 16)}
			txs[svid] = c
			wg.Add(1)
			go func() { defer wg.Done(); b.sendECP(ctx, svid, c.q, c.acks) }()
		}
		return c
	}
	for {
		select {
		case <-ctx.Done():
			return
		case p := <-b.outq:
			select {
			case get(p.svid).q <- p.body:
			case <-ctx.Done():
				return
			}
		case a := <-b.acks:
			select {
			case get(a.svid).acks <- a.seq:
			default:
			}
		}
	}
}

// sendECP sends channel svid's requests one at a time, each until it is
// acknowledged or R retransmissions after RTE (doubling) went unanswered.
func (b *Bridge) sendECP(ctx context.Context, svid uint16, q <-chan []byte, acks <-chan uint16) {
	for {
		var body []byte
		select {
		case <-ctx.Done():
			return
		case body = <-q:
		}
		b.mu.Lock()
		b.seq[svid]++
		seq := b.seq[svid]
		r, wait := int(b.evb.R), timerOf(b.evb.RTE)
		b.mu.Unlock()
		if wait < 5*time.Millisecond {
			wait = 5 * time.Millisecond
		}
		frame := writeFrame(NearestCustomerBridge, b.cfg.MAC, svid, etherECP, writeECP(ecpReq, seq, body))
		acked := false
		for try := 0; try <= r && !acked; try++ {
			if err := b.send(frame); err != nil {
				b.logf("send ECP request: %v", err)
			}
			b.count(func(s *ECPStats) {
				if try == 0 {
					s.Sent++
				} else {
					s.Retransmitted++
				}
			})
			t := time.NewTimer(wait)
		wait:
			for {
				select {
				case <-ctx.Done():
					t.Stop()
					return
				case got := <-acks:
					if got == seq {
						acked = true
						break wait
					}
				case <-t.C:
					break wait
				}
			}
			t.Stop()
			wait *= 2
		}
		b.count(func(s *ECPStats) {
			if acked {
				s.Acked++
			} else {
				s.TimedOut++
			}
		})
	}
}

func (b *Bridge) count(f func(*ECPStats)) {
	b.mu.Lock()
	f(&b.stats)
	b.eventLocked()
	b.mu.Unlock()
}

// timerOf is 10 µs × 2^exp.
func timerOf(exp uint8) time.Duration { return 10 * time.Microsecond << (exp & 31) }

// ---- programming the bridge ----

// SetEVB changes the EVB TLV; an LLDPDU with it goes out at once.
func (b *Bridge) SetEVB(c EVBConfig) {
	b.mu.Lock()
	b.evb = c
	b.mu.Unlock()
	b.poke()
}

// EVB returns the bridge's EVB configuration.
func (b *Bridge) EVB() EVBConfig {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.evb
}

// SetEVBChannels sets the S-VIDs on which the bridge also sends its EVB
// TLV, S-tagged.
func (b *Bridge) SetEVBChannels(svids ...uint16) {
	b.mu.Lock()
	b.channels = slices.Clone(svids)
	b.mu.Unlock()
	b.poke()
}

// SetAnswer programs the answer to VSI id; SetDefaultAnswer the answer to
// VSIs without one.
func (b *Bridge) SetAnswer(id [16]byte, a Answer) {
	b.mu.Lock()
	b.answers[id] = a
	b.mu.Unlock()
}

// SetDefaultAnswer programs the answer to VSIs without one of their own.
func (b *Bridge) SetDefaultAnswer(a Answer) {
	b.mu.Lock()
	b.def = a
	b.mu.Unlock()
}

// DropAcks makes the bridge ignore the next n ECP requests as if they were
// lost (no acknowledgement, no answer): the station must retransmit.
func (b *Bridge) DropAcks(n int) {
	b.mu.Lock()
	b.dropAcks = n
	b.mu.Unlock()
}

// Deassociate sends a DEASSOC of the bridge's own for a VSI it holds on
// channel svid and forgets it; false when it holds no such VSI.
func (b *Bridge) Deassociate(svid uint16, id [16]byte) bool {
	b.mu.Lock()
	st, ok := b.vsis[vsiKey{svid, id}]
	if ok {
		delete(b.vsis, vsiKey{svid, id})
		b.eventLocked()
	}
	b.mu.Unlock()
	if !ok {
		return false
	}
	v := st.VSI
	v.Mode, v.Status = Deassoc, 0
	b.outq <- outPDU{svid: svid, body: VDPDU{Manager: st.Manager, VSIs: []VSITLV{v}}.bytes()}
	return true
}

// ---- what the bridge saw ----

// Requests returns every VSI TLV received, oldest first.
func (b *Bridge) Requests() []Request {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.requests)
}

// Arrivals returns when requests of mode for VSI id arrived (keep-alives
// are the repeats of the association), oldest first; mode 0: any mode.
func (b *Bridge) Arrivals(id [16]byte, mode uint8) []time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []time.Time
	for _, r := range b.requests {
		if r.VSI.ID == id && (mode == 0 || r.VSI.Mode == mode) {
			out = append(out, r.Time)
		}
	}
	return out
}

// VSIs returns the VSIs the bridge holds, by S-VID then VSIID.
func (b *Bridge) VSIs() []VSIState {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]VSIState, 0, len(b.vsis))
	for _, v := range b.vsis {
		out = append(out, *v)
	}
	slices.SortFunc(out, func(x, y VSIState) int {
		if x.SVID != y.SVID {
			return int(x.SVID) - int(y.SVID)
		}
		return slices.Compare(x.VSI.ID[:], y.VSI.ID[:])
	})
	return out
}

// Station returns the last EVB TLV heard from the station on channel
// svid (0: untagged).
func (b *Bridge) Station(svid uint16) (StationEVB, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s, ok := b.stations[svid]
	return s, ok
}

// ECPStats returns the ECP counters.
func (b *Bridge) ECPStats() ECPStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stats
}

// LLDPCounts returns the LLDPDUs sent and received.
func (b *Bridge) LLDPCounts() (sent, received uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.lldpSent, b.lldpRecvd
}

// ErrWait is returned (wrapped) by the Wait methods when time ran out.
var ErrWait = errors.New("evbbridge: not seen in time")

// Wait blocks until cond holds or timeout passes. cond is called with a
// copy of what the bridge saw, after every change, outside the bridge's
// lock (it may call the bridge's methods).
func (b *Bridge) Wait(timeout time.Duration, what string, cond func(s Snapshot) bool) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		b.mu.Lock()
		s := b.snapshotLocked()
		ch := b.changed
		b.mu.Unlock()
		if cond(s) {
			return nil
		}
		select {
		case <-ch:
		case <-deadline.C:
			return fmt.Errorf("%w: %s after %v", ErrWait, what, timeout)
		}
	}
}

// Snapshot is what Wait's condition sees.
type Snapshot struct {
	Requests []Request // every VSI TLV received, oldest first
	VSIs     []VSIState
	Stations map[uint16]StationEVB
	CDCP     *StationCDCP // nil: no CDCP TLV heard
	ECP      ECPStats
}

func (b *Bridge) snapshotLocked() Snapshot {
	s := Snapshot{Requests: slices.Clone(b.requests), Stations: maps.Clone(b.stations), ECP: b.stats}
	for _, v := range b.vsis {
		s.VSIs = append(s.VSIs, *v)
	}
	if b.station != nil {
		c := *b.station
		c.Pairs = slices.Clone(c.Pairs)
		s.CDCP = &c
	}
	return s
}

// WaitRequest waits for a VSI TLV that match accepts and returns the
// first such one (among all received so far).
func (b *Bridge) WaitRequest(timeout time.Duration, what string, match func(Request) bool) (Request, error) {
	var got Request
	err := b.Wait(timeout, what, func(s Snapshot) bool {
		for _, r := range s.Requests {
			if match(r) {
				got = r
				return true
			}
		}
		return false
	})
	return got, err
}

func modeName(m uint8) string {
	switch m {
	case PreAssoc:
		return "PRE-ASSOC"
	case PreAssocRR:
		return "PRE-ASSOC-RR"
	case Assoc:
		return "ASSOC"
	case Deassoc:
		return "DEASSOC"
	}
	return fmt.Sprintf("mode %d", m)
}

func describeAnswer(a *VSITLV) string {
	if a == nil {
		return "no answer (silent)"
	}
	return fmt.Sprintf("answered %s status %#02x", modeName(a.Mode), a.Status)
}
