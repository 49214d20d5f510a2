package daemon

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vswitch/vswitch/internal/sdnotify"
	"github.com/vswitch/vswitch/internal/version"
	"github.com/vswitch/vswitch/pkg/api"
)

// fakeSystemd listens where $NOTIFY_SOCKET points and returns the
// Notifier vswitchd would build from the environment.
func fakeSystemd(t *testing.T, watchdogUsec string) (*net.UnixConn, *sdnotify.Notifier) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	t.Setenv("WATCHDOG_USEC", watchdogUsec)
	t.Setenv("WATCHDOG_PID", "")
	n, err := sdnotify.FromEnv()
	if err != nil || n == nil {
		t.Fatalf("notifier: %v, %v", n, err)
	}
	return c, n
}

// notification waits up to timeout for the next one ("" on timeout).
func notification(c *net.UnixConn, timeout time.Duration) string {
	buf := make([]byte, 4096)
	c.SetReadDeadline(time.Now().Add(timeout))
	n, err := c.Read(buf)
	if err != nil {
		return ""
	}
	return string(buf[:n])
}

// READY=1 comes once the stored ports are restored and the API listens:
// the first request after it is answered, with every port. Then the
// watchdog is pinged while the control plane is free, and not while it
// is held.
func TestReadyAfterRestoreAndListen(t *testing.T) {
	r := newRig(t)
	d := r.start(t)
	for _, name := range []string{"vnet1", "vnet2"} {
		if _, err := d.AddPort(context.Background(), api.PortSpec{Name: name, VLAN: intp(100)}); err != nil {
			t.Fatal(err)
		}
	}
	d.Close()

	sd, n := fakeSystemd(t, "100000") // pings every 50 ms
	r.opts.Notify = n
	r.opts.Build = version.Info{Version: "v9.9.9", Commit: "feedfacefeedface", BuildDate: "2026-11-27T09:00:00Z", GoVersion: "go1.26.0"}
	d, err := start(r.opts, r.sys)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if got := notification(sd, 100*time.Millisecond); got != "" {
		t.Fatalf("%q before Serve: nothing may be sent before the API listens", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx) }()
	ready := notification(sd, 5*time.Second)
	if !strings.HasPrefix(ready, "READY=1\nSTATUS=serving 2 ports on uplink up0 (datapath afpacket") {
		t.Fatalf("first notification %q, want READY=1 with the status", ready)
	}
	c := api.NewClient(r.opts.Socket)
	defer c.Close()
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatalf("READY=1 sent, but the API does not answer: %v", err)
	}
	if st.Ports != 2 {
		t.Errorf("READY=1 sent with %d ports restored, want 2", st.Ports)
	}
	if st.Version != "v9.9.9" || st.Commit != "feedfacefeedface" || st.BuildDate != "2026-11-27T09:00:00Z" || st.GoVersion != "go1.26.0" {
		t.Errorf("status build %q %q %q %q", st.Version, st.Commit, st.BuildDate, st.GoVersion)
	}
	for range 2 {
		if got := notification(sd, 2*time.Second); got != "WATCHDOG=1" {
			t.Fatalf("got %q, want WATCHDOG=1 every 50 ms", got)
		}
	}
	// A control plane that cannot take a change misses its pings.
	d.mu.Lock()
	notification(sd, 60*time.Millisecond) // one may have been under way
	got := notification(sd, 300*time.Millisecond)
	d.mu.Unlock()
	if got != "" {
		t.Errorf("%q while the daemon's lock was held for 300 ms", got)
	}
	if got := notification(sd, 2*time.Second); got != "WATCHDOG=1" {
		t.Errorf("got %q after the lock was released, want the pings back", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Serve returned: STOPPING=1 was sent (after any last ping).
	for {
		got := notification(sd, 100*time.Millisecond) // already queued, if sent
		if strings.HasPrefix(got, "STOPPING=1\n") {
			break
		}
		if got != "WATCHDOG=1" {
			t.Fatalf("after the stop: %q, want STOPPING=1 sent before Serve returned", got)
		}
	}
}

// Without a build given, the status shows this binary's.
func TestStatusShowsThisBuild(t *testing.T) {
	r := newRig(t)
	st, err := r.start(t).Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want := version.Get(); st.Version != want.Version || st.Commit != want.Commit || st.GoVersion != want.GoVersion {
		t.Errorf("status %q %q %q, want %+v", st.Version, st.Commit, st.GoVersion, want)
	}
}
