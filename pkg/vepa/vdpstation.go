package vepa

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"sync"
	"time"
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
	// Manager is the VSI manager ID its PDUs carry.
	Manager [16]byte
	// VSI is what is asked of the bridge: Mode VDPPreAssoc or VDPAssoc,
	// Status the request's hints (VDPHintM).
	VSI     VSI
	State   string
	Reason  string // the bridge's reason for a failure, or why the station asks again
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
	Logger        *slog.Logger
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
}

type vsiEntry struct {
	VSIStatus
	sent     time.Time // last request sent
	asked    time.Time // first request of the unanswered ones (zero: answered)
	deassoc  bool      // to be de-associated, then forgotten
	hints    uint8     // of that de-association (VDPHintS)
	answered bool      // an answer arrived since the last request
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
	ecp  *ECP
	log  *slog.Logger
	kick chan struct{}

	mu     sync.Mutex
	vsis   map[[16]byte]*vsiEntry
	gone   []*VDPPDU // de-associations of replaced registrations, sent first
	bridge bool
	peer   [6]byte // the bridge's address, when bridge
	timers Timers  // in use (SetTimers)
	stats  VDPStats
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
	s := &VDPStation{cfg: cfg, log: cfg.Logger, kick: make(chan struct{}, 1), vsis: map[[16]byte]*vsiEntry{}}
	e, err := NewECP(ECPConfig{MAC: cfg.MAC, Send: cfg.Send, Deliver: s.deliver, Retries: cfg.R, RTE: cfg.RTE})
	if err != nil {
		return nil, err
	}
	s.ecp = e
	s.timers = Timers{R: uint8(min(e.cfg.Retries, MaxR)), RTE: e.cfg.RTE, RWD: cfg.RWD, RKA: cfg.RKA}
	return s, nil
}

