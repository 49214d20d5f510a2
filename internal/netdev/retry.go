package netdev

import (
	"errors"
	"fmt"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// maxAttempts is how many times the helpers try a netlink call that failed
// with a retryable error before giving up.
const maxAttempts = 6

// isRetryable reports whether err is a transient netlink failure worth
// retrying: EINTR, or a dump the kernel marked NLM_F_DUMP_INTR because the
// link table changed under it (netlink.ErrDumpInterrupted).
func isRetryable(err error) bool {
	return errors.Is(err, unix.EINTR) || errors.Is(err, netlink.ErrDumpInterrupted)
}

// retry calls fn until it succeeds, fails with a non-retryable error, or
// maxAttempts is reached, sleeping a little longer each time (1, 2, 4 ... ms).
// The last error is returned.
func retry[T any](fn func() (T, error)) (T, error) {
	var (
		v   T
		err error
	)
	for i := 0; i < maxAttempts; i++ {
		v, err = fn()
		if err == nil || !isRetryable(err) {
			return v, err
		}
		time.Sleep(time.Millisecond << i)
	}
	return v, err
}

// pkg returns h, or the package-level handle (current thread's namespace)
// when h is nil.
func pkg(h *netlink.Handle) *netlink.Handle {
	if h == nil {
		return &netlink.Handle{}
	}
	return h
}

// LinkByName looks link name up in the current network namespace, retrying
// transient failures.
func LinkByName(name string) (netlink.Link, error) { return LinkByNameAt(nil, name) }

// LinkByNameAt is LinkByName through handle h (nil: current namespace).
func LinkByNameAt(h *netlink.Handle, name string) (netlink.Link, error) {
	l, err := retry(func() (netlink.Link, error) { return pkg(h).LinkByName(name) })
	if err != nil {
		return nil, fmt.Errorf("link %s: %w", name, err)
	}
	return l, nil
}

// linkListAt dumps every link through handle h (nil: current namespace).
// A dump interrupted by concurrent changes is repeated, so the result is
// consistent.
func linkListAt(h *netlink.Handle) ([]netlink.Link, error) {
	ls, err := retry(func() ([]netlink.Link, error) { return pkg(h).LinkList() })
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	return ls, nil
}
