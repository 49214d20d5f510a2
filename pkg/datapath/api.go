package datapath

import (
	"bytes"
	"net"
	"slices"
	"sort"

	portcfg "github.com/vswitch/vswitch/pkg/port"
)

// PortStatus is a port's configuration, attachment and counters.
type PortStatus struct {
	Config   portcfg.Config
	Attached bool
	Counters CounterSnapshot
	// LearnedMACs is the number of MACs the port has in the FDB;
	// MaxMACs the limit in effect (its own, or FDBLimits.PerPort).
	LearnedMACs, MaxMACs int
}

// Ports lists every port, sorted by name.
func (s *Switch) Ports() []PortStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]PortStatus, 0, len(s.ports))
	for _, p := range s.ports {
		v := p.view.Load()
		ps := PortStatus{Config: v.cfg, Counters: p.ctr.Snapshot(), LearnedMACs: s.fdb.SlotCount(p.slot), MaxMACs: int(v.maxMACs)}
		if io := p.io.Load(); io != nil {
			ps.Attached = true
			ps.Counters.addQueueDrops(io.tap.Stats())
			ps.Counters.Backend = backendCounters(p.backend, io.tap, io.up)
		} else {
			ps.Counters.Backend = backendCounters(p.backend)
		}
		out = append(out, ps)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Config.Name < out[j].Config.Name })
	return out
}

// UplinkCounters returns the uplink's counters. Its Backend counters are
// those of the uplink's own queues (receive workers, control plane); what
// the ports' transmit queues on the uplink count is in each port's.
func (s *Switch) UplinkCounters() CounterSnapshot {
	cs := s.uplink.Snapshot()
	cs.Control = s.control.Load()
	s.mu.Lock()
	for _, w := range s.workers {
		cs.addQueueDrops(w.q.Stats())
	}
	cs.Backend = backendCounters(s.uplinkBackend, s.uplinkQueuesLocked()...)
	s.mu.Unlock()
	return cs
}

// DropTotals returns the switch's drops per reason name, every reason
// present (zero included): the uplink's, every port's and those of the
// ports deleted since New. Unlike a port's counters, which go with the
// port, no total ever goes down, so a rate or an alert over them is right
// while ports come and go, from the first drop on (vswitch_drops_total).
func (s *Switch) DropTotals() map[string]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n [numReasons]uint64
	add := func(c *Counters) {
		for i := range n {
			n[i] += c.drops[i].Load()
		}
	}
	add(&s.uplink)
	add(&s.retired)
	for _, p := range s.ports {
		add(&p.ctr)
	}
	cs := CounterSnapshot{Drops: make(map[string]uint64, numReasons)}
	for i, v := range n {
		cs.Drops[Reason(i).String()] = v
	}
	for _, w := range s.workers {
		cs.addQueueDrops(w.q.Stats())
	}
	for _, p := range s.ports {
		if io := p.io.Load(); io != nil {
			cs.addQueueDrops(io.tap.Stats())
		}
	}
	return cs.Drops
}

// LearnedFDB lists the learned (not registered) entries, for saving.
func (s *Switch) LearnedFDB() []FDBEntry {
	s.mu.Lock() // for the learning domains' pairs
	defer s.mu.Unlock()
	return sortFDB(s.learnedLocked(s.snap.Load(), 0))
}

// FDBVersion changes whenever LearnedFDB may list something else: an entry
// was learned, moved to another port or removed, or the configuration (the
// ports and their VLANs and registered MACs, which decide how entries are
// listed) changed. A refresh of a learned entry does not change it, so a
// caller that saves the list only when the version moved does nothing
// while the network is steady.
func (s *Switch) FDBVersion() uint64 { return s.fdb.changes.Load() + s.published.Load() }

// RestoreFDB re-learns a saved entry, within the limits learning
// observes (the port's, its VLAN's, the FDB's). It reports false when the
// port is unknown, does not carry the VLAN or registers its MACs (it
// learns none), when another port registered or learned the MAC in that
// VLAN, or when a limit leaves no room.
func (s *Switch) RestoreFDB(vid uint16, mac net.HardwareAddr, port string) bool {
	s.mu.Lock()
	p, ok := s.ports[port]
	s.mu.Unlock()
	if !ok || len(mac) != 6 || mac[0]&1 != 0 || isZeroMAC(mac) {
		return false
	}
	v := p.view.Load()
	if !v.cfg.HasVID(vid) || len(v.macs) != 0 {
		return false
	}
	snap := s.snap.Load()
	dom := snap.dom.domain(v.cfg.SVID, vid)
	if dom == noDomain {
		return false
	}
	if _, ok := snap.registered(v.cfg.SVID, vid, mac); ok {
		return false
	}
	return s.fdb.learn(MACKey(dom, mac), p.slot, s.fdb.now(), v.maxMACs, false)
}

