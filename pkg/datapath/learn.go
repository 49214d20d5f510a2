package datapath

// Learning, the VM -> uplink pipeline's step 4: the source MAC of a frame
// from a port without registered MACs is recorded in the FDB, under these
// rules, which keep what one VM sends from taking what others rely on:
//
//   - A MAC the port learned is refreshed at most once a second (fdbRefresh):
//     the common case costs one probe and no write.
//   - A MAC another port of the VLAN registered is never learned: the frame
//     is dropped as spoofed_src, as a port with registered MACs drops a
//     source that is not one of them. (Checked for new MACs, moves, and at
//     each refresh, so a MAC registered after it was learned stops passing
//     within a second.)
//   - A new MAC beyond the port's limit (port.Config.MaxMACs, default
//     FDBLimits.PerPort) is dropped as mac_limit; beyond the limit of its
//     VLAN or of the whole FDB as fdb_full. Nothing is evicted to make room.
//   - A MAC learned on another port moves here (a VM that migrated, a
//     failover) and counts in the port's mac_moves. When its entry was
//     refreshed less than macMoveHold seconds ago the other port is still
//     using it: such a move takes a token from the port's bucket
//     (macMoveBurst tokens, macMoveRate more per second), and without one
//     the frame is dropped as mac_move_limit. A VM that moves once moves
//     at once; a flap or a theft is slowed to the bucket's rate.
const (
	macMoveHold  = 5  // seconds: an entry refreshed more recently is in use
	macMoveBurst = 10 // moves of entries in use a port may make at once
	macMoveRate  = 2  // and per second after that
)

// moveBucket is an egress worker's token bucket for moves of entries in
// use; only its worker touches it.
type moveBucket struct {
	tokens int32
	last   uint32 // FDB clock of the last refill
}

// take takes a token at time now (seconds), refilling first.
func (b *moveBucket) take(now uint32) bool {
	if d := age(now, b.last); d > 0 {
		b.tokens = int32(min(int64(b.tokens)+int64(d)*macMoveRate, macMoveBurst))
		b.last = now
	}
	if b.tokens <= 0 {
		return false
	}
	b.tokens--
	return true
}

// learn applies the rules above to source src of a frame on C-VID vid of
// port v (learning domain dom). It returns the drop reason when the frame
// must go no further.
func (w *egressWorker) learn(snap *snapshot, v *portView, vid, dom uint16, src []byte) (Reason, bool) {
	f := w.s.fdb
	key := MACKey(dom, src)
	t := f.t.Load()
	e, val := t.find(key)
	if e != nil {
		if val == 0 {
			return 0, true // being added or removed: a later frame learns it
		}
		if slotOf(val) == v.slot && age(w.now, stampOf(val)) < fdbRefresh {
			return 0, true
		}
	}
	if _, ok := snap.registered(v.cfg.SVID, vid, src); ok {
		return DropSpoofedSrc, false // v has no registered MACs: another port's
	}
	want := fdbValue(v.slot, w.now)
	switch {
	case e == nil:
		return t.add(f, key, v.slot, want, v.maxMACs)
	case slotOf(val) == v.slot:
		e.val.CompareAndSwap(val, want) // lost to another writer: refreshed later
		return 0, true
	}
	if age(w.now, stampOf(val)) < macMoveHold && !w.moves.take(w.now) {
		return DropMACMoveLimit, false
	}
	moved, r, ok := t.move(f, e, val, v.slot, want, v.maxMACs)
	if moved {
		v.p.ctr.MACMoves.Add(1)
	}
	return r, ok
}
