package vepa

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/vswitch/vswitch/pkg/vlan"
)

// Reflective relay states (api.RelayStatus.State).
const (
	RelayUnknown = "unknown" // no EVB bridge heard (or its TTL ran out), or it has not answered yet
	RelayGranted = "granted" // the bridge set RRCTR
	RelayRefused = "refused" // the bridge cannot reflect (no RRCAP)
)

// Default timers of the station's LLDP agent (IEEE 802.1AB defaults).
const (
	DefaultInterval = 30 * time.Second // msgTxInterval
	fastInterval    = time.Second      // msgFastTx
	fastCount       = 4                // txFastInit
	ttlMultiplier   = 4                // msgTxHold
)

// Relay is what the station knows about reflective relay.
type Relay struct {
	State   string
	Peer    string    // the bridge's chassis ID ("" when none heard)
	Updated time.Time // last change of State or Peer
	// PeerMAC is the source address of the bridge's LLDPDUs (nil when
	// none heard): the only address VDP's ECP accepts frames from.
	PeerMAC net.HardwareAddr
	// Bridge is the last EVB TLV heard from the bridge (nil: none).
	Bridge *EVB
	// Sent and Received count LLDPDUs; Bad counts received frames that
	// did not parse. Ignored counts the LLDPDUs to another agent's
	// address handed to the station (Received counts them too): the
	// nearest bridge's (01:80:c2:00:00:0e), and the nearest non-TPMR
	// bridge's (01:80:c2:00:00:03, CDCP's) when no CDCP agent runs.
	Sent, Received, Bad, Ignored uint64
	// Frames refused by the peer rules (see Handle): Tagged counts
	// LLDPDUs that carried a VLAN tag, Foreign the EVB TLVs of a bridge
	// other than the peer while the peer's TTL runs, ForeignShutdown the
	// shutdown LLDPDUs (TTL 0) of anyone but the peer.
	Tagged, Foreign, ForeignShutdown uint64
	// Neighbor is the peer's last LLDPDU (nil: no peer).
	Neighbor *Neighbor
	// Timers are the ECP and VDP timers in use (Negotiate): the local
	// ones while no bridge is heard.
	Timers NegotiatedTimers
	// RelayHold and TimersHold are what the hold-down (holddown.go) did
	// with the bridge's changes of State, Peer, PeerMAC or BGID, and of
	// Timers: State, Peer, PeerMAC, Updated and Timers are the applied
	// ones; Bridge, Neighbor and the counters are the bridge's last word.
	RelayHold, TimersHold HoldDown
}

// StationConfig configures a Station.
type StationConfig struct {
	// MAC of the uplink: source address, chassis ID and port ID.
	MAC net.HardwareAddr
	// Send transmits a frame on the uplink.
	Send func(frame []byte) error
	// RequestRelay sets RRREQ: the station wants reflective relay (VEPA).
	RequestRelay bool
	// Interval between LLDPDUs after the fast start (default 30 s).
	Interval time.Duration
	// Local holds the station's ECP/VDP timer proposals (R, RTE, RWD,
	// RKA, and ROLRWD/ROLRKA to follow the bridge's RWD/RKA: see
	// Negotiate); the status bits and mode are the station's to set.
	Local EVB
	// GroupIDs sets SGID: the station takes group IDs in VDP (filter
	// formats 3 and 4; they are used when the bridge sets BGID too).
	GroupIDs bool
	// OnChange is called (from the station's goroutine or Handle) when
	// the relay state or peer changes, or the bridge's BGID.
	OnChange func(Relay)
	// OnTimers is called, before OnChange, when the timers in use change
	// (the bridge's EVB TLV changed them, or the bridge went away).
	OnTimers func(NegotiatedTimers)
	Logger   *slog.Logger
}

// DefaultLocal are the timer proposals of a station (lldpad's defaults:
// R 3, RTE 8, RWD 20, RKA 20).
var DefaultLocal = EVB{R: 3, RTE: 8, RWD: 20, RKA: 20}

