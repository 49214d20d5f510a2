package datapath

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	portcfg "github.com/vswitch/vswitch/pkg/port"
	"github.com/vswitch/vswitch/pkg/vlan"
)

// Domain numbers are handed out once per (S-VID, C-VID) pair, map back to
// the pair, and run out with a clear error that changes nothing.
func TestDomainsReserve(t *testing.T) {
	var d domains
	all, err := vlan.ParseVIDSet("1-4094")
	if err != nil {
		t.Fatal(err)
	}
	plain := portcfg.Config{Name: "p0", VLAN: 7}
	if _, err := d.reserve(&plain); err != nil || len(d.keys) != 0 {
		t.Fatalf("a port without S-channel took domains: %v, %d", err, len(d.keys))
	}
	acc := portcfg.Config{Name: "a", VLAN: 100, SVID: 30}
	if _, err := d.reserve(&acc); err != nil {
		t.Fatal(err)
	}
	if _, err := d.reserve(&acc); err != nil || len(d.keys) != 1 {
		t.Fatalf("reserving the same pair twice: %v, %d domains", err, len(d.keys))
	}
	tab := d.tab
	dom := tab.domain(30, 100)
	if dom < firstSDomain || dom == noDomain {
		t.Fatalf("domain of (30, 100) = %d", dom)
	}
	if s, c, ok := d.pair(dom); !ok || s != 30 || c != 100 {
		t.Errorf("pair(%d) = (%d, %d, %v), want (30, 100)", dom, s, c, ok)
	}
	if got := tab.domain(0, 100); got != 100 {
		t.Errorf("domain(0, 100) = %d, want the VID", got)
	}
	if got := tab.domain(31, 100); got != noDomain {
		t.Errorf("domain of an unused pair = %d, want noDomain", got)
	}
	// Full trunks on S-channels until the numbers run out.
	var failed error
	svid := uint16(1)
	var trunks []portcfg.Config
	for ; svid < 100 && failed == nil; svid++ {
		c := portcfg.Config{Name: "t", Trunk: all, SVID: svid}
		if _, failed = d.reserve(&c); failed == nil {
			trunks = append(trunks, c)
		}
	}
	if failed == nil || !strings.Contains(failed.Error(), "too many S-channel VLANs in use") {
		t.Fatalf("no exhaustion error after %d trunks: %v", svid-1, failed)
	}
	before := len(d.keys)
	if _, err := d.reserve(&portcfg.Config{Name: "u", Trunk: all, SVID: svid}); err == nil || len(d.keys) != before {
		t.Errorf("a refused reservation changed the table: %v, %d -> %d", err, before, len(d.keys))
	}
	if firstSDomain+len(d.keys) > noDomain {
		t.Errorf("%d domains handed out: noDomain is taken", len(d.keys))
	}

	// Release the trunks and one of the two users of (30, 100): the
	// trunks' numbers come back and serve a new trunk, reported as reused;
	// (30, 100) keeps its number while a port uses it.
	for i := range trunks {
		d.release(&trunks[i])
	}
	d.release(&acc)
	if len(d.ids) != 1 || d.ids[pairKey(30, 100)] != dom || d.tab.domain(30, 100) != dom {
		t.Fatalf("after release %d pairs numbered, (30,100) -> %d", len(d.ids), d.ids[pairKey(30, 100)])
	}
	if _, _, ok := d.pair(dom + 1); ok {
		t.Errorf("released number %d still maps to a pair", dom+1)
	}
	if got := d.tab.domain(2, 100); got != noDomain {
		t.Errorf("released pair (2, 100) still has domain %d in the table", got)
	}
	if got := tab.domain(30, 100); got != dom {
		t.Errorf("a table handed out before was changed: (30, 100) -> %d", got)
	}
	reused, err := d.reserve(&portcfg.Config{Name: "v", Trunk: all, SVID: 999})
	if err != nil || len(reused) != 4094 || len(d.keys) != before {
		t.Errorf("reserve after release: %v, %d reused, %d numbers (want 4094 reused, %d)", err, len(reused), len(d.keys), before)
	}
	d.release(&acc)
	if _, ok := d.ids[pairKey(30, 100)]; ok || d.tab.domain(30, 100) != noDomain {
		t.Error("(30, 100) still numbered after its last user released it")
	}
}

// A learning domain handed out again starts empty: an entry left in it
// (learned by a frame still in flight with the old snapshot) is purged.
func TestReusedDomainStartsEmpty(t *testing.T) {
	sw, err := New(Config{Uplink: "up0", Backend: nullBackend{}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := sw.AddPort(portcfg.Config{Name: "a", VLAN: 100, SVID: 10}); err != nil {
		t.Fatal(err)
	}
	dom := sw.snap.Load().dom.domain(10, 100)
	if err := sw.DeletePort("a"); err != nil {
		t.Fatal(err)
	}
	mac := []byte{0x52, 0x54, 0, 0, 0, 7}
	sw.fdb.Learn(MACKey(dom, mac), 3) // stale
	if err := sw.AddPort(portcfg.Config{Name: "b", VLAN: 200, SVID: 20}); err != nil {
		t.Fatal(err)
	}
	if got := sw.snap.Load().dom.domain(20, 200); got != dom {
		t.Fatalf("(20, 200) got domain %d, want the released %d", got, dom)
	}
	if _, ok := sw.fdb.Lookup(MACKey(dom, mac)); ok {
		t.Error("the stale entry survived the domain's reuse")
	}
}

// An entry learned after Sweep read the clock (a learner racing a sweep
// that waited for the lock) is young, not 136 years old.
func TestSweepKeepsEntriesNewerThanItsClock(t *testing.T) {
	f := newFDB()
	k := MACKey(100, []byte{0x52, 0x54, 0, 0, 0, 9})
	f.learnAt(k, 1, f.now()+5)
	f.Sweep(time.Second, func(int) bool { return true })
	if _, ok := f.Lookup(k); !ok {
		t.Fatal("Sweep removed an entry stamped after its clock")
	}
	if rows := f.Rows(0); len(rows) != 1 || rows[0].Age != 0 {
		t.Errorf("rows %+v, want one of age 0", rows)
	}
}
