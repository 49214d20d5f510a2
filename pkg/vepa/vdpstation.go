package vepa

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"sync"
	"time"

	"github.com/vswitch/vswitch/pkg/vlan"
)

// VSI states (api.VSI.State).
const (
	VSIWaiting        = "waiting"        // no EVB bridge heard yet: VDP waits for the EVB TLV exchange
	VSIPreAssociating = "preassociating" // PRE-ASSOC sent, no answer yet
	VSIPreAssociated  = "preassociated"  // the bridge acknowledged the pre-association
	VSIAssociating    = "associating"    // ASSOC sent, no answer yet
	VSIAssociated     = "associated"     // the bridge acknowledged the association
	VSIFailed         = "failed"         // the bridge refused; retried after the keep-alive time
)

// VSIStates are the VSI states, in the order a VSI goes through them (the
// metrics export each, so a state is never missing from a scrape).
var VSIStates = []string{VSIWaiting, VSIPreAssociating, VSIPreAssociated, VSIAssociating, VSIAssociated, VSIFailed}

// Hints a station sets in the status byte of its requests (IEEE
// 802.1Qbg-2012 clause 41; lldpad's VDP22_MIGTO and VDP22_MIGFROM). In a
// bridge's answer the same bits are the keep and hard-error flags: an
// answer has the ack bit set.
const (
	// VDPHintM (the M bit) on a (pre-)association: the VSI migrated to
	// this station.
	VDPHintM = 0x10
	// VDPHintS (the S bit) on a de-association: the VSI left this station
	// (migrated away); the bridge may keep what it holds for it.
	VDPHintS = 0x20
)

// VSIStatus is a VSI the station registers, with its state.
type VSIStatus struct {
	Key string // the caller's name for it (a port)
	// SVID is the S-channel the VSI is registered on: its ECP and VDP
	// frames carry that S-tag (802.1ad, TPID 0x88a8). 0: the untagged
	// link.
	SVID uint16
	// Manager is the VSI manager ID its PDUs carry.
	Manager [16]byte
	// VSI is what is asked of the bridge: Mode VDPPreAssoc or VDPAssoc,
	// Status the request's hints (VDPHintM). A filter's VID 0 asks the
	// bridge to assign one.
	VSI VSI
	// Answer holds the filters of the bridge's acknowledgement of the
	// registration, entry for entry (nil before one arrived, and again
	// once the registration lapsed: refused, de-associated, its bridge
	// gone). Where the request left the VID 0 or named a group ID, the
	// answer's VID is the one the bridge assigned (always 1-4094: an
	// answer without a usable VID fails the VSI). Keep-alives and the
	// DEASSOC carry the assigned VIDs, as lldpad's station does.
	Answer  []Filter
	State   string
	Reason  string // the bridge's reason for a failure, why the station asks again, or why it waits (SetHeldChannels)
	Updated time.Time
}

// VDPConfig configures a VDPStation.
type VDPConfig struct {
	MAC       [6]byte
	Send      func(frame []byte) error
	ManagerID [16]byte
	// Timer exponents (10 µs × 2^exp): RKA is the keep-alive (default 20,
	// 10.5 s), RWD the bridge's resource wait delay (default 20), from
	// which, with R and RTE, comes how long the station waits for an
	// answer (Timers.ResponseWait). R and RTE drive ECP. SetTimers
	// changes them all (to what the EVB TLV negotiated).
	RKA, RWD, RTE uint8
	R             int
	// OnChange, when set, is called after a VSI's state, reason or
	// answer changed through what the station heard or did (an answer,
	// a timeout, SetBridge, SetGroups); the caller reads VSIs. It may run
	// on the goroutines of Handle, Run, SetBridge and SetGroups, with
	// their callers' locks held: it must not block nor call the station.
	OnChange func()
	Logger   *slog.Logger
}

// VDPStats count what the station sent and what became of it.
type VDPStats struct {
	// Requests sent, by kind: Associations and PreAssociations are first
	// requests and re-sends of unanswered ones, KeepAlives the refreshes
	// of answered ones, Deassociations the DEASSOCs.
	Associations, PreAssociations, KeepAlives, Deassociations uint64
	// Answers: Acknowledged (the bridge accepted), Refused (an error
	// status), Timeouts (no answer within the response wait delay: the
	// VSI failed), BridgeDeassociations (the bridge dropped a VSI).
	Acknowledged, Refused, Timeouts, BridgeDeassociations uint64
	// Unacknowledged counts PDUs ECP could not deliver (no ECP
	// acknowledgement after R retries).
	Unacknowledged uint64
	// Unsolicited counts the bridge's acknowledgements (and refusals)
	// of a VSI that had no request out: ignored (deliver).
	Unsolicited uint64
}

type vsiEntry struct {
	VSIStatus
	sent     time.Time // last request sent
	asked    time.Time // first request of the unanswered ones (zero: answered)
	deassoc  bool      // to be de-associated, then forgotten
	hints    uint8     // of that de-association (VDPHintS)
	answered bool      // an answer arrived since the last request
}

