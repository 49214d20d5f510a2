package datapath

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vswitch/vswitch/internal/cpupoll"
	"github.com/vswitch/vswitch/pkg/backend"

	portcfg "github.com/vswitch/vswitch/pkg/port"
	"github.com/vswitch/vswitch/pkg/vlan"
)

// MaxPorts is the number of port slots a switch has.
const MaxPorts = 4096

// Switch is the VEPA/VEB datapath: ports, FDB, pipelines, counters.
// Configuration changes build a new immutable snapshot that the pipelines
// load once per batch; the frame path takes no lock.
type Switch struct {
	cfg  Config
	log  *slog.Logger
	snap atomic.Pointer[snapshot]
	fdb  *FDB
	// published counts the snapshots published (FDBVersion).
	published atomic.Uint64

	mu      sync.Mutex // serialises configuration changes
	ports   map[string]*port
	doms    domains // learning domains of S-channel VLANs
	free    []int   // free slots
	nslot   int
	uplink  Counters
	control atomic.Uint64 // uplink control frames (CounterSnapshot.Control)
	// retired holds the drops of the ports deleted since New, so that
	// DropTotals never goes down. Changed under mu.
	retired Counters
	workers []*ingressWorker
	stop    chan struct{}
	wg      sync.WaitGroup
	started bool

	// uplinkBackend sums the backend-specific counters of uplink queues
	// already closed (see CounterSnapshot.Backend). Guarded by mu.
	uplinkBackend map[string]uint64
	// ctlMu guards ctlTX, the uplink TX queue of SendControl: apart from
	// s.mu, so the control plane is not held up by configuration changes
	// (and never waits for anything that waits for it). ctlTX changes only
	// under both locks, so holding either is enough to read it.
	ctlMu sync.Mutex
	ctlTX backend.Queue

	prioOnce   sync.Once   // the priority warning, once
	prioFailed atomic.Bool // the priority cannot be set: stop trying
	// prioErr is why the priority could not be set (PriorityErr); nil
	// while it could.
	prioErr atomic.Pointer[error]

	// pollers are the CPU pollers (Config.CPUPoll; nil without),
	// made by Start, closed by Stop; handoffs counts the queues they gave
	// to their workers' goroutines (a stream began, or an error).
	pollers  *cpupoll.Set
	handoffs atomic.Uint64

	nworkers int // ingress and egress workers running (Config.Workers). Guarded by mu.

	// captures are the running capture sessions (capture.go), guarded by
	// mu; upCapture is the uplink's for its workers (nil: none).
	captures  map[*Capture]struct{}
	upCapture atomic.Pointer[captureSet]
}

type port struct {
	name string
	slot int
	ctr  Counters
	view atomic.Pointer[portView]
	io   atomic.Pointer[portIO]

	// backend sums the backend-specific counters of the port's queues
	// already closed (see CounterSnapshot.Backend). Guarded by Switch.mu.
	backend map[string]uint64
	// watch is set while the port waits for its first frame from the VM
	// (WatchFirstFrame); its egress worker clears it and calls
	// Config.FirstFrame.
	watch atomic.Bool
	// capture is the port's running captures (capture.go), nil when none.
	capture atomic.Pointer[captureSet]
}

type portIO struct {
	tap, up backend.Queue
	stop    chan struct{} // closed when the port is being detached
	done    chan struct{} // closed when its egress worker has returned
}

type portView struct {
	p       *port
	slot    int
	cfg     portcfg.Config
	maxMACs int32    // learned-MAC limit in effect
	macs    []uint64 // registered MACs as MACKey(0, mac), sorted
	ctag    vlan.Tag // access: the tag pushed (trunk: PCP only)
	stag    vlan.Tag
	flood   bool
}

// snapshot is the configuration the pipelines see, immutable once
// published. A change copies it and rewrites only what the port touches
// (publishLocked).
type snapshot struct {
	mode   Mode
	slots  []*portView
	byVID  [4096][]*portView // ports of each VID, sorted by name
	static staticIndex       // registered MACs (static.go)
	dom    domainTable       // S-channel learning domains (domain.go)
}

// New creates a switch; Start opens the uplink.
func New(cfg Config) (*Switch, error) {
	if err := cfg.FDB.Check(); err != nil {
		return nil, fmt.Errorf("datapath: %w", err)
	}
	cfg.setDefaults()
	if cfg.Backend == nil {
		return nil, errors.New("datapath: no backend")
	}
	s := &Switch{cfg: cfg, log: cfg.Logger, fdb: newFDBWith(cfg.FDB), ports: map[string]*port{}, stop: make(chan struct{})}
	s.doms.tab = newDomainTable()
	s.snap.Store(&snapshot{mode: cfg.Mode, dom: s.doms.tab})
	return s, nil
}

