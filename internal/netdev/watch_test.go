package netdev_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/vswitch/vswitch/internal/netdev"
	"github.com/vswitch/vswitch/test/topo"
)

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// newNS returns a fresh namespace removed at test end.
func newNS(t testing.TB) *topo.NS {
	t.Helper()
	tp := topo.New(t)
	ns, err := tp.NewNS("nd")
	must(t, err)
	return ns
}

func watch(t testing.TB, ns *topo.NS, opts ...netdev.Option) *netdev.Watcher {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w, err := netdev.Watch(ctx, append([]netdev.Option{netdev.WithNamespace(ns.Handle())}, opts...)...)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); <-w.Done() })
	return w
}

// waitFor reads events until match returns true.
func waitFor(t testing.TB, w *netdev.Watcher, what string, match func(netdev.Event) bool) netdev.Event {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case ev, ok := <-w.Events():
			if !ok {
				t.Fatalf("events closed while waiting for %s", what)
			}
			if match(ev) {
				return ev
			}
		case <-timeout:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func TestWatchListsExistingThenFollows(t *testing.T) {
	ns := newNS(t)
	w := watch(t, ns)
	lo := waitFor(t, w, "lo listed", func(e netdev.Event) bool { return e.Name == "lo" })
	if !lo.Present || !lo.Up || lo.MTU != 65536 {
		t.Fatalf("lo = %+v", lo)
	}

	must(t, ns.Netlink().LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "wa"}, PeerName: "wb"}))
	ev := waitFor(t, w, "wa present", func(e netdev.Event) bool { return e.Name == "wa" })
	if !ev.Present || ev.Up || ev.Kind != "veth" || len(ev.HardwareAddr) != 6 || ev.Index == 0 {
		t.Fatalf("wa appeared as %+v", ev)
	}
	idx := ev.Index

	must(t, ns.SetUp("wa"))
	waitFor(t, w, "wa up", func(e netdev.Event) bool { return e.Name == "wa" && e.Present && e.Up })

	must(t, ns.SetMTU("wa", 1400))
	waitFor(t, w, "wa mtu 1400", func(e netdev.Event) bool { return e.Name == "wa" && e.MTU == 1400 })

	must(t, ns.SetMAC("wa", "52:54:00:12:34:56"))
	waitFor(t, w, "wa new mac", func(e netdev.Event) bool {
		return e.Name == "wa" && e.HardwareAddr.String() == "52:54:00:12:34:56"
	})

	must(t, ns.DelLink("wa"))
	gone := waitFor(t, w, "wa gone", func(e netdev.Event) bool { return e.Name == "wa" && !e.Present })
	if gone.Index != idx {
		t.Fatalf("delete reported index %d, want %d", gone.Index, idx)
	}
	waitFor(t, w, "peer wb gone", func(e netdev.Event) bool { return e.Name == "wb" && !e.Present })
}

func TestWatchRenameReportsOldNameGone(t *testing.T) {
	ns := newNS(t)
	w := watch(t, ns)
	_, err := topo.Tap(ns, "tapold")
	must(t, err)
	ev := waitFor(t, w, "tapold", func(e netdev.Event) bool { return e.Name == "tapold" && e.Present })
	if ev.Kind != "tuntap" {
		t.Fatalf("kind %q", ev.Kind)
	}
	must(t, ns.SetDown("tapold"))
	l, err := ns.Link("tapold")
	must(t, err)
	must(t, ns.Netlink().LinkSetName(l, "tapnew"))
	waitFor(t, w, "tapold gone", func(e netdev.Event) bool { return e.Name == "tapold" && !e.Present })
	waitFor(t, w, "tapnew present", func(e netdev.Event) bool { return e.Name == "tapnew" && e.Present })
}