// wire is the VSI TLV the station sends for the entry: the registration
// with the VIDs the bridge assigned, once it did (lldpad's station, too,
// keeps the VID of the bridge's answer: qbg/vdp22sm.c, vdp22_cpfid).
func (e *vsiEntry) wire() VSI {
	v := e.VSI
	if e.Answer == nil || len(e.Answer) != len(v.Filters) {
		return v
	}
	v.Filters = append([]Filter(nil), v.Filters...)
	for i := range v.Filters {
		v.Filters[i].VID = e.Answer[i].VID
	}
	return v
}

// known reports whether the bridge may know the entry's registration: it
// was sent (not waiting for a bridge, not held back for want of BGID).
func (e *vsiEntry) known() bool {
	return e.State != VSIWaiting && !(e.State == VSIFailed && e.Reason == reasonNoGroups)
}

// lapse forgets the bridge's answer: the registration must be asked for
// again (a VID 0 is asked with 0 again).
func (e *vsiEntry) lapse() { e.Answer = nil }

// reasonNoGroups is the Reason of a VSI with a group ID while the bridge
// does not take group IDs.
const reasonNoGroups = "the bridge does not support group IDs (no BGID in its EVB TLV): filter formats 3 and 4 need it"

// vdpChannel is VDP's transport on one channel: the untagged link (SVID
// 0) or an S-channel, whose ECP frames carry its S-tag.
type vdpChannel struct {
	svid uint16
	ecp  *ECP
	idle time.Time // since when no VSI uses it (zero: in use)
	// busy: a sender of Run's has PDUs of this channel out (due takes no
	// more of its PDUs meanwhile); last: when its last PDU was
	// acknowledged (pduGap).
	busy bool
	last time.Time
}

// channelLinger is how long an S-channel no VSI uses keeps its ECP
// endpoint (for the acknowledgement of its last DEASSOC).
const channelLinger = 10 * time.Second

// pending is a PDU due on a channel.
type pending struct {
	svid uint16
	ch   *vdpChannel
	pdu  *VDPPDU
}

// requesting is the state of an entry whose request is out.
func (e *vsiEntry) requesting() string {
	if e.VSI.Mode == VDPAssoc {
		return VSIAssociating
	}
	return VSIPreAssociating
}

// pduGap is the least time between two VDP PDUs the station sends. ECP
// allows the next as soon as the last is acknowledged, but lldpad hands a
// PDU to its VDP layer 2 ms after ECP acknowledged it, from one buffer per
// port (qbg/vdp22sm.c, vdp22_from_ecp22): a PDU that arrives sooner
// overwrites the one before, which is then lost (a DEASSOC followed at
// once by an ASSOC was). lldpad's event loop runs expired timers before it
// reads the next frame, so arriving after the 2 ms is enough.
const pduGap = 10 * time.Millisecond

// answerWait is how long the station waits for the bridge's answer to an
// ASSOC before sending it again (lldpad answers within milliseconds; RWD,
// 10.5 s by default, plus a keep-alive period would outlast the bridge's
// ~15.8 s timeout).
const answerWait = time.Second

// VDPStation registers VSIs with the adjacent bridge over ECP: it sends a
// PRE-ASSOC or ASSOC for each, repeats it every keep-alive period (the
// bridge forgets a VSI that is not refreshed), re-sends when no answer came
// within a second (marking an associated VSI associating again), and
// de-associates VSIs that are removed, or that change their identity
// (manager, type, version, filters) before they are registered again.
// Feed it the ECP frames received on the uplink (Handle) and run it (Run)
// while an EVB bridge is present (SetBridge).
type VDPStation struct {
	cfg  VDPConfig
	log  *slog.Logger
	kick chan struct{}

	mu      sync.Mutex
	vsis    map[[16]byte]*vsiEntry
	gone    []pending // de-associations of replaced registrations, sent first
	chans   map[uint16]*vdpChannel
	retired ECPStats // of the S-channels' endpoints since closed
	bridge  bool
	peer    [6]byte           // the bridge's address, when bridge
	groups  bool              // the bridge takes group IDs (BGID)
	held    map[uint16]string // S-channels VDP may not use, with why (SetHeldChannels)
	timers  Timers            // in use (SetTimers)
	stats   VDPStats
}

