package netdev

import (
	"errors"
	"fmt"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// MaxAttempts is how many times the helpers try a netlink call that failed
// with a retryable error before giving up.
const MaxAttempts = 6

// IsRetryable reports whether err is a transient netlink failure worth
// retrying: EINTR, or a dump the kernel marked NLM_F_DUMP_INTR because the
// link table changed under it (netlink.ErrDumpInterrupted).
func IsRetryable(err error) bool {
	return errors.Is(err, unix.EINTR) || errors.Is(err, netlink.ErrDumpInterrupted)
}

// IsNotFound reports whether err says the link does not exist.
func IsNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf) || errors.Is(err, unix.ENODEV)
}

// Retry calls fn until it succeeds, fails with a non-retryable error, or
// MaxAttempts is reached, sleeping a little longer each time (1, 2, 4 ... ms).
// The last error is returned.
func Retry[T any](fn func() (T, error)) (T, error) {
	var (
		v   T
		err error
	)
	for i := 0; i < MaxAttempts; i++ {
		v, err = fn()
		if err == nil || !IsRetryable(err) {
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
	l, err := Retry(func() (netlink.Link, error) { return pkg(h).LinkByName(name) })
	if err != nil {
		return nil, fmt.Errorf("link %s: %w", name, err)
	}
	return l, nil
}

// LinkByIndex looks a link up by interface index, retrying transient failures.
func LinkByIndex(index int) (netlink.Link, error) { return LinkByIndexAt(nil, index) }

// LinkByIndexAt is LinkByIndex through handle h (nil: current namespace).
func LinkByIndexAt(h *netlink.Handle, index int) (netlink.Link, error) {
	l, err := Retry(func() (netlink.Link, error) { return pkg(h).LinkByIndex(index) })
	if err != nil {
		return nil, fmt.Errorf("link index %d: %w", index, err)
	}
	return l, nil
}

// LinkList dumps every link in the current namespace. A dump interrupted by
// concurrent changes is repeated, so the result is consistent.
func LinkList() ([]netlink.Link, error) { return LinkListAt(nil) }

// LinkListAt is LinkList through handle h (nil: current namespace).
func LinkListAt(h *netlink.Handle) ([]netlink.Link, error) {
	ls, err := Retry(func() ([]netlink.Link, error) { return pkg(h).LinkList() })
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	return ls, nil
}
