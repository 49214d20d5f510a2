package sdnotify

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// Notifier sends state changes to systemd's notification socket. A nil
// *Notifier is valid and sends nothing.
type Notifier struct {
	addr     *net.UnixAddr
	watchdog time.Duration // WATCHDOG_USEC; 0: no watchdog
}

// FromEnv returns the Notifier systemd asked for in the environment
// ($NOTIFY_SOCKET, $WATCHDOG_USEC and $WATCHDOG_PID), or nil when there is
// no $NOTIFY_SOCKET. A value it cannot use is an error (the caller logs it
// and runs without).
func FromEnv() (*Notifier, error) {
	return fromEnv(os.Getenv, os.Getpid())
}

func fromEnv(getenv func(string) string, pid int) (*Notifier, error) {
	path := getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil, nil
	}
	if path[0] != '/' && path[0] != '@' {
		// systemd 256 also offers vsock:CID:PORT, for virtual machines.
		return nil, fmt.Errorf("NOTIFY_SOCKET=%q: only a Unix socket path or @abstract name is supported", path)
	}
	n := &Notifier{addr: &net.UnixAddr{Name: path, Net: "unixgram"}}
	usec := getenv("WATCHDOG_USEC")
	if usec == "" {
		return n, nil
	}
	// WATCHDOG_PID, when set, names the process the watchdog is meant for
	// (a child of the service's main process does not inherit the job).
	if wp := getenv("WATCHDOG_PID"); wp != "" && wp != strconv.Itoa(pid) {
		return n, nil
	}
	us, err := strconv.ParseUint(usec, 10, 63)
	if err != nil || us == 0 {
		return n, fmt.Errorf("WATCHDOG_USEC=%q: want a positive number of microseconds", usec)
	}
	n.watchdog = time.Duration(us) * time.Microsecond
	return n, nil
}

// Send sends one notification: state is one or more VAR=value lines
// (sd_notify(3)), e.g. "READY=1\nSTATUS=serving 3 ports".
func (n *Notifier) Send(state string) error {
	if n == nil {
		return nil
	}
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("notify systemd at %s: %w", n.addr.Name, err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(state)); err != nil {
		return fmt.Errorf("notify systemd at %s: %w", n.addr.Name, err)
	}
	return nil
}

// Ready says the service is up, with a one-line status for `systemctl
// status`.
func (n *Notifier) Ready(status string) error {
	return n.Send("READY=1\nSTATUS=" + oneLine(status))
}

// Status updates the one-line status `systemctl status` shows.
func (n *Notifier) Status(status string) error {
	return n.Send("STATUS=" + oneLine(status))
}

// Starting updates the status while the service is still starting, and
// asks systemd to wait at least extend from now for what comes next
// (EXTEND_TIMEOUT_USEC, systemd 236 and later; it only ever lengthens
// TimeoutStartSec=, and older versions ignore it): for a start that waits
// for something on purpose, so that systemd does not give up first.
func (n *Notifier) Starting(status string, extend time.Duration) error {
	return n.Send(fmt.Sprintf("STATUS=%s\nEXTEND_TIMEOUT_USEC=%d", oneLine(status), extend.Microseconds()))
}

// Stopping says the service began to stop.
func (n *Notifier) Stopping() error {
	return n.Send("STOPPING=1\nSTATUS=stopping")
}

// WatchdogInterval is how often Watchdog pings: half of $WATCHDOG_USEC, as
// sd_watchdog_enabled(3) advises; 0 when systemd set no watchdog.
func (n *Notifier) WatchdogInterval() time.Duration {
	if n == nil {
		return 0
	}
	return n.watchdog / 2
}

// Watchdog sends WATCHDOG=1 every WatchdogInterval until ctx is done, each
// time alive returns true; alive may block (a hung daemon then misses its
// pings, which is the point). It returns at once when there is no
// watchdog, and when a ping fails to send (systemd then notices itself).
func (n *Notifier) Watchdog(ctx context.Context, alive func() bool) error {
	every := n.WatchdogInterval()
	if every <= 0 {
		return nil
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if alive() {
			if err := n.Send("WATCHDOG=1"); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// oneLine keeps a status to one line: a newline would start a new
// assignment.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
