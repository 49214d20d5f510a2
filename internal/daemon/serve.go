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
	ln, err := api.ListenUnixGroup(d.opts.Socket, d.opts.socketGID())
	if err != nil {
		return err
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
	var first error
	for range servers {
		if err := <-errc; err != nil && first == nil {
			first = err
		}
		cancel() // one stopped: stop the other
	}
	return first
}
