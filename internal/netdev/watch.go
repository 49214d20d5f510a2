package netdev

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Event is the state of one link at one moment.
type Event struct {
	// Name is the interface name. On a rename the watcher first reports the
	// old name with Present=false, then the new one.
	Name string
	// Index is the interface index (unique within the namespace).
	Index int
	// Present is false when the link is gone (deleted, moved to another
	// namespace, or renamed away).
	Present bool
	// Up is the administrative state (IFF_UP).
	Up bool
	// Running is the operational state (IFF_RUNNING: carrier; a tap has
	// it only while some process holds its fd).
	Running bool
	// MTU in bytes.
	MTU int
	// HardwareAddr is the MAC address.
	HardwareAddr net.HardwareAddr
	// Kind is the link type as netlink names it: "veth", "tuntap",
	// "bridge", "device", ...
	Kind string
	// MasterIndex is the index of the bridge/bond this link is enslaved to,
	// or 0.
	MasterIndex int
}

// EventFromLink converts a netlink link to an Event.
func EventFromLink(l netlink.Link, present bool) Event {
	a := l.Attrs()
	return Event{
		Name:         a.Name,
		Index:        a.Index,
		Present:      present,
		Up:           a.RawFlags&unix.IFF_UP != 0,
		Running:      a.RawFlags&unix.IFF_RUNNING != 0,
		MTU:          a.MTU,
		HardwareAddr: append(net.HardwareAddr(nil), a.HardwareAddr...),
		Kind:         l.Type(),
		MasterIndex:  a.MasterIndex,
	}
}

// Option configures Watch.
type Option func(*config)

type config struct {
	ns       netns.NsHandle
	hasNS    bool
	buffer   int
	callback func(Event)
	log      *slog.Logger
	rcvbuf   int
	force    bool
}

// WithNamespace watches the links of namespace h instead of the current
// one. The watcher does not close h; keep it open while watching.
func WithNamespace(h netns.NsHandle) Option {
	return func(c *config) { c.ns, c.hasNS = h, true }
}

// WithBuffer sets the capacity of the Events channel (default 128).
func WithBuffer(n int) Option { return func(c *config) { c.buffer = n } }

// WithCallback delivers events by calling fn on the watcher's goroutine
// instead of through Events (which then returns nil). fn must not block for
// long: while it runs, the kernel queues messages and may overrun.
func WithCallback(fn func(Event)) Option { return func(c *config) { c.callback = fn } }

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.log = l } }

// WithReceiveBufferSize sets the netlink socket's receive buffer in bytes.
// With force (needs CAP_NET_ADMIN) it may exceed net.core.rmem_max. The
// default is 1 MiB forced when running as root, else the kernel default.
func WithReceiveBufferSize(bytes int, force bool) Option {
	return func(c *config) { c.rcvbuf, c.force = bytes, force }
}

// Watcher reports link events from one network namespace. It starts with
// the current state of every link, then follows RTM_NEWLINK/RTM_DELLINK.
// When the netlink socket overruns (ENOBUFS) or fails, or a dump is
// interrupted, it resubscribes, reports links that vanished meanwhile as
// Present=false, and reports the full current set again, so a consumer that
// applies events in order always converges on the true state.
type Watcher struct {
	cfg     config
	events  chan Event
	done    chan struct{}
	cancel  context.CancelFunc
	known   map[int]Event // present links by index; watcher goroutine only
	resyncs atomic.Uint64
}

// subscription is one netlink socket and the library goroutines reading it.
type subscription struct {
	ch   chan netlink.LinkUpdate
	done chan struct{}
	errc chan error
}

// Watch starts watching. It returns once the netlink socket is subscribed,
// so no change after Watch returns can be missed. Cancel ctx (or call
// Close) to stop; Events is closed once everything is released.
func Watch(ctx context.Context, opts ...Option) (*Watcher, error) {
	cfg := config{buffer: 128, log: slog.Default()}
	if os.Geteuid() == 0 {
		cfg.rcvbuf, cfg.force = 1<<20, true
	}
	for _, o := range opts {
		o(&cfg)
	}
	ctx, cancel := context.WithCancel(ctx)
	w := &Watcher{cfg: cfg, done: make(chan struct{}), cancel: cancel, known: map[int]Event{}}
	if cfg.callback == nil {
		w.events = make(chan Event, cfg.buffer)
	}
	s, err := w.subscribe()
	if err != nil {
		cancel()
		return nil, err
	}
	go w.run(ctx, s)
	return w, nil
}

// Events returns the channel of events (nil with WithCallback). It is
// closed after the watcher stops.
func (w *Watcher) Events() <-chan Event { return w.events }

// Done is closed when the watcher has stopped and released its socket and
// goroutines.
func (w *Watcher) Done() <-chan struct{} { return w.done }

// Close stops the watcher and waits until it has released everything.
// Events not yet read are discarded.
func (w *Watcher) Close() {
	w.cancel()
	<-w.done
}

// Resyncs returns how many times the watcher has resubscribed and re-listed
// after an overrun, socket error or interrupted dump.
func (w *Watcher) Resyncs() uint64 { return w.resyncs.Load() }

