package events

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vswitch/vswitch/internal/libvirt"
	"github.com/vswitch/vswitch/pkg/api"
	"github.com/vswitch/vswitch/pkg/api/apitest"
)

// fakeLibvirt is libvirtd as the follower sees it: domains by UUID with
// their live XML, and the events a connection delivers. Conns hands out
// connections; closing its events channel is a lost connection.
type fakeLibvirt struct {
	mu     sync.Mutex
	doms   map[string]Domain
	events chan Event
	// failDomain makes Domain fail for that UUID.
	failDomain string
}

func newFakeLibvirt() *fakeLibvirt {
	return &fakeLibvirt{doms: map[string]Domain{}, events: make(chan Event, 16)}
}

// set defines domain d (replacing one of its UUID).
func (l *fakeLibvirt) set(d Domain) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.doms[d.UUID] = d
}

func (l *fakeLibvirt) Events() <-chan Event { return l.events }

func (l *fakeLibvirt) Running(ctx context.Context) ([]Domain, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Domain
	for _, k := range slices.Sorted(maps.Keys(l.doms)) {
		if d := l.doms[k]; d.Active {
			out = append(out, d)
		}
	}
	return out, nil
}

func (l *fakeLibvirt) Domain(ctx context.Context, uuid string) (Domain, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if uuid == l.failDomain {
		return Domain{}, errors.New("fake: lookup failed")
	}
	if d, ok := l.doms[uuid]; ok {
		return d, nil
	}
	return Domain{UUID: uuid}, nil
}

func (l *fakeLibvirt) Close() error { return nil }

// fakeConn is another connection to the same fakeLibvirt, with its own
// event stream.
type fakeConn struct {
	*fakeLibvirt
	events chan Event
}

func (c *fakeConn) Events() <-chan Event { return c.events }

// nic is an <interface type='ethernet'> and its <vsw:port> attributes
// (port "": none).
type nic struct{ mac, tap, port string }

// domain returns a running domain with those NICs, as libvirt's live XML
// describes it.
func domain(name, uuid string, nics ...nic) Domain {
	var meta, devs strings.Builder
	for _, n := range nics {
		if n.port != "" {
			fmt.Fprintf(&meta, "      <vsw:port mac=%q %s/>\n", n.mac, n.port)
		}
		if n.tap != "" {
			fmt.Fprintf(&devs, "    <interface type='ethernet'><mac address=%q/><target dev=%q/><model type='virtio'/></interface>\n", n.mac, n.tap)
		}
	}
	x := fmt.Sprintf(`<domain type='qemu' id='3'>
  <name>%s</name>
  <uuid>%s</uuid>
  <metadata>
    <vsw:ports xmlns:vsw="urn:vswitch:libvirt:1">
%s    </vsw:ports>
  </metadata>
  <devices>
%s  </devices>
</domain>`, name, uuid, meta.String(), devs.String())
	return Domain{UUID: uuid, Name: name, Active: true, XML: []byte(x)}
}

