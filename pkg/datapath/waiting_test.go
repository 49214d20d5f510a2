package datapath_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/vswitch/vswitch/pkg/datapath"
	"github.com/vswitch/vswitch/pkg/port"
	"github.com/vswitch/vswitch/pkg/vlan"
)

// A port waiting for the bridge to assign its VLAN (VDP, VID 0) forwards
// nothing: its VM's frames are counted as vid_unassigned, and it is in no
// VLAN, so nothing from the uplink reaches it, priority-tagged (VID 0)
// frames included. Given the VID, it forwards on it like any access port.
func TestWaitingPortForwardsNothing(t *testing.T) {
	wait := port.Config{Name: "vnet1", BridgeVLAN: true, MACs: nil}
	r := newRig(t, datapath.ModeVEPA, wait, access("vnet2", 100, 0))
	up, vm1 := r.be.Iface("up0"), r.be.Iface("vnet1")

	vm1.Inject(eth(macR, mac1), eth(bcast, mac1), eth(macR, mac1, ctag(0, 100)))
	settle()
	if got := up.Sent(); len(got) != 0 {
		t.Fatalf("a waiting port's frames reached the uplink: %x", got)
	}
	if d := r.portDrops("vnet1"); d["vid_unassigned"] != 3 || len(d) != 1 {
		t.Errorf("drops %v, want 3 vid_unassigned", d)
	}
	up.Inject(eth(bcast, macR, ctag(0, 0)), eth(bcast, macR), eth(bcast, macR, ctag(0, 100)))
	if got := r.be.Iface("vnet2").Wait(1, time.Second); len(got) != 1 {
		t.Fatalf("vnet2 got %d frames, want the VLAN 100 broadcast", len(got))
	}
	settle()
	if got := vm1.Sent(); len(got) != 0 {
		t.Fatalf("the waiting port received %x", got)
	}
	if n := r.sw.FDBSize(0); n != 0 {
		t.Errorf("FDBSize %d with a waiting port and nothing learned", n)
	}

	// The bridge assigned VLAN 200.
	got := wait
	got.VLAN = 200
	if err := r.sw.UpdatePort(got); err != nil {
		t.Fatal(err)
	}
	vm1.Inject(eth(macR, mac1))
	if f := up.Wait(1, time.Second); len(f) != 1 || !bytes.Equal(f[0], eth(macR, mac1, ctag(0, 200))) {
		t.Fatalf("after the assignment the uplink got %x, want the frame tagged 200", f)
	}
	up.Inject(eth(bcast, macR, vlan.Tag{TPID: vlan.TPIDCTag, TCI: 200}))
	if f := vm1.Wait(1, time.Second); len(f) != 1 || !bytes.Equal(f[0], eth(bcast, macR)) {
		t.Fatalf("after the assignment the port got %x, want the VLAN 200 broadcast untagged", f)
	}
}
