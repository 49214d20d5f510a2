package apitest

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/vswitch/vswitch/pkg/api"
)

// Fake is an in-memory api.Service. Its fields may be set before use.
type Fake struct {
	mu            sync.Mutex
	ports         map[string]api.Port
	uplinkBackend map[string]uint64

	// StatusV, FDBV and VSIsV are returned by Status, FDB (filtered by VLAN)
	// and VSIs.
	StatusV api.Status
	FDBV    []api.FDBEntry
	VSIsV   []api.VSI
	// PanicOn makes the named method panic (to test recovery).
	PanicOn string
	// Calls counts calls per method name.
	Calls map[string]int
}

// NewFake returns an empty fake switch with uplink eth0 in VEPA mode.
func NewFake() *Fake {
	return &Fake{
		ports: map[string]api.Port{},
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
		if p.State == "up" {
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
		out = append(out, p)
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
		return api.Port{}, api.ErrPortNotFound(name)
	}
	return p, nil
}

// AddPort implements api.Service.
func (f *Fake) AddPort(ctx context.Context, spec api.PortSpec) (api.Port, error) {
	f.enter("AddPort")
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.ports[spec.Name]; ok {
		return api.Port{}, api.ErrPortExists(spec.Name)
	}
	if spec.VLAN == nil && spec.Trunk == nil {
		return api.Port{}, api.NewError(api.CodeInvalidVLAN, "port "+spec.Name+" needs a vlan (access) or a trunk VID set")
	}
	p := api.Port{Name: spec.Name, State: "absent", Drops: map[string]uint64{}, MACs: []string{}, Trunk: []int{}}
	if err := apply(&p, spec); err != nil {
		return api.Port{}, err
	}
	f.ports[p.Name] = p
	return p, nil
}

// UpdatePort implements api.Service.
func (f *Fake) UpdatePort(ctx context.Context, name string, spec api.PortSpec) (api.Port, error) {
	f.enter("UpdatePort")
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.ports[name]
	if !ok {
		return api.Port{}, api.ErrPortNotFound(name)
	}
	if err := apply(&p, spec); err != nil {
		return api.Port{}, err
	}
	f.ports[name] = p
	return p, nil
}

// DeletePort implements api.Service.
func (f *Fake) DeletePort(ctx context.Context, name string) error {
	f.enter("DeletePort")
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.ports[name]; !ok {
		return api.ErrPortNotFound(name)
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
		p := f.ports[n]
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

// SetCounters sets a port's runtime state and counters (for output tests).
func (f *Fake) SetCounters(name, state string, rxp, rxb, txp, txb uint64, drops map[string]uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.ports[name]
	p.State, p.RxPackets, p.RxBytes, p.TxPackets, p.TxBytes, p.Drops = state, rxp, rxb, txp, txb, drops
	f.ports[name] = p
}

// SetBackend sets a port's backend-specific counters (for output tests).
func (f *Fake) SetBackend(name string, counters map[string]uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.ports[name]
	p.Backend = counters
	f.ports[name] = p
}

// SetUplinkBackend sets the uplink's backend-specific counters in Stats.
func (f *Fake) SetUplinkBackend(counters map[string]uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.uplinkBackend = counters
}

func apply(p *api.Port, s api.PortSpec) error {
	if s.VLAN != nil {
		if *s.VLAN < 0 || *s.VLAN > 4094 || (*s.VLAN == 0 && s.Trunk == nil) {
			return api.NewError(api.CodeInvalidVLAN, fmt.Sprintf("invalid VLAN %d: must be 1-4094", *s.VLAN))
		}
		p.VLAN = *s.VLAN
		if *s.VLAN != 0 {
			p.Trunk = []int{}
		}
	}
	if s.Trunk != nil {
		vids, err := parseVIDs(*s.Trunk)
		if err != nil {
			return api.NewError(api.CodeInvalidVLAN, err.Error())
		}
		p.Trunk = vids
		if len(vids) > 0 {
			p.VLAN = 0
		}
	}
	if s.NativeVLAN != nil {
		p.NativeVLAN = *s.NativeVLAN
	}
	if s.SVID != nil {
		p.SVID = *s.SVID
	}
	if s.PCP != nil {
		if *s.PCP < 0 || *s.PCP > 7 {
			return api.NewError(api.CodeInvalidPCP, fmt.Sprintf("invalid PCP %d: must be 0-7", *s.PCP))
		}
		p.PCP = *s.PCP
	}
	if s.MACs != nil {
		macs := []string{}
		for _, m := range *s.MACs {
			hw, err := net.ParseMAC(m)
			if err != nil || len(hw) != 6 {
				return api.NewError(api.CodeInvalidMAC, fmt.Sprintf("invalid MAC %q: use the form 52:54:00:12:34:56", m))
			}
			macs = append(macs, hw.String())
		}
		p.MACs = macs
	}
	if s.Flood != nil {
		p.Flood = *s.Flood
	}
	return nil
}

func parseVIDs(s string) ([]int, error) {
	out := []int{}
	if s == "" {
		return out, nil
	}
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err1 := strconv.Atoi(lo)
		b := a
		var err2 error
		if isRange {
			b, err2 = strconv.Atoi(hi)
		}
		if err1 != nil || err2 != nil || a < 1 || b > 4094 || a > b {
			return nil, fmt.Errorf("invalid VID set %q: use VIDs 1-4094 like 10,20-30", s)
		}
		for v := a; v <= b; v++ {
			out = append(out, v)
		}
	}
	return out, nil
}

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