// NewVDPStation returns a station with no VSIs.
func NewVDPStation(cfg VDPConfig) (*VDPStation, error) {
	if cfg.Send == nil {
		return nil, errors.New("vdp: no Send function")
	}
	if cfg.RKA == 0 {
		cfg.RKA = 20
	}
	if cfg.RWD == 0 {
		cfg.RWD = 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &VDPStation{cfg: cfg, log: cfg.Logger, kick: make(chan struct{}, 1), vsis: map[[16]byte]*vsiEntry{}, chans: map[uint16]*vdpChannel{}, held: map[uint16]string{}}
	c, err := s.channelLocked(0)
	if err != nil {
		return nil, err
	}
	e := c.ecp // its R and RTE are cfg's, with ECP's defaults
	s.timers = Timers{R: uint8(min(e.cfg.Retries, MaxR)), RTE: e.cfg.RTE, RWD: cfg.RWD, RKA: cfg.RKA}
	return s, nil
}

// channelLocked returns the channel of S-VLAN svid (0: the untagged
// link), making its ECP endpoint on first use: it sends with the S-tag
// pushed and delivers what the bridge says there. s.mu is held (or s is
// not shared yet).
func (s *VDPStation) channelLocked(svid uint16) (*vdpChannel, error) {
	if c := s.chans[svid]; c != nil {
		c.idle = time.Time{}
		return c, nil
	}
	send := s.cfg.Send
	if svid != 0 {
		tag := vlan.Tag{TPID: vlan.TPIDSTag, TCI: vlan.MakeTCI(0, false, svid)}
		send = func(f []byte) error {
			b := make([]byte, len(f)+vlan.TagLen)
			return s.cfg.Send(b[:vlan.PushTo(b, f, tag)])
		}
	}
	var peer [6]byte
	if s.bridge {
		peer = s.peer
	}
	e, err := NewECP(ECPConfig{MAC: s.cfg.MAC, Send: send, Deliver: func(p []byte) { s.deliver(svid, p) }, Retries: s.cfg.R, RTE: s.cfg.RTE, Peer: peer})
	if err != nil {
		return nil, err
	}
	if svid != 0 {
		// The untagged link's endpoint, made by NewVDPStation, is where
		// the timers come from; an S-channel's uses those in use.
		e.SetTimers(s.timers.R, s.timers.RTE)
	}
	c := &vdpChannel{svid: svid, ecp: e}
	s.chans[svid] = c
	return c, nil
}

// pruneLocked closes the endpoints of S-channels no VSI has used for
// channelLinger, keeping their counters. s.mu is held.
func (s *VDPStation) pruneLocked(now time.Time) {
	used := map[uint16]bool{}
	for _, e := range s.vsis {
		used[e.SVID] = true
	}
	for _, g := range s.gone {
		used[g.svid] = true
	}
	for svid, c := range s.chans {
		switch {
		case svid == 0 || used[svid] || c.busy:
			c.idle = time.Time{}
		case c.idle.IsZero():
			c.idle = now
		case now.Sub(c.idle) >= channelLinger:
			s.retired.add(c.ecp.Stats())
			delete(s.chans, svid)
		}
	}
}

func (s *VDPStation) notify() {
	if s.cfg.OnChange != nil {
		s.cfg.OnChange()
	}
}

// SetTimers makes the station use t (the timers the EVB TLV negotiated)
// from now on: ECP's R and RTE for the next request, RWD for the requests
// awaiting an answer, RKA for the keep-alives. A new RKA is announced with
// a keep-alive of each (pre-)associated VSI at once: the bridge times a
// VSI out after 1.5 × its keep-alive period from the last refresh, under
// the period it used then, so after a longer period the next keep-alive
// must not wait for it (lldpad dropped a VSI whose keep-alive went from
// 655 ms to 2.6 s when its RKA rose: its timer still ran for 1.15 s).
//
// R and RTE apply to the ECP endpoints of every channel: the untagged
// link's and each S-channel's (and to those made later).
func (s *VDPStation) SetTimers(t Timers) {
	s.mu.Lock()
	for _, c := range s.chans {
		c.ecp.SetTimers(t.R, t.RTE)
	}
	changed := s.timers != t
	if t.RKA != s.timers.RKA {
		now := time.Now()
		for _, e := range s.vsis {
			if e.answered && !e.deassoc && e.State == answeredState(e.VSI.Mode) {
				e.sent = now.Add(-t.KeepAlive()) // due at once, as a keep-alive
			}
		}
	}
	s.timers = t
	s.mu.Unlock()
	if changed {
		s.poke()
	}
}

// Timers are the timers the station uses.
func (s *VDPStation) Timers() Timers {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.timers
}

// Stats returns the VDP counters.
func (s *VDPStation) Stats() VDPStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

func (s *VDPStation) poke() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// SetBridge tells the station which EVB bridge is present: its address
// (the source of its LLDPDUs, Relay.PeerMAC), or nil when there is none.
// VDP only talks to an EVB bridge, and ECP takes frames only from that
// address. Another bridge than before knows none of the VSIs: each is
// associated again with it at once.
func (s *VDPStation) SetBridge(peer net.HardwareAddr) {
	present := len(peer) == 6
	var mac [6]byte
	if present {
		mac = [6]byte(peer)
	}
	s.mu.Lock()
	for _, c := range s.chans {
		c.ecp.SetPeer(peer)
	}
	replaced := s.bridge && present && s.peer != mac
	changed := s.bridge != present || replaced
	s.bridge, s.peer = present, mac
	now := time.Now()
	for id, e := range s.vsis {
		switch {
		case replaced && e.deassoc:
			delete(s.vsis, id) // the new bridge never knew it
		case !e.deassoc && s.held[e.SVID] != "":
			// waits for its S-channel, whatever the bridge (SetHeldChannels)
		case replaced:
			e.State, e.Reason, e.Updated, e.sent, e.asked, e.answered = e.requesting(), "the bridge changed", now, time.Time{}, time.Time{}, false
			e.lapse()
		case !present && !e.deassoc:
			e.State, e.Updated, e.asked = VSIWaiting, now, time.Time{}
			e.lapse()
		case present && e.State == VSIWaiting:
			e.State, e.Updated, e.sent, e.asked = e.requesting(), now, time.Time{}, time.Time{}
		}
	}
	if replaced || !present {
		s.gone = nil // the bridge they were for is gone
	}
	s.mu.Unlock()
	if changed {
		s.poke()
		s.notify()
	}
}

// SetGroups tells the station whether the bridge takes group IDs (BGID
// in its EVB TLV). Without, VSIs whose filters carry a group ID (formats
// 3 and 4) are not sent: they fail with that reason until it does. Call
// it before SetBridge, so that the first requests to a bridge already
// know.
func (s *VDPStation) SetGroups(bridge bool) {
	s.mu.Lock()
	changed := s.groups != bridge
	s.groups = bridge
	if changed && bridge {
		now := time.Now()
		for _, e := range s.vsis {
			if e.State == VSIFailed && e.Reason == reasonNoGroups {
				e.State, e.Reason, e.Updated, e.sent, e.asked, e.answered = e.requesting(), "", now, time.Time{}, time.Time{}, false
			}
		}
	}
	s.mu.Unlock()
	if changed {
		s.poke()
		s.notify()
	}
}

// SetHeldChannels names the S-channels VDP may not use now, each with why
// (CDCP: the bridge did not grant it); the others, and the untagged link,
// may be used. The VSIs of a held S-channel wait (VSIWaiting, Reason the
// why) and nothing is sent for them there, not even a DEASSOC: a bridge
// that has not granted the S-channel has none of its VSIs. Once an
// S-channel is no longer held, its VSIs are registered again at once
// (a VID the bridge had assigned is asked for anew).
func (s *VDPStation) SetHeldChannels(held map[uint16]string) {
	s.mu.Lock()
	now, changed := time.Now(), false
	was := s.held
	s.held = map[uint16]string{}
	for svid, why := range held {
		if svid &= 0xfff; svid != 0 && why != "" {
			s.held[svid] = why
		}
	}
	for id, e := range s.vsis {
		why := s.held[e.SVID]
		switch {
		case why != "" && e.deassoc:
			delete(s.vsis, id) // the bridge has no VSI on the S-channel
		case why != "":
			if e.State != VSIWaiting || e.Reason != why {
				e.State, e.Reason, e.Updated = VSIWaiting, why, now
				changed = true
			}
			e.sent, e.asked, e.answered = time.Time{}, time.Time{}, false
			if e.Answer != nil {
				e.lapse()
				changed = true
			}
		case was[e.SVID] != "" && !e.deassoc:
			e.State, e.Reason, e.Updated, e.sent, e.asked, e.answered = VSIWaiting, "", now, time.Time{}, time.Time{}, false
			if s.bridge {
				e.State = e.requesting()
			}
			changed = true
		}
	}
	gone := s.gone[:0]
	for _, g := range s.gone {
		if s.held[g.svid] == "" {
			gone = append(gone, g)
		}
	}
	s.gone = gone
	s.mu.Unlock()
	if changed {
		s.poke()
		s.notify()
	}
}

// SetMAC changes the station's source address (the uplink was replaced);
// the ECP endpoint sends from it and the reflection filter compares with it.
func (s *VDPStation) SetMAC(mac net.HardwareAddr) {
	if len(mac) != 6 {
		return
	}
	s.mu.Lock()
	copy(s.cfg.MAC[:], mac)
	for _, c := range s.chans {
		c.ecp.SetMAC(mac)
	}
	s.mu.Unlock()
}

// Associate registers (or replaces) VSI v under key with the station's
// manager ID; the ASSOC goes out from Run.
func (s *VDPStation) Associate(key string, v VSI) {
	v.Mode, v.Status = VDPAssoc, 0
	s.Register(key, s.cfg.ManagerID, v)
}

// Register registers (or replaces) VSI v under key and manager mgr on the
// untagged link: RegisterOn with S-VLAN 0.
func (s *VDPStation) Register(key string, mgr [16]byte, v VSI) { s.RegisterOn(0, key, mgr, v) }

// RegisterOn registers (or replaces) VSI v under key and manager mgr on
// S-channel svid (0: the untagged link; clause 41 runs VDP on the channel
// the VSI's frames use): v.Mode is VDPPreAssoc (a VM about to arrive: the
// bridge reserves what it needs) or VDPAssoc, and v.Status holds the
// request's hints (VDPHintM: the VM migrated here; other bits are
// ignored). A filter with VID 0 asks the bridge for the VID (Answer).
// Registering the same VSI again changes nothing (nor forgets an assigned
// VID); a new mode (PRE-ASSOC to ASSOC) or hint is sent at once; a
// registration whose manager, type, version, filters or channel change is
// de-associated first, as the bridge knows it, and then registered anew.
// v's filters must encode (at most MaxFilters of its format); the
// requests go out from Run.
func (s *VDPStation) RegisterOn(svid uint16, key string, mgr [16]byte, v VSI) {
	svid &= 0xfff
	if v.Mode != VDPPreAssoc {
		v.Mode = VDPAssoc
	}
	v.Status &= VDPHintM
	s.mu.Lock()
	old, ok := s.vsis[v.ID]
	same := ok && !old.deassoc && old.SVID == svid && old.Manager == mgr && sameVSI(old.VSI, v)
	if same && old.Key == key && old.VSI.Mode == v.Mode && old.VSI.Status == v.Status {
		s.mu.Unlock()
		return
	}
	if ok && !old.deassoc && old.known() && s.bridge && !same && s.held[old.SVID] == "" {
		d := old.wire()
		d.Mode, d.Status = VDPDeassoc, 0
		if c, err := s.channelLocked(old.SVID); err == nil {
			s.gone = append(s.gone, pending{svid: old.SVID, ch: c, pdu: &VDPPDU{ManagerID: old.Manager, VSIs: []VSI{d}}})
		}
	}
	if _, err := s.channelLocked(svid); err != nil {
		s.mu.Unlock()
		s.log.Error("VDP: no ECP endpoint for the S-channel", "svid", svid, "err", err)
		return
	}
	e := &vsiEntry{VSIStatus: VSIStatus{Key: key, SVID: svid, Manager: mgr, VSI: v, State: VSIWaiting, Updated: time.Now()}}
	if same {
		e.Answer = old.Answer // a new mode or hint keeps what the bridge assigned
	}
	switch why := s.held[svid]; {
	case why != "":
		e.Reason = why // waits for its S-channel (SetHeldChannels)
	case s.bridge:
		e.State = e.requesting()
	}
	s.vsis[v.ID] = e
	s.mu.Unlock()
	s.poke()
}

// sameFilters reports whether an answer's filters are the entry's (a VID
// the station left 0 may come back assigned, and with a group ID any VID
// may come back: the bridge maps the group to its VID).
func sameFilters(entry, answer VSI) bool {
	if len(entry.Filters) != len(answer.Filters) || entry.FilterFormat != answer.FilterFormat {
		return false
	}
	group := GroupFormat(entry.FilterFormat)
	for i, f := range entry.Filters {
		g := answer.Filters[i]
		if f.MAC.String() != g.MAC.String() || f.GroupID != g.GroupID || f.VID != 0 && !group && f.VID != g.VID {
			return false
		}
	}
	return true
}

// badAssignment says what is wrong with the VIDs of the bridge's
// acknowledgement of request ("": nothing): where the request asked for
// a VID (0) or named a group, the answer must carry a VID 1-4094 (a
// bridge that answers VID 0, as lldpad's bridge role does, assigned
// none); where it named a group with a VID of its own, the bridge must
// map the group to that VID.
func badAssignment(request, answer VSI) string {
	group := GroupFormat(request.FilterFormat)
	for i, f := range request.Filters {
		g := answer.Filters[i]
		switch {
		case f.VID != 0 && !group:
		case g.VID == 0:
			return "the bridge assigned no VLAN: its answer carries VID 0"
		case g.VID > vlan.MaxVID:
			return fmt.Sprintf("the bridge assigned VID %d, which is reserved", g.VID)
		case f.VID != 0 && g.VID != f.VID:
			return fmt.Sprintf("the bridge maps group %d to VID %d, not to the VID %d asked for (ask with VID 0 to take the bridge's)", f.GroupID, g.VID, f.VID)
		}
	}
	return ""
}

func sameVSI(a, b VSI) bool {
	if a.TypeID != b.TypeID || a.TypeVersion != b.TypeVersion || a.IDFormat != b.IDFormat || a.FilterFormat != b.FilterFormat || len(a.Filters) != len(b.Filters) {
		return false
	}
	for i := range a.Filters {
		x, y := a.Filters[i], b.Filters[i]
		if x.VID != y.VID || x.PCP != y.PCP || x.PS != y.PS || x.GroupID != y.GroupID || x.MAC.String() != y.MAC.String() {
			return false
		}
	}
	return true
}

// Deassociate removes the VSI with this ID; a DEASSOC goes out from Run
// when the bridge knew it.
func (s *VDPStation) Deassociate(id [16]byte) { s.DeassociateWith(id, 0) }

// DeassociateWith is Deassociate with hints in the DEASSOC's status byte:
// VDPHintS when the VM migrated away (other bits are ignored).
func (s *VDPStation) DeassociateWith(id [16]byte, hints uint8) {
	s.mu.Lock()
	e, ok := s.vsis[id]
	if ok {
		if !e.known() || !s.bridge {
			delete(s.vsis, id) // the bridge never knew it
		} else {
			e.deassoc, e.hints = true, hints&VDPHintS
		}
	}
	s.mu.Unlock()
	if ok {
		s.poke()
	}
}

// VSIs lists the registered VSIs, sorted by key, then VSIID.
func (s *VDPStation) VSIs() []VSIStatus {
	s.mu.Lock()
	out := make([]VSIStatus, 0, len(s.vsis))
	for _, e := range s.vsis {
		if !e.deassoc {
			out = append(out, e.VSIStatus)
		}
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { // stable: a key may have several VSIs
		if out[i].Key != out[j].Key {
			return out[i].Key < out[j].Key
		}
		return bytes.Compare(out[i].VSI.ID[:], out[j].VSI.ID[:]) < 0
	})
	return out
}

// ECPStats returns the transport counters, summed over the untagged link
// and the S-channels.
func (s *VDPStation) ECPStats() ECPStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.retired
	for _, c := range s.chans {
		st.add(c.ecp.Stats())
	}
	return st
}

