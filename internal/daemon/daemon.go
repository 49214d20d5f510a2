package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vswitch/vswitch/internal/libvirt/events"
	"github.com/vswitch/vswitch/internal/netdev"
	"github.com/vswitch/vswitch/internal/rxwait"
	"github.com/vswitch/vswitch/internal/sdnotify"
	"github.com/vswitch/vswitch/internal/store"
	"github.com/vswitch/vswitch/internal/version"
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
	// SocketGroup is the numeric group that owns the API socket: its
	// members may use the API (mode 0660). nil: the daemon's own group.
	SocketGroup *int
	Metrics     string // TCP address for /metrics; "" = off
	// Build is the build's identity the status shows (zero: this
	// binary's, version.Get()).
	Build  version.Info
	Logger *slog.Logger
	// UplinkQueues overrides the number of uplink RX workers (0 = automatic).
	UplinkQueues int
	// MTU of the VM ports (0: 1500); longer frames are dropped as malformed.
	MTU int
	// Priority is the scheduling policy of the datapath threads.
	Priority datapath.Priority
	// BusyPoll is how long a receiving queue that found no more frames
	// polls every queue before it sleeps (internal/rxwait.Group; 0: it
	// sleeps at once).
	BusyPoll time.Duration
	// CPUPoll receives the queues at light load on the CPU where their
	// frames arrive (datapath.Config.CPUPoll).
	CPUPoll bool
	// LLDPInterval is the EVB station's LLDP transmit interval (0: the
	// 802.1AB default of 30 s; negative: no EVB station).
	LLDPInterval time.Duration
	// Libvirt is libvirtd's URI (or socket path) whose domain events
	// vswitchd follows (internal/libvirt/events); "" = off.
	Libvirt string
	// FDB bounds the learned MACs (--max-macs-per-port,
	// --max-macs-per-vlan, --fdb-max; zero values: the defaults).
	FDB datapath.FDBLimits
	// PreassociateTimeout is how long a port of a VM migrating in keeps
	// its VSIs pre-associated when the VM sends no frame (0: 5 minutes;
	// negative: until it sends one).
	PreassociateTimeout time.Duration
	// Notify tells systemd when the daemon is ready (the API listens, the
	// stored ports are restored) and pings its watchdog (serve.go); nil:
	// not started by systemd.
	Notify *sdnotify.Notifier
	// EVBLocal holds the EVB station's timer proposals (R, RTE, RWD, RKA;
	// ROLRWD/ROLRKA: follow the bridge's): vswitchd --evb-r, --evb-rte,
	// --evb-rwd, --evb-rka. nil: vepa.DefaultLocal.
	EVBLocal *vepa.EVB
	// CDCP is auto, on or off ("": auto): whether S-channel ports follow
	// the adjacent bridge's CDCP grants (cdcp.go).
	CDCP string
	// UplinkWait is how long Run waits for an uplink that does not exist
	// yet before it starts, the API answering "starting" meanwhile
	// (uplinkwait.go); 0: not at all (the start fails at once).
	UplinkWait time.Duration
}

// socketGID is SocketGroup for api.ListenUnixGroup (-1: unchanged).
func (o *Options) socketGID() int {
	if o.SocketGroup == nil {
		return -1
	}
	return *o.SocketGroup
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
	uplinkIndex int                     // ifindex the uplink queues are bound to; 0 while it is gone
	portIndex   map[string]int          // ifindex each attached port's queues are bound to
	retries     map[string]*attachRetry // ports whose attach failed, tried again (links.go)
	// refused holds the stored ports the datapath refused at start (they
	// pass the port rules but not the switch's: its slots or learning
	// domains were used up): listed as down with the reason until set-port
	// makes them fit or del-port removes them.
	refused   map[string]error
	retryBase time.Duration // first retry delay (0: firstAttachRetry; tests shorten it)
	closed    bool          // Close began: no more retries

	unlockUplink func() // gives up the one-vswitchd-per-uplink lock (uplinklock_linux.go)

	lastFDB []store.FDBRecord // what the store holds; saveFDB/restoreFDB only
	saving  sync.WaitGroup    // background loops Close waits for (FDB saving, EVB station)
	// fdbVersion is the switch's FDBVersion lastFDB was listed at, once
	// fdbListed (saveFDB only).
	fdbVersion uint64
	fdbListed  bool

	sys           system   // the host: links, backends, AF_XDP probe, ethtool (system.go)
	uplinkOffload restorer // receive coalescing we switched off on the uplink (d.mu)

	evb      atomic.Pointer[vepa.Station]    // the EVB station once running
	vdp      atomic.Pointer[vepa.VDPStation] // VSI registration once running
	ctlQueue *controlQueue                   // control frames from the datapath to the stations (control.go)

	libvirt *events.Follower // --libvirt: follows libvirtd's domains (nil: off)
	// Live migration (migration.go), under mu: the ports waiting for their
	// VM to run here, and those whose VM migrated here (their
	// associations carry the M bit).
	incoming   map[string]*incomingPort
	migratedIn map[string]bool
	procs      *procSizer    // GOMAXPROCS: a P per datapath worker (procs.go)
	busy       *rxwait.Group // the receiving queues' busy poll (--busy-poll), made with the first switch
	// VDP, under mu: the VID the bridge assigned to each port whose VLAN
	// it assigns, as the datapath has it (vlanassign.go), and the ports
	// VDP registers nothing for, with why (logged once).
	assigned  map[string]vlanAssignment
	vdpWarned map[string]string

	cdcp     atomic.Pointer[vepa.CDCPStation] // the CDCP agent once running (cdcp.go)
	chanSVID map[string]uint16                // under mu: the S-VID of each port on an S-channel

	// apiListener is the API socket the wait for the uplink listened on
	// (uplinkwait.go), which Serve takes over; nil: Serve listens.
	apiListener net.Listener
}

