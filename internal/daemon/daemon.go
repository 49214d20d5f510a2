package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vswitch/vswitch/pkg/backend"

	"github.com/vswitch/vswitch/internal/ethtool"
	"github.com/vswitch/vswitch/internal/netdev"
	"github.com/vswitch/vswitch/internal/store"
	"github.com/vswitch/vswitch/pkg/afpacket"
	"github.com/vswitch/vswitch/pkg/afxdp"
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

// afxdpMaxMTU is the largest MTU an AF_XDP queue carries (a 4096-byte UMEM
// chunk less XDP headroom, Ethernet header and two tags).
const afxdpMaxMTU = 4096 - 256 - 14 - 8

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

	uplinkOffload *ethtool.Restore // receive coalescing we switched off on the uplink (d.mu)

	evb      atomic.Pointer[vepa.Station]    // the EVB station once running
	vdp      atomic.Pointer[vepa.VDPStation] // VSI registration once running
	ctlQueue *controlQueue                   // control frames from the datapath to the stations (control.go)
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
	if o.Uplink == "" {
		return nil, errors.New("no uplink: use --uplink IF (the NIC facing the adjacent bridge)")
	}
	mode, err := datapath.ParseMode(o.Mode)
	if err != nil {
		return nil, err
	}
	d := &Daemon{opts: o, log: o.Logger, mode: mode, start: time.Now(), links: map[string]netdev.Event{}, portIndex: map[string]int{}}
	ul, err := netdev.LinkByName(o.Uplink)
	if err != nil {
		return nil, fmt.Errorf("uplink %s: %w (check the name with `ip link`)", o.Uplink, err)
	}
	d.uplinkIndex = ul.Attrs().Index
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
			_ = d.uplinkOffload.Restore()
		}
	}()
	if err := d.startSwitch(ports); err != nil {
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

// startSwitch picks the backends (see --datapath and --port-datapath) and
// starts the switch.
func (d *Daemon) startSwitch(ports []store.PortConfig) error {
	choice := d.opts.Datapath
	if choice == "" {
		choice = "auto"
	}
	portChoice := d.opts.PortDatapath
	if portChoice == "" {
		portChoice = "afpacket"
	}
	if portChoice != "afpacket" && portChoice != "afxdp" {
		return fmt.Errorf("invalid --port-datapath %q: use afpacket or afxdp", portChoice)
	}
	probeXDP := func(what, ifname string) error {
		if d.opts.MTU > afxdpMaxMTU {
			return fmt.Errorf("MTU %d is above the %d AF_XDP supports without multi-buffer", d.opts.MTU, afxdpMaxMTU)
		}
		if err := afxdp.Probe(ifname); err != nil {
			return fmt.Errorf("%s %s: %w", what, ifname, err)
		}
		return nil
	}
	// Ports absent now are opened on AF_XDP when their tap appears; a
	// failure then leaves that port down with the reason in the log.
	probePorts := func() error {
		if d.opts.MTU > afxdpMaxMTU {
			return fmt.Errorf("MTU %d is above the %d AF_XDP supports without multi-buffer", d.opts.MTU, afxdpMaxMTU)
		}
		for _, p := range ports {
			if _, err := netdev.LinkByName(p.Name); err != nil {
				continue
			}
			if err := probeXDP("port", p.Name); err != nil {
				return err
			}
		}
		return nil
	}
	uplinkXDP := false
	switch choice {
	case "afxdp":
		if err := probeXDP("uplink", d.opts.Uplink); err != nil {
			return err
		}
		uplinkXDP = true
		d.reason = "requested with --datapath afxdp"
	case "afpacket":
		d.reason = "requested with --datapath afpacket"
	case "auto":
		if err := probeXDP("uplink", d.opts.Uplink); err != nil {
			d.reason = fmt.Sprintf("auto: AF_XDP unavailable (%v); using AF_PACKET", err)
			d.log.Warn("AF_XDP unavailable, falling back to AF_PACKET", "err", err)
		} else {
			uplinkXDP = true
			d.reason = "auto: AF_XDP program loaded and bound on the uplink"
		}
	default:
		return fmt.Errorf("invalid --datapath %q: use auto, afpacket or afxdp", choice)
	}
	if portChoice == "afxdp" {
		if err := probePorts(); err != nil {
			return fmt.Errorf("--port-datapath afxdp: %w", err)
		}
	}

	var xdp, pkt backend.Backend
	pick := func(useXDP bool) backend.Backend {
		if useXDP {
			if xdp == nil {
				xdp = afxdp.New(afxdp.Options{Logger: d.log})
			}
			return xdp
		}
		if pkt == nil {
			pkt = afpacket.New()
		}
		return pkt
	}
	build := func(uplinkXDP bool) error {
		up := pick(uplinkXDP)
		var be backend.Backend = up
		if port := pick(portChoice == "afxdp"); port != up {
			be = backend.Split{Port: port, Uplink: up}
		}
		queues := 0
		if uplinkXDP {
			queues = rxQueues(d.opts.Uplink)
		}
		return d.newSwitch(be, queues)
	}
	err := build(uplinkXDP)
	if err != nil && choice == "auto" && uplinkXDP {
		// The probe binds one queue; the switch opens them all, and that
		// can still fail (a queue the driver refuses, --uplink-queues
		// above the NIC's).
		d.reason = fmt.Sprintf("auto: AF_XDP failed to start on the uplink (%v); using AF_PACKET", err)
		d.log.Warn("AF_XDP failed to start on the uplink, falling back to AF_PACKET", "err", err)
		err = build(false)
	}
	if err != nil {
		return err
	}
	if portChoice == "afxdp" && d.sw.Backend() != "afxdp" {
		d.reason += "; VM ports on AF_XDP as --port-datapath asks"
	}
	if portChoice == "afxdp" {
		d.log.Warn("VM ports on AF_XDP (--port-datapath afxdp): VMs must not use TX checksum offload or TSO/GSO (AF_XDP gets neither the partial-checksum mark nor GSO metadata; TCP from such VMs would fail); leave --port-datapath at afpacket if you cannot turn them off")
	}
	return nil
}

func (d *Daemon) newSwitch(be backend.Backend, queues int) error {
	if d.opts.UplinkQueues > 0 {
		queues = d.opts.UplinkQueues
	}
	if queues <= 0 {
		queues = runtime.NumCPU()
	}
	d.ctlQueue = newControlQueue()
	sw, err := datapath.New(datapath.Config{Uplink: d.opts.Uplink, Mode: d.mode, Backend: be, UplinkQueues: queues, MTU: d.opts.MTU, Priority: d.opts.Priority, Control: d.ctlQueue.take, Logger: d.log})
	if err != nil {
		return err
	}
	if err := sw.Start(); err != nil {
		return fmt.Errorf("start %s datapath: %w", be.Name(), err)
	}
	d.sw = sw
	return nil
}

// rxQueues counts the uplink's RX queues (one XSK each).
func rxQueues(ifname string) int {
	m, _ := filepath.Glob(filepath.Join("/sys/class/net", ifname, "queues", "rx-*"))
	if len(m) == 0 {
		return 1
	}
	return len(m)
}

// Serve runs the interface watcher and the API until ctx is done.
func (d *Daemon) Serve(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := netdev.Watch(ctx)
	if err != nil {
		return fmt.Errorf("watch interfaces: %w", err)
	}
	d.saving.Add(3)
	go func() { defer d.saving.Done(); d.follow(ctx, w) }()
	go func() { defer d.saving.Done(); d.saveFDBLoop(ctx) }()
	go func() { defer d.saving.Done(); d.runEVB(ctx) }()

	srv := api.NewServer(d, d.log)
	srv.Handle("GET /metrics", d.metricsHandler()) // also on the socket
	ln, err := api.ListenUnix(d.opts.Socket)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 2)
	go func() { errc <- hs.Serve(ln) }()
	var ms *http.Server
	if d.opts.Metrics != "" {
		mln, err := net.Listen("tcp", d.opts.Metrics)
		if err != nil {
			hs.Close()
			return fmt.Errorf("metrics listener on %s: %w", d.opts.Metrics, err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", d.metricsHandler())
		ms = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() { errc <- ms.Serve(mln) }()
	}
	d.log.Info("API listening", "socket", d.opts.Socket, "metrics", d.opts.Metrics)
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	sctx, scancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer scancel()
	if hs.Shutdown(sctx) != nil {
		hs.Close() // requests still running after 3 s end now, before the datapath and store close
	}
	if ms != nil && ms.Shutdown(sctx) != nil {
		ms.Close()
	}
	os.Remove(d.opts.Socket)
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// follow attaches and detaches ports as their interfaces come and go.
func (d *Daemon) follow(ctx context.Context, w *netdev.Watcher) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.Events():
			if !ok {
				return
			}
			d.mu.Lock()
			if ev.Present {
				d.links[ev.Name] = ev
			} else {
				delete(d.links, ev.Name)
			}
			if ev.Name == d.opts.Uplink {
				d.syncUplinkLocked(ev)
			} else {
				d.syncPortLocked(ev.Name)
			}
			d.mu.Unlock()
		}
	}
}

