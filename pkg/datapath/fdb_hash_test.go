package datapath

import (
	"math/rand/v2"
	"net"
	"testing"

	portcfg "github.com/vswitch/vswitch/pkg/port"
)

// collide returns n source MACs whose keys on vid land on target's home
// bucket under seed, as a VM that knew the hash would pick them.
func collide(seed hashSeed, mask uint64, target uint64, vid uint16, n int) [][]byte {
	r := rand.New(rand.NewPCG(7, 7))
	home := seed.hash(target) & mask
	var frames [][]byte
	for len(frames) < n {
		m := randMAC(r)
		if seed.hash(MACKey(vid, m))&mask == home {
			frames = append(frames, fromMAC(m))
		}
	}
	return frames
}

// Found in review: with an unkeyed hash a VM on VLAN 200 picked fdbProbe
// source MACs that land on a VLAN 100 victim's home bucket, well under
// its own limit, and every frame of the victim was then dropped as
// fdb_full. The hash is keyed with a secret per table now: MACs chosen to
// collide under any other key (the attacker's best guess) spread out,
// and the victim is learned.
func TestHashFloodWithoutTheKeyMisses(t *testing.T) {
	victim := net.HardwareAddr{0x52, 0x54, 0, 0, 0xee, 1}
	sw := limitSwitch(t, FDBLimits{},
		portcfg.Config{Name: "evil", VLAN: 200},
		portcfg.Config{Name: "victim", VLAN: 100},
	)
	tb := sw.fdb.t.Load()
	guess := newHashSeed()
	if guess == tb.seed {
		t.Fatal("two tables drew the same key")
	}
	frames := collide(guess, uint64(len(tb.e)-1), MACKey(100, victim), 200, 4*fdbProbe)
	ws := workers{}
	ws.feed(sw, "evil", frames...)
	ws.feed(sw, "victim", fromMAC(victim))
	if _, ok := sw.fdb.Lookup(MACKey(100, victim)); !ok {
		t.Errorf("the victim was not learned after %d MACs chosen to collide under another key; drops %v", len(frames), sw.ports["victim"].ctr.Drops())
	}
	if d := sw.ports["victim"].ctr.Drops(); len(d) != 0 {
		t.Errorf("victim drops %v", d)
	}
}

// Even a VM that knew the key (it cannot) would not cut the victim off
// from sending: a frame whose MAC finds no room within the probe length
// goes on unlearned, not dropped.
func TestFullProbeWindowForwardsUnlearned(t *testing.T) {
	victim := net.HardwareAddr{0x52, 0x54, 0, 0, 0xee, 1}
	sw := limitSwitch(t, FDBLimits{},
		portcfg.Config{Name: "evil", VLAN: 200},
		portcfg.Config{Name: "victim", VLAN: 100},
	)
	tb := sw.fdb.t.Load()
	frames := collide(tb.seed, uint64(len(tb.e)-1), MACKey(100, victim), 200, fdbProbe)
	ws := workers{}
	ws.feed(sw, "evil", frames...)
	if got := sw.fdb.SlotCount(sw.ports["evil"].slot); got != fdbProbe {
		t.Fatalf("evil learned %d of its %d MACs", got, fdbProbe)
	}
	txBefore := sw.uplink.TxPackets.Load()
	for range 10 {
		ws.feed(sw, "victim", fromMAC(victim))
	}
	if d := sw.ports["victim"].ctr.Drops(); len(d) != 0 {
		t.Errorf("victim's frames dropped: %v", d)
	}
	if _, ok := sw.fdb.Lookup(MACKey(100, victim)); ok {
		t.Error("the victim was learned into a full probe window (the test's collision set is wrong)")
	}
	if sw.fdb.SlotCount(sw.ports["victim"].slot) != 0 || sw.fdb.Len() != fdbProbe {
		t.Errorf("counts: victim %d, total %d; want 0 and %d", sw.fdb.SlotCount(sw.ports["victim"].slot), sw.fdb.Len(), fdbProbe)
	}
	if sent := sw.uplink.TxPackets.Load() - txBefore; sent != 10 {
		t.Errorf("%d of the victim's 10 frames reached the uplink", sent)
	}
}
