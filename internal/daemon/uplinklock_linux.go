//go:build linux

package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// uplinkLockDir holds one lock file per uplink served on this host.
const uplinkLockDir = "/run/vswitchd/uplinks"

// lockUplink makes sure one vswitchd serves an uplink: a second one (with
// another --state and --socket) would send every VM frame to the bridge
// twice and speak LLDP with the first one's MAC. The lock is an flock on a
// file named after the network namespace and the interface, held for the
// life of the process (the kernel drops it when the process dies, even by
// SIGKILL). It is taken before the daemon touches the uplink, the state
// file or the socket. Where the directory cannot be made (not root) there
// is no lock, and the returned release is a no-op.
func lockUplink(ifname string) (release func(), err error) {
	return lockUplinkIn(uplinkLockDir, ifname)
}

// lockUplinkIn is lockUplink with its lock files in dir.
func lockUplinkIn(dir, ifname string) (release func(), err error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/net", &st); err != nil {
		return func() {}, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return func() {}, nil
	}
	path := filepath.Join(dir, fmt.Sprintf("netns-%d-%s.lock", st.Ino, ifname))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return func() {}, nil
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		holder := "another vswitchd"
		if b, rerr := os.ReadFile(path); rerr == nil {
			if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil {
				holder = fmt.Sprintf("vswitchd pid %d", pid)
			}
		}
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("uplink %s is already served by %s (lock %s): stop it first, one vswitchd per uplink", ifname, holder, path)
		}
		return nil, fmt.Errorf("lock uplink %s (%s): %w", ifname, path, err)
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return func() { f.Close() }, nil
}