// syncUplinkLocked follows the uplink: when it is deleted the datapath
// waits (frames to it are counted as tx errors); when an interface of that
// name comes back, every uplink queue is reopened on it. d.mu is held.
func (d *Daemon) syncUplinkLocked(ev netdev.Event) {
	switch {
	case !ev.Present && d.uplinkIndex != 0:
		d.log.Error("uplink disappeared; ports keep their configuration, traffic resumes when it is back", "uplink", ev.Name)
		d.uplinkIndex = 0
	case ev.Present && ev.Index != d.uplinkIndex:
		d.log.Info("uplink is back; reopening its queues", "uplink", ev.Name, "ifindex", ev.Index)
		d.noUplinkCoalescingLocked()
		if err := d.sw.RestartUplink(); err != nil {
			d.log.Error("reopen uplink queues", "uplink", ev.Name, "err", err)
			if !d.sw.UplinkOpen() {
				return
			}
			// the uplink is open; some ports failed to reattach: the sync
			// below tries them again
		}
		d.uplinkIndex = ev.Index
		// Ports whose taps appeared (or were replaced) while the uplink was
		// gone could not attach then: attach every present port now.
		for name := range d.links {
			if name != d.opts.Uplink {
				d.syncPortLocked(name)
			}
		}
		if l, err := netdev.LinkByName(ev.Name); err == nil {
			if st := d.evb.Load(); st != nil {
				st.SetMAC(l.Attrs().HardwareAddr)
			}
			if st := d.vdp.Load(); st != nil {
				st.SetMAC(l.Attrs().HardwareAddr)
			}
		}
	}
}

