package datapath

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	portcfg "github.com/vswitch/vswitch/pkg/port"
)

// FDB is the learned forwarding database: (domain, MAC) -> port slot. It is
// a fixed-size open-addressing hash table of atomic words, so lookups and
// learning from many goroutines take no lock and allocate nothing. Deleted
// entries become tombstones; the table is rebuilt by Sweep when they pile up.
//
// The table counts its entries per port slot, per learning domain and in
// all, and learning a new MAC first reserves a place in each count, so no
// count ever exceeds its limit (a learner that loses a race gives its
// reservation back and learns from a later frame). Every change of an
// entry's value is a compare-and-swap, and only the writer that wins it
// moves the counts: they stay exact under concurrent learning, aging and
// purging. A rebuilt table counts afresh what it copied.
type FDB struct {
	t     atomic.Pointer[fdbTable]
	epoch time.Time
	sweep sync.Mutex // one Sweep/Forget at a time (the ager and the API)
	size  int        // entries of a table
	// limits of the whole table and of each learning domain
	maxTotal, maxDomain int32
	// changes counts entries learned, moved and removed (not refreshed):
	// what is saved of the table changed when it did (Switch.FDBVersion).
	changes atomic.Uint64
}

// Defaults and bounds of the FDB's limits (FDBLimits).
const (
	// DefaultMaxMACsPerPort is how many MACs a port learns unless its
	// configuration (port.Config.MaxMACs) or FDBLimits.PerPort says
	// otherwise.
	DefaultMaxMACsPerPort = 1024
	// DefaultMaxMACsPerVLAN bounds the MACs learned in one learning
	// domain (a VLAN, or one VLAN of an S-channel) by all ports together.
	DefaultMaxMACsPerVLAN = 8192
	// DefaultFDBMax bounds the learned MACs of the whole switch.
	DefaultFDBMax = 32768
	// NoMACs as FDBLimits.PerPort: ports learn nothing unless their
	// configuration sets a limit.
	NoMACs = -1
)

// FDBLimits bound what the FDB learns. A frame whose new source MAC would
// exceed its port's limit is dropped as mac_limit; one that would exceed the
// limit of its VLAN or of the switch as fdb_full. Learned entries are never
// evicted to make room: they age out (Config.Aging) or go with their port.
type FDBLimits struct {
	// PerPort is the limit of ports whose configuration sets none
	// (port.Config.MaxMACs nil). 0: DefaultMaxMACsPerPort; NoMACs: such
	// ports learn nothing.
	PerPort int
	// PerVLAN bounds each learning domain: a VLAN, or one VLAN of one
	// S-channel. 0: DefaultMaxMACsPerVLAN.
	PerVLAN int
	// Total bounds the whole FDB; the table is sized to four times it, so
	// that probing never runs out of room first. 0: DefaultFDBMax.
	Total int
}

// Check reports a limit out of range: PerPort NoMACs or 0 to
// port.MaxLearnedMACs, PerVLAN and Total 0 to port.MaxLearnedMACs (0 is
// the default).
func (l FDBLimits) Check() error {
	for _, f := range []struct {
		name   string
		v, min int
	}{{"per port", l.PerPort, NoMACs}, {"per VLAN", l.PerVLAN, 0}, {"of the switch", l.Total, 0}} {
		if f.v < f.min || f.v > portcfg.MaxLearnedMACs {
			return fmt.Errorf("learned-MAC limit %s %d: must be at most %d", f.name, f.v, portcfg.MaxLearnedMACs)
		}
	}
	return nil
}

// withDefaults fills in the defaults.
func (l FDBLimits) withDefaults() FDBLimits {
	if l.PerPort == 0 {
		l.PerPort = DefaultMaxMACsPerPort
	}
	if l.PerPort < 0 {
		l.PerPort = 0
	}
	if l.PerVLAN <= 0 {
		l.PerVLAN = DefaultMaxMACsPerVLAN
	}
	if l.Total <= 0 {
		l.Total = DefaultFDBMax
	}
	return l
}

const (
	fdbProbe     = 32
	fdbTombstone = ^uint64(0)
	// refresh an entry's timestamp at most this often (seconds), so a busy
	// MAC does not write a shared cache line per frame.
	fdbRefresh = 1
	// numDomains is the number of learning domains a key can name.
	numDomains = 1 << 16
)

type fdbEntry struct {
	key atomic.Uint64 // vid<<48 | mac; 0 empty; ^0 tombstone
	val atomic.Uint64 // slot+1<<32 | seconds since epoch; 0 while being added or removed
}

