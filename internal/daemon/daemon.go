package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vswitch/vswitch/internal/netdev"
	"github.com/vswitch/vswitch/internal/store"
	"github.com/vswitch/vswitch/pkg/api"
	"github.com/vswitch/vswitch/pkg/datapath"
	"github.com/vswitch/vswitch/pkg/vepa"
)

// Options are vswitchd's settings (its command-line flags).
type Options struct {
	Uplink   string
	Datapath string // auto|afpacket|afxdp: the uplink's backend
	// PortDatapath is the VM ports' backend: afpacket (default: guest
	// checksum and TSO offloads work) or afxdp.
	PortDatapath string
	Mode         string // vepa|veb
	StatePath    string
	Socket       string
	Metrics      string // TCP address for /metrics; "" = off
	Version      string
	Logger       *slog.Logger
	// UplinkQueues overrides the number of uplink RX workers (0 = automatic).
	UplinkQueues int
	// MTU of the VM ports (0: 1500); longer frames are dropped as malformed.
	MTU int
	// Priority is the scheduling policy of the datapath threads.
	Priority datapath.Priority
	// LLDPInterval is the EVB station's LLDP transmit interval (0: the
	// 802.1AB default of 30 s; negative: no EVB station).
	LLDPInterval time.Duration
}

// Daemon is a running vswitchd.
type Daemon struct {
	opts   Options
	log    *slog.Logger
	st     *store.Store
	sw     *datapath.Switch
	mode   datapath.Mode
	reason string // why this datapath was chosen
	start  time.Time

	mu          sync.Mutex // serialises configuration changes (store + switch)
	links       map[string]netdev.Event
	uplinkIndex int            // ifindex the uplink queues are bound to; 0 while it is gone
	portIndex   map[string]int // ifindex each attached port's queues are bound to

	lastFDB []store.FDBRecord // what the store holds; saveFDB/restoreFDB only
	saving  sync.WaitGroup    // background loops Close waits for (FDB saving, EVB station)

	sys           system   // the host: links, backends, AF_XDP probe, ethtool (system.go)
	uplinkOffload restorer // receive coalescing we switched off on the uplink (d.mu)

	evb      atomic.Pointer[vepa.Station]    // the EVB station once running
	vdp      atomic.Pointer[vepa.VDPStation] // VSI registration once running
	ctlOther atomic.Uint64                   // control frames other than LLDP the datapath handed over
}

// Run starts the daemon and serves until ctx is cancelled; it then stops
// gracefully (rings closed, state flushed).
func Run(ctx context.Context, o Options) error {
	d, err := Start(o)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Serve(ctx)
}

// Start opens the store and the datapath, restores the ports and starts
// watching interfaces; Serve then runs the API.
func Start(o Options) (*Daemon, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return start(o, hostSystem(o.Logger))
}

// start is Start on the given host (unit tests pass a fake one).
func start(o Options, sys system) (*Daemon, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Uplink == "" {
		return nil, errors.New("no uplink: use --uplink IF (the NIC facing the adjacent bridge)")
	}
	mode, err := datapath.ParseMode(o.Mode)
	if err != nil {
		return nil, err
	}
	d := &Daemon{opts: o, log: o.Logger, sys: sys, mode: mode, start: time.Now(), links: map[string]netdev.Event{}, portIndex: map[string]int{}}
	ul, err := sys.links.Link(o.Uplink)
	if err != nil {
		return nil, fmt.Errorf("uplink %s: %w (check the name with `ip link`)", o.Uplink, err)
	}
	d.uplinkIndex = ul.Index
	if d.st, err = store.Open(o.StatePath); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			d.st.Close()
		}
	}()
	if err := d.st.SetUplink(o.Uplink, mode.String()); err != nil {
		return nil, fmt.Errorf("save uplink: %w", err)
	}
	ports, err := d.st.Ports()
	if err != nil {
		return nil, err
	}
	d.noUplinkCoalescingLocked()
	defer func() {
		if !ok {
			d.restoreUplinkCoalescingLocked()
		}
	}()
	var present []string
	for _, c := range ports {
		if _, err := sys.links.Link(c.Name); err == nil {
			present = append(present, c.Name)
		}
	}
	if err := d.startSwitch(present); err != nil {
		return nil, err
	}
	for _, c := range ports {
		dc, err := toDatapath(c)
		if err != nil {
			d.log.Error("stored port is invalid; skipped (fix it with vswctl set-port)", "port", c.Name, "err", err)
			continue
		}
		if err := d.sw.AddPort(dc); err != nil {
			d.log.Error("restore port", "port", c.Name, "err", err)
		}
	}
	d.restoreFDB()
	d.log.Info("vswitchd started", "uplink", o.Uplink, "datapath", d.sw.Backend(), "port_datapath", d.sw.PortBackend(), "why", d.reason, "priority", o.Priority, "mode", mode, "ports", len(ports), "state", d.st.Path())
	ok = true
	return d, nil
}

