// Package ethtool switches network interface features (the ones
// `ethtool -k` lists by name) off and back on through the SIOCETHTOOL
// ioctl: ETHTOOL_GSSET_INFO and ETHTOOL_GSTRINGS find a feature's bit by
// name, ETHTOOL_GFEATURES and ETHTOOL_SFEATURES read and change them. The
// AF_XDP backend uses it to keep VLAN tags in the frame (rx-vlan-hw-parse)
// and the daemon to keep the uplink from coalescing frames (rx-gro, rx-lro)
// that it would then have to drop as oversize.
package ethtool