type fdbTable struct {
	e          []fdbEntry
	seed       hashSeed
	tombstones atomic.Int64
	// live entries per slot, per domain and in all
	slots  [MaxPorts]atomic.Int32
	domain [numDomains]atomic.Int32
	total  atomic.Int32
}

// newFDB returns an FDB with the default limits.
func newFDB() *FDB { return newFDBWith(FDBLimits{}.withDefaults()) }

// newFDBWith returns an FDB bounded by l (defaults filled in).
func newFDBWith(l FDBLimits) *FDB {
	size := max(1024, 1<<bits.Len(uint(4*l.Total-1)))
	f := &FDB{epoch: time.Now(), size: size, maxTotal: int32(l.Total), maxDomain: int32(l.PerVLAN)}
	f.t.Store(&fdbTable{e: make([]fdbEntry, size), seed: newHashSeed()})
	return f
}

// MACKey packs a VID and a MAC into one word.
func MACKey(vid uint16, mac []byte) uint64 {
	return uint64(vid)<<48 | uint64(binary.BigEndian.Uint16(mac[0:2]))<<32 | uint64(binary.BigEndian.Uint32(mac[2:6]))
}

// hashKey mixes a key for tables nobody outside fills (the registered
// MACs' shards): fast, not keyed.
func hashKey(k uint64) uint64 {
	k ^= k >> 33
	k *= 0xff51afd7ed558ccd
	k ^= k >> 33
	return k
}

// hashSeed keys the FDB's hash. VMs choose the keys the FDB holds (their
// source MACs): with a hash they could compute, one VM would pick fdbProbe
// MACs that land where another VM's MAC belongs and fill its whole probe
// window, well under its own limits (found in review: a victim on another
// VLAN then learned nothing). Keyed with a secret drawn at start, where a
// key lands cannot be predicted from outside.
type hashSeed struct{ a, b uint64 }

// newHashSeed draws a seed from the runtime's random source (ChaCha8,
// seeded by the OS).
func newHashSeed() hashSeed { return hashSeed{rand.Uint64() | 1, rand.Uint64() | 1} }

// hash is the FDB's keyed hash: two rounds of wyhash's multiply-fold
// mixer, each with a secret (odd) multiplier. It costs a few ns and
// allocates nothing.
func (s hashSeed) hash(k uint64) uint64 {
	hi, lo := bits.Mul64(k^s.b, s.a)
	h := hi ^ lo
	hi, lo = bits.Mul64(h^s.a, s.b)
	return hi ^ lo
}

// fdbValue packs an entry's value.
func fdbValue(slot int, now uint32) uint64 { return uint64(slot+1)<<32 | uint64(now) }

// slotOf and stampOf unpack a non-zero value.
func slotOf(v uint64) int     { return int(v>>32) - 1 }
func stampOf(v uint64) uint32 { return uint32(v) }

// age is how long ago, in seconds, stamp was; negative when stamp is
// newer than now (a learner read the clock after the caller).
func age(now, stamp uint32) int32 { return int32(now - stamp) }

func (f *FDB) now() uint32 { return uint32(time.Since(f.epoch) / time.Second) }

// find returns key's entry and its value (0: being added or removed), or
// a nil entry when key is not in t.
func (t *fdbTable) find(key uint64) (*fdbEntry, uint64) {
	mask := uint64(len(t.e) - 1)
	i := t.seed.hash(key)
	for n := 0; n < fdbProbe; n++ {
		e := &t.e[i&mask]
		k := e.key.Load()
		if k == key {
			return e, e.val.Load()
		}
		if k == 0 {
			return nil, 0
		}
		i++
	}
	return nil, 0
}

// Lookup returns the slot the key was learned on.
func (f *FDB) Lookup(key uint64) (slot int, ok bool) {
	e, v := f.t.Load().find(key)
	if e == nil || v == 0 {
		return 0, false
	}
	return slotOf(v), true
}

// reserve counts one more in c unless that exceeds limit.
func reserve(c *atomic.Int32, limit int32) bool {
	if c.Add(1) > limit {
		c.Add(-1)
		return false
	}
	return true
}