const (
	uuidA = "11111111-2222-4333-8444-555555555555"
	uuidB = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
	uuidC = "0f0f0f0f-0000-4000-8000-000000000001" // a domain that no longer runs
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newFollower(ports Ports, lv *fakeLibvirt) *Follower {
	return New(Config{URI: "test:///", Ports: ports, Logger: quiet(),
		Dial:     func(context.Context) (Conn, error) { return lv, nil },
		RetryMin: time.Millisecond, RetryMax: 4 * time.Millisecond})
}

func ptr[T any](v T) *T { return &v }

// mustAdd adds a port to the fake switch.
func mustAdd(t *testing.T, f *apitest.Fake, spec api.PortSpec) {
	t.Helper()
	if _, err := f.AddPort(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
}

// portsOf returns the fake switch's ports by name.
func portsOf(t *testing.T, f *apitest.Fake) map[string]api.Port {
	t.Helper()
	ps, err := f.ListPorts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]api.Port{}
	for _, p := range ps {
		m[p.Name] = p
	}
	return m
}

// Reconcile on connection: the running domains' described ports are added
// or corrected; ports owned by a domain that no longer runs go; ports
// without an owner, or with an owner that is not a domain UUID, stay.
func TestReconcile(t *testing.T) {
	sw := apitest.NewFake()
	lv := newFakeLibvirt()
	lv.set(domain("a", uuidA, nic{"52:54:00:00:00:01", "vnet1", `vlan="100" pcp="3"`}, nic{"52:54:00:00:00:02", "vnet2", `trunk="10,20-30" native-vlan="10"`}))
	lv.set(domain("b", uuidB, nic{"52:54:00:00:00:03", "vnet3", `vlan="200"`}, nic{"52:54:00:00:00:04", "vnet4", ""}))
	mustAdd(t, sw, api.PortSpec{Name: "vnet1", VLAN: ptr(101), MACs: &[]string{"52:54:00:00:00:01"}, Owner: ptr(uuidA)}) // VLAN changed while we were away
	mustAdd(t, sw, api.PortSpec{Name: "vnet9", VLAN: ptr(100), Owner: ptr(uuidC)})                                       // stale
	mustAdd(t, sw, api.PortSpec{Name: "vnet8", VLAN: ptr(100)})                                                          // vswctl's
	mustAdd(t, sw, api.PortSpec{Name: "vnet7", VLAN: ptr(100), Owner: ptr("openstack")})                                 // another tool's
	f := newFollower(sw, lv)
	if err := f.Reconcile(context.Background(), lv); err != nil {
		t.Fatal(err)
	}
	ps := portsOf(t, sw)
	if got := slices.Sorted(maps.Keys(ps)); !slices.Equal(got, []string{"vnet1", "vnet2", "vnet3", "vnet7", "vnet8"}) {
		t.Fatalf("ports after reconcile %v, want vnet1-3 (described), vnet7, vnet8 (not libvirt's); vnet9 (stale) gone", got)
	}
	if p := ps["vnet1"]; p.VLAN != 100 || p.PCP != 3 || p.Owner != uuidA {
		t.Errorf("vnet1 %+v: want VLAN 100 PCP 3 owned by a", p)
	}
	if p := ps["vnet2"]; !slices.Equal(p.Trunk, []int{10, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30}) || p.NativeVLAN != 10 || !slices.Equal(p.MACs, []string{"52:54:00:00:00:02"}) || p.Owner != uuidA {
		t.Errorf("vnet2 %+v: want the trunk from the metadata", p)
	}
	if p := ps["vnet3"]; p.VLAN != 200 || p.Owner != uuidB {
		t.Errorf("vnet3 %+v: want VLAN 200 owned by b", p)
	}
	st := f.Status()
	if st.Reconciled == "" || st.Domains != 2 || st.Reconciles != 1 {
		t.Errorf("status %+v: want a reconcile time, 2 domains, 1 reconcile", st)
	}
	// A second reconcile finds nothing to do.
	before := maps.Clone(sw.Calls)
	if err := f.Reconcile(context.Background(), lv); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"AddPort", "UpdatePort", "DeletePort"} {
		if sw.Calls[m] != before[m] {
			t.Errorf("second reconcile called %s %d times; want no change", m, sw.Calls[m]-before[m])
		}
	}
}

// A stale port is removed only once libvirtd confirms its domain is not
// running (it may have started since the list), and kept when it cannot
// say.
func TestReconcileKeepsWhatItCannotCheck(t *testing.T) {
	sw := apitest.NewFake()
	lv := newFakeLibvirt()
	lv.failDomain = uuidC
	mustAdd(t, sw, api.PortSpec{Name: "vnet9", VLAN: ptr(100), Owner: ptr(uuidC)})
	f := newFollower(sw, lv)
	err := f.Reconcile(context.Background(), lv)
	if err == nil || !strings.Contains(err.Error(), "lookup failed") {
		t.Errorf("reconcile: %v; want the lookup's error", err)
	}
	if _, ok := portsOf(t, sw)["vnet9"]; !ok {
		t.Error("port of a domain libvirtd could not be asked about was removed")
	}
}

