package events

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/vswitch/vswitch/internal/libvirt"
	"github.com/vswitch/vswitch/pkg/api"
	"github.com/vswitch/vswitch/pkg/port"
)

// Connection states of api.LibvirtStatus.State.
const (
	StateConnecting   = "connecting"   // not connected yet
	StateConnected    = "connected"    // events followed
	StateDisconnected = "disconnected" // lost or refused; retried with back-off
)

// Retry delays of a connection that failed or was lost: the first retry
// after RetryMin, then twice as long each time up to RetryMax, back to
// RetryMin once a connection succeeds.
const (
	RetryMin = time.Second
	RetryMax = 30 * time.Second
)

// Config configures a Follower.
type Config struct {
	// URI names libvirtd in the status and the log.
	URI string
	// Dial connects to libvirtd (Dialer(URI) in vswitchd).
	Dial func(ctx context.Context) (Conn, error)
	// Ports are vswitchd's ports (the daemon's api.Service).
	Ports  Ports
	Logger *slog.Logger
	// RetryMin and RetryMax override the back-off (tests); 0: the
	// package's.
	RetryMin, RetryMax time.Duration
}

// Follower keeps vswitchd's ports in step with libvirtd's running
// domains: it reconciles on every (re)connection and follows the domain
// events in between. See the package documentation for the rules.
type Follower struct {
	cfg Config
	log *slog.Logger

	mu sync.Mutex
	st api.LibvirtStatus
}

// New returns a follower; Run starts it.
func New(cfg Config) *Follower {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = RetryMin
	}
	if cfg.RetryMax < cfg.RetryMin {
		cfg.RetryMax = max(RetryMax, cfg.RetryMin)
	}
	f := &Follower{cfg: cfg, log: cfg.Logger.With("libvirt", cfg.URI)}
	f.st = api.LibvirtStatus{URI: cfg.URI, State: StateConnecting, Since: now()}
	return f
}

func now() string { return time.Now().UTC().Format(time.RFC3339) }

// Status is the connection's state for `vswctl status`.
func (f *Follower) Status() api.LibvirtStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st
}

func (f *Follower) setState(state string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.st.State != state {
		f.st.State, f.st.Since = state, now()
	}
	f.st.Error = ""
	if err != nil {
		f.st.Error = err.Error()
	}
}

// noteError records the last error of a sync (shown while connected).
func (f *Follower) noteError(err error) {
	f.mu.Lock()
	f.st.Error = err.Error()
	f.mu.Unlock()
}

