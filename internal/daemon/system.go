package daemon

import (
	"context"
	"log/slog"

	"github.com/vswitch/vswitch/internal/ethtool"
	"github.com/vswitch/vswitch/internal/netdev"
	"github.com/vswitch/vswitch/internal/rxwait"
	"github.com/vswitch/vswitch/pkg/afpacket"
	"github.com/vswitch/vswitch/pkg/afxdp"
	"github.com/vswitch/vswitch/pkg/backend"
)

// LinkSource is where the daemon learns which interfaces exist: the uplink
// and the VM taps come and go, and the daemon attaches and detaches ports
// as they do (links.go). Production uses netlink (netdev); unit tests feed
// events by hand.
type LinkSource interface {
	// Link returns the current state of the named interface, or an error
	// when there is none.
	Link(name string) (netdev.Event, error)
	// Watch reports every change (and first the state of every present
	// link) until ctx ends; the channel is closed then.
	Watch(ctx context.Context) (<-chan netdev.Event, error)
}

// system is everything the daemon asks of the host besides the state file
// and the API socket: the seams that let unit tests run the daemon without
// root, a kernel or real interfaces.
type system struct {
	links LinkSource
	// probeXDP reports whether AF_XDP works on an interface.
	probeXDP func(ifname string) error
	// backend returns the backend named afpacket or afxdp, its receiving
	// queues in busy (nil: no busy poll).
	backend func(name string, busy *rxwait.Group) backend.Backend
	// rxQueues counts an interface's receive queues (one XSK each, and
	// more sharing it: afxdp.Backend.OpenQueue).
	rxQueues func(ifname string) int
	// noCoalescing switches receive coalescing (GRO, LRO) off on an
	// interface; the restorer switches back what it changed.
	noCoalescing func(ifname string) (restorer, error)
	// lockUplink makes this the only vswitchd serving the interface
	// (uplinklock_linux.go); release gives it up.
	lockUplink func(ifname string) (release func(), err error)
}

// restorer undoes an interface setting.
type restorer interface {
	Restore() error
	Names() []string
}

// hostSystem is the real host: netlink, AF_XDP probes, sysfs, ethtool.
func hostSystem(log *slog.Logger) system {
	return system{
		links:    netlinkSource{log: log},
		probeXDP: afxdp.Probe,
		backend: func(name string, busy *rxwait.Group) backend.Backend {
			if name == backendAFXDP {
				return afxdp.New(afxdp.Options{Logger: log, BusyPoll: busy})
			}
			b := afpacket.New()
			b.BusyPoll = busy
			return b
		},
		rxQueues:   afxdp.RXQueues,
		lockUplink: lockUplink,
		noCoalescing: func(ifname string) (restorer, error) {
			r, err := ethtool.Disable(ifname, uplinkCoalescing...)
			if r == nil {
				return nil, err // a nil *Restore must not become a non-nil restorer
			}
			return r, err
		},
	}
}

// netlinkSource is the LinkSource of the host's network namespace.
type netlinkSource struct{ log *slog.Logger }

func (netlinkSource) Link(name string) (netdev.Event, error) {
	l, err := netdev.LinkByName(name)
	if err != nil {
		return netdev.Event{}, err
	}
	return netdev.EventFromLink(l, true), nil
}

func (s netlinkSource) Watch(ctx context.Context) (<-chan netdev.Event, error) {
	w, err := netdev.Watch(ctx, netdev.WithLogger(s.log))
	if err != nil {
		return nil, err
	}
	return w.Events(), nil
}
