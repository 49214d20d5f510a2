package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vswitch/vswitch/internal/netdev"
	"github.com/vswitch/vswitch/internal/rxwait"
	"github.com/vswitch/vswitch/pkg/api"
	"github.com/vswitch/vswitch/pkg/backend"
	"github.com/vswitch/vswitch/pkg/backend/queuetest"
	"github.com/vswitch/vswitch/pkg/vlan"
)

// These tests run the daemon without root: a fake LinkSource, in-memory
// backends (queuetest) and a state file in a temp directory.

// fakeLinks is a LinkSource whose links the test sets.
type fakeLinks struct {
	mu     sync.Mutex
	links  map[string]netdev.Event
	events chan netdev.Event
}

func newFakeLinks(names ...string) *fakeLinks {
	f := &fakeLinks{links: map[string]netdev.Event{}, events: make(chan netdev.Event, 64)}
	for i, n := range names {
		f.links[n] = netdev.Event{Name: n, Index: 10 + i, Present: true, Up: true,
			HardwareAddr: net.HardwareAddr{2, 0, 0, 0, 0, byte(i + 1)}}
	}
	return f
}

func (f *fakeLinks) Link(name string) (netdev.Event, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ev, ok := f.links[name]
	if !ok {
		return netdev.Event{}, fmt.Errorf("link %s: not found", name)
	}
	return ev, nil
}

// Watch reports the present links, then whatever the test sends.
func (f *fakeLinks) Watch(ctx context.Context) (<-chan netdev.Event, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(chan netdev.Event, 64)
	for _, ev := range f.links {
		out <- ev
	}
	go func() {
		defer close(out)
		for {
			select {
			case <-ctx.Done():
				return
			case ev := <-f.events:
				out <- ev
			}
		}
	}()
	return out, nil
}

// set records a link's new state and returns the event for it.
func (f *fakeLinks) set(name string, index int, present bool) netdev.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	ev := netdev.Event{Name: name, Index: index, Present: present, Up: present, HardwareAddr: net.HardwareAddr{2, 0, 0, 0, 1, byte(index)}}
	if present {
		f.links[name] = ev
	} else {
		delete(f.links, name)
	}
	return ev
}

// named gives an in-memory backend the name of a real one.
type named struct {
	backend.Backend
	name string
}

func (n named) Name() string { return n.name }

// broken is a backend whose queues never open.
type broken struct{ name string }

func (b broken) Name() string { return b.name }
func (b broken) Open(ifname string, _ backend.QueueConfig) (backend.Queue, error) {
	return nil, fmt.Errorf("open %s: %s is broken in this test", ifname, b.name)
}

type rig struct {
	d     *Daemon
	links *fakeLinks
	mem   *queuetest.Backend // the afpacket backend (and afxdp's unless replaced)
	opts  Options
	sys   system
}

// newRig makes the options and host of a daemon on uplink up0 with taps
// vnet1 and vnet2 present; AF_XDP probes fail unless the test changes sys.
func newRig(t *testing.T) *rig {
	t.Helper()
	r := &rig{links: newFakeLinks("up0", "vnet1", "vnet2"), mem: queuetest.New()}
	r.opts = Options{
		Uplink: "up0", Datapath: backendAFPacket, Mode: "vepa",
		StatePath: filepath.Join(t.TempDir(), "state.db"), Socket: filepath.Join(t.TempDir(), "api.sock"),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), UplinkQueues: 1, LLDPInterval: -1,
	}
	r.sys = system{
		links:        r.links,
		probeXDP:     func(string) error { return errors.New("no AF_XDP in this test") },
		backend:      func(name string, _ *rxwait.Group) backend.Backend { return named{r.mem, name} },
		rxQueues:     func(string) int { return 1 },
		noCoalescing: func(string) (restorer, error) { return nil, nil },
		lockUplink:   func(string) (func(), error) { return func() {}, nil },
	}
	return r
}

func (r *rig) start(t *testing.T) *Daemon {
	t.Helper()
	d, err := start(r.opts, r.sys)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	r.d = d
	return d
}

// linksUp tells the rig's daemon that the named links exist and are up,
// as the link watcher would.
func (r *rig) linksUp(names ...string) {
	for _, n := range names {
		ev, _ := r.links.Link(n)
		r.d.linkChanged(ev)
	}
}