func (w *Watcher) subscribe() (*subscription, error) {
	s := &subscription{
		// Unbuffered on purpose: when the consumer is slow the library
		// goroutine blocks and the kernel, not memory, absorbs the backlog
		// (and reports ENOBUFS when it cannot, which we handle).
		ch:   make(chan netlink.LinkUpdate),
		done: make(chan struct{}),
		errc: make(chan error, 1),
	}
	opts := netlink.LinkSubscribeOptions{
		ListExisting: true,
		ErrorCallback: func(err error) {
			select {
			case s.errc <- err:
			default:
			}
		},
		ReceiveBufferSize:      w.cfg.rcvbuf,
		ReceiveBufferForceSize: w.cfg.force,
	}
	if w.cfg.hasNS {
		h := w.cfg.ns
		opts.Namespace = &h
	}
	if err := netlink.LinkSubscribeWithOptions(s.ch, s.done, opts); err != nil {
		close(s.done)
		return nil, fmt.Errorf("subscribe to link events: %w", err)
	}
	return s, nil
}

// release closes the socket and waits for the library goroutine to exit.
func (s *subscription) release() {
	close(s.done)
	for range s.ch {
		// Drain: the reader may be blocked sending an update.
	}
}

func (w *Watcher) run(ctx context.Context, s *subscription) {
	defer close(w.done)
	if w.events != nil {
		defer close(w.events)
	}
	var lastErr error
	for {
		select {
		case <-ctx.Done():
			s.release()
			return
		case err := <-s.errc:
			lastErr = err
			if errors.Is(err, netlink.ErrDumpInterrupted) {
				w.cfg.log.Debug("netdev: link dump interrupted, resyncing")
				lastErr = nil
				if s = w.resync(ctx, s); s == nil {
					return
				}
				continue
			}
			// Receive errors (ENOBUFS, ...) also close s.ch: handled there.
			w.cfg.log.Debug("netdev: netlink error", "err", err)
		case u, ok := <-s.ch:
			if !ok {
				if err := errFrom(s); err != nil {
					lastErr = err
				}
				w.cfg.log.Info("netdev: link subscription ended, resubscribing", "err", lastErr)
				lastErr = nil
				if s = w.resync(ctx, s); s == nil {
					return
				}
				continue
			}
			if !w.handle(ctx, u) {
				s.release()
				return
			}
		}
	}
}

func errFrom(s *subscription) error {
	select {
	case err := <-s.errc:
		return err
	default:
		return nil
	}
}

// resync drops subscription old, subscribes again (retrying with backoff),
// and reports links that vanished while we were not listening. The new
// subscription's dump then reports every present link. It returns nil when
// ctx is done.
func (w *Watcher) resync(ctx context.Context, old *subscription) *subscription {
	old.release()
	w.resyncs.Add(1)
	backoff := 10 * time.Millisecond
	for {
		s, err := w.subscribe()
		if err == nil {
			if !w.reportVanished(ctx) {
				s.release()
				return nil
			}
			return s
		}
		w.cfg.log.Warn("netdev: resubscribe failed", "err", err, "retry_in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(backoff*2, time.Second)
	}
}

// reportVanished lists the links now present and reports every known link
// that is not among them as Present=false. Runs after resubscribing, so
// anything deleted later arrives as RTM_DELLINK. False if ctx ended.
func (w *Watcher) reportVanished(ctx context.Context) bool {
	var h *netlink.Handle
	if w.cfg.hasNS {
		var err error
		if h, err = netlink.NewHandleAt(w.cfg.ns, unix.NETLINK_ROUTE); err != nil {
			w.cfg.log.Warn("netdev: netlink handle for resync", "err", err)
			return true
		}
		defer h.Close()
	}
	links, err := linkListAt(h)
	if err != nil {
		// The fresh dump still re-reports everything present; only
		// vanished links go unreported until the next resync.
		w.cfg.log.Warn("netdev: list links for resync", "err", err)
		return true
	}
	now := make(map[int]bool, len(links))
	for _, l := range links {
		now[l.Attrs().Index] = true
	}
	for idx, ev := range w.known {
		if now[idx] {
			continue
		}
		delete(w.known, idx)
		ev.Present = false
		if !w.deliver(ctx, ev) {
			return false
		}
	}
	return true
}

// handle turns one netlink update into events. False if ctx ended.
func (w *Watcher) handle(ctx context.Context, u netlink.LinkUpdate) bool {
	// The bridge sends AF_BRIDGE RTM_NEWLINK/RTM_DELLINK about port state
	// to the same group; an AF_BRIDGE DELLINK means "left the bridge", not
	// "link deleted".
	if u.IfInfomsg.Family == unix.AF_BRIDGE || u.Link == nil {
		return true
	}
	ev := EventFromLink(u.Link, u.Header.Type == unix.RTM_NEWLINK)
	switch u.Header.Type {
	case unix.RTM_NEWLINK:
		if old, ok := w.known[ev.Index]; ok && old.Name != ev.Name {
			old.Present = false
			if !w.deliver(ctx, old) {
				return false
			}
		}
		w.known[ev.Index] = ev
	case unix.RTM_DELLINK:
		delete(w.known, ev.Index)
	default:
		return true
	}
	return w.deliver(ctx, ev)
}

func (w *Watcher) deliver(ctx context.Context, ev Event) bool {
	if w.cfg.callback != nil {
		if ctx.Err() != nil {
			return false
		}
		w.cfg.callback(ev)
		return true
	}
	select {
	case w.events <- ev:
		return true
	case <-ctx.Done():
		return false
	}
}