// The NIC hot-plug cycle as libvirt's events tell it: the metadata first
// lists a MAC no NIC has (nothing to do, no error), the NIC is attached
// (its port comes), the metadata changes (the port follows: VLAN changed,
// PCP taken out), the NIC is detached (its port goes, the other stays).
func TestHotplugCycle(t *testing.T) {
	sw := apitest.NewFake()
	lv := newFakeLibvirt()
	first := nic{"52:54:00:00:00:01", "vnet1", `vlan="100"`}
	lv.set(domain("a", uuidA, first))
	f := newFollower(sw, lv)
	ctx := context.Background()
	if err := f.Reconcile(ctx, lv); err != nil {
		t.Fatal(err)
	}

	hot := nic{"52:54:00:00:00:05", "", `vlan="300" pcp="4"`} // metadata set before the attach
	lv.set(domain("a", uuidA, first, hot))
	f.Handle(ctx, lv, Event{Kind: MetadataChanged, UUID: uuidA, Name: "a", Namespace: libvirt.Namespace})
	if _, ok := portsOf(t, sw)["vnet5"]; ok || len(portsOf(t, sw)) != 1 {
		t.Fatalf("ports %v before the NIC is attached; want vnet1 only", portsOf(t, sw))
	}
	if e := f.Status().Error; e != "" {
		t.Errorf("a described port whose NIC is not attached yet is an error: %s", e)
	}

	hot.tap = "vnet5"
	lv.set(domain("a", uuidA, first, hot))
	f.Handle(ctx, lv, Event{Kind: DeviceAdded, UUID: uuidA, Name: "a", Device: "net1"})
	p, ok := portsOf(t, sw)["vnet5"]
	if !ok || p.VLAN != 300 || p.PCP != 4 || p.Owner != uuidA || !slices.Equal(p.MACs, []string{"52:54:00:00:00:05"}) {
		t.Fatalf("hot-plugged NIC's port %+v (present %v); want VLAN 300 PCP 4, its MAC, owned by a", p, ok)
	}

	hot.port = `vlan="301"`
	lv.set(domain("a", uuidA, first, hot))
	f.Handle(ctx, lv, Event{Kind: MetadataChanged, UUID: uuidA, Name: "a", Namespace: libvirt.Namespace})
	if p := portsOf(t, sw)["vnet5"]; p.VLAN != 301 || p.PCP != 0 {
		t.Errorf("after the metadata change: %+v; want VLAN 301, PCP back to 0", p)
	}

	hot.port = `trunk="5-6"`
	lv.set(domain("a", uuidA, first, hot))
	f.Handle(ctx, lv, Event{Kind: MetadataChanged, UUID: uuidA, Name: "a", Namespace: libvirt.Namespace})
	if p := portsOf(t, sw)["vnet5"]; p.VLAN != 0 || !slices.Equal(p.Trunk, []int{5, 6}) {
		t.Errorf("after changing to a trunk: %+v; want trunk 5-6", p)
	}

	lv.set(domain("a", uuidA, first, nic{hot.mac, "", hot.port})) // detached; metadata still lists it
	f.Handle(ctx, lv, Event{Kind: DeviceRemoved, UUID: uuidA, Name: "a", Device: "net1"})
	ps := portsOf(t, sw)
	if _, ok := ps["vnet5"]; ok {
		t.Errorf("port of the detached NIC is still there: %+v", ps)
	}
	if _, ok := ps["vnet1"]; !ok {
		t.Errorf("detaching one NIC removed the other's port: %+v", ps)
	}
	if n := f.Status().Events; n != 5 {
		t.Errorf("status counts %d events, want 5", n)
	}
}

// Metadata of another application changes nothing, nor asks anything.
func TestForeignMetadataIgnored(t *testing.T) {
	sw := apitest.NewFake()
	lv := newFakeLibvirt()
	lv.set(domain("a", uuidA, nic{"52:54:00:00:00:01", "vnet1", `vlan="100"`}))
	f := newFollower(sw, lv)
	f.Handle(context.Background(), lv, Event{Kind: MetadataChanged, UUID: uuidA, Name: "a", Namespace: "http://app1.org/app1/"})
	if n := sw.Calls["ListPorts"] + sw.Calls["AddPort"]; n != 0 {
		t.Errorf("metadata of another namespace made %d port calls; want none", n)
	}
}

