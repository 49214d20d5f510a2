package datapath

import (
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	portcfg "github.com/vswitch/vswitch/pkg/port"
	"github.com/vswitch/vswitch/pkg/vlan"
)

// limitSwitch is a switch on the null backend with limits l and ports cs,
// each with null queues (drive them with feed and deliver).
func limitSwitch(t testing.TB, l FDBLimits, cs ...portcfg.Config) *Switch {
	t.Helper()
	sw, err := New(Config{Uplink: "up0", Backend: nullBackend{}, FDB: l, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if err := sw.AddPort(c); err != nil {
			t.Fatal(err)
		}
		sw.ports[c.Name].io.Store(&portIO{tap: &nullQueue{}, up: &nullQueue{}, stop: make(chan struct{}), done: make(chan struct{})})
	}
	return sw
}

// workers keeps one egress worker per port, so a port's move bucket
// lasts across feeds as it does in a running switch.
type workers map[string]*egressWorker

// feed runs frames through port name's VM -> uplink pipeline, a batch at
// a time.
func (ws workers) feed(sw *Switch, name string, frames ...[]byte) {
	p := sw.ports[name]
	w := ws[name]
	if w == nil {
		w = newEgressWorker(sw, p, p.io.Load())
		ws[name] = w
	}
	for len(frames) > 0 {
		n := min(len(frames), w.b.Cap())
		for i, f := range frames[:n] {
			buf := make([]byte, 64+len(f))
			copy(buf[64:], f)
			w.b.Buf[i], w.b.Off[i], w.b.Len[i] = buf, 64, len(f)
		}
		w.b.N = n
		w.process(sw.snap.Load(), p.view.Load())
		frames = frames[n:]
	}
}

// deliver runs one uplink frame through the uplink -> VM pipeline and
// reports which ports it reached.
func deliver(sw *Switch, frame []byte) []string {
	before := map[string]uint64{}
	for n, p := range sw.ports {
		before[n] = p.io.Load().tap.(*nullQueue).sent
	}
	w := newIngressWorker(sw, &nullQueue{}, 0)
	load(w.b, frame)
	w.process(sw.snap.Load())
	var got []string
	for n, p := range sw.ports {
		if p.io.Load().tap.(*nullQueue).sent != before[n] {
			got = append(got, n)
		}
	}
	return got
}

func ct100(vid uint16) vlan.Tag { return vlan.Tag{TPID: vlan.TPIDCTag, TCI: vid} }

// fromMAC is a frame of VM MAC src to the remote host.
func fromMAC(src net.HardwareAddr) []byte {
	return benchFrame(net.HardwareAddr{0x52, 0x54, 0, 0, 0, 0x99}, src)
}

// toMAC is an uplink frame on VID vid for dst.
func toMAC(dst net.HardwareAddr, vid uint16) []byte {
	return benchFrame(dst, net.HardwareAddr{0x52, 0x54, 0, 0, 0, 0x99}, ct100(vid))
}

func randMAC(r *rand.Rand) net.HardwareAddr {
	m := make(net.HardwareAddr, 6)
	for i := range m {
		m[i] = byte(r.Uint32())
	}
	m[0] = m[0]&^1 | 2 // unicast, locally administered
	return m
}

// recount walks the table and compares what it holds with its counters.
func recount(t testing.TB, f *FDB) {
	t.Helper()
	tab := f.t.Load()
	slots := new([MaxPorts]int32)
	doms := new([numDomains]int32)
	var total int32
	for i := range tab.e {
		k, v := tab.e[i].key.Load(), tab.e[i].val.Load()
		if k == 0 || k == fdbTombstone || v == 0 {
			continue
		}
		slots[slotOf(v)]++
		doms[uint16(k>>48)]++
		total++
	}
	if got := tab.total.Load(); got != total {
		t.Errorf("table holds %d entries, counts %d", total, got)
	}
	for s := range MaxPorts {
		if got := tab.slots[s].Load(); got != slots[s] {
			t.Errorf("slot %d holds %d entries, counts %d", s, slots[s], got)
		}
	}
	for d := range numDomains {
		if got := tab.domain[d].Load(); got != doms[d] {
			t.Errorf("domain %d holds %d entries, counts %d", d, doms[d], got)
		}
	}
}

func drops(sw *Switch, name string, r Reason) uint64 { return sw.ports[name].ctr.DropCount(r) }

// Issue 9: one VM flooding random source MACs filled the one global table
// and a victim learned nothing. Now the flooder fills its own share and
// drops the rest as mac_limit; a VM with a registered MAC, a VM learned
// before the flood and a VM on another VLAN all keep receiving unicast.
func TestFloodFromOnePortLeavesOthersIntact(t *testing.T) {
	macB, macC := net.HardwareAddr{0x52, 0x54, 0, 0, 0xb, 1}, net.HardwareAddr{0x52, 0x54, 0, 0, 0xc, 1}
	sw := limitSwitch(t, FDBLimits{},
		portcfg.Config{Name: "a", VLAN: 100},
		portcfg.Config{Name: "b", VLAN: 100, MACs: []net.HardwareAddr{macB}},
		portcfg.Config{Name: "c", VLAN: 100},
		portcfg.Config{Name: "d", VLAN: 200},
	)
	ws := workers{}
	ws.feed(sw, "c", fromMAC(macC))
	r := rand.New(rand.NewPCG(1, 2))
	const flood = 100_000
	frames := make([][]byte, 0, 1000)
	for i := 0; i < flood; i += len(frames) {
		frames = frames[:0]
		for range 1000 {
			frames = append(frames, fromMAC(randMAC(r)))
		}
		ws.feed(sw, "a", frames...)
	}
	if got := sw.fdb.SlotCount(sw.ports["a"].slot); got != DefaultMaxMACsPerPort {
		t.Errorf("the flooder learned %d MACs, want its limit %d", got, DefaultMaxMACsPerPort)
	}
	if got := drops(sw, "a", DropMACLimit); got != flood-DefaultMaxMACsPerPort {
		t.Errorf("mac_limit drops %d, want %d", got, flood-DefaultMaxMACsPerPort)
	}
	if got := sw.fdb.Len(); got != DefaultMaxMACsPerPort+1 {
		t.Errorf("FDB holds %d entries, want the flooder's %d and c's", got, DefaultMaxMACsPerPort)
	}
	for _, tc := range []struct {
		mac  net.HardwareAddr
		vid  uint16
		port string
	}{{macB, 100, "b"}, {macC, 100, "c"}} {
		if got := deliver(sw, toMAC(tc.mac, tc.vid)); len(got) != 1 || got[0] != tc.port {
			t.Errorf("unicast to %s after the flood reached %v, want %s", tc.mac, got, tc.port)
		}
	}
	// A VM on another VLAN learns as before.
	var dmacs []net.HardwareAddr
	for i := range 200 {
		m := net.HardwareAddr{0x52, 0x54, 0, 0xd, byte(i >> 8), byte(i)}
		dmacs = append(dmacs, m)
		ws.feed(sw, "d", fromMAC(m))
	}
	if got := sw.fdb.SlotCount(sw.ports["d"].slot); got != 200 || len(sw.ports["d"].ctr.Drops()) != 0 {
		t.Errorf("the VM on VLAN 200 learned %d of 200 MACs, drops %v", got, sw.ports["d"].ctr.Drops())
	}
	if got := deliver(sw, toMAC(dmacs[199], 200)); len(got) != 1 || got[0] != "d" {
		t.Errorf("unicast on VLAN 200 reached %v", got)
	}
	recount(t, sw.fdb)
	sw.ports["a"].io.Store(nil) // no worker to stop
	if err := sw.DeletePort("a"); err != nil {
		t.Fatal(err)
	}
	if got := sw.fdb.Len(); got != 201 {
		t.Errorf("after the flooder went the FDB holds %d entries, want 201", got)
	}
	recount(t, sw.fdb)
}

// Bounds per VLAN and in all: a MAC beyond them is fdb_full; the port's
// own limit is checked first (mac_limit).
func TestFDBFullPerVLANAndTotal(t *testing.T) {
	sw := limitSwitch(t, FDBLimits{PerPort: 100, PerVLAN: 150, Total: 250},
		portcfg.Config{Name: "a1", VLAN: 100}, portcfg.Config{Name: "a2", VLAN: 100},
		portcfg.Config{Name: "a3", VLAN: 200}, portcfg.Config{Name: "a4", VLAN: 300},
	)
	ws := workers{}
	for i, name := range []string{"a1", "a2", "a3", "a4"} {
		var frames [][]byte
		for j := range 120 {
			frames = append(frames, fromMAC(net.HardwareAddr{0x52, 0x54, byte(i), 0, 0, byte(j)}))
		}
		ws.feed(sw, name, frames...)
	}
	for _, tc := range []struct {
		port              string
		learned           int
		macLimit, fdbFull uint64
	}{
		{"a1", 100, 20, 0}, // its own limit
		{"a2", 50, 0, 70},  // VLAN 100 full at 150
		{"a3", 100, 20, 0}, // 250 in all now
		{"a4", 0, 0, 120},  // the FDB is full
	} {
		if got := sw.fdb.SlotCount(sw.ports[tc.port].slot); got != tc.learned {
			t.Errorf("%s learned %d, want %d", tc.port, got, tc.learned)
		}
		if m, f := drops(sw, tc.port, DropMACLimit), drops(sw, tc.port, DropFDBFull); m != tc.macLimit || f != tc.fdbFull {
			t.Errorf("%s: mac_limit %d, fdb_full %d; want %d, %d", tc.port, m, f, tc.macLimit, tc.fdbFull)
		}
	}
	if got := sw.fdb.DomainCount(100); got != 150 {
		t.Errorf("VLAN 100 holds %d, want its limit 150", got)
	}
	if got, st := sw.fdb.Len(), sw.FDBStats(); got != 250 || st.Learned != 250 || st.Limits.Total != 250 {
		t.Errorf("FDB holds %d (stats %+v), want 250", got, st)
	}
	// Known MACs still pass, and frames from them are not drops.
	before := drops(sw, "a1", DropMACLimit)
	ws.feed(sw, "a1", fromMAC(net.HardwareAddr{0x52, 0x54, 0, 0, 0, 5}))
	if drops(sw, "a1", DropMACLimit) != before {
		t.Error("a learned MAC was dropped as over the limit")
	}
	recount(t, sw.fdb)
}

// MaxMACs per port: its own value wins over the default; 0 learns
// nothing, and then only registered MACs pass.
func TestPortMaxMACs(t *testing.T) {
	zero, three := 0, 3
	reg := net.HardwareAddr{0x52, 0x54, 0, 0, 0, 0x42}
	sw := limitSwitch(t, FDBLimits{PerPort: 5},
		portcfg.Config{Name: "dflt", VLAN: 100},
		portcfg.Config{Name: "three", VLAN: 100, MaxMACs: &three},
		portcfg.Config{Name: "none", VLAN: 100, MaxMACs: &zero},
		portcfg.Config{Name: "reg", VLAN: 100, MaxMACs: &zero, MACs: []net.HardwareAddr{reg}},
	)
	ws := workers{}
	for i, name := range []string{"dflt", "three", "none"} {
		for j := range 10 {
			ws.feed(sw, name, fromMAC(net.HardwareAddr{0x52, 0x54, byte(i), 1, 0, byte(j)}))
		}
	}
	ws.feed(sw, "reg", fromMAC(reg))
	for _, tc := range []struct {
		port    string
		learned int
	}{{"dflt", 5}, {"three", 3}, {"none", 0}, {"reg", 0}} {
		if got := sw.fdb.SlotCount(sw.ports[tc.port].slot); got != tc.learned {
			t.Errorf("%s learned %d, want %d", tc.port, got, tc.learned)
		}
		if got := drops(sw, tc.port, DropMACLimit); got != uint64(10-tc.learned) && tc.port != "reg" {
			t.Errorf("%s: %d mac_limit drops, want %d", tc.port, got, 10-tc.learned)
		}
	}
	if got := sw.ports["reg"].ctr.Drops(); len(got) != 0 {
		t.Errorf("the registered MAC of a port that learns nothing was dropped: %v", got)
	}
	if got := deliver(sw, toMAC(reg, 100)); len(got) != 1 || got[0] != "reg" {
		t.Errorf("unicast to the registered MAC reached %v", got)
	}
	// The limit in effect is reported, and lowering it evicts nothing
	// learned since.
	for _, ps := range sw.Ports() {
		want := map[string]int{"dflt": 5, "three": 3, "none": 0, "reg": 0}[ps.Config.Name]
		if ps.MaxMACs != want {
			t.Errorf("%s reports limit %d, want %d", ps.Config.Name, ps.MaxMACs, want)
		}
	}
	ws.feed(sw, "dflt", fromMAC(net.HardwareAddr{0x52, 0x54, 0, 1, 0, 0}))
	if got := sw.fdb.SlotCount(sw.ports["dflt"].slot); got != 5 {
		t.Errorf("dflt holds %d after a known MAC, want 5", got)
	}
}

// Issue 9: "one frame with another port's source MAC moves that MAC's
// FDB entry to the sender". A registered MAC is never learned elsewhere; a
// MAC in use moves with a counted mac_move, at most macMoveBurst at once
// and macMoveRate a second after that; a VM that migrates moves at once.
func TestMACMoves(t *testing.T) {
	macB := net.HardwareAddr{0x52, 0x54, 0, 0, 0xb, 1}
	vm := net.HardwareAddr{0x52, 0x54, 0, 0, 0xa, 1}
	sw := limitSwitch(t, FDBLimits{},
		portcfg.Config{Name: "a", VLAN: 100},
		portcfg.Config{Name: "x", VLAN: 100},
		portcfg.Config{Name: "b", VLAN: 100, MACs: []net.HardwareAddr{macB}},
		portcfg.Config{Name: "other", VLAN: 200},
	)
	ws := workers{}
	owner := func(mac net.HardwareAddr, vid uint16) string {
		slot, ok := sw.fdb.Lookup(MACKey(vid, mac))
		if !ok {
			return ""
		}
		return sw.snap.Load().slots[slot].cfg.Name
	}

	// b's registered MAC, from a: dropped, not learned; b keeps it.
	ws.feed(sw, "a", fromMAC(macB))
	if got := drops(sw, "a", DropSpoofedSrc); got != 1 || owner(macB, 100) != "" {
		t.Errorf("another port's registered MAC: spoofed_src %d, learned by %q", got, owner(macB, 100))
	}
	if got := deliver(sw, toMAC(macB, 100)); len(got) != 1 || got[0] != "b" {
		t.Errorf("unicast to b's MAC reached %v", got)
	}
	// On another VLAN the MAC is not b's: learned.
	ws.feed(sw, "other", fromMAC(macB))
	if owner(macB, 200) != "other" {
		t.Error("a MAC registered on VLAN 100 was refused on VLAN 200")
	}

	// Migration: the VM moves from a to x once, at once.
	ws.feed(sw, "a", fromMAC(vm))
	ws.feed(sw, "x", fromMAC(vm))
	if owner(vm, 100) != "x" || sw.ports["x"].ctr.MACMoves.Load() != 1 || len(sw.ports["x"].ctr.Drops()) != 0 {
		t.Fatalf("migration: owner %q, x moves %d, drops %v", owner(vm, 100), sw.ports["x"].ctr.MACMoves.Load(), sw.ports["x"].ctr.Drops())
	}
	if got := deliver(sw, toMAC(vm, 100)); len(got) != 1 || got[0] != "x" {
		t.Errorf("unicast after the move reached %v", got)
	}

	// Flapping within one second: the port that runs out of tokens first
	// (x, which spent one on the migration) has its frames dropped as
	// mac_move_limit, and the other keeps the MAC.
	for range 50 {
		ws.feed(sw, "a", fromMAC(vm))
		ws.feed(sw, "x", fromMAC(vm))
	}
	am, xm := sw.ports["a"].ctr.MACMoves.Load(), sw.ports["x"].ctr.MACMoves.Load()
	xl := drops(sw, "x", DropMACMoveLimit)
	if am+xm > 2*(macMoveBurst+macMoveRate) || xm < macMoveBurst || xl < 50-macMoveBurst-macMoveRate || owner(vm, 100) != "a" {
		t.Errorf("50 flaps: a moved %d, x moved %d with %d mac_move_limit drops, owner %s", am, xm, xl, owner(vm, 100))
	}
	recount(t, sw.fdb)

	// An entry its port stopped refreshing moves without a token (the VM
	// is gone from there); one in use waits for the bucket to refill.
	shift(sw, macMoveHold+1)
	o := owner(vm, 100)
	to := map[string]string{"a": "x", "x": "a"}[o]
	before := sw.ports[to].ctr.MACMoves.Load()
	ws.feed(sw, to, fromMAC(vm))
	if owner(vm, 100) != to || sw.ports[to].ctr.MACMoves.Load() != before+1 {
		t.Errorf("a stale entry did not move to %s (owner %s)", to, owner(vm, 100))
	}
}

// shift moves the FDB's clock secs seconds on (no worker runs).
func shift(sw *Switch, secs int) { sw.fdb.epoch = sw.fdb.epoch.Add(-time.Duration(secs) * time.Second) }

// A move needs room under the new port's own limit.
func TestMACMoveWithinLimit(t *testing.T) {
	zero := 0
	vm := net.HardwareAddr{0x52, 0x54, 0, 0, 0xa, 1}
	sw := limitSwitch(t, FDBLimits{}, portcfg.Config{Name: "a", VLAN: 100}, portcfg.Config{Name: "full", VLAN: 100, MaxMACs: &zero})
	ws := workers{}
	ws.feed(sw, "a", fromMAC(vm))
	ws.feed(sw, "full", fromMAC(vm))
	if slot, _ := sw.fdb.Lookup(MACKey(100, vm)); slot != sw.ports["a"].slot || drops(sw, "full", DropMACLimit) != 1 {
		t.Errorf("a port at its limit took a MAC: owner slot %d, mac_limit %d", slot, drops(sw, "full", DropMACLimit))
	}
	recount(t, sw.fdb)
}

// The bucket refills macMoveRate tokens a second, up to macMoveBurst.
func TestMoveBucket(t *testing.T) {
	b := moveBucket{tokens: macMoveBurst, last: 100}
	n := 0
	for b.take(100) {
		n++
	}
	if n != macMoveBurst {
		t.Fatalf("%d moves at once, want %d", n, macMoveBurst)
	}
	n = 0
	for b.take(101) {
		n++
	}
	if n != macMoveRate {
		t.Errorf("%d moves a second later, want %d", n, macMoveRate)
	}
	n = 0
	for b.take(10_000) {
		n++
	}
	if n != macMoveBurst {
		t.Errorf("%d moves after a long pause, want %d", n, macMoveBurst)
	}
	if b.take(9_000) {
		t.Error("a clock read earlier refilled the bucket")
	}
}

// The counts follow every way entries go: aging, Forget, PurgeDomains,
// a rebuild.
func TestFDBCountsFollowRemoval(t *testing.T) {
	f := newFDBWith(FDBLimits{PerVLAN: 100, Total: 1000})
	now := f.now()
	for i := range 300 {
		f.learn(MACKey(uint16(10+i%3), []byte{0x52, 0x54, 0, 0, byte(i >> 8), byte(i)}), i%4, now-uint32(i%2)*100, 1000, true)
	}
	if f.Len() != 300 || f.DomainCount(10) != 100 || f.SlotCount(1) != 75 {
		t.Fatalf("learned %d (domain 10: %d, slot 1: %d), want 300 (100, 75)", f.Len(), f.DomainCount(10), f.SlotCount(1))
	}
	// One more in domain 10 is over its limit; the others are not.
	if f.learn(MACKey(10, []byte{0x52, 0x54, 1, 0, 0, 0}), 0, now, 1000, true) {
		t.Error("domain 10 took a 101st entry")
	}
	recount(t, f)
	f.Sweep(50*time.Second, func(int) bool { return true }) // the odd ones are 100 s old
	if f.Len() != 150 {
		t.Errorf("after aging %d entries, want 150", f.Len())
	}
	recount(t, f)
	f.Forget(0)
	recount(t, f)
	if f.SlotCount(0) != 0 {
		t.Errorf("slot 0 counts %d after Forget", f.SlotCount(0))
	}
	f.PurgeDomains([]uint16{11})
	if f.DomainCount(11) != 0 {
		t.Errorf("domain 11 counts %d after its purge", f.DomainCount(11))
	}
	recount(t, f)
	f.t.Load().tombstones.Store(int64(len(f.t.Load().e))) // force a rebuild
	f.Sweep(time.Hour, func(s int) bool { return s != 1 })
	recount(t, f)
	f.Sweep(-time.Second, func(int) bool { return true })
	if f.Len() != 0 {
		t.Errorf("%d entries left after all aged out", f.Len())
	}
	recount(t, f)
}

// The table is four times the total limit: filling it to the limit with
// random MACs, and again after they aged out (tombstones), never runs out
// of probe length before the limit.
func TestFDBFillsToItsLimit(t *testing.T) {
	f := newFDBWith(FDBLimits{PerVLAN: 1 << 20, Total: DefaultFDBMax})
	r := rand.New(rand.NewPCG(3, 4))
	for round := range 3 {
		for i := 0; f.Len() < DefaultFDBMax; i++ {
			if i > DefaultFDBMax+100 {
				t.Fatalf("round %d: %d entries after %d new MACs", round, f.Len(), i)
			}
			f.Learn(MACKey(uint16(r.IntN(4094)+1), randMAC(r)), r.IntN(MaxPorts))
		}
		if f.Learn(MACKey(1, randMAC(r)), 0); f.Len() != DefaultFDBMax {
			t.Fatalf("round %d: the FDB went over its limit: %d", round, f.Len())
		}
		recount(t, f)
		f.Sweep(-time.Second, func(int) bool { return true })
	}
}

// Learners on many goroutines, moving MACs between slots, while a
// sweeper ages and forgets: the counts never pass the limits and match
// the table once all stop (run with -race).
func TestFDBCountsUnderRace(t *testing.T) {
	f := newFDBWith(FDBLimits{PerVLAN: 200, Total: 500})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var over sync.Once
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 9))
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				f.learn(MACKey(uint16(r.IntN(4)), []byte{0x52, 0, 0, 0, byte(r.IntN(4)), byte(r.IntN(256))}), g*2+r.IntN(2), f.now(), 100, true)
				tab := f.t.Load()
				if tab.total.Load() > 500+4 || tab.slots[g*2].Load() > 100+4 {
					over.Do(func() { t.Errorf("counts over the limits: total %d, slot %d", tab.total.Load(), tab.slots[g*2].Load()) })
				}
			}
		}()
	}
	for i := range 50 {
		f.Forget(i % 8)
		f.PurgeDomains([]uint16{uint16(i % 4)})
		if i%10 == 0 {
			f.t.Load().tombstones.Store(int64(len(f.t.Load().e))) // a rebuild under way
			f.Sweep(time.Hour, func(int) bool { return true })
		}
		time.Sleep(time.Millisecond)
	}
	close(stop)
	wg.Wait()
	recount(t, f)
	if f.Len() > 500 {
		t.Errorf("%d entries, limit 500", f.Len())
	}
}