// Handle takes a received ECP frame, as it was on the wire. Frames from
// our own address (the reflective relay returns what we send to the bridge
// group address when it floods it) are ignored. A frame with one S-tag
// (TPID 0x88a8) of an S-channel that has VSIs goes, untagged, to that
// channel's ECP endpoint; everything else to the untagged link's, which
// takes only untagged frames from the bridge named by SetBridge
// (ECP.Handle: other tags are refused and counted as Tagged).
func (s *VDPStation) Handle(frame []byte) {
	s.mu.Lock()
	own := s.cfg.MAC
	ch := s.chans[0]
	if len(frame) >= vlan.HeaderLen+vlan.TagLen && binary.BigEndian.Uint16(frame[12:]) == vlan.TPIDSTag {
		if c := s.chans[binary.BigEndian.Uint16(frame[14:])&0xfff]; c != nil && c.svid != 0 {
			ch = c
		}
	}
	s.mu.Unlock()
	if len(frame) >= 12 && [6]byte(frame[6:12]) == own {
		return
	}
	if ch.svid != 0 {
		b := make([]byte, len(frame))
		frame = b[:vlan.PopTo(b, frame)]
	}
	ch.ecp.Handle(frame)
}

// deliver takes a VDP PDU from the bridge: answers to our requests, or a
// de-association of its own (it forgets a VSI that was not refreshed).
// An answer counts only while the VSI's request is out (one to no
// request is ignored and counted as Unsolicited) and only for the
// registration it answers (same manager, type, version and filters): one
// for a registration since replaced is ignored. A de-association of the bridge's own matches by VSIID and
// filters. A bridge refuses with an error in the status (hard, keep, or a
// reason), answering with the request's mode or, as lldpad does, with a
// DEASSOC.
//
// svid is the channel the PDU came on: it speaks only of the VSIs
// registered there, and not at all while the channel is held.
func (s *VDPStation) deliver(svid uint16, payload []byte) {
	p, err := ParseVDP(payload)
	if err != nil {
		s.log.Debug("bad VDP PDU from the bridge", "err", err, "svid", svid)
		return
	}
	now := time.Now()
	s.mu.Lock()
	if s.held[svid] != "" {
		// An answer that was on its way when CDCP took the S-channel
		// back: its VSIs wait (SetHeldChannels), whatever it says.
		s.mu.Unlock()
		return
	}
	kick, changed := false, false
	for _, v := range p.VSIs {
		e, ok := s.vsis[v.ID]
		if !ok || e.SVID != svid || !sameFilters(e.VSI, v) {
			continue // not ours, not on this channel, or about filters it no longer has
		}
		if v.Status&VDPStatusAck != 0 && (e.Manager != p.ManagerID || e.VSI.TypeID != v.TypeID || e.VSI.TypeVersion != v.TypeVersion) {
			continue // an answer for a registration since replaced
		}
		refused := v.Status&(VDPStatusHard|VDPStatusKeep|0x0f) != 0
		// A request of the VSI's is out: sent, and not answered nor
		// timed out since.
		outstanding := !e.sent.IsZero() && !e.answered
		switch {
		case v.Status&VDPStatusAck == 0 && v.Mode == VDPDeassoc:
			// The bridge dropped it: register again (a VID it had
			// assigned is asked for anew).
			e.State, e.Reason, e.Updated, e.sent, e.asked = e.requesting(), "de-associated by the bridge", now, time.Time{}, time.Time{}
			e.lapse()
			s.stats.BridgeDeassociations++
			kick, changed = true, true
		case v.Status&VDPStatusAck == 0:
			// a request of ours reflected, or something not for us
		case e.deassoc:
			if v.Mode == VDPDeassoc {
				delete(s.vsis, v.ID)
			}
		case !outstanding:
			// An answer to no request: the station takes the bridge's
			// response only while it waits for one (41.5.5); associated,
			// it heeds its keep-alive timer and the bridge's DEASSOC. A
			// late answer (one that crossed the bridge's DEASSOC, or came
			// after the response wait ran out) or a forged one must not
			// move the VSI to another VLAN nor fail it.
			s.stats.Unsolicited++
		case refused && (v.Mode == e.VSI.Mode || v.Mode == VDPDeassoc):
			e.State, e.Reason, e.Updated, e.answered, e.asked = VSIFailed, refusal(v.Status), now, true, time.Time{}
			e.lapse()
			s.stats.Refused++
			changed = true
		case v.Mode == e.VSI.Mode:
			e.answered = true
			if bad := badAssignment(e.VSI, v); bad != "" {
				if e.State != VSIFailed || e.Reason != bad {
					e.State, e.Reason, e.Updated = VSIFailed, bad, now
					changed = true
				}
				e.lapse()
				continue
			}
			if st := answeredState(e.VSI.Mode); e.State != st {
				e.State, e.Reason, e.Updated = st, "", now
				changed = true
			}
			if !sameVIDs(e.Answer, v.Filters) {
				changed = true
			}
			e.Answer = v.Filters
			s.stats.Acknowledged++
		}
	}
	s.mu.Unlock()
	if kick {
		s.poke()
	}
	if changed {
		s.notify()
	}
}

