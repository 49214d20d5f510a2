package netdev

import (
	"fmt"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func TestRetry(t *testing.T) {
	for _, tc := range []struct {
		name      string
		errs      []error
		wantCalls int
		wantErr   bool
	}{
		{"ok first", []error{nil}, 1, false},
		{"eintr then ok", []error{unix.EINTR, nil}, 2, false},
		{"dump interrupted twice then ok", []error{netlink.ErrDumpInterrupted, fmt.Errorf("wrapped: %w", netlink.ErrDumpInterrupted), nil}, 3, false},
		{"permanent", []error{unix.EPERM, nil}, 1, true},
		{"always eintr", nil, maxAttempts, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			v, err := retry(func() (int, error) {
				calls++
				if tc.errs == nil {
					return 0, unix.EINTR
				}
				return calls, tc.errs[calls-1]
			})
			if calls != tc.wantCalls || (err != nil) != tc.wantErr {
				t.Fatalf("calls=%d err=%v, want calls=%d err=%v", calls, err, tc.wantCalls, tc.wantErr)
			}
			if err == nil && v != calls {
				t.Fatalf("value %d", v)
			}
		})
	}
}