// A description that breaks the port rules leaves the port as it was and
// says why in the status; a domain whose XML does not parse leaves all its
// ports.
func TestBadDescriptionKeepsPort(t *testing.T) {
	sw := apitest.NewFake()
	lv := newFakeLibvirt()
	lv.set(domain("a", uuidA, nic{"52:54:00:00:00:01", "vnet1", `vlan="100"`}, nic{"52:54:00:00:00:02", "vnet2", `vlan="200"`}))
	f := newFollower(sw, lv)
	ctx := context.Background()
	if err := f.Reconcile(ctx, lv); err != nil {
		t.Fatal(err)
	}
	lv.set(domain("a", uuidA, nic{"52:54:00:00:00:01", "vnet1", `vlan="5000"`}, nic{"52:54:00:00:00:02", "vnet2", `vlan="201"`}))
	f.Handle(ctx, lv, Event{Kind: MetadataChanged, UUID: uuidA, Name: "a", Namespace: libvirt.Namespace})
	ps := portsOf(t, sw)
	if p, ok := ps["vnet1"]; !ok || p.VLAN != 100 {
		t.Errorf("vnet1 %+v (present %v) after an invalid VLAN in its description; want it kept at VLAN 100", p, ok)
	}
	if ps["vnet2"].VLAN != 201 {
		t.Errorf("vnet2 %+v: the other port's valid change must still apply", ps["vnet2"])
	}
	if e := f.Status().Error; !strings.Contains(e, "5000") {
		t.Errorf("status error %q; want the invalid VLAN named", e)
	}

	lv.set(Domain{UUID: uuidA, Name: "a", Active: true, XML: []byte("<domain><name>a</name><metadata><vsw:port xmlns:vsw='urn:vswitch:libvirt:1' mac='x'/></metadata></domain>")})
	f.Handle(ctx, lv, Event{Kind: MetadataChanged, UUID: uuidA, Name: "a", Namespace: libvirt.Namespace})
	if len(portsOf(t, sw)) != 2 {
		t.Errorf("a domain XML that does not parse removed ports: %v", portsOf(t, sw))
	}
}

// A stop removes the domain's ports (the hook's backstop), only its own; a
// stop by migration too (TestFollowerOnlyMigration: made outgoing first).
func TestStopRemovesOwnedPorts(t *testing.T) {
	sw := apitest.NewFake()
	lv := newFakeLibvirt()
	lv.set(domain("a", uuidA, nic{"52:54:00:00:00:01", "vnet1", `vlan="100"`}))
	lv.set(domain("b", uuidB, nic{"52:54:00:00:00:02", "vnet2", `vlan="100"`}))
	mustAdd(t, sw, api.PortSpec{Name: "vnet8", VLAN: ptr(100), MACs: &[]string{"52:54:00:00:00:01"}}) // vswctl's, a's MAC
	f := newFollower(sw, lv)
	ctx := context.Background()
	if err := f.Reconcile(ctx, lv); err != nil {
		t.Fatal(err)
	}
	a := domain("a", uuidA)
	a.Active = false
	lv.set(a)
	f.Handle(ctx, lv, Event{Kind: Stopped, UUID: uuidA, Name: "a"})
	ps := portsOf(t, sw)
	if got := slices.Sorted(maps.Keys(ps)); !slices.Equal(got, []string{"vnet2", "vnet8"}) {
		t.Errorf("ports after a's stop %v; want vnet2 (b's) and vnet8 (vswctl's)", got)
	}

	b := domain("b", uuidB)
	b.Active = false
	lv.set(b)
	f.Handle(ctx, lv, Event{Kind: Stopped, UUID: uuidB, Name: "b", Migrated: true})
	if got := slices.Sorted(maps.Keys(portsOf(t, sw))); !slices.Equal(got, []string{"vnet8"}) {
		t.Errorf("ports after b migrated away %v; want only vnet8 (vswctl's)", got)
	}
}