// sameVIDs reports whether two filter lists carry the same VIDs, entry
// for entry (nil and a list differ).
func sameVIDs(a, b []Filter) bool {
	if (a == nil) != (b == nil) || len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].VID != b[i].VID {
			return false
		}
	}
	return true
}

// answeredState is the state of a VSI whose request in mode was
// acknowledged.
func answeredState(mode uint8) string {
	if mode == VDPAssoc {
		return VSIAssociated
	}
	return VSIPreAssociated
}

// refusal words a bridge's error status for VSIStatus.Reason.
func refusal(status uint8) string {
	r, ok := VDPReasons[status&0x0f]
	if !ok {
		r = fmt.Sprintf("reason %d", status&0x0f)
	}
	if status&0x0f == 0 {
		r = "refused"
	}
	if status&VDPStatusKeep != 0 {
		r += " (the bridge keeps its previous state)"
	}
	return r
}

// Run sends what is due until ctx ends: requests for new VSIs, unanswered
// ones after a second, keep-alives after RKA (and failed ones then too),
// and DEASSOCs for removed and replaced ones. Each channel sends on its
// own (a goroutine per batch, one batch per channel at a time): an
// S-channel whose bridge side never acknowledges, each PDU waiting out its
// R retries, does not hold up the keep-alives of the other channels.
func (s *VDPStation) Run(ctx context.Context) {
	var senders sync.WaitGroup
	defer senders.Wait() // they end with ctx
	t := time.NewTimer(s.wake(time.Now()))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
		case <-t.C:
		}
		for _, batch := range s.batches(s.due(time.Now())) {
			senders.Add(1)
			go func() {
				defer senders.Done()
				s.send(ctx, batch)
			}()
		}
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
		t.Reset(s.wake(time.Now()))
	}
}

