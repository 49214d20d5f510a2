//go:build linux

package afxdp

import (
	"github.com/vishvananda/netlink"
	"github.com/vswitch/vswitch/internal/ethtool"
)

// Receive VLAN offload features (ethtool -k names). With them on, a NIC
// strips the outer 802.1Q / 802.1ad tag into the RX descriptor and the
// frame XDP sees has no tag.
var rxVLANFeatures = [...]string{"rx-vlan-hw-parse", "rx-vlan-stag-hw-parse"}

// disableRxVLANOffload switches off the interface's rx VLAN offloads (what
// `ethtool -K IF rxvlan off rx-vlan-stag-hw-parse off` does) in the calling
// thread's network namespace, so the driver leaves tags in the frame where
// XDP sees them. It returns nil (and no error) when nothing was on, and an
// errors.ErrUnsupported-wrapping error when the interface refuses.
func disableRxVLANOffload(ifname string) (*ethtool.Restore, error) {
	return ethtool.Disable(ifname, rxVLANFeatures[:]...)
}

// RXQueues is how many RX queues (one XSK each, see Backend.OpenQueue)
// ifname uses now in the calling thread's network namespace: its ethtool
// channels, else the count it was created with (netlink), else 1.
func RXQueues(ifname string) int {
	return rxQueues(ifname, nil)
}

// rxQueues is RXQueues with the interface's netlink attributes when the
// caller has them already.
func rxQueues(ifname string, l netlink.Link) int {
	if n, err := ethtool.RXQueues(ifname); err == nil {
		return n
	}
	if l == nil {
		l, _ = netlink.LinkByName(ifname)
	}
	if l != nil && l.Attrs().NumRxQueues > 0 {
		return l.Attrs().NumRxQueues
	}
	return 1
}
