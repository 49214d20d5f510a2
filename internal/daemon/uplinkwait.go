package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/vswitch/vswitch/pkg/api"
)

// This file is the start's wait for an uplink that does not exist yet
// (vswitchd --uplink-wait).
//
// At boot vswitchd may start before its uplink exists: a bond or a VLAN
// that ifupdown or systemd-networkd creates, a NIC that udev is still
// renaming. Failing at once would fail systemd's start job, and libvirtd,
// ordered after vswitchd but not requiring it, would start anyway: every
// autostarted VM's hook would then fail. So Run first waits, up to
// Options.UplinkWait, for the uplink to appear, following the link events
// the daemon follows links with (LinkSource.Watch: netlink, no polling).
// Meanwhile:
//
//   - it holds the uplink's lock, as Start would, so that a second
//     vswitchd for the same uplink is refused at once;
//   - its API socket listens and answers every request with code
//     "starting" (HTTP 503) and a message naming the uplink and how long
//     vswitchd has waited and will wait: `vswctl status`, and the libvirt
//     hook of a VM started meanwhile, say what vswitchd waits for rather
//     than "cannot reach vswitchd". No request is held: the hook fails
//     the VM's start with that message, as it would with vswitchd down
//     (at boot libvirtd starts after vswitchd's start job ends, so its
//     hooks never meet the wait);
//   - systemd hears STATUS=waiting for uplink X to appear, with
//     EXTEND_TIMEOUT_USEC covering the wait and the start after it, and
//     no READY=1: that still means "ports restored and API serving";
//   - the log says at info when the wait begins and when the uplink
//     appears.
//
// Once the uplink is there, the lock and the listening socket are handed
// to Start and Serve: the socket is never closed in between (a client that
// connects then waits in its backlog). When the time is up Run fails with
// one line naming the uplink (vswitchd exits 1, which systemd's
// Restart=on-failure restarts).

// startAfterWait is how long systemd is asked to wait, beyond the uplink
// wait, for READY=1: opening the state file, probing AF_XDP, restoring
// the ports.
const startAfterWait = 30 * time.Second

// uplinkHeld is what the wait hands to the start: the uplink's lock and
// the API socket, listening.
type uplinkHeld struct {
	ln     *net.UnixListener
	unlock func()
}

// waitForUplink waits up to o.UplinkWait for the uplink to exist (see
// above). It returns nil at once when the uplink exists, or when there is
// no wait (o.UplinkWait 0): Start then goes on as without the wait. It
// returns ctx's error when ctx ends first, and an error naming the uplink
// when the time is up.
func waitForUplink(ctx context.Context, o Options, sys system) (*uplinkHeld, error) {
	if o.UplinkWait <= 0 || o.Uplink == "" {
		return nil, nil
	}
	if _, err := sys.links.Link(o.Uplink); err == nil {
		return nil, nil
	}
	unlock, err := sys.lockUplink(o.Uplink)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			unlock()
		}
	}()
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	// Subscribed before anything else: the first events are every link
	// that exists now, so an uplink appearing at any point is seen.
	events, err := sys.links.Watch(wctx)
	if err != nil {
		return nil, fmt.Errorf("watch interfaces for uplink %s: %w", o.Uplink, err)
	}
	l, err := api.ListenUnixGroup(o.Socket, o.socketGID())
	if err != nil {
		return nil, err
	}
	ul, isUnix := l.(*net.UnixListener)
	if !isUnix {
		l.Close()
		return nil, fmt.Errorf("API socket %s: not a Unix socket listener (%T)", o.Socket, l)
	}
	defer func() {
		if !ok {
			ul.Close() // and removes the socket
		}
	}()

	since := time.Now()
	msg := func() string {
		return fmt.Sprintf("vswitchd is starting: it waits for its uplink %s to appear (for %v so far, at most %v: vswitchd --uplink-wait); try again once it runs",
			o.Uplink, time.Since(since).Round(time.Second), o.UplinkWait)
	}
	sctx, stopServing := context.WithCancel(ctx)
	defer stopServing()
	served := make(chan error, 1)
	go func() {
		served <- api.Serve(sctx, handoffListener{ul}, api.NotServing(api.CodeStarting, msg), o.Logger)
	}()
	o.Logger.Info("waiting for the uplink to appear", "uplink", o.Uplink, "up_to", o.UplinkWait, "socket", o.Socket)
	if err := o.Notify.Starting(fmt.Sprintf("waiting for uplink %s to appear (up to %v)", o.Uplink, o.UplinkWait), o.UplinkWait+startAfterWait); err != nil {
		o.Logger.Warn("cannot tell systemd that vswitchd waits for its uplink", "err", err)
	}

	timer := time.NewTimer(o.UplinkWait)
	defer timer.Stop()
	werr := func() error {
		for {
			select {
			case ev, open := <-events:
				if !open {
					return fmt.Errorf("waiting for uplink %s: the link events ended", o.Uplink)
				}
				if ev.Name == o.Uplink && ev.Present {
					o.Logger.Info("the uplink appeared", "uplink", o.Uplink, "after", time.Since(since).Round(time.Millisecond))
					return nil
				}
			case <-timer.C:
				return fmt.Errorf("uplink %s did not appear within %v (vswitchd --uplink-wait): check its name with `ip link`", o.Uplink, o.UplinkWait)
			case <-ctx.Done():
				o.Logger.Info("stopped while waiting for the uplink", "uplink", o.Uplink)
				return ctx.Err()
			case err := <-served:
				served <- err // for the wait below
				if err == nil {
					err = errors.New("stopped")
				}
				return fmt.Errorf("API socket while waiting for uplink %s: %w", o.Uplink, err)
			}
		}
	}()
	stopServing()
	<-served
	if werr != nil {
		return nil, werr
	}
	// The server only woke its Accept (handoffListener): clear that for
	// the daemon's server.
	if err := ul.SetDeadline(time.Time{}); err != nil {
		return nil, fmt.Errorf("API socket %s: %w", o.Socket, err)
	}
	ok = true
	return &uplinkHeld{ln: ul, unlock: unlock}, nil
}

// handoffListener is the API socket while the wait's server uses it. That
// server's shutdown closes its listener, which would close the socket and
// remove its file; this Close only sets a deadline in the past, which
// wakes the Accept under way (the server is shutting down, so it returns)
// and leaves the socket to the daemon's server. Connections that come
// meanwhile wait in the socket's backlog.
type handoffListener struct{ *net.UnixListener }

func (l handoffListener) Close() error { return l.SetDeadline(time.Now()) }