// send sends a batch of PDUs of one channel, in order, each once ECP
// acknowledged the one before and pduGap after it; then the channel may
// take the next batch (due), and Run is poked for it.
func (s *VDPStation) send(ctx context.Context, batch []pending) {
	c := batch[0].ch
	defer func() {
		s.mu.Lock()
		c.busy = false
		s.mu.Unlock()
		s.poke()
	}()
	for _, p := range batch {
		b, err := p.pdu.Append(nil)
		if err != nil {
			s.log.Error("encode VDP PDU", "err", err)
			continue
		}
		s.mu.Lock()
		last := c.last
		s.mu.Unlock()
		if wait := pduGap - time.Since(last); wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
		err = c.ecp.Request(ctx, b)
		s.mu.Lock()
		c.last = time.Now()
		s.mu.Unlock()
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return
		case errors.Is(err, ErrPeerChanged):
			// The bridge went or was replaced (SetBridge): the rest of
			// the batch was for it too; what the next one needs is due
			// afresh.
			s.log.Debug("VDP request given up: the bridge changed", "err", err, "svid", p.svid)
			return
		default:
			s.mu.Lock()
			s.stats.Unacknowledged++
			s.mu.Unlock()
			s.log.Warn("VDP request not acknowledged by the bridge", "err", err, "svid", p.svid)
		}
	}
}