// Leaving a bridge makes the kernel send an AF_BRIDGE RTM_DELLINK; the link
// itself is still there and must not be reported gone.
func TestWatchBridgePortLeaveIsNotDelete(t *testing.T) {
	ns := newNS(t)
	must(t, topo.VethPair(ns, "pa", ns, "pb"))
	must(t, topo.Bridge(ns, "br0", topo.Port{Name: "pa", Hairpin: true}))
	w := watch(t, ns)
	l, err := ns.Link("pa")
	must(t, err)
	must(t, ns.Netlink().LinkSetNoMaster(l))
	must(t, ns.SetMTU("pb", 1300)) // a marker after the un-enslave
	deadline := time.After(5 * time.Second)
	for {
		select {
		case ev := <-w.Events():
			if ev.Name == "pa" && !ev.Present {
				t.Fatal("pa reported gone after leaving the bridge")
			}
			if ev.Name == "pb" && ev.MTU == 1300 {
				return
			}
		case <-deadline:
			t.Fatal("marker event never came")
		}
	}
}

func TestWatchCreateDeleteOrdering(t *testing.T) {
	ns := newNS(t)
	w := watch(t, ns)
	const n = 20
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("o%d", i)
		must(t, ns.Netlink().LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: name + "p"}))
		must(t, ns.DelLink(name))
	}
	// For each name: at least one Present=true, and the last event is
	// Present=false, with no Present=true after it.
	state := map[string][]bool{}
	done := 0
	timeout := time.After(10 * time.Second)
	for done < n {
		select {
		case ev := <-w.Events():
			if len(ev.Name) < 2 || ev.Name[0] != 'o' || ev.Name[len(ev.Name)-1] == 'p' {
				continue
			}
			if h := state[ev.Name]; len(h) > 0 && !h[len(h)-1] {
				t.Fatalf("%s: event after deletion: %+v", ev.Name, ev)
			}
			state[ev.Name] = append(state[ev.Name], ev.Present)
			if !ev.Present {
				if !state[ev.Name][0] {
					t.Fatalf("%s: deleted before created", ev.Name)
				}
				done++
			}
		case <-timeout:
			t.Fatalf("only %d of %d create/delete sequences seen: %v", done, n, state)
		}
	}
}

// An overrun (ENOBUFS) must not lose state: after a resync every link is
// reported again and vanished ones are reported gone.
func TestWatchSurvivesOverrun(t *testing.T) {
	ns := newNS(t)
	// Tiny socket buffer, unbuffered channel, nobody reading: the kernel
	// must overrun.
	w := watch(t, ns, netdev.WithReceiveBufferSize(1024, true), netdev.WithBuffer(0))
	// Consume the initial listing of lo.
	waitFor(t, w, "lo", func(e netdev.Event) bool { return e.Name == "lo" })
	must(t, ns.Netlink().LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "gone0"}, PeerName: "gone1"}))
	// Let the watcher learn gone0 exists before the storm.
	waitFor(t, w, "gone0", func(e netdev.Event) bool { return e.Name == "gone0" && e.Present })
	const n = 30
	for i := 0; i < n; i++ {
		must(t, ns.Netlink().LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: fmt.Sprintf("s%d", i)}, PeerName: fmt.Sprintf("t%d", i)}))
	}
	must(t, ns.DelLink("gone0"))
	// Final state: all s*/t* present, gone0/gone1 absent.
	present := map[string]bool{}
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev := <-w.Events():
			present[ev.Name] = ev.Present
		case <-timeout:
			t.Fatalf("state never converged: %v (resyncs %d)", present, w.Resyncs())
		}
		ok := !present["gone0"] && !present["gone1"]
		for i := 0; i < n && ok; i++ {
			ok = present[fmt.Sprintf("s%d", i)] && present[fmt.Sprintf("t%d", i)]
		}
		if ok {
			break
		}
	}
	if w.Resyncs() == 0 {
		t.Fatal("expected at least one resync after the overrun")
	}
	t.Logf("resyncs: %d", w.Resyncs())
}

