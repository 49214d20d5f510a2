package datapath_test

import (
	"testing"
	"time"

	"github.com/vswitch/vswitch/pkg/datapath"
)

// DropTotals has every reason from the start, sums the uplink's and the
// ports' drops, and keeps a deleted port's: a total never goes down.
func TestDropTotals(t *testing.T) {
	r := newRig(t, datapath.ModeVEPA, access("vnet1", 100, 0), access("vnet2", 100, 0))
	tot := r.sw.DropTotals()
	if len(tot) != len(datapath.Reasons()) {
		t.Fatalf("DropTotals has %d reasons, want all %d: %v", len(tot), len(datapath.Reasons()), tot)
	}
	for _, reason := range datapath.Reasons() {
		if v, ok := tot[reason.String()]; !ok || v != 0 {
			t.Errorf("before traffic %s = %d (present %v), want 0", reason, v, ok)
		}
	}
	// Tagged frames on access ports: 2 on vnet1, 1 on vnet2; an untagged
	// frame on the uplink: unknown_vlan.
	r.be.Iface("vnet1").Inject(eth(macR, mac1, ctag(0, 100)), eth(macR, mac1, ctag(0, 100)))
	r.be.Iface("vnet2").Inject(eth(macR, mac2, ctag(0, 100)))
	r.be.Iface("up0").Inject(eth(mac1, macR))
	want := map[string]uint64{"tagged_on_access": 3, "unknown_vlan": 1}
	waitTotals := func(what string) {
		t.Helper()
		deadline := time.Now().Add(2 * time.Second)
		for {
			tot = r.sw.DropTotals()
			if tot["tagged_on_access"] == want["tagged_on_access"] && tot["unknown_vlan"] == want["unknown_vlan"] {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: totals %v, want %v", what, tot, want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitTotals("after traffic")
	if err := r.sw.DeletePort("vnet1"); err != nil {
		t.Fatal(err)
	}
	waitTotals("after vnet1's deletion")
	if len(tot) != len(datapath.Reasons()) {
		t.Errorf("after deletion %d reasons, want %d", len(tot), len(datapath.Reasons()))
	}
	if err := r.sw.AddPort(access("vnet1", 100, 0)); err != nil {
		t.Fatal(err)
	}
	if err := r.sw.Attach("vnet1"); err != nil {
		t.Fatal(err)
	}
	r.be.Iface("vnet1").Inject(eth(macR, mac1, ctag(0, 100)))
	want["tagged_on_access"] = 4
	waitTotals("vnet1 added again")
}