// syncPortLocked attaches a configured port whose interface exists and
// detaches one whose interface is gone. d.mu is held.
func (d *Daemon) syncPortLocked(name string) {
	if !d.sw.HasPort(name) {
		return
	}
	ev, present := d.links[name]
	attached := d.sw.Attached(name)
	if present && attached && d.portIndex[name] != ev.Index {
		// deleted and created again between two events: the queues are
		// bound to the old interface
		d.sw.Detach(name)
		attached = false
	}
	switch {
	case present && !attached:
		if err := d.sw.Attach(name); err != nil {
			d.log.Warn("attach port", "port", name, "err", err)
			return
		}
		d.portIndex[name] = ev.Index
	case !present && attached:
		d.sw.Detach(name)
		delete(d.portIndex, name)
	}
}

// Close stops the datapath and closes the store.
func (d *Daemon) Close() error {
	d.saving.Wait()
	d.saveFDB()
	d.sw.Stop()
	d.mu.Lock()
	if d.uplinkOffload != nil {
		if err := d.uplinkOffload.Restore(); err != nil {
			d.log.Warn("could not switch the uplink's receive coalescing back on", "uplink", d.opts.Uplink, "err", err)
		}
		d.uplinkOffload = nil
	}
	d.mu.Unlock()
	err := d.st.Close()
	d.log.Info("vswitchd stopped")
	return err
}

// portState is up|down|absent.
func (d *Daemon) portStateLocked(name string, attached bool) string {
	ev, present := d.links[name]
	switch {
	case !present:
		return "absent"
	case attached && ev.Up:
		return "up"
	}
	return "down"
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
	st.Uplink.Control = u.Control
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
