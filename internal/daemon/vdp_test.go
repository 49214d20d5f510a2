package daemon

import (
	"net"
	"testing"
)

// A VSIID is a stable version-5 UUID, different for each port and MAC.
func TestVSIUUID(t *testing.T) {
	mac := net.HardwareAddr{0x52, 0x54, 0, 0, 0, 1}
	a, b := vsiUUID("vnet1", mac), vsiUUID("vnet1", mac)
	if a != b {
		t.Fatal("not stable")
	}
	if a == vsiUUID("vnet2", mac) || a == vsiUUID("vnet1", net.HardwareAddr{0x52, 0x54, 0, 0, 0, 2}) {
		t.Error("two ports or two MACs share a VSIID")
	}
	if a[6]>>4 != 5 || a[8]>>6 != 2 {
		t.Errorf("version %d variant %d, want 5 and RFC 4122", a[6]>>4, a[8]>>6)
	}
	if s := uuidString(a); len(s) != 36 || s[8] != '-' || s[14] != '5' {
		t.Errorf("uuidString %q", s)
	}
	zero := [8]byte{}
	if [8]byte(a[:8]) == zero {
		t.Error("first 8 bytes zero: lldpad refuses such UUIDs")
	}
}
