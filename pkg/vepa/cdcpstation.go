package vepa

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/vswitch/vswitch/pkg/vlan"
)

// CDCPStation is the station's S-VLAN component in CDCP (IEEE
// 802.1Qbg-2012 clause 42): an LLDP agent of its own, to the nearest
// non-TPMR bridge address, that tells the adjacent bridge which
// S-channels the station wants and follows the bridge's answer.
//
// The station asks for the default S-channel (SCID 1, S-VID 1) and one
// SCID per S-VID its ports use (SetChannels), each with that S-VID: the
// ports' S-VIDs are configured, so the station never leaves the choice to
// the bridge (S-VID 0). An SCID stays with its S-VID as long as a port
// uses it; new ones take the lowest free SCID from 2.
//
// The bridge (role B) answers with the pairs it set up. An S-channel is
// granted when the bridge's answer holds its S-VID, under the SCID the
// station asked for or another one: the station follows the bridge's
// numbering (a bridge with static S-channels has its own), and keeps
// asking for its own SCIDs (its wants do not change with the answer, so
// the exchange cannot oscillate). An S-VID the answer lacks is not granted
// (CDCPState.Channel says why, CDCPState.SCID gives the bridge's SCID). The answer counts while its TTL runs; after that, or after the
// bridge's shutdown LLDPDU, no CDCP bridge is heard and:
//
//	Required (vswitchd --cdcp on)   no S-channel but the default is granted
//	otherwise (--cdcp auto)         S-channels are static: all of them work,
//	                                as without CDCP (bridges that do not
//	                                speak CDCP, lldpad among them)
//
// Like Station it follows one bridge (chassis ID, port ID and source
// address) until its TTL runs out or it says goodbye, refuses tagged
// LLDPDUs (CDCP runs untagged on the physical link) and ignores its own
// frames reflected back. The package does no I/O: frames go out through
// Send and come in through Handle.
type CDCPStation struct {
	cfg  CDCPConfig
	log  *slog.Logger
	kick chan struct{}
	wake chan struct{} // a change is held: Run's timer is to be looked at

	mu      sync.Mutex
	mac     net.HardwareAddr
	scids   map[uint16]uint16 // S-VID -> SCID of the channels asked for
	over    map[uint16]bool   // S-VIDs no SCID was left for (the TLV is full)
	peer    *peerID
	expires time.Time
	state   CDCPState // the bridge's answer as applied (the hold-down's)
	latest  cdcpView  // the bridge's last word
	hold    holdDown
}

// cdcpView is what OnChange reports a change of: whether a CDCP bridge is
// heard, which, its ChnCap and its pairs.
type cdcpView struct {
	bridge    bool
	peer, mac string
	chncap    uint16
	granted   []SChannel
}

func (v cdcpView) equal(w cdcpView) bool {
	return v.bridge == w.bridge && v.peer == w.peer && v.mac == w.mac && v.chncap == w.chncap && slices.Equal(v.granted, w.granted)
}

// CDCPConfig configures a CDCPStation.
type CDCPConfig struct {
	// MAC of the uplink: source address, chassis ID and port ID.
	MAC net.HardwareAddr
	// Send transmits a frame on the uplink.
	Send func(frame []byte) error
	// Interval between LLDPDUs after the fast start (default 30 s).
	Interval time.Duration
	// ChnCap is the number of S-channels the station supports, the
	// default one included (0 or more than MaxCDCPPairs: MaxCDCPPairs).
	ChnCap uint16
	// Required: without a CDCP bridge no S-channel but the default one is
	// granted (see CDCPStation).
	Required bool
	// OnChange is called (from Run's or Handle's goroutine, no lock held)
	// when what the bridge granted, or whether one is heard, changes.
	OnChange func(CDCPState)
	Logger   *slog.Logger
}

