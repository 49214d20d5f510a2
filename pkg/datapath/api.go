package datapath

import (
	"net"
	"sort"
)

// PortStatus is a port's configuration, attachment and counters.
type PortStatus struct {
	Config   PortConfig
	Attached bool
	Counters CounterSnapshot
}

// Ports lists every port, sorted by name.
func (s *Switch) Ports() []PortStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]PortStatus, 0, len(s.ports))
	for _, p := range s.ports {
		ps := PortStatus{Config: p.view.Load().cfg, Counters: p.ctr.Snapshot()}
		if io := p.io.Load(); io != nil {
			ps.Attached = true
			ps.Counters.addQueueDrops(io.tap.Stats())
		}
		out = append(out, ps)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Config.Name < out[j].Config.Name })
	return out
}

// UplinkCounters returns the uplink's counters.
func (s *Switch) UplinkCounters() CounterSnapshot {
	cs := s.uplink.Snapshot()
	s.mu.Lock()
	for _, w := range s.workers {
		cs.addQueueDrops(w.q.Stats())
	}
	s.mu.Unlock()
	return cs
}

// LearnedFDB lists the learned (not registered) entries, for saving.
func (s *Switch) LearnedFDB() []FDBEntry {
	var out []FDBEntry
	for _, e := range s.FDBEntries(0) {
		if !e.Static {
			out = append(out, e)
		}
	}
	return out
}

// RestoreFDB re-learns a saved entry; it reports false when the port is
// unknown or does not carry the VLAN.
func (s *Switch) RestoreFDB(vid uint16, mac net.HardwareAddr, port string) bool {
	s.mu.Lock()
	p, ok := s.ports[port]
	s.mu.Unlock()
	if !ok || len(mac) != 6 || mac[0]&1 != 0 {
		return false
	}
	v := p.view.Load()
	if !v.cfg.hasVID(vid) {
		return false
	}
	s.fdb.Learn(MACKey(vid, mac), p.slot)
	return true
}

// FDBEntry is one forwarding entry.
type FDBEntry struct {
	FDBRow
	Port   string
	Static bool
}

// FDBEntries lists registered and learned entries (vid 0: all).
func (s *Switch) FDBEntries(vid uint16) []FDBEntry {
	snap := s.snap.Load()
	var out []FDBEntry
	for _, v := range snap.slots {
		if v == nil {
			continue
		}
		for k, slot := range snap.static {
			if slot != v.slot || (vid != 0 && uint16(k>>48) != vid) {
				continue
			}
			row := FDBRow{VID: uint16(k >> 48), Slot: slot, MAC: macOfKey(k)}
			out = append(out, FDBEntry{FDBRow: row, Port: v.cfg.Name, Static: true})
		}
	}
	for _, r := range s.fdb.Rows(vid) {
		if r.Slot < 0 || r.Slot >= len(snap.slots) || snap.slots[r.Slot] == nil {
			continue
		}
		if _, static := snap.static[MACKey(r.VID, r.MAC)]; static {
			continue
		}
		out = append(out, FDBEntry{FDBRow: r, Port: snap.slots[r.Slot].cfg.Name})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].VID != out[j].VID {
			return out[i].VID < out[j].VID
		}
		return out[i].MAC.String() < out[j].MAC.String()
	})
	return out
}
