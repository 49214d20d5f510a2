//go:build linux

package afpacket

import (
	"encoding/binary"
	"math/bits"
)

// Checksum completion for CHECKSUM_PARTIAL frames (TP_STATUS_CSUMNOTREADY).
//
// A sender with TX checksum offload (veth, virtio guests, taps with a
// virtio-net header) leaves the TCP/UDP checksum to "hardware": the field
// holds only the folded pseudo-header sum and skb->ip_summed is
// CHECKSUM_PARTIAL. A packet socket on the receiving side gets the bytes as
// they are, with TP_STATUS_CSUMNOTREADY in tp_status; the ring header does
// not carry csum_start/csum_offset, so the L4 header is found by parsing.

// Header constants for the checksum parser.
const (
	etherTypeIPv4 = 0x0800
	etherTypeIPv6 = 0x86dd
	ipProtoTCP    = 6
	ipProtoUDP    = 17
	tcpCsumOff    = 16
	udpCsumOff    = 6
)

// csumResult says what fixL4Checksum did.
type csumResult uint8

const (
	csumFixed   csumResult = iota // checksum written
	csumSkipped                   // not TCP/UDP over IPv4/IPv6 we can parse: left unchanged
)

// fixL4Checksum completes the TCP or UDP checksum of frame (which starts at
// the Ethernet header, with any VLAN tags in the bytes) in place: it parses
// Ethernet, up to two 802.1Q/802.1ad/0x9100 tags, IPv4 (any IHL, no
// fragments) or IPv6 (no extension headers), then TCP or UDP, and writes the
// Internet checksum over the pseudo-header and the L4 segment whose length
// the IP header gives (trailing Ethernet padding is not summed). The
// checksum field's old content is ignored. A UDP checksum that computes to
// 0 is sent as 0xffff (0 means "no checksum"). Anything else (other
// protocols, truncated or inconsistent headers) is left untouched and
// reported as csumSkipped. It never writes outside frame[l4:l4+l4len] and
// never allocates.
func fixL4Checksum(frame []byte) csumResult {
	if len(frame) < 14 {
		return csumSkipped
	}
	off := 12
	et := binary.BigEndian.Uint16(frame[off:])
	off += 2
	for i := 0; i < 2 && (et == 0x8100 || et == 0x88a8 || et == 0x9100); i++ {
		if len(frame) < off+4 {
			return csumSkipped
		}
		et = binary.BigEndian.Uint16(frame[off+2:])
		off += 4
	}
	var (
		sum   uint64 // pseudo-header, 32-bit big-endian words
		l4    int
		l4len int
		proto byte
	)
	switch et {
	case etherTypeIPv4:
		ip := frame[off:]
		if len(ip) < 20 || ip[0]>>4 != 4 {
			return csumSkipped
		}
		ihl := int(ip[0]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(ip[2:]))
		if ihl < 20 || total < ihl || total > len(ip) {
			return csumSkipped
		}
		// MF set or a fragment offset: the L4 header is not (all) here.
		if binary.BigEndian.Uint16(ip[6:])&0x3fff != 0 {
			return csumSkipped
		}
		proto = ip[9]
		l4 = off + ihl
		l4len = total - ihl
		sum = uint64(binary.BigEndian.Uint32(ip[12:])) + uint64(binary.BigEndian.Uint32(ip[16:]))
	case etherTypeIPv6:
		ip := frame[off:]
		if len(ip) < 40 || ip[0]>>4 != 6 {
			return csumSkipped
		}
		l4len = int(binary.BigEndian.Uint16(ip[4:]))
		proto = ip[6] // next header: extension headers are not followed
		if l4len == 0 || 40+l4len > len(ip) {
			return csumSkipped // jumbogram or truncated
		}
		l4 = off + 40
		for i := 8; i < 40; i += 4 {
			sum += uint64(binary.BigEndian.Uint32(ip[i:]))
		}
	default:
		return csumSkipped
	}
	var csumAt int
	switch proto {
	case ipProtoTCP:
		if l4len < 20 {
			return csumSkipped
		}
		csumAt = tcpCsumOff
	case ipProtoUDP:
		if l4len < 8 {
			return csumSkipped
		}
		csumAt = udpCsumOff
	default:
		return csumSkipped
	}
	seg := frame[l4 : l4+l4len]
	seg[csumAt] = 0
	seg[csumAt+1] = 0
	// Pseudo-header: addresses (above), protocol and L4 length. The IPv6
	// form (32-bit length, 3 zero bytes, next header) sums to the same.
	sum += uint64(proto) + uint64(l4len)
	c := ^foldChecksum(checksumAdd(seg, sum))
	if c == 0 && proto == ipProtoUDP {
		c = 0xffff
	}
	seg[csumAt] = byte(c >> 8)
	seg[csumAt+1] = byte(c)
	return csumFixed
}

// checksumAdd adds b to the one's-complement accumulator s. Words are read
// big-endian 8 bytes at a time with end-around carry; since 2^16 = 1
// (mod 0xffff), every 16-bit word counts the same wherever it sits in the
// 64-bit word, and folding at the end gives the RFC 1071 sum.
func checksumAdd(b []byte, s uint64) uint64 {
	var c uint64
	for len(b) >= 32 {
		s, c = bits.Add64(s, binary.BigEndian.Uint64(b), c)
		s, c = bits.Add64(s, binary.BigEndian.Uint64(b[8:]), c)
		s, c = bits.Add64(s, binary.BigEndian.Uint64(b[16:]), c)
		s, c = bits.Add64(s, binary.BigEndian.Uint64(b[24:]), c)
		b = b[32:]
	}
	for len(b) >= 8 {
		s, c = bits.Add64(s, binary.BigEndian.Uint64(b), c)
		b = b[8:]
	}
	if len(b) >= 4 {
		s, c = bits.Add64(s, uint64(binary.BigEndian.Uint32(b)), c)
		b = b[4:]
	}
	if len(b) >= 2 {
		s, c = bits.Add64(s, uint64(binary.BigEndian.Uint16(b)), c)
		b = b[2:]
	}
	if len(b) == 1 {
		s, c = bits.Add64(s, uint64(b[0])<<8, c)
	}
	s, c = bits.Add64(s, c, 0)
	return s + c // s is 0 if this carries, so no further carry
}

// foldChecksum folds a 64-bit accumulator to 16 bits with end-around carry.
func foldChecksum(s uint64) uint16 {
	s = s>>32 + s&0xffffffff // < 2^33
	s = s>>32 + s&0xffffffff // < 2^32
	s = s>>16 + s&0xffff     // < 2^17
	s = s>>16 + s&0xffff     // <= 0xffff
	return uint16(s)
}
