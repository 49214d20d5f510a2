package datapath

import (
	"fmt"

	portcfg "github.com/vswitch/vswitch/pkg/port"
	"github.com/vswitch/vswitch/pkg/vlan"
)

// A domain is the learning scope of the FDB: a C-VID on its own, or an
// (S-VID, C-VID) pair for S-channel ports. Ports on different S-channels
// with the same C-VID belong to different tenants, so a MAC learned in one
// must not answer lookups in the other. FDB keys hold the domain in the 16
// bits above the MAC (MACKey): domains 0-4095 are plain C-VIDs, so keys of
// ports without an S-channel are MACKey(vid, mac); S-channel pairs get
// numbers from 4096 up, handed out when a port first uses the pair. A number
// no port uses any more goes back to a free list (release) and is handed
// out again only after the FDB entries still carrying it are purged.

const (
	firstSDomain = vlan.MaxVID + 2 // 4096
	// noDomain is what domain returns for a pair no port uses: no entry
	// is ever learned or registered with it, so lookups miss.
	noDomain   = 0xffff
	maxDomains = noDomain // numbers firstSDomain..noDomain-1
)

// domains numbers the (S-VID, C-VID) pairs in use; guarded by Switch.mu.
type domains struct {
	ids  map[uint32]uint16 // svid<<12 | cvid -> domain
	keys []uint32          // domain - firstSDomain -> svid<<12 | cvid (noPair: free)
	free []uint16          // released numbers
}

// noPair marks a released number in keys.
const noPair = ^uint32(0)

func pairKey(svid, cvid uint16) uint32 { return uint32(svid)<<12 | uint32(cvid) }

// reserve numbers every (S-VID, C-VID) pair of c. It returns the numbers
// it took from the free list (the caller purges their FDB entries) and
// fails, changing nothing, when the numbers are used up.
func (d *domains) reserve(c *portcfg.Config) (reused []uint16, err error) {
	if c.SVID == 0 {
		return nil, nil
	}
	var add []uint32
	each(c, func(vid uint16) {
		if _, ok := d.ids[pairKey(c.SVID, vid)]; !ok {
			add = append(add, pairKey(c.SVID, vid))
		}
	})
	if fresh := len(add) - len(d.free); fresh > 0 && firstSDomain+len(d.keys)+fresh > maxDomains {
		return nil, fmt.Errorf("port %s: too many S-channel VLANs in use (%d pairs of S-VID and VID at most)", c.Name, maxDomains-firstSDomain)
	}
	if d.ids == nil {
		d.ids = map[uint32]uint16{}
	}
	for _, k := range add {
		var dom uint16
		if len(d.free) > 0 { // oldest first: the longest since any snapshot used it
			dom, d.free = d.free[0], d.free[1:]
			d.keys[dom-firstSDomain] = k
			reused = append(reused, dom)
		} else {
			dom = uint16(firstSDomain + len(d.keys))
			d.keys = append(d.keys, k)
		}
		d.ids[k] = dom
	}
	return reused, nil
}

// release frees the numbers of pairs not in used.
func (d *domains) release(used map[uint32]bool) {
	for k, dom := range d.ids {
		if !used[k] {
			delete(d.ids, k)
			d.keys[dom-firstSDomain] = noPair
			d.free = append(d.free, dom)
		}
	}
}

// each calls fn for every VID of c.
func each(c *portcfg.Config, fn func(vid uint16)) {
	if !c.IsTrunk() {
		fn(c.VLAN)
		return
	}
	for vid := uint16(1); vid <= vlan.MaxVID; vid++ {
		if c.HasVID(vid) {
			fn(vid)
		}
	}
}

// domainTable is the read-only copy a snapshot carries.
type domainTable struct {
	ids  map[uint32]uint16
	keys []uint32
}

func (d *domains) table() domainTable {
	t := domainTable{ids: make(map[uint32]uint16, len(d.ids)), keys: append([]uint32(nil), d.keys...)}
	for k, v := range d.ids {
		t.ids[k] = v
	}
	return t
}

// domain returns the learning domain of (svid, cvid), or noDomain when no
// port uses that S-channel pair.
func (t *domainTable) domain(svid, cvid uint16) uint16 {
	if svid == 0 {
		return cvid
	}
	if d, ok := t.ids[pairKey(svid, cvid)]; ok {
		return d
	}
	return noDomain
}

// pair is the inverse of domain; false for a number not in use.
func (t *domainTable) pair(dom uint16) (svid, cvid uint16, ok bool) {
	if dom < firstSDomain {
		return 0, dom, true
	}
	i := int(dom - firstSDomain)
	if i >= len(t.keys) || t.keys[i] == noPair {
		return 0, 0, false
	}
	k := t.keys[i]
	return uint16(k >> 12), uint16(k & 0xfff), true
}