func intp(v int) *int { return &v }

// frame is an untagged unicast frame from src to dst.
func frame(src, dst byte) []byte {
	f := make([]byte, 60)
	copy(f, []byte{0x52, 0x54, 0, 0, 0, dst, 0x52, 0x54, 0, 0, 0, src, 0x08, 0x00})
	return f
}

// sendsTagged checks that a frame the port's VM sends reaches the uplink
// with the port's VID.
func sendsTagged(t *testing.T, mem *queuetest.Backend, tap string, vid uint16) {
	t.Helper()
	if !mem.Iface(tap).Inject(frame(1, 2)) {
		t.Fatalf("%s has no open queue: the port is not attached", tap)
	}
	got := mem.Iface("up0").Wait(1, 2*time.Second)
	if len(got) != 1 {
		t.Fatalf("uplink sent %d frames, want 1", len(got))
	}
	var h vlan.Header
	if err := vlan.Parse(got[0], &h); err != nil || h.NTags != 1 || h.Tags[0].VID() != vid {
		t.Fatalf("uplink frame tags %+v (%v), want VID %d", h.Tags[:h.NTags], err, vid)
	}
}

func TestStartRestoresPortsAndAttachesPresentTaps(t *testing.T) {
	r := newRig(t)
	d := r.start(t)
	ctx := context.Background()
	if _, err := d.AddPort(ctx, api.PortSpec{Name: "vnet1", VLAN: intp(100)}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.AddPort(ctx, api.PortSpec{Name: "vnet9", VLAN: intp(200)}); err != nil {
		t.Fatal(err)
	}
	d.Close()

	d = r.start(t)
	ps, err := d.ListPorts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 2 || ps[0].Name != "vnet1" || ps[1].Name != "vnet9" || ps[1].VLAN != 200 {
		t.Fatalf("restored ports %+v", ps)
	}
	// Start attaches nothing itself: link events do (the watcher reports
	// every present link first).
	r.linksUp("up0", "vnet1", "vnet2")
	p, _ := d.GetPort(ctx, "vnet1")
	if p.State != "up" {
		t.Fatalf("vnet1 state %q after its link event, want up", p.State)
	}
	if p, _ := d.GetPort(ctx, "vnet9"); p.State != "absent" {
		t.Fatalf("vnet9 (no tap) state %q, want absent", p.State)
	}
	sendsTagged(t, r.mem, "vnet1", 100)
}

// A port the datapath refuses after the store accepted it must not stay in
// the store (it would come back at every restart), and an update it refuses
// must leave the old configuration in both.
func TestAddAndUpdateRollBackWhenTheDatapathRefuses(t *testing.T) {
	r := newRig(t)
	d := r.start(t)
	ctx := context.Background()
	// Trunks of every VID on S-channels use a learning domain per (S-VID,
	// VID) pair; the datapath has room for 15 such ports, not 16.
	all := "1-4094"
	var refused string
	for i := 1; i <= 16; i++ {
		name := fmt.Sprintf("tr%d", i)
		_, err := d.AddPort(ctx, api.PortSpec{Name: name, Trunk: &all, SVID: intp(i)})
		if err != nil {
			if api.CodeOf(err) == api.CodeInternal {
				t.Fatalf("refusal is an internal error: %v", err)
			}
			refused = name
			break
		}
	}
	if refused == "" {
		t.Fatal("the datapath accepted 16 full trunks on S-channels; the test needs a refusal")
	}
	if _, err := d.GetPort(ctx, refused); api.CodeOf(err) != api.CodeNotFound {
		t.Fatalf("refused port %s: GetPort err %v, want not_found (still in the store)", refused, err)
	}
	if d.sw.HasPort(refused) {
		t.Fatalf("refused port %s is in the datapath", refused)
	}
	// An access port turned into a full trunk on another S-channel: refused,
	// and both the store and the datapath keep the access port.
	if _, err := d.AddPort(ctx, api.PortSpec{Name: "vnet1", VLAN: intp(100), PCP: intp(3)}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.UpdatePort(ctx, "vnet1", api.PortSpec{Trunk: &all, SVID: intp(99)}); err == nil {
		t.Fatal("update to a trunk the datapath has no room for was accepted")
	}
	p, err := d.GetPort(ctx, "vnet1")
	if err != nil || p.VLAN != 100 || p.SVID != 0 || p.PCP != 3 || len(p.Trunk) != 0 {
		t.Fatalf("after the refused update: %+v, %v; want the access port on VLAN 100, PCP 3", p, err)
	}
	d.Close()
	d = r.start(t)
	if p, err := d.GetPort(ctx, "vnet1"); err != nil || p.VLAN != 100 {
		t.Fatalf("after restart: %+v, %v; want VLAN 100", p, err)
	}
	if _, err := d.GetPort(ctx, refused); api.CodeOf(err) != api.CodeNotFound {
		t.Fatalf("refused port %s came back after restart (%v)", refused, err)
	}
}

// When the uplink comes back, every present port is attached again — also
// a tap replaced (new ifindex) while the uplink was gone, whose attach
// failed then because its uplink queue could not open.
func TestUplinkReturnReattachesReplacedTap(t *testing.T) {
	r := newRig(t)
	d := r.start(t)
	ctx := context.Background()
	if _, err := d.AddPort(ctx, api.PortSpec{Name: "vnet1", VLAN: intp(100)}); err != nil {
		t.Fatal(err)
	}
	r.linksUp("up0", "vnet1")
	sendsTagged(t, r.mem, "vnet1", 100)

	// The uplink goes away.
	r.mem.Missing["up0"] = true
	d.linkChanged(r.links.set("up0", 10, false))
	// The tap is replaced meanwhile: it cannot attach now.
	d.linkChanged(r.links.set("vnet1", 11, false))
	d.linkChanged(r.links.set("vnet1", 31, true))
	if d.sw.Attached("vnet1") {
		t.Fatal("vnet1 attached while the uplink is gone")
	}
	if p, _ := d.GetPort(ctx, "vnet1"); p.State != "down" {
		t.Fatalf("vnet1 state %q while it cannot attach, want down", p.State)
	}
	// The uplink comes back under a new index.
	delete(r.mem.Missing, "up0")
	d.linkChanged(r.links.set("up0", 40, true))
	if !d.sw.Attached("vnet1") {
		t.Fatal("vnet1 not attached after the uplink came back")
	}
	if d.portIndex["vnet1"] != 31 || d.uplinkIndex != 40 {
		t.Fatalf("bound to ifindex %d / uplink %d, want 31 / 40", d.portIndex["vnet1"], d.uplinkIndex)
	}
	sendsTagged(t, r.mem, "vnet1", 100)
}

// With --datapath auto, a probe that succeeds but an AF_XDP switch that
// then fails to start falls back to AF_PACKET and says why.
func TestAutoFallsBackWhenAFXDPFailsToStart(t *testing.T) {
	r := newRig(t)
	r.opts.Datapath = backendAuto
	r.sys.probeXDP = func(string) error { return nil }
	r.sys.backend = func(name string, _ *rxwait.Group) backend.Backend {
		if name == backendAFXDP {
			return broken{name}
		}
		return named{r.mem, name}
	}
	d := r.start(t)
	st, err := d.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Datapath != backendAFPacket || st.PortDatapath != backendAFPacket {
		t.Fatalf("datapath %s, ports %s; want afpacket after the fallback", st.Datapath, st.PortDatapath)
	}
	if !strings.Contains(st.DatapathReason, "failed to start") || !strings.Contains(st.DatapathReason, "broken in this test") {
		t.Fatalf("reason %q does not say why AF_XDP was left", st.DatapathReason)
	}
	// --datapath afxdp does not fall back: it fails, and says why.
	d.Close()
	r.opts.Datapath = backendAFXDP
	d, err = start(r.opts, r.sys)
	if err == nil {
		d.Close()
		t.Fatal("--datapath afxdp started although AF_XDP cannot open the uplink")
	}
	if !strings.Contains(err.Error(), "broken in this test") {
		t.Fatalf("--datapath afxdp failed for another reason: %v", err)
	}
}

func TestPlanBackends(t *testing.T) {
	ok := func(string) error { return nil }
	no := func(string) error { return errors.New("no XSK") }
	noOn := func(bad string) func(string) error {
		return func(ifname string) error {
			if ifname == bad {
				return errors.New("no XSK")
			}
			return nil
		}
	}
	tests := []struct {
		name        string
		in          planInput
		probe       func(string) error
		uplink      string
		port        string
		fallback    bool
		reason, err string // substrings; err "" = no error
	}{
		{"auto with AF_XDP", planInput{datapath: "auto", uplink: "eth1"}, ok, "afxdp", "afpacket", true, "auto: AF_XDP program loaded", ""},
		{"default is auto", planInput{uplink: "eth1"}, ok, "afxdp", "afpacket", true, "auto:", ""},
		{"auto without AF_XDP", planInput{datapath: "auto", uplink: "eth1"}, no, "afpacket", "afpacket", false, "AF_XDP unavailable (uplink eth1: no XSK)", ""},
		{"auto, MTU too large", planInput{datapath: "auto", uplink: "eth1", mtu: 9000}, ok, "afpacket", "afpacket", false, "MTU 9000 is above the 3818", ""},
		{"afpacket", planInput{datapath: "afpacket", uplink: "eth1"}, ok, "afpacket", "afpacket", false, "requested with --datapath afpacket", ""},
		{"afxdp", planInput{datapath: "afxdp", uplink: "eth1"}, ok, "afxdp", "afpacket", false, "requested with --datapath afxdp", ""},
		{"afxdp unavailable", planInput{datapath: "afxdp", uplink: "eth1"}, no, "", "", false, "", "uplink eth1: no XSK"},
		{"afxdp, MTU too large", planInput{datapath: "afxdp", uplink: "eth1", mtu: 4000}, ok, "", "", false, "", "MTU 4000"},
		{"ports on afxdp", planInput{datapath: "afpacket", portDatapath: "afxdp", uplink: "eth1", presentPorts: []string{"vnet1"}}, ok, "afpacket", "afxdp", false, "VM ports on AF_XDP", ""},
		{"ports on afxdp, one refuses", planInput{datapath: "afpacket", portDatapath: "afxdp", uplink: "eth1", presentPorts: []string{"vnet1", "vnet2"}}, noOn("vnet2"), "", "", false, "", "--port-datapath afxdp: port vnet2: no XSK"},
		{"ports on afxdp, MTU too large", planInput{datapath: "afpacket", portDatapath: "afxdp", uplink: "eth1", mtu: 9000}, ok, "", "", false, "", "--port-datapath afxdp: MTU 9000"},
		{"bad datapath", planInput{datapath: "dpdk", uplink: "eth1"}, ok, "", "", false, "", `invalid --datapath "dpdk"`},
		{"bad port datapath", planInput{portDatapath: "auto", uplink: "eth1"}, ok, "", "", false, "", `invalid --port-datapath "auto"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := planBackends(tt.in, tt.probe)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.uplink != tt.uplink || p.port != tt.port || p.fallback != tt.fallback || !strings.Contains(p.describe(), tt.reason) {
				t.Fatalf("plan %+v (%q), want uplink %s port %s fallback %v reason ~%q", p, p.describe(), tt.uplink, tt.port, tt.fallback, tt.reason)
			}
		})
	}
}

// Serve follows the LinkSource and answers the API on the socket.
func TestServeFollowsLinksAndAnswersTheAPI(t *testing.T) {
	r := newRig(t)
	d := r.start(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx) }()
	c := api.NewClient(r.opts.Socket)
	defer c.Close()
	var err error
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if _, err = c.Status(ctx); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("API never answered: %v", err)
	}
	if _, err := c.AddPort(ctx, api.PortSpec{Name: "vnet2", VLAN: intp(300)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AddPort(ctx, api.PortSpec{Name: "vnet2", VLAN: intp(300)}); api.CodeOf(err) != api.CodeAlreadyExists {
		t.Fatalf("second add: %v, want already_exists", err)
	}
	// vnet2 is present (the watcher reported it first): up at once.
	waitState := func(want string) {
		t.Helper()
		var p api.Port
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if p, err = c.GetPort(ctx, "vnet2"); err == nil && p.State == want {
				return
			}
		}
		t.Fatalf("vnet2 state %q (%v), want %s", p.State, err, want)
	}
	waitState("up")
	r.links.events <- r.links.set("vnet2", 12, false)
	waitState("absent")
	r.links.events <- r.links.set("vnet2", 50, true)
	waitState("up")
	sendsTagged(t, r.mem, "vnet2", 300)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
	if _, err := c.Status(context.Background()); !api.IsUnreachable(err) {
		t.Fatalf("API still answers after Serve returned: %v", err)
	}
}

// A port whose attach fails with no link event to come (here: its queue
// cannot open) is tried again with back-off until it attaches; a deleted
// port's retry ends.
func TestAttachFailureIsRetried(t *testing.T) {
	r := newRig(t)
	d := r.start(t)
	d.mu.Lock()
	d.retryBase = 20 * time.Millisecond
	d.mu.Unlock()
	ctx := context.Background()
	r.mem.SetMissing("vnet1", true)
	r.linksUp("up0", "vnet1")
	if _, err := d.AddPort(ctx, api.PortSpec{Name: "vnet1", VLAN: intp(100)}); err != nil {
		t.Fatal(err)
	}
	if d.sw.Attached("vnet1") {
		t.Fatal("vnet1 attached although its queue cannot open")
	}
	time.Sleep(100 * time.Millisecond) // a few failed retries
	if d.sw.Attached("vnet1") {
		t.Fatal("vnet1 attached although its queue cannot open")
	}
	r.mem.SetMissing("vnet1", false)
	deadline := time.Now().Add(3 * time.Second)
	for !d.sw.Attached("vnet1") {
		if time.Now().After(deadline) {
			t.Fatal("vnet1 never attached after its queue could open again: no retry")
		}
		time.Sleep(10 * time.Millisecond)
	}
	d.mu.Lock()
	pending := len(d.retries)
	d.mu.Unlock()
	if pending != 0 {
		t.Fatalf("%d retries pending after the attach", pending)
	}
	sendsTagged(t, r.mem, "vnet1", 100)

	// A port deleted while its retry is pending leaves nothing behind.
	r.mem.SetMissing("vnet2", true)
	ev, _ := r.links.Link("vnet2")
	d.linkChanged(ev)
	if _, err := d.AddPort(ctx, api.PortSpec{Name: "vnet2", VLAN: intp(200)}); err != nil {
		t.Fatal(err)
	}
	if err := d.DeletePort(ctx, "vnet2"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	d.mu.Lock()
	pending = len(d.retries)
	d.mu.Unlock()
	if pending != 0 {
		t.Fatalf("%d retries left after the port was deleted", pending)
	}
}

// With --libvirt the status shows the connection to libvirtd: here its
// socket does not exist, so it is disconnected with the reason, retried,
// and the daemon serves all the same; the metrics say so too. A URI that
// cannot be one is refused at start; without --libvirt the status has no
// libvirt part.
func TestLibvirtStatus(t *testing.T) {
	r := newRig(t)
	r.opts.Libvirt = "not-a-uri"
	if _, err := start(r.opts, r.sys); err == nil || !strings.Contains(err.Error(), "libvirt URI") {
		t.Fatalf("start with --libvirt not-a-uri: %v; want the URI refused", err)
	}
	sock := filepath.Join(t.TempDir(), "libvirt-sock")
	r.opts.Libvirt = sock
	d := r.start(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx) }()
	defer func() { cancel(); <-done }()
	var st api.Status
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		st, _ = d.Status(ctx)
		if st.Libvirt != nil && st.Libvirt.State == "disconnected" {
			break
		}
	}
	if lv := st.Libvirt; lv == nil || lv.State != "disconnected" || lv.URI != sock || !strings.Contains(lv.Error, "no such file") {
		t.Fatalf("libvirt status %+v; want disconnected from %s, saying why", lv, sock)
	}
	rec := httptest.NewRecorder()
	d.metricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if want := `vswitch_libvirt_connected{uri="` + sock + `"} 0`; !strings.Contains(rec.Body.String(), want) {
		t.Errorf("metrics lack %s", want)
	}
	if _, err := d.AddPort(ctx, api.PortSpec{Name: "vnet1", VLAN: intp(10)}); err != nil {
		t.Errorf("the API must work without libvirtd: %v", err)
	}

	r2 := newRig(t)
	if st, _ := r2.start(t).Status(ctx); st.Libvirt != nil {
		t.Errorf("status without --libvirt has a libvirt part: %+v", st.Libvirt)
	}
}