// add inserts key, which find did not see, as want (a value of slot)
// within the limits of slot (maxPort) and of the table. It returns the
// drop reason when a limit leaves no room; no room within the probe
// length, or losing the place to a concurrent learner, learns nothing and
// drops nothing.
func (t *fdbTable) add(f *FDB, key uint64, slot int, want uint64, maxPort int32) (Reason, bool) {
	dom := uint16(key >> 48)
	if !reserve(&t.slots[slot], maxPort) {
		return DropMACLimit, false
	}
	if !reserve(&t.domain[dom], f.maxDomain) {
		t.slots[slot].Add(-1)
		return DropFDBFull, false
	}
	if !reserve(&t.total, f.maxTotal) {
		t.slots[slot].Add(-1)
		t.domain[dom].Add(-1)
		return DropFDBFull, false
	}
	mask := uint64(len(t.e) - 1)
	i := t.seed.hash(key)
	var free *fdbEntry
	for n := 0; n < fdbProbe; n++ {
		e := &t.e[i&mask]
		k := e.key.Load()
		if k == key { // added meanwhile by another learner
			t.unreserve(slot, dom)
			return 0, true
		}
		if k == fdbTombstone && free == nil {
			free = e
		}
		if k == 0 {
			if free == nil {
				free = e
			}
			break
		}
		i++
	}
	if free == nil {
		// No room within the probe length: not a limit the sender hit
		// (the keyed hash and a table 4x the total limit make it all but
		// impossible), so the frame goes on, unlearned, as a frame from
		// a port that learns nothing would.
		t.unreserve(slot, dom)
		return 0, true
	}
	old := free.key.Load()
	if (old == 0 || old == fdbTombstone) && free.key.CompareAndSwap(old, key) {
		free.val.Store(want)
		if old == fdbTombstone {
			t.tombstones.Add(-1)
		}
		f.changes.Add(1)
		return 0, true
	}
	t.unreserve(slot, dom)
	return 0, true
}

func (t *fdbTable) unreserve(slot int, dom uint16) {
	t.slots[slot].Add(-1)
	t.domain[dom].Add(-1)
	t.total.Add(-1)
}

// move hands e (value v, of another slot) to slot as want, within
// maxPort; false with a reason when slot is at its limit. Losing e to a
// concurrent writer moves nothing and drops nothing (moved false).
func (t *fdbTable) move(f *FDB, e *fdbEntry, v uint64, slot int, want uint64, maxPort int32) (moved bool, r Reason, ok bool) {
	if !reserve(&t.slots[slot], maxPort) {
		return false, DropMACLimit, false
	}
	if !e.val.CompareAndSwap(v, want) {
		t.slots[slot].Add(-1)
		return false, 0, true
	}
	t.slots[slotOf(v)].Add(-1)
	f.changes.Add(1)
	return true, 0, true
}

// learn records key on slot at now within maxPort and the table's limits.
// With takeOver it moves an entry of another slot; without, such an entry
// stays (learned false). It is what Learn and RestoreFDB use; the VM ->
// uplink pipeline learns through find, add and move itself (egress.go).
func (f *FDB) learn(key uint64, slot int, now uint32, maxPort int32, takeOver bool) (learned bool) {
	t := f.t.Load()
	want := fdbValue(slot, now)
	e, v := t.find(key)
	switch {
	case e == nil:
		_, ok := t.add(f, key, slot, want, maxPort)
		return ok
	case v == 0:
		return false
	case slotOf(v) == slot:
		if v != want {
			e.val.CompareAndSwap(v, want)
		}
		return true
	case takeOver:
		moved, _, _ := t.move(f, e, v, slot, want, maxPort)
		return moved
	}
	return false
}

// Learn records key on slot now, within the table's limits (not a port's):
// tests and tools use it.
func (f *FDB) Learn(key uint64, slot int) { f.learn(key, slot, f.now(), math.MaxInt32, true) }

// learnAt is Learn at a given time.
func (f *FDB) learnAt(key uint64, slot int, now uint32) {
	f.learn(key, slot, now, math.MaxInt32, true)
}

// Counts of the learned entries: of one port slot, of one learning
// domain, and in all.
func (f *FDB) SlotCount(slot int) int {
	if slot < 0 || slot >= MaxPorts {
		return 0
	}
	return int(f.t.Load().slots[slot].Load())
}

// DomainCount is the number of entries learned in domain dom.
func (f *FDB) DomainCount(dom uint16) int { return int(f.t.Load().domain[dom].Load()) }

// Len is the number of learned entries.
func (f *FDB) Len() int { return int(f.t.Load().total.Load()) }

// copyEntry puts an entry into a table nobody else sees yet, counting it.
func (t *fdbTable) copyEntry(k, v uint64) {
	mask := uint64(len(t.e) - 1)
	i := t.seed.hash(k)
	for n := 0; n < fdbProbe; n++ {
		e := &t.e[i&mask]
		switch e.key.Load() {
		case 0:
			e.key.Store(k)
			e.val.Store(v)
			t.count(k, v, 1)
			return
		case k: // a duplicate left by two racing learners: keep one
			return
		}
		i++
	}
}

// count adds d to the counts of entry (k, v).
func (t *fdbTable) count(k, v uint64, d int32) {
	t.slots[slotOf(v)].Add(d)
	t.domain[uint16(k>>48)].Add(d)
	t.total.Add(d)
}

