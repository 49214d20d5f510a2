package bench

import (
	"encoding/binary"
	"fmt"
	"net"
)

// magic marks the UDP payload of every generated frame so the verifier can
// tell our frames from anything else on the wire.
var magic = [8]byte{'V', 'S', 'B', 'E', 'N', 'C', 'H', '!'}

const (
	ethHdrLen  = 14
	vlanHdrLen = 4
	ipHdrLen   = 20
	udpHdrLen  = 8
	minFrame   = 60 // 64 on the wire with FCS
	udpSrcPort = 40000
	udpDstPort = 9 // discard
)

// frameSpec describes one generated frame.
type frameSpec struct {
	Dst, Src     net.HardwareAddr
	SrcIP, DstIP net.IP
	VID          int // 0: untagged; else an 802.1Q tag (TPID 0x8100) with this VID
	Size         int // frame length without FCS, excluding the 4 tag bytes
}

// buildFrame returns an Ethernet/IPv4/UDP frame with valid IP and UDP
// checksums. Size counts the untagged frame without FCS (60 for "64-byte
// frames", 1514 for a 1500-byte IP packet); a tag adds 4 bytes on top, as a
// switch would when it tags a frame.
func buildFrame(s frameSpec) ([]byte, error) {
	if s.Size < minFrame {
		return nil, fmt.Errorf("frame size %d below minimum %d", s.Size, minFrame)
	}
	if s.Size > 9000 {
		return nil, fmt.Errorf("frame size %d too large", s.Size)
	}
	if s.VID < 0 || s.VID > 4094 {
		return nil, fmt.Errorf("vid %d out of range", s.VID)
	}
	src4, dst4 := s.SrcIP.To4(), s.DstIP.To4()
	if src4 == nil || dst4 == nil || len(s.Src) != 6 || len(s.Dst) != 6 {
		return nil, fmt.Errorf("need 6-byte MACs and IPv4 addresses")
	}
	tagLen := 0
	if s.VID != 0 {
		tagLen = vlanHdrLen
	}
	b := make([]byte, s.Size+tagLen)
	copy(b[0:6], s.Dst)
	copy(b[6:12], s.Src)
	off := 12
	if s.VID != 0 {
		binary.BigEndian.PutUint16(b[12:], 0x8100)
		binary.BigEndian.PutUint16(b[14:], uint16(s.VID))
		off += vlanHdrLen
	}
	binary.BigEndian.PutUint16(b[off:], 0x0800)
	ip := b[off+2:]
	ipLen := s.Size - ethHdrLen
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(ipLen))
	binary.BigEndian.PutUint16(ip[6:], 0x4000) // DF
	ip[8] = 64
	ip[9] = 17 // UDP
	copy(ip[12:16], src4)
	copy(ip[16:20], dst4)
	binary.BigEndian.PutUint16(ip[10:], ipv4Checksum(ip[:ipHdrLen]))
	udp := ip[ipHdrLen:ipLen]
	binary.BigEndian.PutUint16(udp[0:], udpSrcPort)
	binary.BigEndian.PutUint16(udp[2:], udpDstPort)
	binary.BigEndian.PutUint16(udp[4:], uint16(len(udp)))
	copy(udp[udpHdrLen:], magic[:])
	for i := udpHdrLen + len(magic); i < len(udp); i++ {
		udp[i] = byte(i)
	}
	binary.BigEndian.PutUint16(udp[6:], udpChecksum(src4, dst4, udp))
	return b, nil
}

// ipv4Checksum is the Internet checksum of hdr with its checksum field zero.
func ipv4Checksum(hdr []byte) uint16 {
	return ^fold(sum16(hdr, 0))
}

// udpChecksum computes the UDP checksum over the IPv4 pseudo header and udp
// (whose checksum field must be zero). 0 is sent as 0xffff.
func udpChecksum(src, dst net.IP, udp []byte) uint16 {
	var s uint32
	s = sum16(src, s)
	s = sum16(dst, s)
	s += 17
	s += uint32(len(udp))
	s = sum16(udp, s)
	c := ^fold(s)
	if c == 0 {
		c = 0xffff
	}
	return c
}

func sum16(b []byte, s uint32) uint32 {
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	return s
}

func fold(s uint32) uint16 {
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}

// isOurFrame reports whether b (an untagged frame as a packet socket sees
// it) is a generated frame addressed to dst.
func isOurFrame(b []byte, dst net.HardwareAddr) bool {
	const payloadOff = ethHdrLen + ipHdrLen + udpHdrLen
	if len(b) < payloadOff+len(magic) {
		return false
	}
	if string(b[0:6]) != string(dst) || binary.BigEndian.Uint16(b[12:]) != 0x0800 {
		return false
	}
	return string(b[payloadOff:payloadOff+len(magic)]) == string(magic[:])
}