// Run connects, reconciles and follows events until ctx ends, connecting
// again with back-off whenever the connection fails or is lost (libvirtd
// restarted). Nothing that goes wrong ends it: errors are logged and shown
// in Status.
func (f *Follower) Run(ctx context.Context) {
	delay := f.cfg.RetryMin
	warned := ""
	for ctx.Err() == nil {
		conn, err := f.cfg.Dial(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			f.setState(StateDisconnected, err)
			// Said once at warn level while it keeps failing the same way.
			if msg := err.Error(); msg != warned {
				f.log.Warn("libvirtd unreachable; retrying", "err", err, "retry", delay)
				warned = msg
			} else {
				f.log.Debug("libvirtd unreachable; retrying", "err", err, "retry", delay)
			}
			if !sleep(ctx, delay) {
				return
			}
			delay = min(2*delay, f.cfg.RetryMax)
			continue
		}
		delay, warned = f.cfg.RetryMin, ""
		f.setState(StateConnected, nil)
		f.log.Info("connected to libvirtd: following domain events")
		f.serve(ctx, conn)
		if err := conn.Close(); err != nil {
			f.log.Debug("close libvirtd connection", "err", err)
		}
		if ctx.Err() != nil {
			return
		}
		f.setState(StateDisconnected, errors.New("connection to libvirtd lost"))
		f.log.Warn("connection to libvirtd lost; reconnecting", "retry", delay)
		if !sleep(ctx, delay) {
			return
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// serve reconciles and then handles events until the connection ends.
// Events that came during the reconcile wait in the channel: a domain
// changed meanwhile is synced again.
func (f *Follower) serve(ctx context.Context, conn Conn) {
	if err := f.Reconcile(ctx, conn); err != nil {
		f.log.Warn("reconcile with libvirtd", "err", err)
		f.noteError(err)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-conn.Events():
			if !ok {
				return
			}
			f.Handle(ctx, conn, ev)
		}
	}
}

// Handle applies one event: the domain it names is synced from its current
// state (SyncDomain), except for live migration, which follows 802.1Qbg's
// rules as the hook does (see the package documentation):
//   - started by migration (the destination, at the end of libvirt's
//     Prepare, before the memory is copied): the ports it adds are added
//     incoming, so that vswitchd pre-associates their VSIs;
//   - resumed by migration (the destination, the VM now runs here): its
//     incoming ports are promoted, their VSIs associated with the M bit;
//   - stopped by migration (the source): its ports are made outgoing (the
//     VSIs de-associated with the S bit), then removed.
//
// Metadata of other namespaces than vswitch's is of no concern.
func (f *Follower) Handle(ctx context.Context, conn Conn, ev Event) {
	f.mu.Lock()
	f.st.Events++
	f.mu.Unlock()
	log := f.log.With("domain", ev.Name, "uuid", ev.UUID, "event", ev.Kind.String(), "migrated", ev.Migrated)
	var err error
	switch {
	case ev.Kind == MetadataChanged && ev.Namespace != libvirt.Namespace:
		log.Debug("libvirt event ignored: metadata of another namespace", "namespace", ev.Namespace)
		return
	case ev.Kind == Resumed && !ev.Migrated:
		log.Debug("libvirt event ignored: resumed, not by a migration")
		return
	case ev.Kind == Resumed:
		log.Debug("libvirt event")
		err = f.promote(ctx, ev.UUID)
	case ev.Kind == Stopped && ev.Migrated:
		log.Debug("libvirt event")
		err = f.migratedAway(ctx, conn, ev.UUID)
	default:
		log.Debug("libvirt event", "device", ev.Device)
		err = f.syncDomain(ctx, conn, ev.UUID, ev.Kind == Started && ev.Migrated)
	}
	if err != nil {
		log.Warn("sync domain with libvirt event", "err", err)
		f.noteError(err)
	}
}

// promote ends the pre-association of the incoming ports that domain uuid
// owns: libvirt resumed it here after its migration, so it runs here and
// its VSIs are associated (with the M bit). vswitchd would otherwise wait
// for the VM's first frame, or --preassociate-timeout. Ports not incoming
// (the source's, resumed after a failed migration; or promoted already)
// are left as they are.
func (f *Follower) promote(ctx context.Context, uuid string) error {
	ports, err := f.cfg.Ports.ListPorts(ctx)
	if err != nil {
		return fmt.Errorf("list ports: %w", err)
	}
	none := port.MigrationNone
	var errs []error
	for _, p := range ports {
		if p.Owner != uuid || p.Migration != port.MigrationIncoming {
			continue
		}
		if _, err := f.cfg.Ports.UpdatePort(ctx, p.Name, api.PortSpec{Migration: &none}); err != nil {
			if api.CodeOf(err) != api.CodeNotFound {
				errs = append(errs, fmt.Errorf("promote incoming port %s: %w", p.Name, err))
			}
			continue
		}
		f.log.Info("VM migrated in resumed here: its incoming port is promoted (VSIs associated, M bit)", "port", p.Name, "owner", uuid)
	}
	return errors.Join(errs...)
}

// migratedAway removes the ports of domain uuid, which migrated away,
// after making each outgoing: vswitchd de-associates their VSIs with the S
// bit (the hook's "stopped end" does the same; whichever comes second
// finds nothing left). A domain that runs here again (the event came late)
// is synced instead.
func (f *Follower) migratedAway(ctx context.Context, conn Conn, uuid string) error {
	d, err := conn.Domain(ctx, uuid)
	if err != nil {
		return fmt.Errorf("domain %s: %w", uuid, err)
	}
	if d.Active {
		return f.apply(ctx, conn, d, false)
	}
	ports, err := f.cfg.Ports.ListPorts(ctx)
	if err != nil {
		return fmt.Errorf("list ports: %w", err)
	}
	out := port.MigrationOutgoing
	var errs []error
	for _, p := range ports {
		if p.Owner != uuid {
			continue
		}
		if _, err := f.cfg.Ports.UpdatePort(ctx, p.Name, api.PortSpec{Migration: &out}); err != nil && api.CodeOf(err) != api.CodeNotFound {
			errs = append(errs, fmt.Errorf("port %s: %w (de-associated without the S bit)", p.Name, err))
		}
		if err := f.delete(ctx, p, "its domain migrated away (VSIs de-associated, S bit)"); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Reconcile makes the ports match every running domain's description
// (SyncDomain's rules) and removes the ports owned by domains that no
// longer run. Ports whose owner is not a UUID are never touched.
func (f *Follower) Reconcile(ctx context.Context, conn Conn) error {
	doms, err := conn.Running(ctx)
	if err != nil {
		return fmt.Errorf("list running domains: %w", err)
	}
	running := make(map[string]bool, len(doms))
	var errs []error
	for _, d := range doms {
		running[d.UUID] = true
		if err := f.apply(ctx, conn, d, false); err != nil {
			errs = append(errs, err)
		}
	}
	ports, err := f.cfg.Ports.ListPorts(ctx)
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("list ports: %w", err))...)
	}
	checked := map[string]bool{}
	for _, p := range ports {
		if !IsUUID(p.Owner) || running[p.Owner] {
			continue
		}
		if _, ok := checked[p.Owner]; !ok {
			// Asked again: the domain may have started since the list.
			d, err := conn.Domain(ctx, p.Owner)
			if err != nil {
				errs = append(errs, fmt.Errorf("domain %s: %w", p.Owner, err))
				checked[p.Owner] = true // kept: unknown
				continue
			}
			checked[p.Owner] = d.Active
		}
		if checked[p.Owner] {
			continue
		}
		if err := f.delete(ctx, p, "its domain is not running"); err != nil {
			errs = append(errs, err)
		}
	}
	f.mu.Lock()
	f.st.Reconciled = now()
	f.st.Domains = len(doms)
	f.st.Reconciles++
	f.mu.Unlock()
	f.log.Info("reconciled with libvirtd", "running_domains", len(doms), "ports", len(ports))
	return errors.Join(errs...)
}

// SyncDomain makes the ports of one domain what its current state asks:
//   - not running (or gone): its ports (owner = its UUID) are removed;
//   - running: each <vsw:port> whose NIC is there (libvirt.Desired) gets
//     its port, added or updated to the description; its ports that no
//     longer match a described NIC (detached, or taken out of the
//     metadata) are removed; a port that the description cannot set up
//     (a bad VLAN, say) is left as it is, with a warning.
//
// A port of the NIC's name without an owner (added with vswctl) is never
// changed; one owned by another domain is replaced only when that domain
// does not run (a leftover of a recycled tap name).
func (f *Follower) SyncDomain(ctx context.Context, conn Conn, uuid string) error {
	return f.syncDomain(ctx, conn, uuid, false)
}

// syncDomain is SyncDomain; incoming: the ports it adds are added incoming
// (the domain is migrating here).
func (f *Follower) syncDomain(ctx context.Context, conn Conn, uuid string, incoming bool) error {
	d, err := conn.Domain(ctx, uuid)
	if err != nil {
		return fmt.Errorf("domain %s: %w", uuid, err)
	}
	if d.Active {
		return f.apply(ctx, conn, d, incoming)
	}
	ports, err := f.cfg.Ports.ListPorts(ctx)
	if err != nil {
		return fmt.Errorf("list ports: %w", err)
	}
	var errs []error
	for _, p := range ports {
		if p.Owner == uuid {
			if err := f.delete(ctx, p, "its domain is not running"); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// apply syncs the ports of running domain d with its live XML; incoming:
// the ports it adds are added incoming (bind).
func (f *Follower) apply(ctx context.Context, conn Conn, d Domain, incoming bool) error {
	dom, err := libvirt.ParseDomain(bytes.NewReader(d.XML))
	if err != nil {
		return fmt.Errorf("domain %s: %w (its ports are left as they are)", d.Name, err)
	}
	owner := dom.Owner()
	if owner == "" {
		owner = d.UUID
	}
	log := f.log.With("domain", dom.Name)
	bs, perrs := dom.Desired()
	keep := map[string]bool{}
	var errs []error
	for _, err := range perrs {
		var pe *libvirt.PortError
		if errors.As(err, &pe) && pe.Tap != "" {
			keep[pe.Tap] = true
		}
		if errors.Is(err, libvirt.ErrNoNIC) {
			log.Debug("described port has no NIC (yet)", "err", err)
			continue
		}
		errs = append(errs, err)
	}
	ports, err := f.cfg.Ports.ListPorts(ctx)
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("list ports: %w", err))...)
	}
	byName := make(map[string]api.Port, len(ports))
	for _, p := range ports {
		byName[p.Name] = p
	}
	for _, b := range bs {
		keep[b.Tap] = true
		if err := f.bind(ctx, conn, dom.Name, b, byName, incoming); err != nil {
			errs = append(errs, err)
		}
	}
	for _, p := range ports {
		if p.Owner == owner && !keep[p.Name] {
			if err := f.delete(ctx, p, "the domain no longer has this NIC, or no longer describes it"); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// bind makes port b.Tap what binding b describes. incoming: a port it adds
// is added incoming (the domain is migrating here: its VSIs are
// pre-associated until the VM runs here); an existing port's migration
// state is left as it is.
func (f *Follower) bind(ctx context.Context, conn Conn, domain string, b libvirt.Binding, ports map[string]api.Port, incoming bool) error {
	log := f.log.With("domain", domain, "port", b.Tap, "incoming", incoming)
	spec := b.Spec()
	if incoming {
		in := port.MigrationIncoming
		spec.Migration = &in
	}
	p, ok := ports[b.Tap]
	switch {
	case !ok:
		if _, err := f.cfg.Ports.AddPort(ctx, spec); err != nil {
			return fmt.Errorf("domain %s: add port %s: %w", domain, b.Tap, err)
		}
		log.Info("port added from libvirt", "mac", b.Port.MAC.String())
	case p.Owner == b.Owner:
		if b.Describes(p) {
			return nil
		}
		if _, err := f.cfg.Ports.UpdatePort(ctx, b.Tap, b.UpdateSpec()); err != nil {
			return fmt.Errorf("domain %s: update port %s: %w", domain, b.Tap, err)
		}
		log.Info("port updated from libvirt")
	case p.Owner == "" || !IsUUID(p.Owner):
		return fmt.Errorf("domain %s: port %s exists with owner %q (not a libvirt domain): left as it is; `vswctl del-port %s` lets the domain's port be added",
			domain, b.Tap, p.Owner, b.Tap)
	default:
		other, err := conn.Domain(ctx, p.Owner)
		if err != nil {
			return fmt.Errorf("domain %s: port %s belongs to domain %s: %w", domain, b.Tap, p.Owner, err)
		}
		if other.Active {
			return fmt.Errorf("domain %s: port %s belongs to running domain %s (%s): left as it is", domain, b.Tap, other.Name, p.Owner)
		}
		if err := f.delete(ctx, p, "a leftover of a domain that no longer runs, on a tap name used again"); err != nil {
			return err
		}
		if _, err := f.cfg.Ports.AddPort(ctx, spec); err != nil {
			return fmt.Errorf("domain %s: add port %s: %w", domain, b.Tap, err)
		}
		log.Info("port added from libvirt", "mac", b.Port.MAC.String())
	}
	return nil
}

func (f *Follower) delete(ctx context.Context, p api.Port, why string) error {
	if err := f.cfg.Ports.DeletePort(ctx, p.Name); err != nil && api.CodeOf(err) != api.CodeNotFound {
		return fmt.Errorf("delete port %s: %w", p.Name, err)
	}
	f.log.Info("port removed", "port", p.Name, "owner", p.Owner, "why", why)
	return nil
}