// SetTimers makes the station use t (the timers the EVB TLV negotiated)
// from now on: ECP's R and RTE for the next request, RWD for the requests
// awaiting an answer, RKA for the keep-alives. A new RKA is announced with
// a keep-alive of each (pre-)associated VSI at once: the bridge times a
// VSI out after 1.5 × its keep-alive period from the last refresh, under
// the period it used then, so after a longer period the next keep-alive
// must not wait for it (lldpad dropped a VSI whose keep-alive went from
// 655 ms to 2.6 s when its RKA rose: its timer still ran for 1.15 s).
func (s *VDPStation) SetTimers(t Timers) {
	s.ecp.SetTimers(t.R, t.RTE)
	s.mu.Lock()
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
	s.ecp.SetPeer(peer)
	s.mu.Lock()
	replaced := s.bridge && present && s.peer != mac
	changed := s.bridge != present || replaced
	s.bridge, s.peer = present, mac
	now := time.Now()
	for id, e := range s.vsis {
		switch {
		case replaced && e.deassoc:
			delete(s.vsis, id) // the new bridge never knew it
		case replaced:
			e.State, e.Reason, e.Updated, e.sent, e.asked, e.answered = e.requesting(), "the bridge changed", now, time.Time{}, time.Time{}, false
		case !present && !e.deassoc:
			e.State, e.Updated, e.asked = VSIWaiting, now, time.Time{}
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
	s.mu.Unlock()
	s.ecp.SetMAC(mac)
}

// Associate registers (or replaces) VSI v under key with the station's
// manager ID; the ASSOC goes out from Run.
func (s *VDPStation) Associate(key string, v VSI) {
	v.Mode, v.Status = VDPAssoc, 0
	s.Register(key, s.cfg.ManagerID, v)
}

// Register registers (or replaces) VSI v under key and manager mgr: v.Mode
// is VDPPreAssoc (a VM about to arrive: the bridge reserves what it needs)
// or VDPAssoc, and v.Status holds the request's hints (VDPHintM: the VM
// migrated here; other bits are ignored). Registering the same VSI again
// changes nothing; a new mode (PRE-ASSOC to ASSOC) or hint is sent at
// once; a registration whose manager, type, version or filters change is
// de-associated first, as the bridge knows it, and then registered anew.
// The requests go out from Run.
func (s *VDPStation) Register(key string, mgr [16]byte, v VSI) {
	if v.Mode != VDPPreAssoc {
		v.Mode = VDPAssoc
	}
	v.Status &= VDPHintM
	s.mu.Lock()
	old, ok := s.vsis[v.ID]
	if ok && !old.deassoc && old.Key == key && old.Manager == mgr && sameVSI(old.VSI, v) &&
		old.VSI.Mode == v.Mode && old.VSI.Status == v.Status {
		s.mu.Unlock()
		return
	}
	if ok && !old.deassoc && old.State != VSIWaiting && s.bridge && (old.Manager != mgr || !sameVSI(old.VSI, v)) {
		d := old.VSI
		d.Mode, d.Status = VDPDeassoc, 0
		s.gone = append(s.gone, &VDPPDU{ManagerID: old.Manager, VSIs: []VSI{d}})
	}
	e := &vsiEntry{VSIStatus: VSIStatus{Key: key, Manager: mgr, VSI: v, State: VSIWaiting, Updated: time.Now()}}
	if s.bridge {
		e.State = e.requesting()
	}
	s.vsis[v.ID] = e
	s.mu.Unlock()
	s.poke()
}

// sameFilters reports whether an answer's filters are the entry's (a VID
// the station left 0 may come back assigned).
func sameFilters(entry, answer VSI) bool {
	if len(entry.Filters) != len(answer.Filters) {
		return false
	}
	for i, f := range entry.Filters {
		g := answer.Filters[i]
		if f.MAC.String() != g.MAC.String() || f.GroupID != g.GroupID || f.VID != 0 && f.VID != g.VID {
			return false
		}
	}
	return true
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
		if e.State == VSIWaiting || !s.bridge {
			delete(s.vsis, id)
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

// ECPStats returns the transport counters.
func (s *VDPStation) ECPStats() ECPStats { return s.ecp.Stats() }

// Handle takes a received ECP frame, as it was on the wire. Frames from
// our own address (the reflective relay returns what we send to the bridge
// group address when it floods it) are ignored; of the others ECP takes
// only untagged ones from the bridge named by SetBridge (ECP.Handle).
func (s *VDPStation) Handle(frame []byte) {
	s.mu.Lock()
	own := s.cfg.MAC
	s.mu.Unlock()
	if len(frame) >= 12 && [6]byte(frame[6:12]) == own {
		return
	}
	s.ecp.Handle(frame)
}

// deliver takes a VDP PDU from the bridge: answers to our requests, or a
// de-association of its own (it forgets a VSI that was not refreshed).
// An answer counts only for the registration it answers (same manager,
// type, version and filters): one for a registration since replaced is
// ignored. A de-association of the bridge's own matches by VSIID and
// filters. A bridge refuses with an error in the status (hard, keep, or a
// reason), answering with the request's mode or, as lldpad does, with a
// DEASSOC.
func (s *VDPStation) deliver(payload []byte) {
	p, err := ParseVDP(payload)
	if err != nil {
		s.log.Debug("bad VDP PDU from the bridge", "err", err)
		return
	}
	now := time.Now()
	s.mu.Lock()
	kick := false
	for _, v := range p.VSIs {
		e, ok := s.vsis[v.ID]
		if !ok || !sameFilters(e.VSI, v) {
			continue // not ours, or about filters it no longer has
		}
		if v.Status&VDPStatusAck != 0 && (e.Manager != p.ManagerID || e.VSI.TypeID != v.TypeID || e.VSI.TypeVersion != v.TypeVersion) {
			continue // an answer for a registration since replaced
		}
		refused := v.Status&(VDPStatusHard|VDPStatusKeep|0x0f) != 0
		switch {
		case v.Status&VDPStatusAck == 0 && v.Mode == VDPDeassoc:
			// The bridge dropped it: register again.
			e.State, e.Reason, e.Updated, e.sent, e.asked = e.requesting(), "de-associated by the bridge", now, time.Time{}, time.Time{}
			s.stats.BridgeDeassociations++
			kick = true
		case v.Status&VDPStatusAck == 0:
			// a request of ours reflected, or something not for us
		case e.deassoc:
			if v.Mode == VDPDeassoc {
				delete(s.vsis, v.ID)
			}
		case refused && (v.Mode == e.VSI.Mode || v.Mode == VDPDeassoc):
			e.State, e.Reason, e.Updated, e.answered, e.asked = VSIFailed, refusal(v.Status), now, true, time.Time{}
			s.stats.Refused++
		case v.Mode == e.VSI.Mode:
			if st := answeredState(e.VSI.Mode); e.State != st {
				e.State, e.Reason, e.Updated = st, "", now
			}
			e.answered, e.asked = true, time.Time{}
			s.stats.Acknowledged++
		}
	}
	s.mu.Unlock()
	if kick {
		s.poke()
	}
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
// and DEASSOCs for removed and replaced ones.
func (s *VDPStation) Run(ctx context.Context) {
	t := time.NewTimer(s.wake(time.Now()))
	defer t.Stop()
	var last time.Time // when the last PDU was acknowledged
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
		case <-t.C:
		}
		for _, pdu := range s.due(time.Now()) {
			b, err := pdu.Append(nil)
			if err != nil {
				s.log.Error("encode VDP PDU", "err", err)
				continue
			}
			if wait := pduGap - time.Since(last); wait > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(wait):
				}
			}
			err = s.ecp.Request(ctx, b)
			last = time.Now()
			switch {
			case err == nil, ctx.Err() != nil:
			case errors.Is(err, ErrPeerChanged):
				// The bridge went or was replaced (SetBridge): the rest
				// of these PDUs were for it too; what the next one needs
				// is due afresh.
				s.log.Debug("VDP request given up: the bridge changed", "err", err)
			default:
				s.mu.Lock()
				s.stats.Unacknowledged++
				s.mu.Unlock()
				s.log.Warn("VDP request not acknowledged by the bridge", "err", err)
			}
			if errors.Is(err, ErrPeerChanged) {
				break
			}
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

// wake is how long Run may sleep: until the next request is due (a
// keep-alive, a re-send, a response wait running out), 200 ms at most,
// 1 ms at least, so each is sent on time whatever the timers.
func (s *VDPStation) wake(now time.Time) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := now.Add(200 * time.Millisecond)
	if !s.bridge {
		return next.Sub(now) // nothing is sent: SetBridge pokes Run
	}
	keep, respWait := s.timers.KeepAlive(), s.timers.ResponseWait()
	for _, e := range s.vsis {
		var at time.Time
		switch {
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

// due collects the PDUs to send now (one VSI each) and marks them sent:
//
//	new, or to be asked again         at once
//	unanswered                        again every second (answerWait); once
//	                                  unanswered for the response wait delay
//	                                  (Timers.ResponseWait) it fails, and is
//	                                  asked again after the keep-alive period
//	answered (or failed)              again after the keep-alive period (RKA)
//	removed                           one DEASSOC
func (s *VDPStation) due(now time.Time) []*VDPPDU {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.bridge {
		return nil
	}
	out := s.gone
	s.stats.Deassociations += uint64(len(out))
	s.gone = nil
	keep, respWait := s.timers.KeepAlive(), s.timers.ResponseWait()
	for id, e := range s.vsis {
		v := e.VSI
		if !e.deassoc && !e.answered && !e.asked.IsZero() && now.Sub(e.asked) >= respWait {
			// The bridge has not answered within its resource wait
			// delay: as 41.5.5.9 the request failed.
			e.State, e.Updated, e.answered, e.asked = VSIFailed, now, true, time.Time{}
			e.Reason = fmt.Sprintf("no answer from the bridge within the response wait delay (%v)", respWait.Round(time.Millisecond))
			s.stats.Timeouts++
			continue
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
			}
			if e.answered || e.asked.IsZero() {
				e.asked = now
			}
			e.sent, e.answered = now, false
		default:
			continue
		}
		out = append(out, &VDPPDU{ManagerID: e.Manager, VSIs: []VSI{v}})
	}
	return out
}

// String shows a VSI status for logs.
func (v VSIStatus) String() string {
	return fmt.Sprintf("%s %s %x", v.Key, v.State, v.VSI.ID)
}
