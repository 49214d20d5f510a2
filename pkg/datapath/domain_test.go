package datapath_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/vswitch/vswitch/pkg/datapath"
	"github.com/vswitch/vswitch/pkg/port"
	"github.com/vswitch/vswitch/pkg/vlan"
)

// Two tenants on different S-channels may use the same MAC on the same
// C-VID (cloned VM images do). Each S-channel must learn its own entry:
// before learning domains, the second VM's frames moved the one shared
// (C-VID, MAC) entry, and unicast to the first VM was dropped as unknown.
func TestSChannelsLearnSeparately(t *testing.T) {
	a, b := access("vnet1", 100, 0), access("vnet2", 100, 0)
	a.SVID, b.SVID = 10, 20
	r := newRig(t, datapath.ModeVEPA, a, b)
	up := r.be.Iface("up0")
	stag := func(svid uint16) vlan.Tag { return vlan.Tag{TPID: vlan.TPIDSTag, TCI: svid} }

	// Both VMs send with the same source MAC, vnet2 last.
	r.be.Iface("vnet1").Inject(eth(macR, mac1))
	up.Wait(1, time.Second)
	r.be.Iface("vnet2").Inject(eth(macR, mac1))
	up.Wait(1, time.Second)

	for _, tc := range []struct {
		svid       uint16
		want, not1 string
	}{{10, "vnet1", "vnet2"}, {20, "vnet2", "vnet1"}} {
		up.Inject(eth(mac1, macR, stag(tc.svid), ctag(0, 100)))
		got := r.be.Iface(tc.want).Wait(1, time.Second)
		if len(got) != 1 || !bytes.Equal(got[0], eth(mac1, macR)) {
			t.Errorf("S-VID %d unicast to the shared MAC: %s got %x", tc.svid, tc.want, got)
		}
		if n := len(r.be.Iface(tc.not1).Sent()); n != 0 {
			t.Errorf("S-VID %d unicast leaked to %s (%d frames)", tc.svid, tc.not1, n)
		}
	}

	// The reflection filter works per S-channel: vnet2's broadcast coming
	// back on S-VID 20 is not delivered to vnet2.
	up.Inject(eth(bcast, mac1, stag(20), ctag(0, 100)))
	settle()
	if n := len(r.be.Iface("vnet2").Sent()); n != 0 {
		t.Errorf("vnet2 got its own broadcast back (%d frames)", n)
	}
	if d := r.portDrops("vnet2")[datapath.DropReflection.String()]; d != 1 {
		t.Errorf("vnet2 reflection drops %d, want 1", d)
	}

	// The FDB lists one entry per S-channel, with its S-VID.
	seen := map[uint16]string{}
	for _, e := range r.sw.FDBEntries(100) {
		if bytes.Equal(e.MAC, mac1) {
			seen[e.SVID] = e.Port
			if e.VID != 100 {
				t.Errorf("entry on %s has VID %d, want 100", e.Port, e.VID)
			}
		}
	}
	if seen[10] != "vnet1" || seen[20] != "vnet2" || len(seen) != 2 {
		t.Errorf("FDB entries for the shared MAC by S-VID: %v", seen)
	}
	if n := len(r.sw.FDBEntries(200)); n != 0 {
		t.Errorf("FDBEntries(200) returned %d entries", n)
	}
}

