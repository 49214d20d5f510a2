// Package sdnotify tells systemd how vswitchd is doing, through the
// sd_notify(3) protocol: one datagram of newline-separated VAR=value
// assignments to the Unix socket named by $NOTIFY_SOCKET, which systemd sets
// for a service with Type=notify (or NotifyAccess=). A name starting with
// '@' is in the abstract namespace (Go's net package maps it to the leading
// NUL byte). It is a few lines of code, so it is written here rather than
// imported (github.com/coreos/go-systemd/v22/daemon does the same).
//
// vswitchd sends:
//
//   - READY=1 with a STATUS= line once its API socket listens and the ports
//     of the state file are restored: `systemctl start vswitchd` returns,
//     and units ordered after it (libvirtd, virtqemud, whose hook needs the
//     API) start, only then.
//   - before that, while it waits for its uplink to appear (vswitchd
//     --uplink-wait), a STATUS= line that says so and EXTEND_TIMEOUT_USEC=
//     covering the wait, so that systemd's start timeout does not end it
//     first.
//   - STOPPING=1 when a SIGTERM or SIGINT begins the graceful stop.
//   - WATCHDOG=1 every half of $WATCHDOG_USEC (WatchdogSec= in the unit),
//     while a check of the daemon passes: a daemon whose control plane
//     hangs stops pinging and systemd kills it (SIGABRT: the Go runtime
//     prints every goroutine's stack to the journal) and restarts it.
//
// Without $NOTIFY_SOCKET (not started by systemd) FromEnv returns nil, and
// every method of a nil *Notifier does nothing, so callers need no checks.
package sdnotify
