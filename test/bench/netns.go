package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/vishvananda/netlink"

	vtopo "github.com/vswitch/vswitch/test/topo"
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

// linkStats reads the counters of ifname in namespace ns over netlink.
type statsReader struct {
	h      *netlink.Handle
	ifname string
}

func newStatsReader(ns *vtopo.NS, ifname string) (*statsReader, error) {
	h, err := netlink.NewHandleAt(ns.Handle())
	if err != nil {
		return nil, fmt.Errorf("netlink handle in %s: %w", ns.Name, err)
	}
	return &statsReader{h: h, ifname: ifname}, nil
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
}