// Restoring a saved FDB observes the limits and the rules of learning.
func TestRestoreFDBHonoursLimits(t *testing.T) {
	two := 2
	reg := net.HardwareAddr{0x52, 0x54, 0, 0, 0, 0x42}
	sw := limitSwitch(t, FDBLimits{},
		portcfg.Config{Name: "two", VLAN: 100, MaxMACs: &two},
		portcfg.Config{Name: "reg", VLAN: 100, MACs: []net.HardwareAddr{reg}},
		portcfg.Config{Name: "free", VLAN: 100},
	)
	var ok []bool
	for i := range 3 {
		ok = append(ok, sw.RestoreFDB(100, net.HardwareAddr{0x52, 0x54, 0, 0, 1, byte(i)}, "two"))
	}
	if !ok[0] || !ok[1] || ok[2] {
		t.Errorf("restore into a port of limit 2: %v", ok)
	}
	if sw.RestoreFDB(100, reg, "free") {
		t.Error("restored another port's registered MAC")
	}
	if sw.RestoreFDB(100, net.HardwareAddr{0x52, 0x54, 0, 0, 2, 0}, "reg") {
		t.Error("restored a learned MAC into a port that registers its MACs")
	}
	if sw.RestoreFDB(100, net.HardwareAddr{0x52, 0x54, 0, 0, 1, 0}, "free") {
		t.Error("restore took a MAC over from another port")
	}
	if got := len(sw.LearnedFDB()); got != 2 {
		t.Errorf("%d learned entries, want 2", got)
	}
}

