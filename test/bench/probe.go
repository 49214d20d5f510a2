package bench

import (
	"encoding/binary"
	"fmt"
	"net"
	"time"

	vtopo "github.com/vswitch/vswitch/test/topo"
)

// Latency probes are minimum-size Ethernet/IPv4/UDP frames (60 bytes, 64
// on the wire, the size class of the 64-byte throughput test) with valid
// checksums. The UDP payload carries:
//
//	0  magic    "VSBP"
//	4  session  u16, random per measurement phase: late answers of an
//	            earlier phase are not counted
//	6  seq      u32, index of the probe within the phase
//	10 tx       u64, CLOCK_MONOTONIC nanoseconds when the prober sent it
//	18 (end)
//
// A request goes VM1:probeSrcPort -> VM2:probeEchoPort. The echo responder
// answers in place: it swaps the MAC addresses, the IP addresses and the
// ports. Swapping fields never changes a ones' complement sum, so both
// checksums stay valid without recomputing them, and the payload (with the
// prober's timestamp) comes back unchanged. The prober checks both
// checksums of every answer, so a switch that corrupts frames cannot score.
//
// A responder that knows when the kernel received the request also
// reports how long the request spent in VM2 (kernel receive timestamp to
// the echo's send): in the IPv4 Identification field, as microseconds
// plus one (0: not measured, as in every request; at most 65,534 us), with
// the header checksum updated to match. With the prober's own receive
// timestamp that splits a round trip into the VMs' share and the rest, the
// switch's and the links' (see prober.replyAt).
const (
	probeSrcPort  = 40001
	probeEchoPort = 7 // echo
	probeLen      = minFrame
	probePayload  = ethHdrLen + ipHdrLen + udpHdrLen // payload offset in the frame
	probeMagicOff = probePayload
	probeSessOff  = probePayload + 4
	probeSeqOff   = probePayload + 6
	probeTxOff    = probePayload + 10
	probeEnd      = probePayload + 18
)

var probeMagic = [4]byte{'V', 'S', 'B', 'P'}

// probe kinds returned by parseProbe.
const (
	probeNone    = iota // not a probe (or a malformed one)
	probeRequest        // VM1 -> VM2, to be echoed
	probeReply          // VM2 -> VM1, echoed
)

// probeAddrs are the addresses of a request; replies carry them swapped.
type probeAddrs struct {
	Src, Dst     net.HardwareAddr
	SrcIP, DstIP net.IP
}

// buildProbe writes a request template into b (at least probeLen bytes)
// with session set and seq and tx zero, and returns b[:probeLen]. stampProbe
// fills in each probe.
func buildProbe(b []byte, a probeAddrs, session uint16) ([]byte, error) {
	if len(b) < probeLen {
		return nil, fmt.Errorf("probe buffer of %d bytes, need %d", len(b), probeLen)
	}
	src4, dst4 := a.SrcIP.To4(), a.DstIP.To4()
	if src4 == nil || dst4 == nil || len(a.Src) != 6 || len(a.Dst) != 6 {
		return nil, fmt.Errorf("probe: need 6-byte MACs and IPv4 addresses")
	}
	b = b[:probeLen]
	clear(b)
	copy(b[0:6], a.Dst)
	copy(b[6:12], a.Src)
	binary.BigEndian.PutUint16(b[12:], 0x0800)
	ip := b[ethHdrLen:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], probeLen-ethHdrLen)
	binary.BigEndian.PutUint16(ip[6:], 0x4000) // DF
	ip[8] = 64
	ip[9] = 17
	copy(ip[12:16], src4)
	copy(ip[16:20], dst4)
	binary.BigEndian.PutUint16(ip[10:], ipv4Checksum(ip[:ipHdrLen]))
	udp := b[ethHdrLen+ipHdrLen:]
	binary.BigEndian.PutUint16(udp[0:], probeSrcPort)
	binary.BigEndian.PutUint16(udp[2:], probeEchoPort)
	binary.BigEndian.PutUint16(udp[4:], probeLen-ethHdrLen-ipHdrLen)
	copy(b[probeMagicOff:], probeMagic[:])
	binary.BigEndian.PutUint16(b[probeSessOff:], session)
	binary.BigEndian.PutUint16(udp[6:], udpChecksum(src4, dst4, udp))
	return b, nil
}

// stampProbe writes seq and the send time tx into a request built by
// buildProbe and updates the UDP checksum incrementally (RFC 1624).
func stampProbe(b []byte, seq uint32, tx int64) {
	udp := b[ethHdrLen+ipHdrLen:]
	old := sum16(b[probeSeqOff:probeEnd], 0)
	binary.BigEndian.PutUint32(b[probeSeqOff:], seq)
	binary.BigEndian.PutUint64(b[probeTxOff:], uint64(tx))
	nw := sum16(b[probeSeqOff:probeEnd], 0)
	c := binary.BigEndian.Uint16(udp[6:])
	// HC' = ~(~HC + ~m + m'), all in ones' complement.
	s := uint32(^c) + uint32(^fold(old)) + uint32(fold(nw))
	c = ^fold(s)
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(udp[6:], c)
}