// busyLocked reports whether S-VLAN svid's channel has a batch out (Run's
// send). s.mu is held.
func (s *VDPStation) busyLocked(svid uint16) bool {
	c := s.chans[svid]
	return c != nil && c.busy
}

// wake is how long Run may sleep: until the next request is due (a
// keep-alive, a re-send, a response wait running out), 200 ms at most,
// 1 ms at least, so each is sent on time whatever the timers. What waits
// for a busy channel is not due before the channel is free (send pokes
// Run then), but its response wait still runs out.
func (s *VDPStation) wake(now time.Time) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := now.Add(200 * time.Millisecond)
	if !s.bridge {
		return next.Sub(now) // nothing is sent: SetBridge pokes Run
	}
	for _, g := range s.gone {
		if !g.ch.busy {
			return time.Millisecond // DEASSOCs to send
		}
	}
	keep, respWait := s.timers.KeepAlive(), s.timers.ResponseWait()
	for _, e := range s.vsis {
		var at time.Time
		switch {
		case !e.deassoc && (s.held[e.SVID] != "" || !s.groups && GroupFormat(e.VSI.FilterFormat)):
			continue // not sent (due): SetHeldChannels and SetGroups poke Run
		case s.busyLocked(e.SVID):
			if e.deassoc || e.answered || e.asked.IsZero() {
				continue
			}
			at = e.asked.Add(respWait)
		case e.deassoc || e.sent.IsZero():
			at = now
		case e.answered:
			at = e.sent.Add(keep)
		default:
			at = e.sent.Add(answerWait)
			if !e.asked.IsZero() && e.asked.Add(respWait).Before(at) {
				at = e.asked.Add(respWait)
			}
		}
		if at.Before(next) {
			next = at
		}
	}
	return max(time.Millisecond, next.Sub(now))
}

