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
// numbers from 4096 up, handed out when a port first uses the pair. Each
// number counts the ports using its pair; one no port uses any more goes
// back to a free list (release) and is handed out again only after the FDB
// entries still carrying it are purged.
//
// A change costs in proportion to the port's VLANs: reserve and release
// touch only the pairs of the port, and the table the snapshot carries is
// copied on write, one S-VID's row at a time.

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
	refs []int32           // domain - firstSDomain -> ports using the pair
	free []uint16          // released numbers
	tab  domainTable       // what the next snapshot carries
}

// noPair marks a released number in keys.
const noPair = ^uint32(0)

func pairKey(svid, cvid uint16) uint32 { return uint32(svid)<<12 | uint32(cvid) }

// reserve numbers every (S-VID, C-VID) pair of c and counts c as a user of
// each. It returns the numbers it took from the free list (the caller
// purges their FDB entries) and fails, changing nothing, when the numbers
// are used up.
func (d *domains) reserve(c *portcfg.Config) (reused []uint16, err error) {
	if c.SVID == 0 {
		return nil, nil
	}
	fresh := 0
	each(c, func(vid uint16) {
		if _, ok := d.ids[pairKey(c.SVID, vid)]; !ok {
			fresh++
		}
	})
	if n := fresh - len(d.free); n > 0 && firstSDomain+len(d.keys)+n > maxDomains {
		return nil, fmt.Errorf("port %s: too many S-channel VLANs in use (%d pairs of S-VID and VID at most)", c.Name, maxDomains-firstSDomain)
	}
	if d.ids == nil {
		d.ids = map[uint32]uint16{}
	}
	var row *[vlan.MaxVID + 2]uint16
	if fresh > 0 {
		row = d.tab.writable(c.SVID)
	}
	each(c, func(vid uint16) {
		k := pairKey(c.SVID, vid)
		if dom, ok := d.ids[k]; ok {
			d.refs[dom-firstSDomain]++
			return
		}
		var dom uint16
		if len(d.free) > 0 { // oldest first: the longest since any snapshot used it
			dom, d.free = d.free[0], d.free[1:]
			d.keys[dom-firstSDomain] = k
			d.refs[dom-firstSDomain] = 1
			reused = append(reused, dom)
		} else {
			dom = uint16(firstSDomain + len(d.keys))
			d.keys = append(d.keys, k)
			d.refs = append(d.refs, 1)
		}
		d.ids[k] = dom
		row[vid] = dom
	})
	return reused, nil
}

// release counts c as a user of its pairs no more; the numbers of pairs
// nobody uses go back to the free list.
func (d *domains) release(c *portcfg.Config) {
	if c.SVID == 0 {
		return
	}
	var row *[vlan.MaxVID + 2]uint16
	each(c, func(vid uint16) {
		k := pairKey(c.SVID, vid)
		dom, ok := d.ids[k]
		if !ok {
			return
		}
		if d.refs[dom-firstSDomain]--; d.refs[dom-firstSDomain] > 0 {
			return
		}
		delete(d.ids, k)
		d.keys[dom-firstSDomain] = noPair
		d.free = append(d.free, dom)
		if row == nil {
			row = d.tab.writable(c.SVID)
		}
		row[vid] = 0
	})
}

// pair is the inverse of the table's domain; false for a number not in
// use.
func (d *domains) pair(dom uint16) (svid, cvid uint16, ok bool) {
	if dom < firstSDomain {
		return 0, dom, true
	}
	i := int(dom - firstSDomain)
	if i >= len(d.keys) || d.keys[i] == noPair {
		return 0, 0, false
	}
	k := d.keys[i]
	return uint16(k >> 12), uint16(k & 0xfff), true
}

// each calls fn for every VID of c (none while it waits for the bridge to
// assign its VLAN).
func each(c *portcfg.Config, fn func(vid uint16)) {
	if !c.IsTrunk() {
		if c.VLAN != 0 {
			fn(c.VLAN)
		}
		return
	}
	for vid := uint16(1); vid <= vlan.MaxVID; vid++ {
		if c.HasVID(vid) {
			fn(vid)
		}
	}
}

// domainTable maps S-channel pairs to their domains: one row of C-VIDs per
// S-VID (0 in a row: no port uses the pair); S-VIDs without pairs share one
// row of zeros. Snapshots share the table; it is never written once
// published (writable copies).
type domainTable struct {
	rows *[vlan.MaxVID + 2]*[vlan.MaxVID + 2]uint16
}

// newDomainTable returns a table without pairs.
func newDomainTable() domainTable {
	rows := new([vlan.MaxVID + 2]*[vlan.MaxVID + 2]uint16)
	zero := new([vlan.MaxVID + 2]uint16)
	for i := range rows {
		rows[i] = zero
	}
	return domainTable{rows: rows}
}

// writable gives the caller a private copy of the table and of svid's row,
// to change before the next snapshot is published.
func (t *domainTable) writable(svid uint16) *[vlan.MaxVID + 2]uint16 {
	if t.rows == nil {
		*t = newDomainTable()
	}
	rows := new([vlan.MaxVID + 2]*[vlan.MaxVID + 2]uint16)
	*rows = *t.rows
	row := new([vlan.MaxVID + 2]uint16)
	*row = *rows[svid&0xfff]
	rows[svid&0xfff] = row
	t.rows = rows
	return row
}

// domain returns the learning domain of (svid, cvid), or noDomain when no
// port uses that S-channel pair. It is on the frame path, inlined into
// ingressDest.resolve: keep it that small.
func (t domainTable) domain(svid, cvid uint16) uint16 {
	if svid == 0 {
		return cvid
	}
	if d := t.rows[svid&0xfff][cvid&0xfff]; d != 0 {
		return d
	}
	return noDomain
}
