package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// cmdTimeout bounds every helper command (ip, ovs-vsctl, ...).
const cmdTimeout = 20 * time.Second

// run executes a command with a timeout and returns a wrapped error that
// carries its combined output.
func run(ctx context.Context, env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// ipCmd runs `ip ARGS...`.
func ipCmd(ctx context.Context, args ...string) error {
	_, err := run(ctx, nil, "ip", args...)
	return err
}

// inNS runs fn on a locked OS thread switched into the named namespace and
// switches back afterwards. Sockets opened by fn stay in that namespace.
func inNS(name string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("get current netns: %w", err)
			return
		}
		defer orig.Close()
		target, err := netns.GetFromName(name)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open netns %s: %w", name, err)
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter netns %s: %w", name, err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			// Leave the thread locked: it dies with this goroutine
			// instead of running other code in the wrong namespace.
			errc <- errors.Join(ferr, fmt.Errorf("restore netns: %w", err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// writeSysctl writes value to /proc/sys/PATH inside namespace ns. A missing
// key is reported as os.ErrNotExist so callers can decide it is optional.
func writeSysctl(ns, key, value string) error {
	p := filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/"))
	return inNS(ns, func() error {
		if err := os.WriteFile(p, []byte(value), 0o644); err != nil {
			return fmt.Errorf("sysctl %s=%s in %s: %w", key, value, ns, err)
		}
		return nil
	})
}

// linkStats reads the counters of ifname in namespace ns over netlink.
type statsReader struct {
	h      *netlink.Handle
	ns     netns.NsHandle
	ifname string
}

func newStatsReader(ns, ifname string) (*statsReader, error) {
	nh, err := netns.GetFromName(ns)
	if err != nil {
		return nil, fmt.Errorf("open netns %s: %w", ns, err)
	}
	h, err := netlink.NewHandleAt(nh)
	if err != nil {
		nh.Close()
		return nil, fmt.Errorf("netlink handle in %s: %w", ns, err)
	}
	return &statsReader{h: h, ns: nh, ifname: ifname}, nil
}

// read returns rx_packets, tx_packets, rx_dropped of the link.
func (s *statsReader) read() (rx, tx, rxDrop uint64, err error) {
	for i := 0; i < 5; i++ { // netlink can fail with EINTR under churn
		var l netlink.Link
		l, err = s.h.LinkByName(s.ifname)
		if err == nil {
			st := l.Attrs().Statistics
			if st == nil {
				return 0, 0, 0, fmt.Errorf("no statistics for %s", s.ifname)
			}
			return st.RxPackets, st.TxPackets, st.RxDropped, nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return 0, 0, 0, fmt.Errorf("read stats of %s: %w", s.ifname, err)
}

func (s *statsReader) close() {
	s.h.Close()
	s.ns.Close()
}