// due collects the PDUs to send now (one VSI each, on its channel, none
// of a busy one: see batches) and marks them sent:
//
//	new, or to be asked again         at once
//	unanswered                        again every second (answerWait); once
//	                                  unanswered for the response wait delay
//	                                  (Timers.ResponseWait) it fails, and is
//	                                  asked again after the keep-alive period
//	answered (or failed)              again after the keep-alive period (RKA)
//	removed                           one DEASSOC
//	on an S-channel held (CDCP)       nothing: waiting (SetHeldChannels)
//	with a group ID, no BGID          nothing: failed with that reason
//	on a busy channel                 once the channel's batch is done
func (s *VDPStation) due(now time.Time) []pending {
	s.mu.Lock()
	if !s.bridge {
		s.mu.Unlock()
		return nil
	}
	var out []pending
	gone := s.gone[:0]
	for _, g := range s.gone {
		if g.ch.busy {
			gone = append(gone, g) // after the channel's batch
			continue
		}
		out = append(out, g)
		s.stats.Deassociations++
	}
	clear(s.gone[len(gone):])
	s.gone = gone
	keep, respWait := s.timers.KeepAlive(), s.timers.ResponseWait()
	changed := false
	for id, e := range s.vsis {
		if !e.deassoc && s.held[e.SVID] != "" {
			continue // waiting for its S-channel (SetHeldChannels)
		}
		if !e.deassoc && !s.groups && GroupFormat(e.VSI.FilterFormat) {
			if e.State != VSIFailed || e.Reason != reasonNoGroups {
				e.State, e.Reason, e.Updated, e.asked = VSIFailed, reasonNoGroups, now, time.Time{}
				e.lapse()
				changed = true
			}
			continue
		}
		v := e.wire()
		if !e.deassoc && !e.answered && !e.asked.IsZero() && now.Sub(e.asked) >= respWait {
			// The bridge has not answered within its resource wait
			// delay: as 41.5.5.9 the request failed.
			e.State, e.Updated, e.answered, e.asked = VSIFailed, now, true, time.Time{}
			e.Reason = fmt.Sprintf("no answer from the bridge within the response wait delay (%v)", respWait.Round(time.Millisecond))
			e.lapse()
			s.stats.Timeouts++
			changed = true
			continue
		}
		if s.busyLocked(e.SVID) {
			continue // its channel's batch first
		}
		switch {
		case e.deassoc:
			v.Mode, v.Status = VDPDeassoc, e.hints
			delete(s.vsis, id) // one DEASSOC; the bridge's ACK needs no state
			s.stats.Deassociations++
		case e.sent.IsZero(),
			!e.answered && now.Sub(e.sent) >= answerWait,
			e.answered && now.Sub(e.sent) >= keep:
			if !e.sent.IsZero() && !e.answered && e.State == answeredState(e.VSI.Mode) {
				e.State, e.Reason, e.Updated = e.requesting(), "no answer to the keep-alive", now
				changed = true
			}
			switch {
			case e.answered && e.State != VSIFailed:
				s.stats.KeepAlives++
			case v.Mode == VDPPreAssoc:
				s.stats.PreAssociations++
			default:
				s.stats.Associations++
			}
			if e.State == VSIFailed {
				e.State = e.requesting()
				changed = true
			}
			if e.answered || e.asked.IsZero() {
				e.asked = now
			}
			e.sent, e.answered = now, false
		default:
			continue
		}
		c, err := s.channelLocked(e.SVID)
		if err != nil {
			continue // NewECP refuses only a missing Send, checked at the start
		}
		out = append(out, pending{svid: e.SVID, ch: c, pdu: &VDPPDU{ManagerID: e.Manager, VSIs: []VSI{v}}})
	}
	s.pruneLocked(now)
	s.mu.Unlock()
	if changed {
		s.notify()
	}
	return out
}

// batches groups what due collected into one batch per channel, in the
// order collected (a replaced registration's DEASSOC before its new
// request), and marks those channels busy until send is done with their
// batch. Only Run calls due and batches, one after the other, so no PDU
// of a channel is collected between the two.
func (s *VDPStation) batches(out []pending) [][]pending {
	s.mu.Lock()
	defer s.mu.Unlock()
	var batches [][]pending
	at := map[*vdpChannel]int{}
	for _, p := range out {
		i, ok := at[p.ch]
		if !ok {
			i = len(batches)
			at[p.ch] = i
			batches = append(batches, nil)
			p.ch.busy = true
		}
		batches[i] = append(batches[i], p)
	}
	return batches
}

// String shows a VSI status for logs.
func (v VSIStatus) String() string {
	if v.SVID != 0 {
		return fmt.Sprintf("%s svid %d %s %x", v.Key, v.SVID, v.State, v.VSI.ID)
	}
	return fmt.Sprintf("%s %s %x", v.Key, v.State, v.VSI.ID)
}
