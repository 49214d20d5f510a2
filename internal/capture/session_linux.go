package capture

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// slot is one held session slot: an open lock file with an flock on it.
// The kernel drops the lock when the file is closed, by Close or by the
// death of the process (SIGKILL included), so a capture whose process is
// gone never holds a slot.
type slot struct {
	f *os.File // nil: no bound could be kept (see acquire)
}

// acquire takes the first free of l.Max slots: slot-0.lock ... in l.Dir,
// created if missing (the directory 0700). A taken slot records "PID
// IFNAME" for the message others get when every slot is taken. Where the
// directory or a lock file cannot be made for lack of permission (a
// capture without root, which then fails at the socket anyway, or one
// with CAP_NET_RAW only) there is no bound to keep: the capture runs
// without a slot, as vswitchd's uplink lock does.
func (l Limit) acquire(ifname string) (*slot, error) {
	if err := os.MkdirAll(l.Dir, 0o700); err != nil {
		if noPermission(err) {
			return &slot{}, nil
		}
		return nil, fmt.Errorf("session slots in %s: %w", l.Dir, err)
	}
	var holders []string
	for i := range l.Max {
		path := filepath.Join(l.Dir, fmt.Sprintf("slot-%d.lock", i))
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
		if err != nil {
			if noPermission(err) {
				return &slot{}, nil
			}
			return nil, fmt.Errorf("session slot %s: %w", path, err)
		}
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			_ = f.Truncate(0)
			_, _ = f.WriteAt([]byte(fmt.Sprintf("%d %s\n", os.Getpid(), ifname)), 0)
			return &slot{f: f}, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock session slot %s: %w", path, err)
		}
		holders = append(holders, holder(f))
		f.Close()
	}
	return nil, fmt.Errorf("%w: all %d slots are taken (%s)", ErrTooManySessions, l.Max, strings.Join(holders, ", "))
}

// holder describes who holds a slot, from what its lock file says.
func holder(f *os.File) string {
	b := make([]byte, 64)
	n, _ := f.ReadAt(b, 0)
	fields := strings.Fields(string(b[:n]))
	if len(fields) == 2 {
		if pid, err := strconv.Atoi(fields[0]); err == nil {
			return fmt.Sprintf("pid %d on %s", pid, fields[1])
		}
	}
	return "pid unknown"
}

func noPermission(err error) bool {
	return errors.Is(err, os.ErrPermission) || errors.Is(err, unix.EROFS)
}

// release frees the slot (nil-safe, idempotent).
func (s *slot) release() {
	if s == nil || s.f == nil {
		return
	}
	s.f.Close()
	s.f = nil
}
