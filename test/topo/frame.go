package topo

import (
	"encoding/binary"
	"net"
)

// Ethertypes and TPIDs used by the builders.
const (
	EtherTypeIPv4 = 0x0800
	EtherTypeARP  = 0x0806
	TPID8021Q     = 0x8100
	TPID8021AD    = 0x88a8
)

// MinFrameLen is the shortest Ethernet frame without FCS; BuildEth pads to it.
const MinFrameLen = 60

// BuildEth builds an untagged Ethernet frame, padded with zeros to 60 bytes.
func BuildEth(dst, src net.HardwareAddr, ethertype uint16, payload []byte) []byte {
	n := 14 + len(payload)
	if n < MinFrameLen {
		n = MinFrameLen
	}
	b := make([]byte, n)
	copy(b[0:6], dst)
	copy(b[6:12], src)
	binary.BigEndian.PutUint16(b[12:14], ethertype)
	copy(b[14:], payload)
	return b
}

// PushTag returns a new frame with a VLAN tag (tpid, tci) inserted after the
// MAC addresses: the outermost tag. tci is PCP<<13 | DEI<<12 | VID.
func PushTag(frame []byte, tpid, tci uint16) []byte {
	out := make([]byte, len(frame)+4)
	copy(out, frame[:12])
	binary.BigEndian.PutUint16(out[12:], tpid)
	binary.BigEndian.PutUint16(out[14:], tci)
	copy(out[16:], frame[12:])
	return out
}

// OuterTag returns the outermost VLAN tag of frame if its TPID is 0x8100,
// 0x88a8 or 0x9100.
func OuterTag(frame []byte) (tpid, tci uint16, ok bool) {
	if len(frame) < 18 {
		return 0, 0, false
	}
	tpid = binary.BigEndian.Uint16(frame[12:14])
	switch tpid {
	case 0x8100, 0x88a8, 0x9100:
		return tpid, binary.BigEndian.Uint16(frame[14:16]), true
	}
	return 0, 0, false
}

// Checksum is the Internet checksum (RFC 1071) of b.
func Checksum(b []byte) uint16 { return ^fold(sum16(b, 0)) }

func sum16(b []byte, s uint32) uint32 {
	for len(b) >= 2 {
		s += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint32(b[0]) << 8
	}
	return s
}

func fold(s uint32) uint16 {
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}

// BuildIPv4 builds an IPv4 header (no options, TTL 64, DF clear) with a
// valid checksum followed by payload.
func BuildIPv4(src, dst net.IP, proto uint8, payload []byte) []byte {
	b := make([]byte, 20+len(payload))
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:4], uint16(len(b)))
	b[8] = 64
	b[9] = proto
	copy(b[12:16], src.To4())
	copy(b[16:20], dst.To4())
	binary.BigEndian.PutUint16(b[10:12], Checksum(b[:20]))
	copy(b[20:], payload)
	return b
}

// BuildUDPv4 builds an untagged Ethernet/IPv4/UDP frame with valid IP and
// UDP checksums, padded to 60 bytes. Use PushTag to tag it.
func BuildUDPv4(dstMAC, srcMAC net.HardwareAddr, src, dst net.IP, srcPort, dstPort uint16, payload []byte) []byte {
	udp := make([]byte, 8+len(payload))
	binary.BigEndian.PutUint16(udp[0:2], srcPort)
	binary.BigEndian.PutUint16(udp[2:4], dstPort)
	binary.BigEndian.PutUint16(udp[4:6], uint16(len(udp)))
	copy(udp[8:], payload)
	// Pseudo header: src, dst, zero, proto, UDP length.
	s := sum16(src.To4(), 0)
	s = sum16(dst.To4(), s)
	s += 17 + uint32(len(udp))
	c := ^fold(sum16(udp, s))
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(udp[6:8], c)
	return BuildEth(dstMAC, srcMAC, EtherTypeIPv4, BuildIPv4(src, dst, 17, udp))
}

// MustMAC parses a MAC address and panics on error: for constants in tests.
func MustMAC(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

// BroadcastMAC returns ff:ff:ff:ff:ff:ff (a fresh slice each call).
func BroadcastMAC() net.HardwareAddr {
	return net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
}
