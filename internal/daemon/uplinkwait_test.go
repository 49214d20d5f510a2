package daemon

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vswitch/vswitch/pkg/api"
)

// lockedBuffer is a log destination the daemon's goroutines share.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitRig is a rig whose uplink does not exist yet, with a fake systemd,
// a log to read and a lock that counts.
func waitRig(t *testing.T, wait time.Duration) (*rig, *lockedBuffer, *net.UnixConn, *atomic.Int32) {
	t.Helper()
	r := newRig(t)
	r.links.set("up0", 10, false)
	var log lockedBuffer
	r.opts.Logger = slog.New(slog.NewTextHandler(&log, nil))
	r.opts.UplinkWait = wait
	sd, n := fakeSystemd(t, "")
	r.opts.Notify = n
	var held atomic.Int32
	r.sys.lockUplink = func(string) (func(), error) {
		if !held.CompareAndSwap(0, 1) {
			return nil, errors.New("the uplink's lock is taken twice")
		}
		return func() { held.Add(-1) }, nil
	}
	return r, &log, sd, &held
}

// An uplink that appears after vswitchd started: meanwhile the API says
// what vswitchd waits for (code starting) and systemd hears the same, with
// the start timeout extended; once the uplink is there the daemon starts
// on the socket and the lock the wait held, and only then READY=1.
func TestWaitForUplink(t *testing.T) {
	r, log, sd, held := waitRig(t, 10*time.Second)
	next := func() string { return notification(sd, 5*time.Second) }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run(ctx, r.opts, r.sys) }()

	if got, want := next(), "STATUS=waiting for uplink up0 to appear (up to 10s)\nEXTEND_TIMEOUT_USEC=40000000"; got != want {
		t.Fatalf("notification %q, want %q", got, want)
	}
	c := api.NewClient(r.opts.Socket)
	defer c.Close()
	for _, call := range []func() error{
		func() error { _, err := c.Status(ctx); return err },
		func() error { _, err := c.AddPort(ctx, api.PortSpec{Name: "vnet1", VLAN: intp(100)}); return err },
	} {
		err := call()
		if api.CodeOf(err) != api.CodeStarting || !strings.HasPrefix(err.Error(), "vswitchd is starting: it waits for its uplink up0 to appear (for ") ||
			!strings.HasSuffix(err.Error(), "s so far, at most 10s: vswitchd --uplink-wait); try again once it runs") {
			t.Fatalf("API while waiting: %v (code %s), want code starting naming the uplink", err, api.CodeOf(err))
		}
	}
	if held.Load() != 1 {
		t.Error("the uplink's lock is not held while waiting")
	}
	waiting, err := os.Stat(r.opts.Socket)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	r.links.events <- r.links.set("up0", 10, true)
	ready := next()
	if !strings.HasPrefix(ready, "READY=1\nSTATUS=serving 0 ports on uplink up0") {
		t.Fatalf("after the uplink appeared: %q, want READY=1", ready)
	}
	st, err := c.Status(ctx)
	if err != nil || st.Uplink != "up0" {
		t.Fatalf("status after READY=1: %+v, %v", st, err)
	}
	if serving, err := os.Stat(r.opts.Socket); err != nil || !os.SameFile(waiting, serving) {
		t.Errorf("the socket was made again after the wait (%v): clients saw it missing", err)
	}
	if _, err := c.AddPort(ctx, api.PortSpec{Name: "vnet1", VLAN: intp(100)}); err != nil {
		t.Errorf("add-port after READY=1: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	if held.Load() != 0 {
		t.Error("the uplink's lock is held after the stop")
	}
	if _, err := os.Stat(r.opts.Socket); !os.IsNotExist(err) {
		t.Errorf("socket left behind: %v", err)
	}
	l := log.String()
	for _, want := range []string{`level=INFO msg="waiting for the uplink to appear" uplink=up0 up_to=10s`, `level=INFO msg="the uplink appeared" uplink=up0 after=`} {
		if strings.Count(l, want) != 1 {
			t.Errorf("log has %q %d times, want once:\n%s", want, strings.Count(l, want), l)
		}
	}
}

// An uplink that never appears: the wait ends with one line naming it,
// without READY=1, the lock released and the socket gone. A stop while
// waiting is no error.
func TestWaitForUplinkGivesUp(t *testing.T) {
	r, _, sd, held := waitRig(t, 300*time.Millisecond)
	begin := time.Now()
	err := run(context.Background(), r.opts, r.sys)
	if err == nil || err.Error() != "uplink up0 did not appear within 300ms (vswitchd --uplink-wait): check its name with `ip link`" {
		t.Fatalf("run: %v", err)
	}
	if d := time.Since(begin); d < 300*time.Millisecond || d > 5*time.Second {
		t.Errorf("gave up after %v, want 300ms", d)
	}
	if got := notification(sd, time.Second); !strings.HasPrefix(got, "STATUS=waiting for uplink up0") {
		t.Errorf("notification %q, want the waiting status", got)
	}
	if got := notification(sd, 100*time.Millisecond); got != "" {
		t.Errorf("%q after giving up: nothing more, no READY=1", got)
	}
	if held.Load() != 0 {
		t.Error("the uplink's lock is held after giving up")
	}
	if _, err := os.Stat(r.opts.Socket); !os.IsNotExist(err) {
		t.Errorf("socket left behind: %v", err)
	}

	r, _, _, held = waitRig(t, time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	if err := run(ctx, r.opts, r.sys); err != nil {
		t.Errorf("stopped while waiting: %v, want no error", err)
	}
	if held.Load() != 0 {
		t.Error("the uplink's lock is held after the stop")
	}
}

// Without a wait (--uplink-wait 0), or with the uplink there, nothing
// changes: a missing uplink fails the start at once.
func TestNoWaitForUplink(t *testing.T) {
	r, _, _, _ := waitRig(t, 0)
	begin := time.Now()
	err := run(context.Background(), r.opts, r.sys)
	if err == nil || !strings.HasPrefix(err.Error(), "uplink up0: link up0: not found") || time.Since(begin) > time.Second {
		t.Fatalf("run without a wait: %v after %v", err, time.Since(begin))
	}
}