// probeInfo is what parseProbe reads from a probe.
type probeInfo struct {
	Kind       int // probeNone, probeRequest, probeReply
	Session    uint16
	Seq        uint32
	Tx         int64 // CLOCK_MONOTONIC ns at the prober
	ChecksumOK bool  // IPv4 header and UDP checksums both valid
	// Turn is the time the request spent in VM2 as the responder
	// reported it (stampTurn); TurnOK is false when it did not.
	Turn   time.Duration
	TurnOK bool
}

// maxTurnUs is the longest turnaround the Identification field carries.
const maxTurnUs = 0xfffe

// stampTurn writes turn, the time the request spent in the responder's
// VM, into the IPv4 Identification field of a reply made by echoProbe and
// updates the header checksum incrementally (RFC 1624). Longer than
// maxTurnUs microseconds is written as maxTurnUs.
func stampTurn(frame []byte, turn time.Duration) {
	ip := frame[ethHdrLen:]
	us := min(max(turn.Microseconds(), 0), maxTurnUs)
	old := binary.BigEndian.Uint16(ip[4:])
	nw := uint16(us + 1)
	binary.BigEndian.PutUint16(ip[4:], nw)
	c := binary.BigEndian.Uint16(ip[10:])
	// HC' = ~(~HC + ~m + m')
	binary.BigEndian.PutUint16(ip[10:], ^fold(uint32(^c)+uint32(^old)+uint32(nw)))
}

// parseProbe tells whether frame (untagged, as the VM sees it) is a probe
// request or reply, reads its fields and verifies its checksums.
func parseProbe(frame []byte) probeInfo {
	if len(frame) < probeEnd || binary.BigEndian.Uint16(frame[12:]) != 0x0800 {
		return probeInfo{}
	}
	ip := frame[ethHdrLen:]
	if ip[0] != 0x45 || ip[9] != 17 || binary.BigEndian.Uint16(ip[6:])&0x3fff != 0 {
		return probeInfo{}
	}
	ipLen := int(binary.BigEndian.Uint16(ip[2:]))
	if ipLen < probeEnd-ethHdrLen || ethHdrLen+ipLen > len(frame) {
		return probeInfo{}
	}
	udp := ip[ipHdrLen:ipLen]
	if string(frame[probeMagicOff:probeMagicOff+4]) != string(probeMagic[:]) ||
		int(binary.BigEndian.Uint16(udp[4:])) != len(udp) {
		return probeInfo{}
	}
	pi := probeInfo{
		Session: binary.BigEndian.Uint16(frame[probeSessOff:]),
		Seq:     binary.BigEndian.Uint32(frame[probeSeqOff:]),
		Tx:      int64(binary.BigEndian.Uint64(frame[probeTxOff:])),
	}
	if id := binary.BigEndian.Uint16(ip[4:]); id != 0 {
		pi.Turn, pi.TurnOK = time.Duration(id-1)*time.Microsecond, true
	}
	switch sp, dp := binary.BigEndian.Uint16(udp[0:]), binary.BigEndian.Uint16(udp[2:]); {
	case sp == probeSrcPort && dp == probeEchoPort:
		pi.Kind = probeRequest
	case sp == probeEchoPort && dp == probeSrcPort:
		pi.Kind = probeReply
	default:
		return probeInfo{}
	}
	s := sum16(ip[12:20], 0) + 17 + uint32(len(udp))
	pi.ChecksumOK = fold(sum16(ip[:ipHdrLen], 0)) == 0xffff && fold(sum16(udp, s)) == 0xffff
	return pi
}

// echoProbe turns a request into its reply in place: MACs, IPs and ports
// swapped, payload kept. Both checksums stay valid (a swap does not change
// a ones' complement sum).
func echoProbe(frame []byte) {
	var t [6]byte
	copy(t[:], frame[0:6])
	copy(frame[0:6], frame[6:12])
	copy(frame[6:12], t[:])
	ip := frame[ethHdrLen:]
	copy(t[:4], ip[12:16])
	copy(ip[12:16], ip[16:20])
	copy(ip[16:20], t[:4])
	udp := ip[ipHdrLen:]
	copy(t[:2], udp[0:2])
	copy(udp[0:2], udp[2:4])
	copy(udp[2:4], t[:2])
}

// rttStats summarizes the round-trip times of one phase: topo.Summarize
// (the one nearest-rank percentile rule of this repository, shared with
// the integration tests) plus how many probes went out and came back.
type rttStats struct {
	Sent, Received int
	vtopo.Latency
}

// summarizeRTT computes rttStats from rtts (nanoseconds); sent is how many
// probes went out (sent - len(rtts) were lost).
func summarizeRTT(rtts []int64, sent int) rttStats {
	s := rttStats{Sent: sent, Received: len(rtts)}
	if len(rtts) == 0 {
		return s
	}
	ds := make([]time.Duration, len(rtts))
	for i, v := range rtts {
		ds[i] = time.Duration(v)
	}
	s.Latency = vtopo.Summarize(ds)
	return s
}