// A port of the NIC's name that the follower does not own: without an
// owner it is left alone; owned by a running domain too; owned by a domain
// that no longer runs it is a leftover and is replaced.
func TestNameConflicts(t *testing.T) {
	sw := apitest.NewFake()
	lv := newFakeLibvirt()
	lv.set(domain("b", uuidB, nic{"52:54:00:00:00:02", "vnet2", `vlan="100"`}))
	lv.set(domain("a", uuidA, nic{"52:54:00:00:00:01", "vnet1", `vlan="100"`}, nic{"52:54:00:00:00:03", "vnet2", `vlan="300"`}, nic{"52:54:00:00:00:04", "vnet4", `vlan="300"`}, nic{"52:54:00:00:00:05", "vnet5", `vlan="300"`}))
	mustAdd(t, sw, api.PortSpec{Name: "vnet1", VLAN: ptr(7)})                             // vswctl's
	mustAdd(t, sw, api.PortSpec{Name: "vnet2", VLAN: ptr(100), Owner: ptr(uuidB)})        // b's, running
	mustAdd(t, sw, api.PortSpec{Name: "vnet4", VLAN: ptr(9), Owner: ptr(uuidC)})          // a stopped domain's
	mustAdd(t, sw, api.PortSpec{Name: "vnet5", VLAN: ptr(9), Owner: ptr("not-a-domain")}) // another tool's
	f := newFollower(sw, lv)
	if err := f.SyncDomain(context.Background(), lv, uuidA); err == nil {
		t.Error("sync with conflicting ports: no error; want them reported")
	}
	ps := portsOf(t, sw)
	if p := ps["vnet1"]; p.VLAN != 7 || p.Owner != "" {
		t.Errorf("vswctl's vnet1 %+v changed", p)
	}
	if p := ps["vnet2"]; p.VLAN != 100 || p.Owner != uuidB {
		t.Errorf("running b's vnet2 %+v changed", p)
	}
	if p := ps["vnet4"]; p.VLAN != 300 || p.Owner != uuidA {
		t.Errorf("leftover vnet4 %+v: want it replaced by a's (VLAN 300)", p)
	}
	if p := ps["vnet5"]; p.VLAN != 9 || p.Owner != "not-a-domain" {
		t.Errorf("another tool's vnet5 %+v changed", p)
	}
}

// Run connects with back-off until libvirtd answers, reconciles, follows
// events, reconnects (and reconciles again) when the connection is lost,
// shows all of it in Status, and returns when its context ends.
func TestRunReconnects(t *testing.T) {
	sw := apitest.NewFake()
	lv := newFakeLibvirt()
	lv.set(domain("a", uuidA, nic{"52:54:00:00:00:01", "vnet1", `vlan="100"`}))
	var mu sync.Mutex
	dials, fail := 0, 2
	conns := make(chan *fakeConn, 4)
	f := New(Config{URI: "test:///", Ports: sw, Logger: quiet(), RetryMin: time.Millisecond, RetryMax: 2 * time.Millisecond,
		Dial: func(context.Context) (Conn, error) {
			mu.Lock()
			defer mu.Unlock()
			dials++
			if dials <= fail {
				return nil, errors.New("dial unix /run/libvirt/libvirt-sock: connect: no such file or directory")
			}
			c := &fakeConn{lv, make(chan Event, 4)}
			conns <- c
			return c, nil
		}})
	if st := f.Status(); st.State != StateConnecting || st.URI != "test:///" {
		t.Errorf("status before Run %+v; want connecting to test:///", st)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.Run(ctx) }()
	wait := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 5 s; status %+v, ports %v", what, f.Status(), portsOf(t, sw))
			}
			time.Sleep(time.Millisecond)
		}
	}
	c1 := <-conns
	wait("reconciled on the first connection", func() bool { _, ok := portsOf(t, sw)["vnet1"]; return ok })
	if st := f.Status(); st.State != StateConnected || st.Error != "" {
		t.Errorf("status after connecting %+v; want connected, no error", st)
	}
	mu.Lock()
	if dials != 3 {
		t.Errorf("%d dials; want 2 refused and 1 that worked", dials)
	}
	mu.Unlock()

	// An event on the connection is followed.
	lv.set(domain("a", uuidA, nic{"52:54:00:00:00:01", "vnet1", `vlan="150"`}))
	c1.events <- Event{Kind: MetadataChanged, UUID: uuidA, Name: "a", Namespace: libvirt.Namespace}
	wait("the event applied", func() bool { return portsOf(t, sw)["vnet1"].VLAN == 150 })

	// libvirtd restarts: the connection goes; what changed meanwhile is
	// found by the reconcile on the next connection.
	lv.set(domain("a", uuidA, nic{"52:54:00:00:00:01", "vnet1", `vlan="160"`}))
	close(c1.events)
	<-conns
	wait("reconciled on reconnection", func() bool { return portsOf(t, sw)["vnet1"].VLAN == 160 })
	wait("connected again", func() bool { return f.Status().State == StateConnected })
	wait("reconciled twice", func() bool { return f.Status().Reconciles == 2 })

	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}