// frameSize is the largest frame queues must carry: 0 (the backend's
// default, enough for MTU 1500 and two tags) unless the MTU is larger.
func (s *Switch) frameSize() int {
	if s.cfg.MTU <= 1500 {
		return 0
	}
	return s.cfg.MTU + vlan.HeaderLen + 2*vlan.TagLen
}

// Mode returns the current forwarding mode.
func (s *Switch) Mode() Mode { return s.snap.Load().mode }

// SetMode switches between VEPA and VEB at run time.
func (s *Switch) SetMode(m Mode) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cfg.Mode = m
	s.publishLocked(nil, nil)
}

// Backend returns the backend's name.
func (s *Switch) Backend() string { return s.cfg.Backend.Name() }

// PriorityErr says why the datapath threads do not run with
// Config.Priority (they then run at normal priority), or nil when they do
// (or none was asked for). Once setting it failed, the switch stops
// trying: the error stays.
func (s *Switch) PriorityErr() error {
	if p := s.prioErr.Load(); p != nil {
		return *p
	}
	return nil
}

// PortBackend returns the name of the backend VM ports use (differs from
// Backend with a backend.Split).
func (s *Switch) PortBackend() string { return backend.PortName(s.cfg.Backend) }

// Start opens the uplink queues and starts the uplink workers.
func (s *Switch) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("datapath: already started")
	}
	s.applyPriority()
	if s.cfg.CPUPoll && s.pollers == nil {
		rt := s.cfg.Priority.RealTime
		if s.PriorityErr() != nil {
			rt = 0 // the threads run at normal priority
		}
		ps, err := cpupoll.New(MaxPorts+s.cfg.UplinkQueues, rt)
		if err != nil {
			return fmt.Errorf("datapath: %w", err)
		}
		s.pollers = ps
		s.workersChangedLocked(ps.Pollers()) // each holds a P while it sleeps
	}
	if err := s.openUplinkLocked(); err != nil {
		if s.pollers != nil {
			s.pollers.Close()
			s.workersChangedLocked(-s.pollers.Pollers())
			s.pollers = nil
		}
		return err
	}
	s.wg.Add(1)
	go s.ager()
	s.started = true
	return nil
}

// openUplinkLocked opens the uplink RX queues and the control TX queue and
// starts one ingress worker per RX queue. s.mu is held.
func (s *Switch) openUplinkLocked() error {
	group := uint16(os.Getpid()&0x7fff) | 0x100
	var workers []*ingressWorker
	for i := 0; i < s.cfg.UplinkQueues; i++ {
		q, err := s.cfg.Backend.Open(s.cfg.Uplink, backend.QueueConfig{Role: backend.RoleUplinkRX, Batch: s.cfg.Batch, FanoutGroup: group, QueueID: i, Promisc: true, FrameSize: s.frameSize(), Polled: s.pollers != nil})
		if err != nil {
			for _, w := range workers {
				w.q.Close()
			}
			return fmt.Errorf("open uplink %s queue %d: %w", s.cfg.Uplink, i, err)
		}
		workers = append(workers, newIngressWorker(s, q, i))
	}
	ctl, err := s.cfg.Backend.Open(s.cfg.Uplink, backend.QueueConfig{Role: backend.RoleUplinkTX, Batch: 4, QueueID: 0, FrameSize: s.frameSize()})
	if err != nil {
		s.log.Warn("no control-plane TX queue on uplink", "uplink", s.cfg.Uplink, "err", err)
		ctl = nil
	}
	s.ctlMu.Lock()
	s.ctlTX = ctl
	s.ctlMu.Unlock()
	s.workers = workers
	s.workersChangedLocked(len(workers))
	for _, w := range workers {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer close(w.done)
			w.run()
		}()
	}
	return nil
}

// closeUplinkLocked stops the ingress workers and closes the uplink
// queues. s.mu is held.
func (s *Switch) closeUplinkLocked() {
	for _, w := range s.workers {
		close(w.stop)
		w.q.Close()
	}
	for _, w := range s.workers {
		<-w.done
		s.uplink.foldQueueDrops(w.q.Stats())
	}
	s.workersChangedLocked(-len(s.workers))
	s.ctlMu.Lock()
	if s.ctlTX != nil {
		s.ctlTX.Close()
	}
	s.uplinkBackend = backendCounters(s.uplinkBackend, s.uplinkQueuesLocked()...)
	s.workers = nil
	s.ctlTX = nil
	s.ctlMu.Unlock()
}

