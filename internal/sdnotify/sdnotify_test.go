package sdnotify

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// listen is a fake systemd: a unixgram socket at name (a path or an
// @abstract name) whose datagrams the test reads.
func listen(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func recv(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	buf := make([]byte, 4096)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no notification: %v", err)
	}
	return string(buf[:n])
}

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestSendToPathAndAbstractSocket(t *testing.T) {
	for _, name := range []string{
		filepath.Join(t.TempDir(), "notify"),
		fmt.Sprintf("@vswitch-sdnotify-test-%d", os.Getpid()),
	} {
		t.Run(name, func(t *testing.T) {
			c := listen(t, name)
			n, err := fromEnv(env(map[string]string{"NOTIFY_SOCKET": name}), 1)
			if err != nil || n == nil {
				t.Fatalf("fromEnv: %v, %v", n, err)
			}
			if err := n.Ready("serving 2 ports\non eth0"); err != nil {
				t.Fatal(err)
			}
			if got, want := recv(t, c), "READY=1\nSTATUS=serving 2 ports on eth0"; got != want {
				t.Errorf("got %q, want %q (the status kept to one line)", got, want)
			}
			if err := n.Stopping(); err != nil {
				t.Fatal(err)
			}
			if got := recv(t, c); !strings.HasPrefix(got, "STOPPING=1\n") {
				t.Errorf("got %q, want STOPPING=1", got)
			}
		})
	}
}

func TestNilNotifierDoesNothing(t *testing.T) {
	n, err := fromEnv(env(nil), 1)
	if n != nil || err != nil {
		t.Fatalf("without NOTIFY_SOCKET: %v, %v; want nil, nil", n, err)
	}
	if n.Ready("x") != nil || n.Stopping() != nil || n.Status("x") != nil || n.WatchdogInterval() != 0 {
		t.Error("a nil Notifier's methods must succeed and do nothing")
	}
	if err := n.Watchdog(context.Background(), func() bool { t.Error("alive called"); return true }); err != nil {
		t.Error(err)
	}
}

func TestFromEnvErrors(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want string
		wd   time.Duration
	}{
		{map[string]string{"NOTIFY_SOCKET": "vsock:2:999"}, "only a Unix socket", 0},
		{map[string]string{"NOTIFY_SOCKET": "/run/n", "WATCHDOG_USEC": "soon"}, "WATCHDOG_USEC", 0},
		{map[string]string{"NOTIFY_SOCKET": "/run/n", "WATCHDOG_USEC": "0"}, "WATCHDOG_USEC", 0},
		{map[string]string{"NOTIFY_SOCKET": "/run/n", "WATCHDOG_USEC": "30000000"}, "", 15 * time.Second},
		{map[string]string{"NOTIFY_SOCKET": "/run/n", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "7"}, "", 15 * time.Second},
		// The watchdog is another process's: none here.
		{map[string]string{"NOTIFY_SOCKET": "/run/n", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "8"}, "", 0},
	} {
		n, err := fromEnv(env(tc.env), 7)
		if tc.want != "" {
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%v: err %v, want one about %s", tc.env, err, tc.want)
			}
			continue
		}
		if err != nil {
			t.Errorf("%v: %v", tc.env, err)
		}
		if got := n.WatchdogInterval(); got != tc.wd {
			t.Errorf("%v: watchdog every %v, want %v", tc.env, got, tc.wd)
		}
	}
}

// The watchdog pings at half of WATCHDOG_USEC, and not while alive says no.
func TestWatchdogPingsWhileAlive(t *testing.T) {
	name := filepath.Join(t.TempDir(), "notify")
	c := listen(t, name)
	n, err := fromEnv(env(map[string]string{"NOTIFY_SOCKET": name, "WATCHDOG_USEC": "40000"}), 1)
	if err != nil {
		t.Fatal(err)
	}
	var healthy atomic.Bool
	healthy.Store(true)
	var checks atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		done <- n.Watchdog(ctx, func() bool { checks.Add(1); return healthy.Load() })
	}()
	start := time.Now()
	for range 3 {
		if got := recv(t, c); got != "WATCHDOG=1" {
			t.Fatalf("got %q, want WATCHDOG=1", got)
		}
	}
	if el := time.Since(start); el < 35*time.Millisecond {
		t.Errorf("3 pings in %v: faster than every 20 ms", el)
	}
	healthy.Store(false)
	// Drain a ping that may have been on its way, then expect silence
	// over several intervals although alive is still asked.
	c.SetReadDeadline(time.Now().Add(30 * time.Millisecond))
	c.Read(make([]byte, 64))
	before := checks.Load()
	c.SetReadDeadline(time.Now().Add(150 * time.Millisecond))
	if k, err := c.Read(make([]byte, 64)); err == nil {
		t.Errorf("pinged (%d bytes) while alive said no", k)
	}
	if checks.Load() <= before {
		t.Error("alive was not asked while unhealthy")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Watchdog: %v", err)
	}
}

// A socket nobody listens on is an error the caller can log.
func TestSendToNobody(t *testing.T) {
	n, _ := fromEnv(env(map[string]string{"NOTIFY_SOCKET": filepath.Join(t.TempDir(), "none")}), 1)
	if err := n.Ready("x"); err == nil || !strings.Contains(err.Error(), "notify systemd") {
		t.Errorf("Ready to a missing socket: %v", err)
	}
}

// A start that waits says what for and extends systemd's start timeout,
// in microseconds.
func TestStarting(t *testing.T) {
	name := filepath.Join(t.TempDir(), "notify")
	c := listen(t, name)
	n, err := fromEnv(env(map[string]string{"NOTIFY_SOCKET": name}), 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Starting("waiting for uplink bond0\nto appear", 90*time.Second); err != nil {
		t.Fatal(err)
	}
	if got, want := recv(t, c), "STATUS=waiting for uplink bond0 to appear\nEXTEND_TIMEOUT_USEC=90000000"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	var none *Notifier
	if err := none.Starting("x", time.Second); err != nil {
		t.Errorf("nil notifier: %v", err)
	}
}