// FDBRow is one learned entry.
type FDBRow struct {
	VID  uint16
	MAC  net.HardwareAddr
	Slot int
	Age  time.Duration
}

// Sweep removes entries older than maxAge or whose slot fails keep, and
// rebuilds the table when tombstones exceed a quarter of it.
func (f *FDB) Sweep(maxAge time.Duration, keep func(slot int) bool) {
	f.remove(func(_ uint64, v uint64, now uint32) bool {
		// Signed: an entry learned after now was taken is young, not old.
		return time.Duration(age(now, stampOf(v)))*time.Second > maxAge || !keep(slotOf(v))
	})
}

// PurgeDomains removes every entry of the learning domains doms (the 16
// bits above the MAC in the key), in one pass over the table.
func (f *FDB) PurgeDomains(doms []uint16) {
	if len(doms) == 0 {
		return
	}
	var set [numDomains]bool
	for _, d := range doms {
		set[d] = true
	}
	f.remove(func(k, _ uint64, _ uint32) bool { return set[uint16(k>>48)] })
}

// remove deletes the entries for which drop(key, value, now) holds; now is
// read once the lock is held.
func (f *FDB) remove(drop func(k, v uint64, now uint32) bool) {
	f.sweep.Lock()
	defer f.sweep.Unlock()
	now := f.now()
	t := f.t.Load()
	for i := range t.e {
		e := &t.e[i]
		k := e.key.Load()
		if k == 0 || k == fdbTombstone {
			continue
		}
		v := e.val.Load()
		if v == 0 {
			continue // being learned or being removed right now
		}
		// Claim the entry by its value: a learner that refreshed or moved
		// it meanwhile wins, and the entry stays until the next pass.
		if drop(k, v, now) && e.val.CompareAndSwap(v, 0) {
			t.count(k, v, -1)
			f.changes.Add(1)
			// Only remove writes a key other than 0 or a tombstone, and
			// no learner takes a key that is neither: the key is still k.
			e.key.Store(fdbTombstone)
			t.tombstones.Add(1)
		}
	}
	if t.tombstones.Load() > int64(len(t.e)/4) {
		// Fill the new table privately and publish it whole: lookups never
		// see a half-copied table. Entries learned into the old table
		// while copying are learned again by the next frame of that MAC;
		// the counts are the new table's own, of what it holds.
		nt := &fdbTable{e: make([]fdbEntry, len(t.e)), seed: t.seed}
		for i := range t.e {
			k, v := t.e[i].key.Load(), t.e[i].val.Load()
			if k != 0 && k != fdbTombstone && v != 0 {
				nt.copyEntry(k, v)
			}
		}
		f.t.Store(nt)
	}
}

// Forget removes every entry of slot.
func (f *FDB) Forget(slot int) { f.Sweep(1<<62, func(s int) bool { return s != slot }) }

// Rows lists the entries (vid 0: all VIDs).
func (f *FDB) Rows(vid uint16) []FDBRow {
	t := f.t.Load()
	now := f.now()
	// Room for every entry, and a few learned meanwhile, with their MACs in
	// one block: the list of a full table is megabytes, and growing it by
	// appending, a MAC allocated each, would make twice that of garbage
	// and tens of thousands of objects.
	n := int(t.total.Load())
	if vid != 0 {
		n = int(t.domain[vid].Load())
	}
	n += 16
	out := make([]FDBRow, 0, n)
	macs := make([]byte, 6*n)
	for i := range t.e {
		k, v := t.e[i].key.Load(), t.e[i].val.Load()
		if k == 0 || k == fdbTombstone || v == 0 {
			continue
		}
		kv := uint16(k >> 48)
		if vid != 0 && kv != vid {
			continue
		}
		var mac net.HardwareAddr
		if len(macs) >= 6 {
			mac, macs = net.HardwareAddr(macs[:6:6]), macs[6:]
			putMAC(mac, k)
		} else {
			mac = macOfKey(k)
		}
		out = append(out, FDBRow{VID: kv, MAC: mac, Slot: slotOf(v), Age: time.Duration(max(age(now, stampOf(v)), 0)) * time.Second})
	}
	return out
}

func macOfKey(k uint64) net.HardwareAddr {
	mac := make(net.HardwareAddr, 6)
	putMAC(mac, k)
	return mac
}

// putMAC writes the MAC of key k into mac (6 bytes).
func putMAC(mac []byte, k uint64) {
	binary.BigEndian.PutUint16(mac[0:2], uint16(k>>32))
	binary.BigEndian.PutUint32(mac[2:6], uint32(k))
}