// Close stops the datapath and closes the store.
func (d *Daemon) Close() error {
	d.saving.Wait()
	d.saveFDB()
	d.sw.Stop()
	d.mu.Lock()
	d.restoreUplinkCoalescingLocked()
	d.mu.Unlock()
	err := d.st.Close()
	d.log.Info("vswitchd stopped")
	return err
}

// --- api.Service ---

// Status implements api.Service.
func (d *Daemon) Status(ctx context.Context) (api.Status, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	ps := d.sw.Ports()
	up := 0
	for _, p := range ps {
		if d.portStateLocked(p.Config.Name, p.Attached) == "up" {
			up++
		}
	}
	ustate := "absent"
	if ev, ok := d.links[d.opts.Uplink]; ok {
		ustate = "down"
		if ev.Up {
			ustate = "up"
		}
	}
	return api.Status{
		Version: d.opts.Version, Uplink: d.opts.Uplink, UplinkState: ustate,
		Mode: d.sw.Mode().String(), ConfiguredMode: d.mode.String(),
		Datapath: d.sw.Backend(), DatapathReason: d.reason, PortDatapath: d.sw.PortBackend(), DatapathPriority: d.opts.Priority.String(),
		Ports: len(ps), PortsUp: up, UptimeSeconds: int64(time.Since(d.start) / time.Second),
		StatePath: d.st.Path(), Relay: d.relayStatus(),
	}, nil
}

func (d *Daemon) portLocked(c store.PortConfig) api.Port {
	for _, p := range d.sw.Ports() {
		if p.Config.Name == c.Name {
			return toAPI(c, d.portStateLocked(c.Name, p.Attached), p.Counters)
		}
	}
	return toAPI(c, d.portStateLocked(c.Name, false), datapath.CounterSnapshot{})
}

// ListPorts implements api.Service.
func (d *Daemon) ListPorts(ctx context.Context) ([]api.Port, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	cs, err := d.st.Ports()
	if err != nil {
		return nil, err
	}
	stats := map[string]datapath.PortStatus{}
	for _, p := range d.sw.Ports() {
		stats[p.Config.Name] = p
	}
	out := make([]api.Port, 0, len(cs))
	for _, c := range cs {
		s := stats[c.Name]
		out = append(out, toAPI(c, d.portStateLocked(c.Name, s.Attached), s.Counters))
	}
	return out, nil
}

func notFound(name string) error {
	return api.NewError(api.CodeNotFound, fmt.Sprintf("port %s not found (see vswctl list-ports)", name))
}

// storedPortLocked reads a port's configuration, mapping a missing one to
// the API's not_found error. d.mu is held.
func (d *Daemon) storedPortLocked(name string) (store.PortConfig, error) {
	c, err := d.st.Port(name)
	if errors.Is(err, store.ErrNotFound) {
		return c, notFound(name)
	}
	return c, err
}

// GetPort implements api.Service.
func (d *Daemon) GetPort(ctx context.Context, name string) (api.Port, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	c, err := d.storedPortLocked(name)
	if err != nil {
		return api.Port{}, err
	}
	return d.portLocked(c), nil
}

// AddPort implements api.Service.
func (d *Daemon) AddPort(ctx context.Context, spec api.PortSpec) (api.Port, error) {
	c := store.PortConfig{Name: spec.Name}
	applySpec(&c, spec)
	dc, err := toDatapath(c)
	if err != nil {
		return api.Port{}, err
	}
	c = normalise(c, dc)
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, err := d.st.Port(c.Name); err == nil {
		return api.Port{}, api.NewError(api.CodeAlreadyExists, fmt.Sprintf("port %s already exists (use vswctl set-port to change it)", c.Name))
	}
	if err := d.st.PutPort(c); err != nil {
		return api.Port{}, fmt.Errorf("save port %s: %w", c.Name, err)
	}
	if err := d.sw.AddPort(dc); err != nil {
		d.st.DeletePort(c.Name)
		if errors.Is(err, datapath.ErrPortExists) {
			return api.Port{}, api.NewError(api.CodeAlreadyExists, fmt.Sprintf("port %s already exists (use vswctl set-port to change it)", c.Name))
		}
		return api.Port{}, api.NewError(api.CodeInvalidBody, err.Error())
	}
	d.syncPortLocked(c.Name)
	d.syncVSIsLocked()
	d.log.Info("port added", "port", c.Name, "vlan", c.VLAN, "trunk", c.Trunk, "svid", c.SVID)
	return d.portLocked(c), nil
}