// Station is the EVB station role of the nearest-customer-bridge LLDP
// agent: it sends LLDPDUs with an EVB TLV asking for reflective relay and
// follows the bridge's answer. Feed it received LLDP frames with Handle
// and run it with Run.
type Station struct {
	cfg  StationConfig
	log  *slog.Logger
	kick chan struct{} // send now

	wake chan struct{} // a change is held: Run's timer is to be looked at

	mu      sync.Mutex
	mac     net.HardwareAddr
	relay   Relay
	peer    *peerID   // the bridge followed (nil: none)
	expires time.Time // when the peer's information runs out
	// latest is what the bridge's last word says of the relay (the
	// applied view is in relay, and bgid); latestTimers the timers it
	// gives. They differ from the applied ones while the hold-down holds
	// a change (relayHold, timersHold).
	latest                relayView
	bgid                  bool
	latestTimers          NegotiatedTimers
	relayHold, timersHold holdDown
}

// relayView is what OnChange reports a change of: the relay state, the
// peer (chassis ID and source MAC) and the bridge's BGID.
type relayView struct {
	state, peer, mac string
	bgid             bool
}

// peerID identifies the LLDP agent the station follows: chassis ID, port
// ID (each with its subtype) and the source address of its frames. An
// LLDPDU that differs in any of them comes from someone else.
type peerID struct {
	chassisSub, portSub uint8
	chassis, port       string
	src                 [6]byte
}

func peerOf(d *LLDPDU, src [6]byte) peerID {
	return peerID{chassisSub: d.ChassisSubtype, portSub: d.PortSubtype, chassis: string(d.ChassisID), port: string(d.PortID), src: src}
}