// While libvirtd stays away the status says so, with the reason.
func TestRunShowsDisconnected(t *testing.T) {
	f := New(Config{URI: "qemu:///system", Ports: apitest.NewFake(), Logger: quiet(), RetryMin: time.Millisecond, RetryMax: time.Millisecond,
		Dial: func(context.Context) (Conn, error) { return nil, errors.New("connection refused") }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for f.Status().State != StateDisconnected && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	st := f.Status()
	if st.State != StateDisconnected || st.Error != "connection refused" || st.Since == "" {
		t.Errorf("status %+v; want disconnected with the dial's error", st)
	}
	cancel()
	<-done
}

// recordingPorts is a Ports that notes each change it passes on, to check
// their order ("update vnet1 migration=outgoing", "delete vnet1").
type recordingPorts struct {
	Ports
	mu  sync.Mutex
	log []string
}

func (r *recordingPorts) note(s string) {
	r.mu.Lock()
	r.log = append(r.log, s)
	r.mu.Unlock()
}

func (r *recordingPorts) UpdatePort(ctx context.Context, name string, spec api.PortSpec) (api.Port, error) {
	m := "-"
	if spec.Migration != nil {
		m = *spec.Migration
	}
	r.note(fmt.Sprintf("update %s migration=%s", name, m))
	return r.Ports.UpdatePort(ctx, name, spec)
}

func (r *recordingPorts) DeletePort(ctx context.Context, name string) error {
	r.note("delete " + name)
	return r.Ports.DeletePort(ctx, name)
}

func (r *recordingPorts) changes() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.log)
}

// With --libvirt alone (no hook; docs/libvirt.md says each works without
// the other), a live migration follows 802.1Qbg as the hook makes it:
//   - destination: libvirt's STARTED/MIGRATED comes at the end of Prepare,
//     before the memory is copied: the port is added incoming (its VSIs
//     pre-associated), not associated while the VM still runs on the
//     source;
//   - source: STOPPED/MIGRATED makes the domain's ports outgoing (the S
//     bit) and removes them; other domains' ports stay.
func TestFollowerOnlyMigration(t *testing.T) {
	ctx := context.Background()
	t.Run("destination", func(t *testing.T) {
		sw := apitest.NewFake()
		lv := newFakeLibvirt()
		f := newFollower(sw, lv)
		if err := f.Reconcile(ctx, lv); err != nil {
			t.Fatal(err)
		}
		lv.set(domain("a", uuidA, nic{"52:54:00:00:00:01", "vnet1", `vlan="100"`}))
		f.Handle(ctx, lv, Event{Kind: Started, UUID: uuidA, Name: "a", Migrated: true})
		if p, ok := portsOf(t, sw)["vnet1"]; !ok || p.Migration != "incoming" {
			t.Errorf("port of a domain migrating in, added by the follower: %+v (exists %v); want migration incoming (pre-associated)", p, ok)
		}
		// Another event of the domain while its memory is copied leaves
		// the port incoming.
		f.Handle(ctx, lv, Event{Kind: MetadataChanged, UUID: uuidA, Name: "a", Namespace: libvirt.Namespace})
		if p := portsOf(t, sw)["vnet1"]; p.Migration != "incoming" {
			t.Errorf("port after a metadata event mid-migration: %+v; want still incoming", p)
		}
		// A plain start adds a plain port.
		lv.set(domain("b", uuidB, nic{"52:54:00:00:00:02", "vnet2", `vlan="100"`}))
		f.Handle(ctx, lv, Event{Kind: Started, UUID: uuidB, Name: "b"})
		if p, ok := portsOf(t, sw)["vnet2"]; !ok || p.Migration != "" {
			t.Errorf("port of a domain started plainly: %+v (exists %v); want migration none", p, ok)
		}
	})
	t.Run("source", func(t *testing.T) {
		fake := apitest.NewFake()
		sw := &recordingPorts{Ports: fake}
		lv := newFakeLibvirt()
		lv.set(domain("a", uuidA, nic{"52:54:00:00:00:01", "vnet1", `vlan="100"`}))
		lv.set(domain("b", uuidB, nic{"52:54:00:00:00:02", "vnet2", `vlan="100"`}))
		f := newFollower(sw, lv)
		if err := f.Reconcile(ctx, lv); err != nil {
			t.Fatal(err)
		}
		a := domain("a", uuidA)
		a.Active = false
		lv.set(a)
		f.Handle(ctx, lv, Event{Kind: Stopped, UUID: uuidA, Name: "a", Migrated: true})
		// Life goes on: other domains' events.
		for i := 0; i < 3; i++ {
			f.Handle(ctx, lv, Event{Kind: MetadataChanged, UUID: uuidB, Name: "b", Namespace: libvirt.Namespace})
		}
		ps := portsOf(t, fake)
		if p, ok := ps["vnet1"]; ok {
			t.Errorf("the migrated-away domain's port stays (its VSI associated): %+v", p)
		}
		if _, ok := ps["vnet2"]; !ok {
			t.Error("the other domain's port was removed")
		}
		if got, want := sw.changes(), []string{"update vnet1 migration=outgoing", "delete vnet1"}; !slices.Equal(got, want) {
			t.Errorf("changes %q; want %q (de-associated with the S bit, then removed; nothing else)", got, want)
		}
		if f.Status().Error != "" {
			t.Errorf("status error %q", f.Status().Error)
		}
	})
	t.Run("source runs again", func(t *testing.T) {
		// A stale STOPPED/MIGRATED of a domain that runs here (migrated
		// back since): its port stays as it is.
		sw := apitest.NewFake()
		lv := newFakeLibvirt()
		lv.set(domain("a", uuidA, nic{"52:54:00:00:00:01", "vnet1", `vlan="100"`}))
		f := newFollower(sw, lv)
		if err := f.Reconcile(ctx, lv); err != nil {
			t.Fatal(err)
		}
		f.Handle(ctx, lv, Event{Kind: Stopped, UUID: uuidA, Name: "a", Migrated: true})
		if p, ok := portsOf(t, sw)["vnet1"]; !ok || p.Migration != "" {
			t.Errorf("port of a running domain after a stale migrated stop: %+v (exists %v); want kept, migration none", p, ok)
		}
	})
}

