package daemon

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"

	"github.com/vswitch/vswitch/pkg/api"
)

// This file is the daemon's running life: the background loops and the
// HTTP servers (the API on the Unix socket, /metrics on --metrics).

// Serve runs the background loops (link following, FDB saving, the EVB
// station, the libvirt follower with --libvirt) and the API until ctx is done or a server fails.
func (d *Daemon) Serve(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events, err := d.sys.links.Watch(ctx)
	if err != nil {
		return fmt.Errorf("watch interfaces: %w", err)
	}
	d.saving.Add(3)
	go func() { defer d.saving.Done(); d.follow(ctx, events) }()
	go func() { defer d.saving.Done(); d.saveFDBLoop(ctx) }()
	go func() { defer d.saving.Done(); d.runEVB(ctx) }()
	if d.libvirt != nil {
		d.saving.Add(1)
		go func() { defer d.saving.Done(); d.libvirt.Run(ctx) }()
	}
	return d.serveHTTP(ctx)
}

// serveHTTP serves the API (and /metrics) on the Unix socket, and /metrics
// on --metrics, until ctx is done or one of them fails.
func (d *Daemon) serveHTTP(ctx context.Context) error {
	srv := api.NewServer(d, d.log)
	srv.Handle("GET /metrics", d.metricsHandler()) // also on the socket
	// The socket listens since the wait for the uplink (uplinkwait.go), or
	// from now on.
	ln := d.apiListener
	var err error
	if ln == nil {
		if ln, err = api.ListenUnixGroup(d.opts.Socket, d.opts.socketGID()); err != nil {
			return err
		}
	}
	defer os.Remove(d.opts.Socket)
	var mln net.Listener
	if d.opts.Metrics != "" {
		if mln, err = net.Listen("tcp", d.opts.Metrics); err != nil {
			ln.Close()
			return fmt.Errorf("metrics listener on %s: %w", d.opts.Metrics, err)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 2)
	servers := 1
	go func() { errc <- srv.Serve(ctx, ln) }()
	if mln != nil {
		servers++
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", d.metricsHandler())
		go func() { errc <- api.Serve(ctx, mln, mux, d.log) }()
	}
	d.log.Info("API listening", "socket", d.opts.Socket, "metrics", d.opts.Metrics)
	stopping := d.notifyReady(ctx)
	var first error
	for range servers {
		if err := <-errc; err != nil && first == nil {
			first = err
		}
		cancel() // one stopped: stop the other
	}
	<-stopping
	return first
}

// notifyReady tells systemd (Type=notify, internal/sdnotify) that vswitchd is
// ready: the stored ports were restored by Start and the API listens, so
// the libvirt hook of a unit ordered after this one finds it. Once ctx is
// done it says STOPPING=1 and closes the returned channel (closed at once
// without systemd), so a daemon that never got ready never says it stops.
// Meanwhile it pings systemd's watchdog, if one is set, while the control
// plane can take a change (d.mu is free within the watchdog's period).
func (d *Daemon) notifyReady(ctx context.Context) <-chan struct{} {
	stopped := make(chan struct{})
	n := d.opts.Notify
	if n == nil {
		close(stopped)
		return stopped
	}
	st := fmt.Sprintf("serving %d ports on uplink %s (datapath %s, ports %s, mode %s); API on %s",
		len(d.sw.Ports()), d.opts.Uplink, d.sw.Backend(), d.sw.PortBackend(), d.opts.Mode, d.opts.Socket)
	if err := n.Ready(st); err != nil {
		d.log.Warn("cannot tell systemd that vswitchd is ready", "err", err)
	}
	go func() {
		defer close(stopped)
		<-ctx.Done()
		if err := n.Stopping(); err != nil {
			d.log.Warn("cannot tell systemd that vswitchd is stopping", "err", err)
		}
	}()
	if every := n.WatchdogInterval(); every > 0 {
		d.log.Info("pinging systemd's watchdog", "every", every)
		go func() {
			err := n.Watchdog(ctx, func() bool {
				d.mu.Lock()
				defer d.mu.Unlock()
				return !d.closed
			})
			if err != nil {
				d.log.Warn("systemd's watchdog: pings stopped", "err", err)
			}
		}()
	}
	return stopped
}