// A MAC registered on an S-channel port answers for that S-channel only.
func TestSChannelStaticMAC(t *testing.T) {
	a, b := access("vnet1", 100, 0, mac2), access("vnet2", 100, 0)
	a.SVID, b.SVID = 10, 20
	r := newRig(t, datapath.ModeVEPA, a, b)
	up := r.be.Iface("up0")
	up.Inject(eth(mac2, macR, vlan.Tag{TPID: vlan.TPIDSTag, TCI: 10}, ctag(0, 100)))
	if got := r.be.Iface("vnet1").Wait(1, time.Second); len(got) != 1 {
		t.Fatalf("registered MAC on S-VID 10 not delivered: %x", got)
	}
	up.Inject(eth(mac2, macR, vlan.Tag{TPID: vlan.TPIDSTag, TCI: 20}, ctag(0, 100)))
	settle()
	if n := len(r.be.Iface("vnet1").Sent()) + len(r.be.Iface("vnet2").Sent()); n != 0 {
		t.Errorf("S-VID 20 frame to a MAC registered on S-VID 10 was delivered (%d frames)", n)
	}
	var static []datapath.FDBEntry
	for _, e := range r.sw.FDBEntries(0) {
		if e.Static {
			static = append(static, e)
		}
	}
	if len(static) != 1 || static[0].SVID != 10 || static[0].VID != 100 || static[0].Port != "vnet1" {
		t.Errorf("static entries %+v", static)
	}
}

// A saved entry of an S-channel port comes back in that port's S-channel
// (the daemon saves C-VID, MAC and port; the port implies the S-VID).
func TestSChannelRestoreFDB(t *testing.T) {
	a := access("vnet1", 100, 0)
	a.SVID = 10
	r := newRig(t, datapath.ModeVEPA, a)
	if !r.sw.RestoreFDB(100, mac3, "vnet1") {
		t.Fatal("RestoreFDB refused a valid entry")
	}
	if r.sw.RestoreFDB(200, mac3, "vnet1") {
		t.Error("RestoreFDB accepted a VID the port does not carry")
	}
	es := r.sw.LearnedFDB()
	if len(es) != 1 || es[0].SVID != 10 || es[0].VID != 100 || es[0].Port != "vnet1" {
		t.Fatalf("learned entries %+v", es)
	}
	r.be.Iface("up0").Inject(eth(mac3, macR, vlan.Tag{TPID: vlan.TPIDSTag, TCI: 10}, ctag(0, 100)))
	if got := r.be.Iface("vnet1").Wait(1, time.Second); len(got) != 1 {
		t.Errorf("restored entry does not deliver: %x", got)
	}
}

// A trunk moved from S-channel to S-channel many times (each move numbers
// 4094 pairs) must not run out of learning domains: the old pairs' numbers
// come back, and learning keeps working on the current S-channel.
func TestSChannelDomainsAreRecycled(t *testing.T) {
	all, err := vlan.ParseVIDSet("1-4094")
	if err != nil {
		t.Fatal(err)
	}
	trunk := port.Config{Name: "vnet1", Trunk: all, SVID: 1}
	r := newRig(t, datapath.ModeVEPA, trunk)
	for svid := uint16(2); svid <= 40; svid++ {
		trunk.SVID = svid
		if err := r.sw.UpdatePort(trunk); err != nil {
			t.Fatalf("move to S-VID %d: %v", svid, err)
		}
	}
	// vnet1 (S-VID 40) learns mac1 on VID 7 and gets unicast for it.
	r.be.Iface("vnet1").Inject(eth(macR, mac1, ctag(0, 7)))
	r.be.Iface("up0").Wait(1, time.Second)
	r.be.Iface("up0").Inject(eth(mac1, macR, vlan.Tag{TPID: vlan.TPIDSTag, TCI: 40}, ctag(0, 7)))
	if got := r.be.Iface("vnet1").Wait(1, time.Second); len(got) != 1 {
		t.Fatalf("unicast after 39 moves not delivered: %x", got)
	}
	es := r.sw.FDBEntries(7)
	if len(es) != 1 || es[0].SVID != 40 || es[0].Port != "vnet1" {
		t.Errorf("FDB entries %+v", es)
	}
	if err := r.sw.DeletePort("vnet1"); err != nil {
		t.Fatal(err)
	}
	if n := len(r.sw.FDBEntries(0)); n != 0 {
		t.Errorf("%d FDB entries after the port went", n)
	}
}
