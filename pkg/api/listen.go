package api

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"
)

// SocketMode is the permission of the API socket: owner and group may connect.
const SocketMode = 0o660

// ListenUnix listens on the Unix socket path for the API. It creates the
// parent directory, removes a stale socket nobody answers on, refuses to
// take over a socket a live daemon answers on, and sets mode 0660.
func ListenUnix(path string) (net.Listener, error) { return ListenUnixGroup(path, -1) }

// ListenUnixGroup is ListenUnix that also gives the socket to group gid
// (-1: the daemon's own group), whose members may then use the API (mode
// 0660: read and write for owner and group, nothing for others).
func ListenUnixGroup(path string, gid int) (net.Listener, error) {
	if path == "" {
		return nil, errors.New("listen on API socket: empty path")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create directory for API socket %s: %w", path, err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != os.ModeSocket {
			return nil, fmt.Errorf("API socket path %s exists and is not a socket: remove it or choose another --socket", path)
		}
		c, derr := net.DialTimeout("unix", path, time.Second)
		if derr == nil {
			c.Close()
			return nil, fmt.Errorf("another vswitchd is already listening on %s: stop it, or use a different --socket", path)
		}
		// Nobody answers: a leftover from a daemon that died.
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("remove stale API socket %s: %w", path, err)
		}
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on API socket %s: %w", path, err)
	}
	if err := os.Chmod(path, SocketMode); err != nil {
		l.Close()
		return nil, fmt.Errorf("chmod API socket %s: %w", path, err)
	}
	if gid >= 0 {
		if err := os.Chown(path, -1, gid); err != nil {
			l.Close()
			return nil, fmt.Errorf("give API socket %s to group %d: %w", path, gid, err)
		}
	}
	return l, nil
}