// RESUMED/MIGRATED (or POSTCOPY) on the destination says the VM runs here:
// the domain's incoming ports are promoted (associated, M bit) without
// waiting for its first frame or --preassociate-timeout. Only that
// domain's incoming ports: not another's, not one added by vswctl; and a
// plain resume promotes nothing.
func TestResumePromotesIncoming(t *testing.T) {
	ctx := context.Background()
	sw := apitest.NewFake()
	lv := newFakeLibvirt()
	f := newFollower(sw, lv)
	if err := f.Reconcile(ctx, lv); err != nil {
		t.Fatal(err)
	}
	lv.set(domain("a", uuidA, nic{"52:54:00:00:00:01", "vnet1", `vlan="100"`}, nic{"52:54:00:00:00:03", "vnet3", `vlan="101"`}))
	lv.set(domain("b", uuidB, nic{"52:54:00:00:00:02", "vnet2", `vlan="100"`}))
	f.Handle(ctx, lv, Event{Kind: Started, UUID: uuidA, Name: "a", Migrated: true})
	f.Handle(ctx, lv, Event{Kind: Started, UUID: uuidB, Name: "b", Migrated: true})
	mustAdd(t, sw, api.PortSpec{Name: "vnet9", VLAN: ptr(100), Migration: ptr("incoming")}) // vswctl's
	migration := func() map[string]string {
		out := map[string]string{}
		for n, p := range portsOf(t, sw) {
			out[n] = p.Migration
		}
		return out
	}
	all := map[string]string{"vnet1": "incoming", "vnet2": "incoming", "vnet3": "incoming", "vnet9": "incoming"}
	if got := migration(); !maps.Equal(got, all) {
		t.Fatalf("before resume: %v; want %v", got, all)
	}

	f.Handle(ctx, lv, Event{Kind: Resumed, UUID: uuidA, Name: "a"}) // virsh resume
	if got := migration(); !maps.Equal(got, all) {
		t.Errorf("a plain resume changed migration states: %v; want %v", got, all)
	}

	f.Handle(ctx, lv, Event{Kind: Resumed, UUID: uuidA, Name: "a", Migrated: true})
	want := map[string]string{"vnet1": "", "vnet2": "incoming", "vnet3": "", "vnet9": "incoming"}
	if got := migration(); !maps.Equal(got, want) {
		t.Errorf("after a's migrated resume: %v; want %v (a's promoted only)", got, want)
	}
	// Repeated (or on the source after a failed migration: no incoming
	// port): nothing changes, no error.
	f.Handle(ctx, lv, Event{Kind: Resumed, UUID: uuidA, Name: "a", Migrated: true})
	if got := migration(); !maps.Equal(got, want) {
		t.Errorf("after a repeated resume: %v; want %v", got, want)
	}
	if e := f.Status().Error; e != "" {
		t.Errorf("status error %q", e)
	}
}
