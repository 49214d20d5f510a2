package apitest

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"

	"github.com/vswitch/vswitch/pkg/api"
	"github.com/vswitch/vswitch/pkg/port"
)

// Fake is an in-memory api.Service. Its fields may be set before use. It
// judges port requests as vswitchd does (api.PortSpec.Apply, the port
// package's rules), so clients tested against it meet the production
// rules and messages.
type Fake struct {
	mu            sync.Mutex
	ports         map[string]*fakePort
	uplinkBackend map[string]uint64

	// StatusV, FDBV and VSIsV are returned by Status, FDB (filtered by VLAN)
	// and VSIs.
	StatusV api.Status
	FDBV    []api.FDBEntry
	VSIsV   []api.VSI
	// LLDPV is returned by LLDP.
	LLDPV api.LLDP
	// CaptureFrames, CaptureDropped and CaptureEnd shape what Capture
	// streams; CaptureReq is the last capture request (see Capture).
	CaptureFrames  []api.CapturedFrame
	CaptureDropped uint64
	CaptureEnd     error
	CaptureReq     api.CaptureRequest
	// PanicOn makes the named method panic (to test recovery).
	PanicOn string
	// Calls counts calls per method name.
	Calls map[string]int
}

// NewFake returns an empty fake switch with uplink eth0 in VEPA mode.
func NewFake() *Fake {
	return &Fake{
		ports: map[string]*fakePort{},
		StatusV: api.Status{Version: "test", Uplink: "eth0", UplinkState: "up", Mode: "vepa",
			ConfiguredMode: "vepa", Datapath: "afpacket", StatePath: "/tmp/state.db"},
		Calls: map[string]int{},
	}
}

func (f *Fake) enter(name string) {
	f.mu.Lock()
	f.Calls[name]++
	f.mu.Unlock()
	if f.PanicOn == name {
		panic("fake panic in " + name)
	}
}

// Status implements api.Service.
func (f *Fake) Status(ctx context.Context) (api.Status, error) {
	f.enter("Status")
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.StatusV
	st.Ports = len(f.ports)
	for _, p := range f.ports {
		if p.state == "up" {
			st.PortsUp++
		}
	}
	return st, nil
}

// ListPorts implements api.Service.
func (f *Fake) ListPorts(ctx context.Context) ([]api.Port, error) {
	f.enter("ListPorts")
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]api.Port, 0, len(f.ports))
	for _, p := range f.ports {
		out = append(out, p.api())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// GetPort implements api.Service.
func (f *Fake) GetPort(ctx context.Context, name string) (api.Port, error) {
	f.enter("GetPort")
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.ports[name]
	if !ok {
		return api.Port{}, port.NotFound(name)
	}
	return p.api(), nil
}

// AddPort implements api.Service.
func (f *Fake) AddPort(ctx context.Context, spec api.PortSpec) (api.Port, error) {
	f.enter("AddPort")
	c, err := spec.Apply(port.Config{})
	if err != nil {
		return api.Port{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.ports[c.Name]; ok {
		return api.Port{}, port.Exists(c.Name)
	}
	p := &fakePort{cfg: c, state: "absent"}
	f.ports[c.Name] = p
	return p.api(), nil
}

// UpdatePort implements api.Service.
func (f *Fake) UpdatePort(ctx context.Context, name string, spec api.PortSpec) (api.Port, error) {
	f.enter("UpdatePort")
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.ports[name]
	if !ok {
		return api.Port{}, port.NotFound(name)
	}
	c, err := spec.Apply(p.cfg)
	if err != nil {
		return api.Port{}, err
	}
	p.cfg = c
	return p.api(), nil
}

// DeletePort implements api.Service.
func (f *Fake) DeletePort(ctx context.Context, name string) error {
	f.enter("DeletePort")
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.ports[name]; !ok {
		return port.NotFound(name)
	}
	delete(f.ports, name)
	return nil
}

// FDB implements api.Service.
func (f *Fake) FDB(ctx context.Context, vlan int) ([]api.FDBEntry, error) {
	f.enter("FDB")
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []api.FDBEntry{}
	for _, e := range f.FDBV {
		if vlan == 0 || e.VLAN == vlan {
			out = append(out, e)
		}
	}
	return out, nil
}

// Stats implements api.Service.
func (f *Fake) Stats(ctx context.Context) (api.Stats, error) {
	f.enter("Stats")
	f.mu.Lock()
	defer f.mu.Unlock()
	st := api.Stats{Uplink: api.UplinkStats{Name: f.StatusV.Uplink, Drops: map[string]uint64{}, Backend: f.uplinkBackend}, Drops: map[string]uint64{}}
	names := make([]string, 0, len(f.ports))
	for n := range f.ports {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		p := f.ports[n].api()
		st.Ports = append(st.Ports, p)
		for r, c := range p.Drops {
			st.Drops[r] += c
		}
	}
	return st, nil
}

// VSIs implements api.Service.
func (f *Fake) VSIs(ctx context.Context) ([]api.VSI, error) {
	f.enter("VSIs")
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]api.VSI{}, f.VSIsV...), nil
}

// LLDP implements api.Service.
func (f *Fake) LLDP(ctx context.Context) (api.LLDP, error) {
	f.enter("LLDP")
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.LLDPV, nil
}

// SetCounters sets a port's runtime state and counters (for output tests).
func (f *Fake) SetCounters(name, state string, rxp, rxb, txp, txb uint64, drops map[string]uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.ports[name]
	if !ok {
		p = &fakePort{cfg: port.Config{Name: name}}
		f.ports[name] = p
	}
	p.state = state
	p.ctr = api.PortCounters{RxPackets: rxp, RxBytes: rxb, TxPackets: txp, TxBytes: txb, Drops: drops}
}

// SetBackend sets a port's backend-specific counters (for output tests).
func (f *Fake) SetBackend(name string, counters map[string]uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p, ok := f.ports[name]; ok {
		p.ctr.Backend = counters
	}
}

// SetUplinkBackend sets the uplink's backend-specific counters in Stats.
func (f *Fake) SetUplinkBackend(counters map[string]uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.uplinkBackend = counters
}

// fakePort is a port of the fake switch: what the daemon keeps of one.
type fakePort struct {
	cfg   port.Config
	state string
	ctr   api.PortCounters
}

func (p *fakePort) api() api.Port { return api.NewPort(p.cfg, p.state, p.ctr) }

// Serve runs api.Server for svc on a Unix socket in t.TempDir() and returns
// the socket path; the server stops when the test ends.
func Serve(t testing.TB, svc api.Service) string {
	t.Helper()
	sock := filepath.Join(ShortTempDir(t), "vswitchd.sock")
	l, err := api.ListenUnix(sock)
	if err != nil {
		t.Fatalf("listen on %s: %v", sock, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- api.NewServer(svc, nil).Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("API server: %v", err)
		}
	})
	return sock
}

// ShortTempDir is like t.TempDir but short enough for a Unix socket path
// (108 bytes at most), whatever the test's name.
func ShortTempDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "vsw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