// The learning path allocates nothing per frame: known MACs, new ones,
// moves and every drop on the way.
func TestLearningAllocatesNothing(t *testing.T) {
	one := 1
	sw := limitSwitch(t, FDBLimits{}, portcfg.Config{Name: "a", VLAN: 100, MaxMACs: &one}, portcfg.Config{Name: "b", VLAN: 100})
	wa := newEgressWorker(sw, sw.ports["a"], sw.ports["a"].io.Load())
	wb := newEgressWorker(sw, sw.ports["b"], sw.ports["b"].io.Load())
	// a and b send from the same MAC: refreshes, moves, then
	// mac_move_limit drops; a at its limit of one.
	mac := net.HardwareAddr{0x52, 0x54, 0, 0, 0, 1}
	ra, rb := fill(wa.b, fromMAC(mac)), fill(wb.b, fromMAC(mac))
	snap, va, vb := sw.snap.Load(), sw.ports["a"].view.Load(), sw.ports["b"].view.Load()
	allocs := testing.AllocsPerRun(100, func() {
		ra()
		wa.process(snap, va)
		rb()
		wb.process(snap, vb)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per batch", allocs)
	}
	if sw.ports["a"].ctr.MACMoves.Load()+sw.ports["b"].ctr.MACMoves.Load() == 0 {
		t.Error("no move was exercised")
	}
}

func TestFDBLimitsCheck(t *testing.T) {
	for _, tc := range []struct {
		l  FDBLimits
		ok bool
	}{
		{FDBLimits{}, true}, {FDBLimits{PerPort: NoMACs}, true}, {FDBLimits{PerPort: portcfg.MaxLearnedMACs, PerVLAN: 1, Total: 1}, true},
		{FDBLimits{PerPort: -2}, false}, {FDBLimits{PerVLAN: -1}, false}, {FDBLimits{Total: portcfg.MaxLearnedMACs + 1}, false},
	} {
		if err := tc.l.Check(); (err == nil) != tc.ok {
			t.Errorf("Check(%+v) = %v", tc.l, err)
		}
		if _, err := New(Config{Uplink: "up0", Backend: nullBackend{}, FDB: tc.l}); (err == nil) != tc.ok {
			t.Errorf("New with %+v: %v", tc.l, err)
		}
	}
}