// FDBStats are the FDB's occupancy and limits.
type FDBStats struct {
	Learned int       // learned entries
	Limits  FDBLimits // in effect (defaults filled in; PerPort 0: ports without a limit of their own learn nothing)
}

// FDBStats returns the FDB's occupancy and limits.
func (s *Switch) FDBStats() FDBStats { return FDBStats{Learned: s.fdb.Len(), Limits: s.cfg.FDB} }

// FDBEntry is one forwarding entry. VID is the C-VID; SVID the S-channel
// (0: none).
type FDBEntry struct {
	FDBRow
	SVID   uint16
	Port   string
	Static bool
}

// FDBEntries lists registered and learned entries (vid 0: all C-VIDs): a
// registered MAC once per VLAN of its port, a learned one as learned
// (unless a port registered it in that VLAN: that entry wins lookups).
// FDBSize says beforehand how long the list is.
func (s *Switch) FDBEntries(vid uint16) []FDBEntry {
	s.mu.Lock() // for the learning domains' pairs
	defer s.mu.Unlock()
	snap := s.snap.Load()
	var out []FDBEntry
	for _, v := range snap.slots {
		if v == nil || len(v.cfg.MACs) == 0 {
			continue
		}
		each(&v.cfg, func(cvid uint16) {
			if vid != 0 && cvid != vid {
				return
			}
			for _, m := range v.cfg.MACs {
				out = append(out, FDBEntry{FDBRow: FDBRow{VID: cvid, MAC: m, Slot: v.slot}, SVID: v.cfg.SVID, Port: v.cfg.Name, Static: true})
			}
		})
	}
	return sortFDB(append(out, s.learnedLocked(snap, vid)...))
}

// FDBSize is at most how many entries FDBEntries(vid) lists, counted
// without listing them: a registered MAC counts once per VLAN of its port
// (a trunk of 4094 VLANs with 256 MACs lists a million), a learned one
// once.
func (s *Switch) FDBSize(vid uint16) int {
	n := 0
	for _, v := range s.snap.Load().slots {
		if v == nil || len(v.cfg.MACs) == 0 {
			continue
		}
		vids := 0
		switch {
		case vid != 0:
			if v.cfg.HasVID(vid) {
				vids = 1
			}
		case !v.cfg.IsTrunk():
			if v.cfg.VLAN != 0 { // 0: waiting for the bridge's VID, in no VLAN
				vids = 1
			}
		default:
			vids = v.cfg.Trunk.Len()
			if nv := v.cfg.NativeVLAN; nv != 0 && !v.cfg.Trunk.Has(nv) {
				vids++
			}
		}
		n += vids * len(v.cfg.MACs)
	}
	if vid == 0 {
		return n + s.fdb.Len()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n += s.fdb.DomainCount(vid)
	for i, k := range s.doms.keys {
		if k != noPair && uint16(k&0xfff) == vid {
			n += s.fdb.DomainCount(uint16(firstSDomain + i))
		}
	}
	return n
}

// learnedLocked lists the learned entries of C-VID vid (0: all) that no
// registration shadows. s.mu is held.
func (s *Switch) learnedLocked(snap *snapshot, vid uint16) []FDBEntry {
	rows := s.fdb.Rows(0)
	out := make([]FDBEntry, 0, len(rows))
	for _, r := range rows {
		if r.Slot < 0 || r.Slot >= len(snap.slots) || snap.slots[r.Slot] == nil {
			continue
		}
		svid, cvid, ok := s.doms.pair(r.VID)
		if !ok || vid != 0 && cvid != vid {
			continue
		}
		if _, static := snap.registered(svid, cvid, r.MAC); static {
			continue
		}
		r.VID = cvid
		out = append(out, FDBEntry{FDBRow: r, SVID: svid, Port: snap.slots[r.Slot].cfg.Name})
	}
	return out
}

// sortFDB sorts entries by S-VID, VID and MAC.
func sortFDB(es []FDBEntry) []FDBEntry {
	slices.SortFunc(es, func(a, b FDBEntry) int {
		if a.SVID != b.SVID {
			return int(a.SVID) - int(b.SVID)
		}
		if a.VID != b.VID {
			return int(a.VID) - int(b.VID)
		}
		return bytes.Compare(a.MAC, b.MAC)
	})
	return es
}
