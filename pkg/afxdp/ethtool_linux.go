//go:build linux

package afxdp

import "github.com/vswitch/vswitch/internal/ethtool"

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