// Run starts the daemon and serves until ctx is cancelled; it then stops
// gracefully (rings closed, state flushed). An uplink that does not exist
// yet is waited for first, up to o.UplinkWait (uplinkwait.go); a ctx
// cancelled meanwhile ends Run without an error.
func Run(ctx context.Context, o Options) error {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return run(ctx, o, hostSystem(o.Logger))
}

// run is Run on the given host (unit tests pass a fake one).
func run(ctx context.Context, o Options, sys system) error {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	held, err := waitForUplink(ctx, o, sys)
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			return nil // stopped while waiting
		}
		return err
	}
	if held != nil {
		// The wait holds the uplink's lock: Start keeps it (and releases
		// it should it fail).
		sys.lockUplink = func(string) (func(), error) { return held.unlock, nil }
	}
	d, err := start(o, sys)
	if err != nil {
		if held != nil {
			held.ln.Close()
		}
		return err
	}
	defer d.Close()
	if held != nil {
		d.apiListener = held.ln
		defer held.ln.Close() // Serve's server closes it, unless Serve fails before
	}
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
	if o.Build.Version == "" {
		o.Build = version.Get()
	}
	if o.Uplink == "" {
		return nil, errors.New("no uplink: use --uplink IF (the NIC facing the adjacent bridge)")
	}
	mode, err := datapath.ParseMode(o.Mode)
	if err != nil {
		return nil, err
	}
	d := &Daemon{opts: o, log: o.Logger, sys: sys, mode: mode, start: time.Now(), links: map[string]netdev.Event{}, portIndex: map[string]int{}, retries: map[string]*attachRetry{}, refused: map[string]error{},
		incoming: map[string]*incomingPort{}, migratedIn: map[string]bool{}, assigned: map[string]vlanAssignment{}}
	if o.Libvirt != "" {
		u, err := events.ParseURI(o.Libvirt)
		if err != nil {
			return nil, err
		}
		d.libvirt = events.New(events.Config{URI: o.Libvirt, Dial: events.Dialer(u), Ports: d, Logger: d.log})
	}
	ul, err := sys.links.Link(o.Uplink)
	if err != nil {
		return nil, fmt.Errorf("uplink %s: %w (check the name with `ip link`)", o.Uplink, err)
	}
	d.uplinkIndex = ul.Index
	ok := false
	if d.unlockUplink, err = sys.lockUplink(o.Uplink); err != nil {
		return nil, err
	}
	defer func() {
		if !ok {
			d.unlockUplink()
		}
	}()
	// A damaged state file is refused with one line that says how to
	// recover (store.DamageError); the file can never crash the daemon.
	if d.st, err = store.Open(o.StatePath); err != nil {
		return nil, err
	}
	defer func() {
		if !ok {
			d.st.Close()
		}
	}()
	for _, n := range d.st.Notes() {
		d.log.Warn("state file: "+n, "state", o.StatePath)
	}
	if err := d.st.SetUplink(o.Uplink, mode.String()); err != nil {
		return nil, fmt.Errorf("save uplink: %w", err)
	}
	// Every usable record is restored. An unusable one (it fails the API's
	// rules, or does not decode) stays in the file and shows as a down port
	// with the reason (ListPorts) until it is replaced or deleted: it never
	// stops the daemon, and is never dropped silently.
	ports, bad, err := d.st.Records()
	if err != nil {
		return nil, err
	}
	for _, e := range bad {
		d.log.Error("port not restored: its record in the state file is unusable", "port", e.Port, "err", e)
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
	defer func() {
		if !ok {
			_ = d.busy.Close() // made with the first switch, if any
		}
	}()
	if err := d.startSwitch(present); err != nil {
		return nil, err
	}
	for _, c := range ports {
		if err := d.sw.AddPort(c); err != nil {
			d.log.Error("port not restored: the datapath refused it; change it (vswctl set-port) or delete it (vswctl del-port)", "port", c.Name, "err", err)
			d.refused[c.Name] = err
			continue
		}
		d.followMigrationLocked(c)
	}
	d.syncChannelsLocked()
	d.applyVLANsLocked() // ports whose VLAN the bridge assigns wait for VDP
	d.restoreFDB()
	d.log.Info("vswitchd started", "uplink", o.Uplink, "datapath", d.sw.Backend(), "port_datapath", d.sw.PortBackend(), "why", d.reason, "priority", o.Priority, "mode", mode, "ports", len(ports), "state", d.st.Path())
	ok = true
	return d, nil
}

// Close stops the datapath and closes the store.
func (d *Daemon) Close() error {
	d.mu.Lock()
	d.closed = true
	for name := range d.retries {
		d.stopAttachRetryLocked(name)
	}
	for name := range d.incoming {
		d.forgetIncomingLocked(name)
	}
	d.mu.Unlock()
	d.saving.Wait()
	d.saveFDB()
	d.sw.Stop()
	d.mu.Lock()
	d.restoreUplinkCoalescingLocked()
	d.mu.Unlock()
	err := d.st.Close()
	_ = d.busy.Close()
	d.unlockUplink()
	d.log.Info("vswitchd stopped")
	return err
}
