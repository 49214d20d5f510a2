package evbbridge

import (
	"slices"
	"time"
)

// CDCPConfig configures the bridge's S-VLAN component for CDCP (S-channel
// discovery and configuration, 802.1Qbg-2012 clause 42). The bridge sends
// a CDCP TLV with role B, SComp set, its ChnCap and the SCID/SVID pairs it
// grants: always (1, 1), the default S-channel, then an answer to each
// pair the station asked for that the policy grants, in the station's
// order, as long as ChnCap allows.
type CDCPConfig struct {
	// ChnCap is the number of S-channels the bridge supports, the default
	// one included (default 16; at most 167, what a TLV can carry).
	ChnCap uint16
	// Grant decides a pair the station asks for (SCID > 1): the S-VID the
	// bridge assigns it, or false to leave it out. nil grants every pair
	// as asked (GrantAll).
	Grant func(want Pair) (svid uint16, ok bool)
	// Pool holds the S-VIDs handed to pairs that ask for S-VID 0 (any),
	// lowest first; none left: not granted.
	Pool []uint16
}

func (c CDCPConfig) clone() CDCPConfig {
	c.Pool = slices.Clone(c.Pool)
	return c
}

// GrantAll grants every pair as asked.
func GrantAll(want Pair) (uint16, bool) { return want.SVID, true }

// DenyAll grants nothing but the default S-channel.
func DenyAll(Pair) (uint16, bool) { return 0, false }

// GrantSVIDs grants only pairs asking for one of svids.
func GrantSVIDs(svids ...uint16) func(Pair) (uint16, bool) {
	return func(want Pair) (uint16, bool) { return want.SVID, slices.Contains(svids, want.SVID) }
}

// StationCDCP is the last CDCP TLV heard from the station.
type StationCDCP struct {
	CDCPTLV
	Time time.Time
}

// SetCDCP changes the CDCP policy (nil: the bridge stops sending the CDCP
// TLV); the answer goes out at once.
func (b *Bridge) SetCDCP(c *CDCPConfig) {
	b.mu.Lock()
	if c == nil {
		b.cdcp = nil
	} else {
		cc := c.clone()
		b.cdcp = &cc
	}
	b.eventLocked()
	b.mu.Unlock()
	b.poke()
}

// StationCDCP returns the station's last CDCP TLV (false: none heard).
func (b *Bridge) StationCDCP() (StationCDCP, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.station == nil {
		return StationCDCP{}, false
	}
	s := *b.station
	s.Pairs = slices.Clone(s.Pairs)
	return s, true
}

// CDCPTLV returns what the bridge sends now (role B; false: CDCP off).
func (b *Bridge) CDCPTLV() (CDCPTLV, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cdcp == nil {
		return CDCPTLV{}, false
	}
	return b.cdcpTLVLocked(), true
}

func (b *Bridge) stationCDCPLocked(c CDCPTLV, now time.Time) {
	if c.Role != RoleS {
		b.logf("CDCP TLV with role %d ignored: not a station's", c.Role)
		return
	}
	same := b.station != nil && b.station.SComp == c.SComp && b.station.ChnCap == c.ChnCap && slices.Equal(b.station.Pairs, c.Pairs)
	b.station = &StationCDCP{CDCPTLV: c, Time: now}
	b.eventLocked()
	if !same {
		b.poke() // answer at once
	}
}

// cdcpTLVLocked is the bridge's answer to what the station asked last.
func (b *Bridge) cdcpTLVLocked() CDCPTLV {
	c := *b.cdcp
	if c.ChnCap == 0 {
		c.ChnCap = 16
	}
	if c.ChnCap > 167 {
		c.ChnCap = 167
	}
	grant := c.Grant
	if grant == nil {
		grant = GrantAll
	}
	out := CDCPTLV{Role: RoleB, SComp: true, ChnCap: c.ChnCap, Pairs: []Pair{{1, 1}}}
	if b.station == nil || !b.station.SComp {
		return out
	}
	pool := slices.Clone(c.Pool)
	used := map[uint16]bool{1: true}
	scids := map[uint16]bool{1: true}
	for _, want := range b.station.Pairs {
		if len(out.Pairs) >= int(c.ChnCap) {
			break
		}
		if want.SCID <= 1 || want.SCID > 0xfff || scids[want.SCID] || want.SVID > 4094 {
			continue // the default channel (answered above), or nonsense
		}
		svid, ok := grant(want)
		if ok && svid == 0 {
			ok = false
			for len(pool) > 0 && !ok {
				svid, pool = pool[0], pool[1:]
				ok = !used[svid]
			}
		}
		if !ok || svid < 2 || svid > 4094 || used[svid] {
			continue
		}
		used[svid], scids[want.SCID] = true, true
		out.Pairs = append(out.Pairs, Pair{want.SCID, svid})
	}
	return out
}