// NewStation checks cfg and returns a station (not yet running).
func NewStation(cfg StationConfig) (*Station, error) {
	if len(cfg.MAC) != 6 {
		return nil, fmt.Errorf("evb station: uplink MAC %q is not an Ethernet address", cfg.MAC)
	}
	if cfg.Send == nil {
		return nil, fmt.Errorf("evb station: no Send function")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := cfg.Local.Timers().Check(); err != nil {
		return nil, fmt.Errorf("evb station: %w", err)
	}
	s := &Station{cfg: cfg, log: cfg.Logger, kick: make(chan struct{}, 1), wake: make(chan struct{}, 1), mac: append(net.HardwareAddr(nil), cfg.MAC...),
		relay: Relay{State: RelayUnknown, Updated: time.Now(), Timers: Negotiate(cfg.Local, nil)}}
	s.latest, s.latestTimers = relayView{state: RelayUnknown}, s.relay.Timers
	s.relayHold = holdDown{what: "reflective relay", log: s.log}
	s.timersHold = holdDown{what: "EVB timers", log: s.log}
	s.warnClamps(NegotiatedTimers{}, s.relay.Timers)
	return s, nil
}

// warnClamps logs, at warn, the sanity bounds n applies that were not
// applied, or not to the same values, in prev: once per clamp, not at
// every LLDPDU.
func (s *Station) warnClamps(prev, n NegotiatedTimers) {
	old := prev.Clamps()
	for _, c := range n.Clamps() {
		if slices.Contains(old, c) {
			continue
		}
		from := n.RTEFrom
		bound := "at most"
		if c.Param == "RKA" {
			from, bound = n.RKAFrom, "at least"
		}
		s.log.Warn("EVB timer out of vswitchd's sanity bounds: using the bound", "param", c.Param, "negotiated", c.Negotiated,
			"from", from, "in_use", c.InUse, "bound", bound+" "+strconv.Itoa(int(c.InUse)), "timer", Timer(c.InUse))
	}
}

// SetMAC changes the station's address (the uplink was replaced by one
// with another MAC) and sends an LLDPDU with it soon.
func (s *Station) SetMAC(mac net.HardwareAddr) {
	if len(mac) != 6 {
		return
	}
	s.mu.Lock()
	same := string(s.mac) == string(mac)
	s.mac = append(net.HardwareAddr(nil), mac...)
	s.mu.Unlock()
	if !same {
		s.poke()
	}
}

func (s *Station) poke() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Relay returns the current reflective relay state.
func (s *Station) Relay() Relay {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.relay
	r.RelayHold, r.TimersHold = s.relayHold.HoldDown, s.timersHold.HoldDown
	if r.Bridge != nil {
		b := *r.Bridge
		r.Bridge = &b
	}
	r.PeerMAC = append(net.HardwareAddr(nil), r.PeerMAC...)
	if len(r.PeerMAC) == 0 {
		r.PeerMAC = nil
	}
	if r.Neighbor != nil {
		n := *r.Neighbor
		r.Neighbor = &n
	}
	return r
}

// Timers are the ECP and VDP timers in use now.
func (s *Station) Timers() NegotiatedTimers {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.relay.Timers
}

// LLDPDU is what the station sends now. RRSTAT is unknown until a bridge
// was heard, then yes if it set RRCTR and no otherwise (as lldpad's
// station reports it).
func (s *Station) LLDPDU() *LLDPDU {
	s.mu.Lock()
	bridge, mac := s.relay.Bridge, s.mac
	s.mu.Unlock()
	e := advertised(s.cfg.Local)
	e.BridgeStatus = 0
	e.Mode = ModeStation
	e.StationStatus = RRStatUnknown
	if s.cfg.RequestRelay {
		e.StationStatus |= StationRRREQ
	}
	if s.cfg.GroupIDs {
		e.StationStatus |= StationSGID
	}
	switch {
	case bridge == nil:
	case bridge.Granted():
		e.StationStatus = e.StationStatus&^0x03 | RRStatYes
	default:
		e.StationStatus = e.StationStatus&^0x03 | RRStatNo
	}
	ttl := s.cfg.Interval*ttlMultiplier + time.Second
	if ttl > 65535*time.Second {
		ttl = 65535 * time.Second
	}
	return &LLDPDU{
		ChassisSubtype: ChassisIDMAC, ChassisID: []byte(mac),
		PortSubtype: PortIDMAC, PortID: []byte(mac),
		TTL: uint16(ttl / time.Second), EVB: &e,
	}
}

// Shutdown sends a shutdown LLDPDU (TTL 0): the bridge forgets the
// station at once instead of after its TTL. Call it after Run returned.
func (s *Station) Shutdown() error {
	d := s.LLDPDU()
	d.TTL = 0
	return s.sendPDU(d)
}

// send transmits the current LLDPDU.
func (s *Station) send() error { return s.sendPDU(s.LLDPDU()) }

func (s *Station) sendPDU(d *LLDPDU) error {
	var src [6]byte
	copy(src[:], d.ChassisID)
	f, err := d.Frame(NearestCustomerBridge, src)
	if err != nil {
		return err
	}
	if err := s.cfg.Send(f); err != nil {
		return err
	}
	s.mu.Lock()
	s.relay.Sent++
	s.mu.Unlock()
	return nil
}

// Run sends LLDPDUs (fast at start and after a change, then every
// Interval, within 802.1AB's transmit credit), forgets the bridge when its
// TTL runs out and applies the changes the hold-down held, until ctx ends
// (txLoop).
func (s *Station) Run(ctx context.Context) {
	txLoop{interval: s.cfg.Interval, kick: s.kick, wake: s.wake, send: s.send, tick: s.tick, log: s.log, what: "EVB"}.run(ctx)
}

// tick forgets the bridge when its TTL ran out at now and applies the
// changes the hold-down held whose credit is back; it returns when it is
// next due (zero: nothing to wait for).
func (s *Station) tick(now time.Time) time.Time {
	s.mu.Lock()
	changed, poke := false, false
	var timers *NegotiatedTimers
	if s.peer != nil && !now.Before(s.expires) {
		s.log.Warn("EVB bridge information expired", "peer", s.latest.peer)
		changed, timers = s.forgetLocked(now)
		poke = true // RRSTAT back to unknown
	}
	apply, next := s.relayHold.tick(now)
	if apply {
		changed = s.applyRelayLocked(now) || changed
	}
	apply, nt := s.timersHold.tick(now)
	if apply {
		timers = s.applyTimersLocked()
	}
	next = earliest(next, nt)
	if s.peer != nil {
		next = earliest(next, s.expires)
	}
	s.mu.Unlock()
	if poke {
		s.poke()
	}
	s.timersChanged(timers)
	s.changed(changed)
	return next
}

// forgetLocked drops the peer at now (its TTL ran out, or it said
// goodbye) and offers the hold-down what that changes: the relay
// unknown, the local timers. It reports what was applied at once.
func (s *Station) forgetLocked(now time.Time) (bool, *NegotiatedTimers) {
	s.peer, s.expires = nil, now
	s.relay.Bridge, s.relay.Neighbor = nil, nil
	return s.offerRelayLocked(relayView{state: RelayUnknown}, now), s.offerTimersLocked(now)
}

// Handle takes a received LLDP frame (as it was on the wire, tags
// included). The station follows one peer, the EVB bridge it heard first,
// identified by chassis ID, port ID and source address (peerID):
//
//	tagged (any VLAN tag, priority tags too)  -> refused, Tagged++
//	not to the nearest-customer-bridge address -> ignored (another agent's),
//	                                              Received++, Ignored++
//	malformed                                  -> ignored, Bad++
//	our own LLDPDU (reflected by the relay)    -> ignored
//	TTL 0 from the peer                        -> the peer is gone: unknown
//	TTL 0 from anyone else                     -> ignored, ForeignShutdown++
//	no EVB TLV, or not a bridge's              -> ignored
//	an EVB bridge other than the peer          -> ignored, Foreign++, while
//	                                              the peer's TTL runs
//	the peer, or a bridge once there is none   -> followed (the state table
//	                                              of the package doc)
//
// So a new bridge is followed only after the old one's TTL ran out or it
// said goodbye with TTL 0, and a third party on the link can neither take
// the relay state over nor reset it.
func (s *Station) Handle(frame []byte) {
	if vlan.IsTagged(frame) {
		// The nearest-customer-bridge agent talks untagged: a tagged
		// LLDPDU crossed a VLAN, so it is not from the adjacent bridge.
		s.mu.Lock()
		s.relay.Tagged++
		s.mu.Unlock()
		return
	}
	if len(frame) >= 6 && [6]byte(frame[:6]) != NearestCustomerBridge {
		s.mu.Lock()
		s.relay.Received++
		s.relay.Ignored++
		s.mu.Unlock()
		return
	}
	d, err := ParseFrame(frame)
	if err != nil {
		s.mu.Lock()
		s.relay.Bad++
		s.mu.Unlock()
		s.log.Debug("bad LLDP frame on the uplink", "err", err)
		return
	}
	id := peerOf(d, [6]byte(frame[6:12])) // ParseFrame checked 14 bytes
	now := time.Now()
	s.mu.Lock()
	s.relay.Received++
	if string(id.src[:]) == string(s.mac) {
		s.mu.Unlock()
		return // our own, returned by the relay
	}
	fromPeer := s.peer != nil && *s.peer == id
	if d.TTL == 0 {
		if !fromPeer {
			s.relay.ForeignShutdown++
			s.mu.Unlock()
			s.log.Debug("shutdown LLDPDU from another sender ignored", "from", net.HardwareAddr(id.src[:]), "chassis", chassisString(d))
			return
		}
		// The peer says goodbye (a shutdown LLDPDU has no EVB TLV,
		// 802.1AB 9.2.7.1): forget it now rather than after its TTL.
		changed, timers := s.forgetLocked(now)
		s.mu.Unlock()
		s.poke() // RRSTAT back to unknown
		s.timersChanged(timers)
		s.changed(changed)
		return
	}
	if d.EVB == nil || d.EVB.Mode != ModeBridge {
		s.mu.Unlock()
		return
	}
	if !fromPeer && s.peer != nil && now.Before(s.expires) {
		s.relay.Foreign++
		s.mu.Unlock()
		s.log.Debug("EVB TLV of another bridge ignored while the peer's TTL runs", "from", net.HardwareAddr(id.src[:]),
			"chassis", chassisString(d), "peer", s.relay.Peer)
		return
	}
	// RRCAP without RRCTR, our RRREQ not echoed back: the bridge has not
	// seen the request yet.
	state := RelayUnknown
	switch {
	case !s.cfg.RequestRelay:
		state = RelayUnknown
	case d.EVB.Granted():
		state = RelayGranted
	case d.EVB.BridgeStatus&BridgeRRCAP == 0, d.EVB.StationStatus&StationRRREQ != 0:
		state = RelayRefused // cannot, or saw the request (it echoes our status) and said no
	}
	if !fromPeer && s.peer != nil {
		s.log.Info("EVB bridge replaced after its TTL ran out", "old", s.latest.peer, "new", chassisString(d))
	}
	s.peer, s.expires = &id, now.Add(time.Duration(d.TTL)*time.Second)
	e := *d.EVB
	before := s.relay.Bridge
	s.relay.Bridge = &e
	s.relay.Neighbor = neighborOf(d, now)
	changed := s.offerRelayLocked(relayView{state: state, peer: chassisString(d), mac: string(id.src[:]), bgid: e.BridgeStatus&BridgeBGID != 0}, now)
	timers := s.offerTimersLocked(now)
	rrstatChanged := before == nil || before.Granted() != e.Granted()
	s.mu.Unlock()
	if changed || rrstatChanged {
		s.poke() // tell the bridge our new RRSTAT at once
	}
	s.timersChanged(timers)
	s.changed(changed)
}

// offerRelayLocked takes what the bridge's latest word says of the relay
// (v) to the hold-down: it reports whether that changed the applied view
// now. A change held wakes Run, which applies it when its credit is back.
func (s *Station) offerRelayLocked(v relayView, now time.Time) bool {
	if v == s.latest {
		return false
	}
	s.latest = v
	applied := relayView{state: s.relay.State, peer: s.relay.Peer, mac: string(s.relay.PeerMAC), bgid: s.bgid}
	if !s.relayHold.change(now, v == applied) {
		s.wakeUp()
		return false
	}
	return s.applyRelayLocked(now)
}

// applyRelayLocked makes the bridge's latest word the applied view; it
// reports whether that changed it.
func (s *Station) applyRelayLocked(now time.Time) bool {
	v := s.latest
	mac := net.HardwareAddr(v.mac)
	if len(mac) == 0 {
		mac = nil
	}
	if s.relay.State == v.state && s.relay.Peer == v.peer && string(s.relay.PeerMAC) == v.mac && s.bgid == v.bgid {
		return false
	}
	if s.relay.State != v.state || s.relay.Peer != v.peer || string(s.relay.PeerMAC) != v.mac {
		s.relay.Updated = now
	}
	s.relay.State, s.relay.Peer, s.relay.PeerMAC, s.bgid = v.state, v.peer, mac, v.bgid
	return true
}

// offerTimersLocked takes the timers the bridge's latest word gives to
// the hold-down; it returns them when they are applied now, else nil.
func (s *Station) offerTimersLocked(now time.Time) *NegotiatedTimers {
	n := Negotiate(s.cfg.Local, s.relay.Bridge)
	if n == s.latestTimers {
		return nil
	}
	s.latestTimers = n
	if !s.timersHold.change(now, n == s.relay.Timers) {
		s.wakeUp()
		return nil
	}
	return s.applyTimersLocked()
}

// applyTimersLocked makes the latest timers the ones in use; it returns
// them when they changed, else nil.
func (s *Station) applyTimersLocked() *NegotiatedTimers {
	n := s.latestTimers
	if n == s.relay.Timers {
		return nil
	}
	s.timersHold.logChange("EVB timers", "r", n.R, "rte", n.RTE, "rwd", n.RWD, "rka", n.RKA,
		"ecp_ack_timeout", n.ECPAckTimeout(), "keepalive", n.KeepAlive(), "response_wait", n.ResponseWait())
	s.warnClamps(s.relay.Timers, n)
	s.relay.Timers = n
	return &n
}

func (s *Station) wakeUp() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Station) timersChanged(n *NegotiatedTimers) {
	if n != nil && s.cfg.OnTimers != nil {
		s.cfg.OnTimers(*n)
	}
}

func (s *Station) changed(changed bool) {
	if !changed || s.cfg.OnChange == nil {
		return
	}
	s.cfg.OnChange(s.Relay())
}

// chassisString shows a chassis ID: a MAC address as such, printable text
// as text, anything else in hex (RenderID).
func chassisString(d *LLDPDU) string {
	return RenderID(d.ChassisID, d.ChassisSubtype == ChassisIDMAC, false)
}