// UpdatePort implements api.Service.
func (d *Daemon) UpdatePort(ctx context.Context, name string, spec api.PortSpec) (api.Port, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	c, err := d.storedPortLocked(name)
	if err != nil {
		return api.Port{}, err
	}
	if spec.Name != "" && spec.Name != name {
		return api.Port{}, api.NewError(api.CodeInvalidName, "a port cannot be renamed: delete it and add it under the new name")
	}
	applySpec(&c, spec)
	dc, err := toDatapath(c)
	if err != nil {
		return api.Port{}, err
	}
	c = normalise(c, dc)
	old, err := d.st.Port(name)
	if err != nil {
		return api.Port{}, err
	}
	if err := d.st.PutPort(c); err != nil {
		return api.Port{}, fmt.Errorf("save port %s: %w", name, err)
	}
	if err := d.sw.UpdatePort(dc); err != nil {
		if rerr := d.st.PutPort(old); rerr != nil {
			d.log.Error("roll back port in the state file", "port", name, "err", rerr)
		}
		return api.Port{}, api.NewError(api.CodeInvalidBody, err.Error())
	}
	d.syncVSIsLocked()
	d.log.Info("port updated", "port", name)
	return d.portLocked(c), nil
}

// DeletePort implements api.Service.
func (d *Daemon) DeletePort(ctx context.Context, name string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.st.DeletePort(name); errors.Is(err, store.ErrNotFound) {
		return notFound(name)
	} else if err != nil {
		return fmt.Errorf("delete port %s: %w", name, err)
	}
	if err := d.sw.DeletePort(name); err != nil && !errors.Is(err, datapath.ErrPortNotFound) {
		return err
	}
	d.syncVSIsLocked()
	d.log.Info("port deleted", "port", name)
	return nil
}

// FDB implements api.Service.
func (d *Daemon) FDB(ctx context.Context, vid int) ([]api.FDBEntry, error) {
	if vid < 0 || vid > 4094 {
		return nil, api.NewError(api.CodeInvalidVLAN, fmt.Sprintf("invalid VLAN %d: must be 1-4094", vid))
	}
	out := []api.FDBEntry{}
	for _, e := range d.sw.FDBEntries(uint16(vid)) {
		out = append(out, api.FDBEntry{VLAN: int(e.VID), SVID: int(e.SVID), MAC: e.MAC.String(), Port: e.Port, Static: e.Static, AgeSec: int(e.Age / time.Second)})
	}
	return out, nil
}

// Stats implements api.Service.
func (d *Daemon) Stats(ctx context.Context) (api.Stats, error) {
	ports, err := d.ListPorts(ctx)
	if err != nil {
		return api.Stats{}, err
	}
	u := d.sw.UplinkCounters()
	st := api.Stats{Ports: ports, Drops: map[string]uint64{}, Uplink: api.UplinkStats{
		Name: d.opts.Uplink, RxPackets: u.RxPackets, RxBytes: u.RxBytes, TxPackets: u.TxPackets, TxBytes: u.TxBytes, Drops: u.Drops,
	}}
	st.Uplink.Control = d.ctlOther.Load()
	if evb := d.evb.Load(); evb != nil {
		r := evb.Relay()
		st.Uplink.Control += r.Received + r.Bad
	}
	if vdp := d.vdp.Load(); vdp != nil {
		e := vdp.ECPStats()
		st.Uplink.Control += e.Received + e.Duplicates + e.Bad + e.Acked
	}
	for k, v := range u.Drops {
		st.Drops[k] += v
	}
	for _, p := range ports {
		for k, v := range p.Drops {
			st.Drops[k] += v
		}
	}
	return st, nil
}

// VSIs implements api.Service: the VSIs registered with the bridge (VDP).
func (d *Daemon) VSIs(ctx context.Context) ([]api.VSI, error) { return d.vsis(), nil }

// sortedNames is used by metrics.
func sortedNames(m map[string]uint64) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
