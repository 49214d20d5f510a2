//go:build linux

package afpacket

import (
	"encoding/binary"
	"unsafe"
)

// Segmentation of GSO super-frames (TSO/GSO on in the VM).
//
// A port socket with PACKET_VNET_HDR gets a struct virtio_net_hdr in front
// of every frame (in the ring, right before the MAC header). For a GSO skb
// it says the frame is one super-frame of up to 64 KiB and how to cut it:
// gso_type (TCPv4, TCPv6, UDP L4) and gso_size (the MSS, payload bytes per
// segment). superFrame cuts it into wire-sized frames the way the kernel's
// software GSO does (tcp_gso_segment, udp4_ufo_fragment's L4 variant).

// struct virtio_net_hdr (10 bytes, native byte order: the kernel writes it
// with vio_le() = host endianness for a packet socket).
const (
	vnetHdrLen          = 10
	vnetFlagsOff        = 0
	vnetGSOTypeOff      = 1
	vnetGSOSizeOff      = 4
	vnetGSONone         = 0
	vnetGSOTCPv4        = 1
	vnetGSOUDP          = 3 // UFO (IP fragmentation): not produced by kernels >= 4.14, unsupported
	vnetGSOTCPv6        = 4
	vnetGSOUDPL4        = 5
	vnetGSOECN          = 0x80
	tcpFlagFIN     byte = 0x01
	tcpFlagPSH     byte = 0x08
	tcpFlagCWR     byte = 0x80
)

// readVnetHdr returns gso_type (ECN bit cleared) and gso_size of the
// virtio_net_hdr at h[0:vnetHdrLen].
func readVnetHdr(h []byte) (gsoType uint8, gsoSize int) {
	_ = h[vnetHdrLen-1]
	return h[vnetGSOTypeOff] &^ vnetGSOECN, int(*(*uint16)(unsafe.Pointer(&h[vnetGSOSizeOff])))
}

// superFrame is a GSO frame being cut into segments. parse checks and
// records its layout; next writes one segment at a time, so a super-frame
// can be spread over several Recv calls. It holds a view of the frame (in
// the ring) and never allocates.
type superFrame struct {
	frame  []byte // the whole super-frame, as on the wire (tags rebuilt)
	l3, l4 int    // offsets of the IP and L4 headers
	hdrLen int    // offset of the L4 payload: bytes copied in front of every segment
	payLen int    // L4 payload bytes (the IP header's length, not the frame's)
	mss    int    // payload bytes per segment (gso_size)
	v6     bool
	udp    bool
	seq    uint32 // TCP sequence number of the first payload byte
	id     uint16 // IPv4 ID of the first segment
	sent   int    // payload bytes already segmented
	idx    int    // segments already produced
}

// parse checks that frame is a super-frame of gsoType we can segment into
// frames of at most maxFrame bytes and prepares s. It returns false (s is
// then unusable) for anything else: unsupported gso_type, a gso_type that
// does not match the headers, IP options are fine but IPv6 extension
// headers and IPv4 fragments are not, truncated or inconsistent lengths,
// gso_size 0, or segments that would not fit maxFrame.
func (s *superFrame) parse(frame []byte, gsoType uint8, gsoSize, maxFrame int) bool {
	*s = superFrame{}
	if len(frame) < 14 || gsoSize <= 0 {
		return false
	}
	off := 12
	et := binary.BigEndian.Uint16(frame[off:])
	off += 2
	for i := 0; i < 2 && (et == 0x8100 || et == 0x88a8 || et == 0x9100); i++ {
		if len(frame) < off+4 {
			return false
		}
		et = binary.BigEndian.Uint16(frame[off+2:])
		off += 4
	}
	var ipEnd int
	var proto byte
	switch et {
	case etherTypeIPv4:
		ip := frame[off:]
		if len(ip) < 20 || ip[0]>>4 != 4 {
			return false
		}
		ihl := int(ip[0]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(ip[2:]))
		if ihl < 20 || total < ihl || total > len(ip) {
			return false
		}
		if binary.BigEndian.Uint16(ip[6:])&0x3fff != 0 {
			return false // a fragment
		}
		proto = ip[9]
		s.l4 = off + ihl
		ipEnd = off + total
		s.id = binary.BigEndian.Uint16(ip[4:])
	case etherTypeIPv6:
		ip := frame[off:]
		if len(ip) < 40 || ip[0]>>4 != 6 {
			return false
		}
		plen := int(binary.BigEndian.Uint16(ip[4:]))
		if plen == 0 || 40+plen > len(ip) {
			return false // jumbogram (BIG TCP) or truncated
		}
		proto = ip[6]
		s.l4 = off + 40
		ipEnd = off + 40 + plen
		s.v6 = true
	default:
		return false
	}
	s.l3 = off
	switch gsoType {
	case vnetGSOTCPv4, vnetGSOTCPv6:
		if proto != ipProtoTCP || s.v6 != (gsoType == vnetGSOTCPv6) || ipEnd-s.l4 < 20 {
			return false
		}
		doff := int(frame[s.l4+12]>>4) * 4
		if doff < 20 || s.l4+doff > ipEnd {
			return false
		}
		s.hdrLen = s.l4 + doff
		s.seq = binary.BigEndian.Uint32(frame[s.l4+4:])
	case vnetGSOUDPL4:
		if proto != ipProtoUDP || ipEnd-s.l4 < 8 {
			return false
		}
		s.hdrLen = s.l4 + 8
		s.udp = true
	default:
		return false
	}
	s.payLen = ipEnd - s.hdrLen
	s.mss = gsoSize
	first := min(s.mss, s.payLen)
	// A tiny gso_size would turn one 64 KiB super-frame into tens of
	// thousands of frames: refuse it like the kernel's minimum TCP MSS.
	if s.mss < minGSOSize || s.payLen <= 0 || s.hdrLen+first > maxFrame {
		return false
	}
	s.frame = frame[:ipEnd]
	return true
}

