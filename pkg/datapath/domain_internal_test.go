package datapath

import (
	"strings"
	"testing"

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
	plain := PortConfig{Name: "p0", VLAN: 7}
	if err := d.reserve(&plain); err != nil || len(d.keys) != 0 {
		t.Fatalf("a port without S-channel took domains: %v, %d", err, len(d.keys))
	}
	acc := PortConfig{Name: "a", VLAN: 100, SVID: 30}
	if err := d.reserve(&acc); err != nil {
		t.Fatal(err)
	}
	if err := d.reserve(&acc); err != nil || len(d.keys) != 1 {
		t.Fatalf("reserving the same pair twice: %v, %d domains", err, len(d.keys))
	}
	tab := d.table()
	dom := tab.domain(30, 100)
	if dom < firstSDomain || dom == noDomain {
		t.Fatalf("domain of (30, 100) = %d", dom)
	}
	if s, c := tab.pair(dom); s != 30 || c != 100 {
		t.Errorf("pair(%d) = (%d, %d), want (30, 100)", dom, s, c)
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
	for ; svid < 100 && failed == nil; svid++ {
		failed = d.reserve(&PortConfig{Name: "t", Trunk: all, SVID: svid})
	}
	if failed == nil || !strings.Contains(failed.Error(), "too many distinct S-channel VLANs") {
		t.Fatalf("no exhaustion error after %d trunks: %v", svid-1, failed)
	}
	before := len(d.keys)
	if err := d.reserve(&PortConfig{Name: "u", Trunk: all, SVID: svid}); err == nil || len(d.keys) != before {
		t.Errorf("a refused reservation changed the table: %v, %d -> %d", err, before, len(d.keys))
	}
	if firstSDomain+len(d.keys) > noDomain {
		t.Errorf("%d domains handed out: noDomain is taken", len(d.keys))
	}
}
