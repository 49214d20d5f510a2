package datapath

import (
	"slices"
)

// The registered MACs (port.Config.MACs) of every port are indexed once
// per MAC, not per VLAN: a trunk of 4094 VLANs with 256 MACs costs 256
// entries. A lookup finds the slots that registered the MAC and keeps the
// first whose port carries the frame's S-VID and VID, the check unicast
// delivery makes anyway. The index is immutable and shared by snapshots;
// a change copies only the shards holding the MACs it touches.

// staticShards is the number of shards of the index (a power of two).
const staticShards = 1024

// staticEntry is one registration: MACKey(0, mac) and the slot of the
// port that registered it.
type staticEntry struct {
	mac  uint64
	slot int32
}

// staticIndex maps each registered MAC to the slots that registered it.
// Each shard is sorted by (mac, slot).
type staticIndex struct {
	n      int // registrations
	shards *[staticShards][]staticEntry
}

func staticShard(mac uint64) int { return int(hashKey(mac) & (staticShards - 1)) }

// slots returns the registrations of mac (MACKey(0, mac)), in slot order.
func (x *staticIndex) slots(mac uint64) []staticEntry {
	if x.n == 0 {
		return nil
	}
	sh := x.shards[staticShard(mac)]
	lo, hi := 0, len(sh)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if sh[m].mac < mac {
			lo = m + 1
		} else {
			hi = m
		}
	}
	end := lo
	for end < len(sh) && sh[end].mac == mac {
		end++
	}
	return sh[lo:end]
}

// with returns a copy of x in which slot registers add instead of remove
// (its old and new MACs, as MACKey(0, mac)). Only the shards of those MACs
// are copied.
func (x staticIndex) with(slot int, remove, add []uint64) staticIndex {
	if len(remove) == 0 && len(add) == 0 {
		return x
	}
	shards := new([staticShards][]staticEntry)
	if x.shards != nil {
		*shards = *x.shards
	}
	adds := make(map[int]int, len(remove)+len(add)) // touched shard -> MACs added to it
	for _, m := range remove {
		adds[staticShard(m)] += 0
	}
	for _, m := range add {
		adds[staticShard(m)]++
	}
	n := x.n
	for i, k := range adds {
		old := shards[i]
		sh := make([]staticEntry, 0, len(old)+k)
		for _, e := range old {
			if int(e.slot) != slot {
				sh = append(sh, e)
			} else {
				n--
			}
		}
		for _, m := range add {
			if staticShard(m) == i {
				sh = append(sh, staticEntry{mac: m, slot: int32(slot)})
				n++
			}
		}
		slices.SortFunc(sh, func(a, b staticEntry) int {
			if a.mac != b.mac {
				if a.mac < b.mac {
					return -1
				}
				return 1
			}
			return int(a.slot - b.slot)
		})
		if len(sh) == 0 {
			sh = nil
		}
		shards[i] = sh
	}
	return staticIndex{n: n, shards: shards}
}

// registered returns the slot of a port that registered mac and carries
// C-VID vid on S-channel svid (0: none).
func (s *snapshot) registered(svid, vid uint16, mac []byte) (int, bool) {
	if s.static.n == 0 {
		return 0, false
	}
	for _, e := range s.static.slots(MACKey(0, mac)) {
		if slot := int(e.slot); slot < len(s.slots) {
			if v := s.slots[slot]; v != nil && v.cfg.SVID == svid && v.cfg.HasVID(vid) {
				return slot, true
			}
		}
	}
	return 0, false
}