// uplinkQueuesLocked lists the uplink's own queues: the receive workers'
// and the control-plane TX queue (nil when it could not be opened). The
// ports' transmit queues on the uplink count for their ports. s.mu is held.
func (s *Switch) uplinkQueuesLocked() []backend.Queue {
	qs := make([]backend.Queue, 0, len(s.workers)+1)
	for _, w := range s.workers {
		qs = append(qs, w.q)
	}
	return append(qs, s.ctlTX)
}

// RestartUplink reopens every queue on the uplink: after the uplink
// interface was deleted and created again (a new ifindex), the old sockets
// are bound to an interface that no longer exists. Ports keep their
// configuration and counters; attached ports are reattached.
func (s *Switch) RestartUplink() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.started {
		return errors.New("datapath: not started")
	}
	var attached []*port
	for _, p := range s.ports {
		if p.io.Load() != nil {
			attached = append(attached, p)
			s.detachLocked(p)
		}
	}
	s.closeUplinkLocked()
	if err := s.openUplinkLocked(); err != nil {
		return err
	}
	var errs []error
	for _, p := range attached {
		if err := s.attachLocked(p); err != nil {
			errs = append(errs, err)
		}
	}
	s.log.Info("uplink queues reopened", "uplink", s.cfg.Uplink, "ports", len(attached))
	return errors.Join(errs...)
}

// Stop closes every queue and waits for the workers.
func (s *Switch) Stop() {
	s.mu.Lock()
	if !s.started {
		s.mu.Unlock()
		return
	}
	s.started = false
	close(s.stop)
	s.endCapturesLocked(nil, true, fmt.Errorf("%w: vswitchd is stopping", ErrCaptureEnded))
	for _, p := range s.ports {
		s.detachLocked(p)
	}
	s.closeUplinkLocked()
	s.mu.Unlock()
	s.wg.Wait()
	if s.pollers != nil {
		s.pollers.Close() // every worker, so every target, is gone
		s.mu.Lock()
		s.workersChangedLocked(-s.pollers.Pollers())
		s.pollers = nil
		s.mu.Unlock()
	}
}

// UplinkOpen reports whether the uplink queues are open.
func (s *Switch) UplinkOpen() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.workers) > 0
}

// errNoControlTX is returned (wrapped) by SendControl while the uplink has
// no control TX queue: the switch is not started, its uplink is being
// reopened, or the queue could not be opened.
var errNoControlTX = errors.New("no control-plane TX queue on the uplink")

// SendControl transmits a control-plane frame (LLDP, ECP) on the uplink,
// through its own uplink TX queue (reopened with the uplink by
// RestartUplink). It is safe for concurrent use and does not wait for
// configuration changes.
func (s *Switch) SendControl(frame []byte) error {
	s.ctlMu.Lock()
	defer s.ctlMu.Unlock()
	if s.ctlTX == nil {
		return fmt.Errorf("send control frame on %s: %w", s.cfg.Uplink, errNoControlTX)
	}
	fr := [][]byte{frame}
	n, err := s.ctlTX.Send(fr)
	if err != nil {
		return fmt.Errorf("send control frame on %s: %w", s.cfg.Uplink, err)
	}
	if n == 0 {
		return fmt.Errorf("send control frame on %s: the queue refused it (full, or longer than the MTU)", s.cfg.Uplink)
	}
	if cs := s.upCapture.Load(); cs != nil {
		cs.frames(DirOut, fr)
	}
	return nil
}

func (s *Switch) ager() {
	defer s.wg.Done()
	period := s.cfg.Aging / 4
	if period > 10*time.Second {
		period = 10 * time.Second
	}
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			snap := s.snap.Load()
			s.fdb.Sweep(s.cfg.Aging, func(slot int) bool { return slot >= 0 && slot < len(snap.slots) && snap.slots[slot] != nil })
		}
	}
}

