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
