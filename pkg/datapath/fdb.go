package datapath

import (
	"encoding/binary"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// FDB is the learned forwarding database: (VID, MAC) -> port slot. It is a
// fixed-size open-addressing hash table of atomic words, so lookups and
// learning from many goroutines take no lock and allocate nothing. Deleted
// entries become tombstones; the table is rebuilt by Sweep when they pile up.
type FDB struct {
	t     atomic.Pointer[fdbTable]
	epoch time.Time
	sweep sync.Mutex // one Sweep/Forget at a time (the ager and the API)
}

const (
	fdbSize      = 1 << 16 // entries; power of two
	fdbProbe     = 32
	fdbTombstone = ^uint64(0)
	// refresh an entry's timestamp at most this often (seconds), so a busy
	// MAC does not write a shared cache line per frame.
	fdbRefresh = 1
)

type fdbEntry struct {
	key atomic.Uint64 // vid<<48 | mac; 0 empty; ^0 tombstone
	val atomic.Uint64 // slot<<32 | seconds since epoch
}

type fdbTable struct {
	e          []fdbEntry
	tombstones atomic.Int64
}

func newFDB() *FDB {
	f := &FDB{epoch: time.Now()}
	f.t.Store(&fdbTable{e: make([]fdbEntry, fdbSize)})
	return f
}

// MACKey packs a VID and a MAC into one word.
func MACKey(vid uint16, mac []byte) uint64 {
	return uint64(vid)<<48 | uint64(binary.BigEndian.Uint16(mac[0:2]))<<32 | uint64(binary.BigEndian.Uint32(mac[2:6]))
}

func hashKey(k uint64) uint64 {
	k ^= k >> 33
	k *= 0xff51afd7ed558ccd
	k ^= k >> 33
	return k
}

func (f *FDB) now() uint32 { return uint32(time.Since(f.epoch) / time.Second) }

// Lookup returns the slot the key was learned on.
func (f *FDB) Lookup(key uint64) (slot int, ok bool) {
	t := f.t.Load()
	mask := uint64(len(t.e) - 1)
	i := hashKey(key)
	for n := 0; n < fdbProbe; n++ {
		e := &t.e[i&mask]
		k := e.key.Load()
		if k == key {
			v := e.val.Load()
			if v == 0 {
				return 0, false
			}
			return int(v>>32) - 1, true
		}
		if k == 0 {
			return 0, false
		}
		i++
	}
	return 0, false
}

// Learn records key on slot now; it writes only when something changed.
func (f *FDB) Learn(key uint64, slot int) {
	f.learnAt(key, slot, f.now())
}

func (f *FDB) learnAt(key uint64, slot int, now uint32) {
	t := f.t.Load()
	mask := uint64(len(t.e) - 1)
	want := uint64(slot+1)<<32 | uint64(now)
	i := hashKey(key)
	var free *fdbEntry
	for n := 0; n < fdbProbe; n++ {
		e := &t.e[i&mask]
		k := e.key.Load()
		if k == key {
			v := e.val.Load()
			if v>>32 != want>>32 || now-uint32(v) >= fdbRefresh {
				e.val.Store(want)
			}
			return
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
		return // table region full: the frame is still forwarded, just not learned
	}
	old := free.key.Load()
	if (old == 0 || old == fdbTombstone) && free.key.CompareAndSwap(old, key) {
		free.val.Store(want)
		if old == fdbTombstone {
			t.tombstones.Add(-1)
		}
	}
}

// insert puts an entry into a table nobody else sees yet.
func (t *fdbTable) insert(k, v uint64) {
	mask := uint64(len(t.e) - 1)
	i := hashKey(k)
	for n := 0; n < fdbProbe; n++ {
		e := &t.e[i&mask]
		if c := e.key.Load(); c == 0 || c == k {
			e.key.Store(k)
			e.val.Store(v)
			return
		}
		i++
	}
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
		return time.Duration(int32(now-uint32(v)))*time.Second > maxAge || !keep(int(v>>32)-1)
	})
}

// PurgeDomains removes every entry of the learning domains doms (the 16
// bits above the MAC in the key), in one pass over the table.
func (f *FDB) PurgeDomains(doms []uint16) {
	if len(doms) == 0 {
		return
	}
	var set [1 << 16]bool
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
		if drop(k, v, now) {
			e.val.Store(0)
			if e.key.CompareAndSwap(k, fdbTombstone) {
				t.tombstones.Add(1)
			}
		}
	}
	if t.tombstones.Load() > int64(len(t.e)/4) {
		// Fill the new table privately and publish it whole: lookups never
		// see a half-copied table. Entries learned into the old table
		// while copying are learned again by the next frame of that MAC.
		nt := &fdbTable{e: make([]fdbEntry, len(t.e))}
		for i := range t.e {
			k, v := t.e[i].key.Load(), t.e[i].val.Load()
			if k != 0 && k != fdbTombstone && v != 0 {
				nt.insert(k, v)
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
	var out []FDBRow
	for i := range t.e {
		k, v := t.e[i].key.Load(), t.e[i].val.Load()
		if k == 0 || k == fdbTombstone || v == 0 {
			continue
		}
		kv := uint16(k >> 48)
		if vid != 0 && kv != vid {
			continue
		}
		out = append(out, FDBRow{VID: kv, MAC: macOfKey(k), Slot: int(v>>32) - 1, Age: time.Duration(max(int32(now-uint32(v)), 0)) * time.Second})
	}
	return out
}

func macOfKey(k uint64) net.HardwareAddr {
	mac := make(net.HardwareAddr, 6)
	binary.BigEndian.PutUint16(mac[0:2], uint16(k>>32))
	binary.BigEndian.PutUint32(mac[2:6], uint32(k))
	return mac
}