// minGSOSize is the smallest gso_size accepted (Linux's TCP_MIN_SND_MSS).
const minGSOSize = 48

// done reports whether every segment has been produced.
func (s *superFrame) done() bool { return s.sent >= s.payLen }

// next writes the next segment into dst (which must hold hdrLen + mss
// bytes, that is maxFrame as given to parse) and returns its length. Every
// segment gets a copy of the L2 (tags included), IP and L4 headers and up
// to mss payload bytes, then: IPv4 total length, ID (+1 per segment) and
// header checksum, or IPv6 payload length; TCP sequence number (+ payload
// offset), FIN and PSH only on the last segment, CWR only on the first; UDP
// length; and the full L4 checksum.
func (s *superFrame) next(dst []byte) int {
	chunk := min(s.mss, s.payLen-s.sent)
	last := s.sent+chunk == s.payLen
	n := s.hdrLen + chunk
	d := dst[:n]
	copy(d, s.frame[:s.hdrLen])
	copy(d[s.hdrLen:], s.frame[s.hdrLen+s.sent:s.hdrLen+s.sent+chunk])

	ip := d[s.l3:s.l4]
	l4 := d[s.l4:]
	l4len := n - s.l4
	var sum uint64
	if s.v6 {
		binary.BigEndian.PutUint16(ip[4:], uint16(l4len))
		for i := 8; i < 40; i += 4 {
			sum += uint64(binary.BigEndian.Uint32(ip[i:]))
		}
	} else {
		binary.BigEndian.PutUint16(ip[2:], uint16(n-s.l3))
		binary.BigEndian.PutUint16(ip[4:], s.id+uint16(s.idx))
		ip[10], ip[11] = 0, 0
		c := ^foldChecksum(checksumAdd(ip, 0))
		ip[10], ip[11] = byte(c>>8), byte(c)
		sum = uint64(binary.BigEndian.Uint32(ip[12:])) + uint64(binary.BigEndian.Uint32(ip[16:]))
	}
	var proto byte
	var csumAt int
	if s.udp {
		proto, csumAt = ipProtoUDP, udpCsumOff
		binary.BigEndian.PutUint16(l4[4:], uint16(l4len))
	} else {
		proto, csumAt = ipProtoTCP, tcpCsumOff
		binary.BigEndian.PutUint32(l4[4:], s.seq+uint32(s.sent))
		if !last {
			l4[13] &^= tcpFlagFIN | tcpFlagPSH
		}
		if s.idx > 0 {
			l4[13] &^= tcpFlagCWR
		}
	}
	l4[csumAt], l4[csumAt+1] = 0, 0
	sum += uint64(proto) + uint64(l4len)
	c := ^foldChecksum(checksumAdd(l4, sum))
	if c == 0 && s.udp {
		c = 0xffff
	}
	l4[csumAt], l4[csumAt+1] = byte(c>>8), byte(c)

	s.sent += chunk
	s.idx++
	return n
}
