package datapath_test

import (
	"errors"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/vswitch/vswitch/pkg/backend/queuetest"
	"github.com/vswitch/vswitch/pkg/datapath"
	"github.com/vswitch/vswitch/pkg/port"
)

// A watched port reports its first frame from the VM once: not for frames
// the source checks drop (another MAC, a multicast source), not for an
// unwatched port, not twice; watching again reports the next one, and
// WatchFirstFrame(false) stops it.
func TestWatchFirstFrame(t *testing.T) {
	be := queuetest.New()
	sw, got := firstFrameSwitch(t, be)
	for _, c := range []port.Config{access("vnet1", 100, 0, mac1), access("vnet2", 100, 0)} {
		if err := sw.AddPort(c); err != nil {
			t.Fatal(err)
		}
		if err := sw.Attach(c.Name); err != nil {
			t.Fatal(err)
		}
	}
	if err := sw.WatchFirstFrame("vnet1", true); err != nil {
		t.Fatal(err)
	}
	if err := sw.WatchFirstFrame("nope", true); !errors.Is(err, port.ErrNotFound) {
		t.Errorf("unknown port: %v", err)
	}
	expect := func(want string) {
		t.Helper()
		select {
		case p := <-got:
			if p != want {
				t.Fatalf("first frame reported for %q, want %q", p, want)
			}
		case <-time.After(time.Second):
			if want != "" {
				t.Fatalf("no first frame reported for %s", want)
			}
		}
		if want == "" {
			return
		}
		select {
		case p := <-got:
			t.Fatalf("a second report, for %s", p)
		case <-time.After(50 * time.Millisecond):
		}
	}
	vm1, up := be.Iface("vnet1"), be.Iface("up0")
	vm1.Inject(eth(macR, mac2), eth(macR, net.HardwareAddr{1, 0, 0x5e, 0, 0, 1})) // spoofed, bad source
	be.Iface("vnet2").Inject(eth(macR, mac3))                                     // another, unwatched port
	up.Wait(1, time.Second)
	select {
	case p := <-got:
		t.Fatalf("reported %s for frames that did not pass, or an unwatched port", p)
	case <-time.After(100 * time.Millisecond):
	}
	vm1.Inject(eth(macR, mac1), eth(macR, mac1))
	expect("vnet1")
	vm1.Inject(eth(macR, mac1))
	up.Wait(3, time.Second)
	select {
	case p := <-got:
		t.Fatalf("reported %s again without a new watch", p)
	case <-time.After(100 * time.Millisecond):
	}
	_ = sw.WatchFirstFrame("vnet1", true)
	vm1.Inject(eth(macR, mac1))
	expect("vnet1")
	_ = sw.WatchFirstFrame("vnet1", true)
	_ = sw.WatchFirstFrame("vnet1", false)
	vm1.Inject(eth(macR, mac1))
	up.Wait(2, time.Second)
	select {
	case p := <-got:
		t.Fatalf("reported %s after the watch was stopped", p)
	case <-time.After(100 * time.Millisecond):
	}
}

// A port waiting for the bridge's VLAN (VDP, VID 0) forwards nothing, but
// its VM's frames still tell that the VM runs here: an incoming migration
// is associated only then, and the bridge may give the VLAN only to the
// association. So a frame from the port's own MAC is reported, dropped as
// vid_unassigned all the same; one from another MAC (or a multicast
// source) is not.
func TestWatchFirstFrameOfWaitingPort(t *testing.T) {
	be := queuetest.New()
	sw, got := firstFrameSwitch(t, be)
	for _, c := range []port.Config{{Name: "vnet1", BridgeVLAN: true, MACs: []net.HardwareAddr{mac1}}, {Name: "vnet2", BridgeVLAN: true}} {
		if err := sw.AddPort(c); err != nil {
			t.Fatal(err)
		}
		if err := sw.Attach(c.Name); err != nil {
			t.Fatal(err)
		}
		if err := sw.WatchFirstFrame(c.Name, true); err != nil {
			t.Fatal(err)
		}
	}
	vm1, vm2 := be.Iface("vnet1"), be.Iface("vnet2")
	vm1.Inject(eth(macR, mac2), eth(macR, net.HardwareAddr{1, 0, 0x5e, 0, 0, 1})) // another MAC, a multicast source
	vm2.Inject(eth(macR, net.HardwareAddr{1, 0, 0x5e, 0, 0, 1}))
	select {
	case p := <-got:
		t.Fatalf("reported %s for frames that are not the VM's", p)
	case <-time.After(200 * time.Millisecond):
	}
	vm1.Inject(eth(bcast, mac1)) // QEMU's announcement
	vm2.Inject(eth(bcast, mac3)) // no registered MACs: any unicast source
	seen := map[string]bool{}
	for range 2 {
		select {
		case p := <-got:
			seen[p] = true
		case <-time.After(time.Second):
			t.Fatalf("first frames reported for %v, want vnet1 and vnet2", seen)
		}
	}
	if !seen["vnet1"] || !seen["vnet2"] {
		t.Errorf("first frames reported for %v, want vnet1 and vnet2", seen)
	}
	if got := be.Iface("up0").Sent(); len(got) != 0 {
		t.Fatalf("a waiting port sent %d frames to the uplink", len(got))
	}
}

// firstFrameSwitch starts a switch on be whose FirstFrame reports go to got.
func firstFrameSwitch(t *testing.T, be *queuetest.Backend) (*datapath.Switch, <-chan string) {
	t.Helper()
	got := make(chan string, 8)
	sw, err := datapath.New(datapath.Config{Uplink: "up0", Backend: be, Logger: slog.New(slog.DiscardHandler),
		FirstFrame: func(p string) { got <- p }})
	if err != nil {
		t.Fatal(err)
	}
	if err := sw.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sw.Stop)
	return sw, got
}