func TestWatchCallback(t *testing.T) {
	ns := newNS(t)
	got := make(chan netdev.Event, 64)
	w := watch(t, ns, netdev.WithCallback(func(e netdev.Event) { got <- e }))
	if w.Events() != nil {
		t.Fatal("Events should be nil with a callback")
	}
	select {
	case e := <-got:
		if e.Name != "lo" {
			t.Fatalf("first event %+v", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no callback")
	}
}

func fdCount(t testing.TB) int {
	ents, err := os.ReadDir("/proc/self/fd")
	must(t, err)
	return len(ents)
}

// baseline lets stray goroutines from earlier tests finish, then returns
// the goroutine count.
func baseline() int {
	time.Sleep(50 * time.Millisecond)
	return runtime.NumGoroutine()
}

// settle waits until the goroutine count drops to at most want.
func settle(want int) int {
	var g int
	for i := 0; i < 200; i++ {
		g = runtime.NumGoroutine()
		if g <= want {
			return g
		}
		time.Sleep(10 * time.Millisecond)
	}
	return g
}

func TestWatchStartStopNoLeak(t *testing.T) {
	ns := newNS(t)
	cycle := func() {
		ctx, cancel := context.WithCancel(context.Background())
		w, err := netdev.Watch(ctx, netdev.WithNamespace(ns.Handle()))
		must(t, err)
		if i := len(w.Events()); i < 0 {
			t.Fatal()
		}
		cancel()
		<-w.Done()
		// Closed after stop.
		for range w.Events() {
		}
	}
	cycle() // warm up runtime fds (epoll etc.)
	g0, f0 := baseline(), fdCount(t)
	const n = 1000
	start := time.Now()
	for i := 0; i < n; i++ {
		cycle()
	}
	t.Logf("%d watcher start/stop cycles in %v", n, time.Since(start))
	if g := settle(g0 + 2); g > g0+2 {
		t.Fatalf("goroutines: %d before, %d after %d cycles", g0, g, n)
	}
	if f := fdCount(t); f > f0+2 {
		t.Fatalf("fds: %d before, %d after %d cycles", f0, f, n)
	}
}

func TestWatchVethChurnNoLeak(t *testing.T) {
	ns := newNS(t)
	h := ns.Netlink()
	g0, f0 := baseline(), fdCount(t)
	ctx, cancel := context.WithCancel(context.Background())
	w, err := netdev.Watch(ctx, netdev.WithNamespace(ns.Handle()))
	must(t, err)
	n := 1000 // ~20 ms each: the kernel waits for RCU on every veth delete
	if testing.Short() {
		n = 100
	}
	seen := make(chan [2]int, 1)
	go func() {
		up, down := 0, 0
		for ev := range w.Events() {
			if ev.Name == "churn0" {
				if ev.Present {
					up++
				} else {
					down++
				}
			}
		}
		seen <- [2]int{up, down}
	}()
	start := time.Now()
	for i := 0; i < n; i++ {
		must(t, h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "churn0"}, PeerName: "churn1"}))
		l, err := netdev.LinkByNameAt(h, "churn0")
		must(t, err)
		must(t, h.LinkDel(l))
	}
	t.Logf("%d veth create/delete cycles in %v", n, time.Since(start))
	// Wait for the last deletion to be seen, then stop.
	time.Sleep(200 * time.Millisecond)
	cancel()
	<-w.Done()
	c := <-seen
	if c[0] < n || c[1] < n {
		t.Fatalf("saw %d present / %d gone events for %d cycles (resyncs %d)", c[0], c[1], n, w.Resyncs())
	}
	if g := settle(g0 + 2); g > g0+2 {
		t.Fatalf("goroutines: %d before, %d after", g0, g)
	}
	if f := fdCount(t); f > f0+2 {
		t.Fatalf("fds: %d before, %d after", f0, f)
	}
}

// A tap has carrier (Running) only while its fd is open: the daemon sees
// the VM go away even though the persistent device stays.
func TestWatchTapCarrier(t *testing.T) {
	ns := newNS(t)
	w := watch(t, ns)
	f, err := topo.Tap(ns, "vnet7")
	must(t, err)
	ev := waitFor(t, w, "vnet7 up and running", func(e netdev.Event) bool {
		return e.Name == "vnet7" && e.Present && e.Up && e.Running
	})
	if ev.Kind != "tuntap" || ev.MTU != 1500 {
		t.Fatalf("tap event %+v", ev)
	}
	must(t, f.Close())
	ev = waitFor(t, w, "vnet7 no carrier", func(e netdev.Event) bool { return e.Name == "vnet7" && !e.Running })
	if !ev.Present || !ev.Up {
		t.Fatalf("persistent tap after close: %+v", ev)
	}
}