// CDCPState is what the station knows about its S-channels.
type CDCPState struct {
	// Bridge is set while a CDCP bridge's answer counts (its TTL runs).
	Bridge  bool
	Peer    string           // its chassis ID ("" when none)
	PeerMAC net.HardwareAddr // the source address of its LLDPDUs
	ChnCap  uint16           // the bridge's ChnCap
	// Wanted are the pairs the station asks for (the default one first),
	// Granted the pairs of the bridge's last answer.
	Wanted, Granted []SChannel
	Required        bool
	Updated         time.Time // last change of Bridge, Peer or Granted
	// Sent and Received count LLDPDUs of this agent; Bad the ones that
	// did not parse, Tagged the tagged ones refused, Foreign the CDCP
	// TLVs of another bridge while the peer's TTL runs.
	Sent, Received, Bad, Tagged, Foreign uint64
	// Hold is what the hold-down (holddown.go) did with the bridge's
	// changes: Bridge, Peer, PeerMAC, ChnCap, Granted and Updated are the
	// applied ones.
	Hold HoldDown
	// Neighbor is the last LLDPDU of the CDCP bridge followed (nil: none):
	// the bridge's last word, which the applied fields may lag behind
	// while a change is held.
	Neighbor *CDCPNeighbor
	// overflow are S-VIDs left out of the TLV (it holds MaxCDCPPairs).
	overflow []uint16
}

// CDCPNeighbor is the CDCP bridge's last LLDPDU: who sent it, its CDCP
// TLV, its TTL and when it came.
type CDCPNeighbor struct {
	ChassisID string // as text (RenderID)
	MAC       net.HardwareAddr
	TLV       CDCP
	TTL       uint16
	LastSeen  time.Time
}

// Channel reports whether the S-channel of S-VID svid may carry traffic,
// and why not when it may not. svid 0 (no S-channel: the default one) is
// always granted.
//
// The bridge's answer rules (clause 42: the station's S-VLAN component is
// configured with the pairs the bridge answers, whatever SCIDs the
// station asked for): the S-channel exists when the answer holds its
// S-VID under any SCID but the default one. A bridge with static
// S-channels numbers them its own way, so the SCID the station asked for
// may carry another S-VID there and ours another SCID (SCID says which).
func (st CDCPState) Channel(svid uint16) (bool, string) {
	if svid == 0 {
		return true, ""
	}
	if !st.Bridge {
		if st.Required {
			return false, fmt.Sprintf("S-channel S-VID %d: no CDCP answer from the bridge (vswitchd --cdcp on); it carries nothing until the bridge grants it", svid)
		}
		return true, ""
	}
	if slices.Contains(st.overflow, svid) {
		return false, fmt.Sprintf("S-channel S-VID %d: not asked for: a CDCP TLV holds %d S-channels", svid, MaxCDCPPairs)
	}
	if svid == DefaultSVID {
		return false, "S-channel S-VID 1: S-VID 1 is the default S-channel's in CDCP; give the port another S-VID"
	}
	if _, ok := st.SCID(svid); ok {
		return true, ""
	}
	scid := st.AskedSCID(svid)
	for _, g := range st.Granted {
		if g.SCID == scid {
			return false, fmt.Sprintf("S-channel S-VID %d: the bridge gave its SCID %d S-VID %d instead, and S-VID %d to no SCID (CDCP)", svid, scid, g.SVID, svid)
		}
	}
	return false, fmt.Sprintf("S-channel S-VID %d (SCID %d): not granted by the bridge %s (CDCP; it supports %d S-channels)", svid, scid, st.Peer, st.ChnCap)
}

// SCID returns the SCID under which the bridge's answer holds S-VID svid
// (the lowest when it lists the S-VID twice), and false when the answer
// does not hold it (or no bridge answered). The default S-channel's SCID
// 1 carries S-VID 1 only: an answer giving it another S-VID grants
// nothing.
func (st CDCPState) SCID(svid uint16) (uint16, bool) {
	if !st.Bridge || svid <= DefaultSVID {
		return 0, false
	}
	var scid uint16
	for _, g := range st.Granted {
		if g.SVID == svid && g.SCID > DefaultSCID && (scid == 0 || g.SCID < scid) {
			scid = g.SCID
		}
	}
	return scid, scid != 0
}

// AskedSCID is the SCID the station asks for S-VID svid (0: none).
func (st CDCPState) AskedSCID(svid uint16) uint16 {
	for _, w := range st.Wanted {
		if w.SVID == svid {
			return w.SCID
		}
	}
	return 0
}