// AddPort adds a port; it is attached later by Attach when its interface
// exists. c must pass c.Validate (the error is then its *port.Error); a
// port of the same name is port.ErrExists.
func (s *Switch) AddPort(c portcfg.Config) error {
	if err := c.Validate(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.ports[c.Name]; ok {
		return portcfg.Exists(c.Name)
	}
	if len(s.free) == 0 && s.nslot >= MaxPorts {
		return fmt.Errorf("port %s: switch is full (%d ports)", c.Name, MaxPorts)
	}
	if err := s.reserveDomainsLocked(&c); err != nil {
		return err
	}
	slot := s.nslot
	if n := len(s.free); n > 0 {
		slot = s.free[n-1]
		s.free = s.free[:n-1]
	} else {
		s.nslot++
	}
	p := &port{name: c.Name, slot: slot}
	v := newPortView(p, c, s.cfg.FDB.PerPort)
	p.view.Store(v)
	s.ports[c.Name] = p
	s.publishLocked(nil, v)
	return nil
}

// UpdatePort replaces a port's configuration; counters and attachment
// stay. c must pass c.Validate; an unknown name is port.ErrNotFound.
func (s *Switch) UpdatePort(c portcfg.Config) error {
	if err := c.Validate(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.ports[c.Name]
	if !ok {
		return portcfg.NotFound(c.Name)
	}
	if err := s.reserveDomainsLocked(&c); err != nil {
		return err
	}
	old, v := p.view.Load(), newPortView(p, c, s.cfg.FDB.PerPort)
	s.doms.release(&old.cfg)
	p.view.Store(v)
	s.publishLocked(old, v)
	s.fdb.Forget(p.slot) // VIDs may have changed
	return nil
}

// DeletePort detaches and removes a port; an unknown name is
// port.ErrNotFound.
func (s *Switch) DeletePort(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.ports[name]
	if !ok {
		return portcfg.NotFound(name)
	}
	s.detachLocked(p)
	s.endCapturesLocked(p, false, fmt.Errorf("%w: port %s was deleted", ErrCaptureEnded, name))
	s.retired.addDrops(&p.ctr)
	delete(s.ports, name)
	old := p.view.Load()
	s.doms.release(&old.cfg)
	s.publishLocked(old, nil)
	s.fdb.Forget(p.slot)
	s.free = append(s.free, p.slot)
	return nil
}

// WatchFirstFrame makes the switch call Config.FirstFrame(name) once,
// when the port next takes a frame from its VM past the source checks (a
// registered MAC, when it has any), or stops watching (on false). A VM
// migrating in is paused until it runs on this host, and the first thing
// it sends then is QEMU's announcement of its MACs (RARP, or the guest's
// gratuitous ARP): this is how the daemon learns that it runs. A port
// waiting for the bridge's VLAN drops the frame (vid_unassigned) but
// reports it all the same when its source is the VM's (the bridge may
// assign the VLAN only once the VM is associated). Unknown name:
// port.ErrNotFound.
func (s *Switch) WatchFirstFrame(name string, on bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.ports[name]
	if !ok {
		return portcfg.NotFound(name)
	}
	p.watch.Store(on)
	return nil
}

// HasPort reports whether a port is configured.
func (s *Switch) HasPort(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.ports[name]
	return ok
}

// Attach opens the port's queues on its interface and starts its pipeline.
// Attaching an attached port is a no-op.
func (s *Switch) Attach(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.ports[name]
	if !ok {
		return fmt.Errorf("attach: %w", portcfg.NotFound(name))
	}
	if !s.started {
		return fmt.Errorf("attach %s: switch not started", name)
	}
	return s.attachLocked(p)
}

func (s *Switch) attachLocked(p *port) error {
	if p.io.Load() != nil {
		return nil
	}
	name := p.name
	tap, err := s.cfg.Backend.Open(name, backend.QueueConfig{Role: backend.RolePort, Batch: s.cfg.Batch, FrameSize: s.frameSize(), Polled: s.pollers != nil})
	if err != nil {
		return fmt.Errorf("attach %s: open port queue: %w", name, err)
	}
	up, err := s.cfg.Backend.Open(s.cfg.Uplink, backend.QueueConfig{Role: backend.RoleUplinkTX, Batch: s.cfg.Batch, QueueID: p.slot % s.cfg.UplinkQueues, FrameSize: s.frameSize()})
	if err != nil {
		tap.Close()
		return fmt.Errorf("attach %s: open uplink TX queue on %s: %w", name, s.cfg.Uplink, err)
	}
	io := &portIO{tap: tap, up: up, stop: make(chan struct{}), done: make(chan struct{})}
	p.io.Store(io)
	s.workersChangedLocked(1)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(io.done)
		newEgressWorker(s, p, io).run()
	}()
	s.log.Info("port attached", "port", name, "backend", backend.PortName(s.cfg.Backend))
	return nil
}

// workersChangedLocked counts delta more workers (fewer when negative) and
// tells Config.Workers. s.mu is held.
func (s *Switch) workersChangedLocked(delta int) {
	s.nworkers += delta
	if s.cfg.Workers != nil {
		s.cfg.Workers(s.nworkers)
	}
}

// Detach stops the port's pipeline and closes its queues (interface gone).
func (s *Switch) Detach(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.ports[name]; ok {
		s.detachLocked(p)
	}
}

func (s *Switch) detachLocked(p *port) {
	io := p.io.Swap(nil)
	if io == nil {
		return
	}
	close(io.stop)
	io.tap.Close() // wakes the egress worker
	<-io.done
	s.workersChangedLocked(-1)
	p.ctr.foldQueueDrops(io.tap.Stats())
	io.up.Close()
	p.backend = backendCounters(p.backend, io.tap, io.up)
	s.log.Info("port detached", "port", p.name)
}

// Attached reports whether the port has live queues.
func (s *Switch) Attached(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.ports[name]
	return ok && p.io.Load() != nil
}

// newPortView makes the view of p with configuration c; ports without a
// learned-MAC limit of their own get maxMACs.
func newPortView(p *port, c portcfg.Config, maxMACs int) *portView {
	if c.MaxMACs != nil {
		maxMACs = *c.MaxMACs
	}
	v := &portView{p: p, slot: p.slot, cfg: c, flood: c.Flood, maxMACs: int32(maxMACs)}
	for _, m := range c.MACs {
		v.macs = append(v.macs, MACKey(0, m))
	}
	slices.Sort(v.macs) // for hasMAC
	v.ctag = vlan.Tag{TPID: vlan.TPIDCTag, TCI: vlan.MakeTCI(c.PCP, false, c.VLAN)}
	if c.SVID != 0 {
		v.stag = vlan.Tag{TPID: vlan.TPIDSTag, TCI: vlan.MakeTCI(c.PCP, false, c.SVID)}
	}
	return v
}

// reserveDomainsLocked numbers c's S-channel pairs; numbers used before by
// other pairs lose their old FDB entries first. s.mu is held.
func (s *Switch) reserveDomainsLocked(c *portcfg.Config) error {
	reused, err := s.doms.reserve(c)
	s.fdb.PurgeDomains(reused)
	return err
}

// publishLocked publishes a new snapshot in which one port's view old
// becomes nw (nil old: the port is new; nil nw: it is gone; both nil: only
// the mode or the learning domains changed). It copies the current
// snapshot and rewrites only the VIDs and registered MACs of that port, so
// a change costs in proportion to the port, not to the switch. s.mu is
// held; the domains of nw are reserved and those of old released.
func (s *Switch) publishLocked(old, nw *portView) {
	cur := s.snap.Load()
	ns := &snapshot{mode: s.cfg.Mode, slots: cur.slots, byVID: cur.byVID, static: cur.static, dom: s.doms.tab}
	s.published.Add(1)
	if old == nil && nw == nil {
		s.snap.Store(ns)
		return
	}
	slot := -1
	var oldMACs, newMACs []uint64
	if old != nil {
		slot, oldMACs = old.slot, old.macs
	}
	if nw != nil {
		slot, newMACs = nw.slot, nw.macs
	}
	ns.slots = make([]*portView, max(s.nslot, len(cur.slots)))
	copy(ns.slots, cur.slots)
	ns.slots[slot] = nw
	for vid := uint16(1); vid <= vlan.MaxVID; vid++ {
		in := nw != nil && nw.cfg.HasVID(vid)
		if in || old != nil && old.cfg.HasVID(vid) {
			ns.byVID[vid] = withPort(cur.byVID[vid], slot, nw, in)
		}
	}
	ns.static = cur.static.with(slot, oldMACs, newMACs)
	s.snap.Store(ns)
}

// withPort returns a copy of the VID's port list without slot's view and,
// when in, with nw in its place by name.
func withPort(list []*portView, slot int, nw *portView, in bool) []*portView {
	out := make([]*portView, 0, len(list)+1)
	for _, v := range list {
		if v.slot != slot {
			out = append(out, v)
		}
	}
	if in {
		i := sort.Search(len(out), func(i int) bool { return out[i].cfg.Name > nw.cfg.Name })
		out = slices.Insert(out, i, nw)
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