// Channels lists the S-VIDs of the S-channels the station wants (those
// asked for and those a full TLV left out), sorted.
func (st CDCPState) Channels() []uint16 {
	out := slices.Clone(st.overflow)
	for _, w := range st.Wanted {
		if w.SCID != DefaultSCID {
			out = append(out, w.SVID)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// NewCDCPStation checks cfg and returns a station (not yet running) that
// asks for the default S-channel only.
func NewCDCPStation(cfg CDCPConfig) (*CDCPStation, error) {
	if len(cfg.MAC) != 6 {
		return nil, fmt.Errorf("cdcp station: uplink MAC %q is not an Ethernet address", cfg.MAC)
	}
	if cfg.Send == nil {
		return nil, fmt.Errorf("cdcp station: no Send function")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.ChnCap == 0 || cfg.ChnCap > MaxCDCPPairs {
		cfg.ChnCap = MaxCDCPPairs
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &CDCPStation{cfg: cfg, log: cfg.Logger, kick: make(chan struct{}, 1), wake: make(chan struct{}, 1), mac: slices.Clone(cfg.MAC),
		scids: map[uint16]uint16{}, over: map[uint16]bool{}}
	s.hold = holdDown{what: "CDCP grants", log: s.log}
	s.state = CDCPState{Required: cfg.Required, Updated: time.Now(), Wanted: []SChannel{{DefaultSCID, DefaultSVID}}}
	return s, nil
}

// SetChannels sets the S-VIDs of the S-channels the station wants (its
// ports' S-VIDs; 0 and repeats are ignored). A change is sent at once.
func (s *CDCPStation) SetChannels(svids []uint16) {
	want := map[uint16]bool{}
	for _, v := range svids {
		if v > DefaultSVID && v <= 4094 {
			want[v] = true
		}
	}
	s.mu.Lock()
	changed := false
	for v := range s.scids {
		if !want[v] {
			delete(s.scids, v)
			changed = true
		}
	}
	for v := range s.over {
		if !want[v] {
			delete(s.over, v)
			changed = true
		}
	}
	used := map[uint16]bool{DefaultSCID: true}
	for _, c := range s.scids {
		used[c] = true
	}
	next := uint16(DefaultSCID + 1)
	for _, v := range slices.Sorted(maps.Keys(want)) {
		if _, ok := s.scids[v]; ok {
			continue
		}
		if len(s.scids)+1 >= int(min(s.cfg.ChnCap, MaxCDCPPairs)) {
			if !s.over[v] {
				s.over[v], changed = true, true
			}
			continue
		}
		for used[next] {
			next++
		}
		s.scids[v], used[next] = next, true
		delete(s.over, v)
		changed = true
	}
	if changed {
		s.state.Wanted = s.wantedLocked()
		s.state.overflow = slices.Sorted(maps.Keys(s.over))
	}
	s.mu.Unlock()
	if changed {
		s.poke()
	}
}

// wantedLocked lists the pairs asked for, by SCID, the default first.
func (s *CDCPStation) wantedLocked() []SChannel {
	out := []SChannel{{DefaultSCID, DefaultSVID}}
	for v, c := range s.scids {
		out = append(out, SChannel{SCID: c, SVID: v})
	}
	slices.SortFunc(out, func(a, b SChannel) int { return int(a.SCID) - int(b.SCID) })
	return out
}

// SetMAC changes the station's address (the uplink was replaced).
func (s *CDCPStation) SetMAC(mac net.HardwareAddr) {
	if len(mac) != 6 {
		return
	}
	s.mu.Lock()
	same := string(s.mac) == string(mac)
	s.mac = slices.Clone(mac)
	s.mu.Unlock()
	if !same {
		s.poke()
	}
}

func (s *CDCPStation) poke() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// State returns what the station knows now.
func (s *CDCPStation) State() CDCPState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stateLocked()
}

func (s *CDCPStation) stateLocked() CDCPState {
	st := s.state
	st.Hold = s.hold.HoldDown
	st.Wanted = slices.Clone(st.Wanted)
	st.Granted = slices.Clone(st.Granted)
	st.PeerMAC = slices.Clone(st.PeerMAC)
	if st.Neighbor != nil {
		n := *st.Neighbor
		n.MAC, n.TLV.Pairs = slices.Clone(n.MAC), slices.Clone(n.TLV.Pairs)
		st.Neighbor = &n
	}
	st.overflow = slices.Clone(st.overflow)
	return st
}

// LLDPDU is what the station sends now: its CDCP TLV, role S, SComp set,
// its ChnCap and the pairs it wants.
func (s *CDCPStation) LLDPDU() *LLDPDU {
	s.mu.Lock()
	mac, wanted := s.mac, slices.Clone(s.state.Wanted)
	s.mu.Unlock()
	ttl := min(s.cfg.Interval*ttlMultiplier+time.Second, 65535*time.Second)
	return &LLDPDU{
		ChassisSubtype: ChassisIDMAC, ChassisID: []byte(mac),
		PortSubtype: PortIDMAC, PortID: []byte(mac),
		TTL:  uint16(ttl / time.Second),
		CDCP: &CDCP{Role: CDCPRoleStation, SComp: true, ChnCap: s.cfg.ChnCap, Pairs: wanted},
	}
}

func (s *CDCPStation) sendPDU(d *LLDPDU) error {
	f, err := d.Frame(NearestNonTPMRBridge, [6]byte(d.ChassisID))
	if err != nil {
		return err
	}
	if err := s.cfg.Send(f); err != nil {
		return err
	}
	s.mu.Lock()
	s.state.Sent++
	s.mu.Unlock()
	return nil
}

// Shutdown sends a shutdown LLDPDU (TTL 0, no CDCP TLV): the bridge
// forgets the station's S-channels at once. Call it after Run returned.
func (s *CDCPStation) Shutdown() error {
	d := s.LLDPDU()
	d.TTL, d.CDCP = 0, nil
	return s.sendPDU(d)
}

// Run sends LLDPDUs (fast at start and after a change, then every
// Interval, within 802.1AB's transmit credit), forgets the bridge's answer
// when its TTL runs out and applies the changes the hold-down held, until
// ctx ends (txLoop).
func (s *CDCPStation) Run(ctx context.Context) {
	send := func() error { return s.sendPDU(s.LLDPDU()) }
	txLoop{interval: s.cfg.Interval, kick: s.kick, wake: s.wake, send: send, tick: s.tick, log: s.log, what: "CDCP"}.run(ctx)
}

// tick forgets the bridge when its TTL ran out at now and applies a change
// the hold-down held whose credit is back; it returns when it is next due
// (zero: nothing to wait for).
func (s *CDCPStation) tick(now time.Time) time.Time {
	s.mu.Lock()
	changed := false
	if s.peer != nil && !now.Before(s.expires) {
		s.log.Warn("CDCP bridge information expired", "peer", s.latest.peer)
		changed = s.forgetLocked(now)
	}
	apply, next := s.hold.tick(now)
	if apply {
		changed = s.applyLocked(now) || changed
	}
	if s.peer != nil {
		next = earliest(next, s.expires)
	}
	st := s.stateLocked()
	s.mu.Unlock()
	if changed {
		s.changed(st)
	}
	return next
}

// forgetLocked drops the bridge at now (TTL, goodbye) and offers the
// hold-down that change; it reports whether it was applied at once.
func (s *CDCPStation) forgetLocked(now time.Time) bool {
	s.peer = nil
	s.state.Neighbor = nil
	return s.offerLocked(cdcpView{}, now)
}

// offerLocked takes the bridge's latest word (v) to the hold-down: it
// reports whether that changed the applied state now. A change held wakes
// Run, which applies it when its credit is back.
func (s *CDCPStation) offerLocked(v cdcpView, now time.Time) bool {
	if v.equal(s.latest) {
		return false
	}
	s.latest = v
	applied := cdcpView{bridge: s.state.Bridge, peer: s.state.Peer, mac: string(s.state.PeerMAC), chncap: s.state.ChnCap, granted: s.state.Granted}
	if !s.hold.change(now, v.equal(applied)) {
		select {
		case s.wake <- struct{}{}:
		default:
		}
		return false
	}
	return s.applyLocked(now)
}

// applyLocked makes the bridge's latest word the applied state, logging
// it; it reports whether that changed it.
func (s *CDCPStation) applyLocked(now time.Time) bool {
	v := s.latest
	if v.equal(cdcpView{bridge: s.state.Bridge, peer: s.state.Peer, mac: string(s.state.PeerMAC), chncap: s.state.ChnCap, granted: s.state.Granted}) {
		return false
	}
	var mac net.HardwareAddr
	if v.mac != "" {
		mac = net.HardwareAddr(v.mac)
	}
	s.state.Bridge, s.state.Peer, s.state.PeerMAC, s.state.ChnCap = v.bridge, v.peer, mac, v.chncap
	s.state.Granted, s.state.Updated = slices.Clone(v.granted), now
	if v.bridge {
		s.hold.logChange("CDCP answer from the bridge", "peer", v.peer, "chncap", v.chncap, "granted", fmt.Sprint(v.granted))
	} else {
		s.hold.logChange("no CDCP bridge: its answer no longer counts")
	}
	return true
}

// Handle takes a received LLDP frame addressed to the nearest non-TPMR
// bridge (as it was on the wire, tags included):
//
//	tagged                                  -> refused, Tagged++
//	another destination                     -> ignored (another agent's)
//	malformed                               -> ignored, Bad++
//	our own (reflected)                     -> ignored
//	TTL 0 from the peer                     -> the bridge is gone
//	no CDCP TLV, or not role B              -> ignored
//	another bridge while the peer's TTL runs -> ignored, Foreign++
//	the peer, or a bridge once there is none -> its answer is followed
func (s *CDCPStation) Handle(frame []byte) {
	if vlan.IsTagged(frame) {
		s.count(func(st *CDCPState) { st.Tagged++ })
		return
	}
	if len(frame) < 14 || [6]byte(frame[:6]) != NearestNonTPMRBridge {
		return
	}
	d, err := ParseFrame(frame)
	if err != nil {
		s.count(func(st *CDCPState) { st.Bad++ })
		s.log.Debug("bad LLDP frame to the nearest non-TPMR bridge on the uplink", "err", err)
		return
	}
	id := peerOf(d, [6]byte(frame[6:12]))
	now := time.Now()
	s.mu.Lock()
	s.state.Received++
	if string(id.src[:]) == string(s.mac) {
		s.mu.Unlock()
		return
	}
	fromPeer := s.peer != nil && *s.peer == id
	if d.TTL == 0 {
		if !fromPeer {
			s.mu.Unlock()
			return
		}
		s.hold.logChange("the CDCP bridge said goodbye", "peer", s.latest.peer)
		changed := s.forgetLocked(now)
		st := s.stateLocked()
		s.mu.Unlock()
		if changed {
			s.changed(st)
		}
		return
	}
	if d.CDCP == nil || d.CDCP.Role != CDCPRoleBridge {
		s.mu.Unlock()
		return
	}
	if !fromPeer && s.peer != nil && now.Before(s.expires) {
		s.state.Foreign++
		s.mu.Unlock()
		return
	}
	s.peer, s.expires = &id, now.Add(time.Duration(d.TTL)*time.Second)
	s.state.Neighbor = &CDCPNeighbor{ChassisID: chassisString(d), MAC: net.HardwareAddr(slices.Clone(id.src[:])), TLV: *d.CDCP, TTL: d.TTL, LastSeen: now}
	granted := slices.Clone(d.CDCP.Pairs)
	if !d.CDCP.SComp {
		granted = nil // no S-VLAN component: nothing but the link itself
	}
	changed := s.offerLocked(cdcpView{bridge: true, peer: chassisString(d), mac: string(id.src[:]), chncap: d.CDCP.ChnCap, granted: granted}, now)
	st := s.stateLocked()
	s.mu.Unlock()
	if changed {
		s.changed(st)
	}
}

func (s *CDCPStation) count(f func(*CDCPState)) {
	s.mu.Lock()
	f(&s.state)
	s.mu.Unlock()
}

func (s *CDCPStation) changed(st CDCPState) {
	if s.cfg.OnChange != nil {
		s.cfg.OnChange(st)
	}
}
