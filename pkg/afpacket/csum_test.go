//go:build linux

package afpacket

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/vswitch/vswitch/pkg/backend"
	"golang.org/x/sys/unix"
)

// ---- building frames the way a sender with TX checksum offload does ----

type csumCase struct {
	tags    []tag
	v6      bool
	proto   byte // 6 or 17
	payload int
	ipOpts  int // IPv4 option bytes (multiple of 4)
	pad     int // Ethernet padding after the IP datagram (nonzero bytes)
}

func (c csumCase) String() string {
	ip := "v4"
	if c.v6 {
		ip = "v6"
	}
	l4 := "udp"
	if c.proto == ipProtoTCP {
		l4 = "tcp"
	}
	return fmt.Sprintf("%s/%s/tags%d/len%d/opt%d/pad%d", l4, ip, len(c.tags), c.payload, c.ipOpts, c.pad)
}

// refSum is a plain RFC 1071 16-bit one's-complement sum, written
// differently from checksumAdd on purpose (reference for the tests).
func refSum(b []byte, s uint32) uint32 {
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	return s
}

func refFold(s uint32) uint16 {
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

// pseudoSum returns the (unfolded) pseudo-header sum of an IP header.
func pseudoSum(ip []byte, v6 bool, proto byte, l4len int) uint32 {
	var s uint32
	if v6 {
		s = refSum(ip[8:40], 0)
	} else {
		s = refSum(ip[12:20], 0)
	}
	return s + uint32(proto) + uint32(l4len)
}

// buildPartial builds the frame and returns it with the L4 offset and
// length. The checksum field holds the folded pseudo-header sum (not
// complemented), as the kernel leaves it for CHECKSUM_PARTIAL.
func buildPartial(c csumCase, seed byte) (frame []byte, l4, l4len int) {
	f := []byte{0x02, 0xaa, 0xbb, 0xcc, 0xee, 0x01, 0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0x01}
	for _, t := range c.tags {
		f = binary.BigEndian.AppendUint16(f, t.tpid)
		f = binary.BigEndian.AppendUint16(f, t.tci)
	}
	l4hdr := 8
	if c.proto == ipProtoTCP {
		l4hdr = 20
	}
	l4len = l4hdr + c.payload
	var ip []byte
	if c.v6 {
		f = binary.BigEndian.AppendUint16(f, etherTypeIPv6)
		ip = make([]byte, 40)
		ip[0] = 0x60
		binary.BigEndian.PutUint16(ip[4:], uint16(l4len))
		ip[6] = c.proto
		ip[7] = 64
		for i := 8; i < 40; i++ {
			ip[i] = 0xf0 ^ byte(i) ^ seed
		}
	} else {
		f = binary.BigEndian.AppendUint16(f, etherTypeIPv4)
		ihl := 20 + c.ipOpts
		ip = make([]byte, ihl)
		ip[0] = 0x40 | byte(ihl/4)
		binary.BigEndian.PutUint16(ip[2:], uint16(ihl+l4len))
		ip[6] = 0x40 // DF
		ip[8] = 64
		ip[9] = c.proto
		copy(ip[12:], []byte{10, 0, seed, 1, 10, 0, 0, 2})
		for i := 20; i < ihl; i++ {
			ip[i] = 1 // NOP options
		}
		binary.BigEndian.PutUint16(ip[10:], ^refFold(refSum(ip, 0)))
	}
	f = append(f, ip...)
	l4 = len(f)
	seg := make([]byte, l4len)
	binary.BigEndian.PutUint16(seg[0:], 40000+uint16(seed))
	binary.BigEndian.PutUint16(seg[2:], 5001)
	if c.proto == ipProtoTCP {
		binary.BigEndian.PutUint32(seg[4:], 0x01020304)
		seg[12] = 5 << 4
		seg[13] = 0x18 // PSH|ACK
		binary.BigEndian.PutUint16(seg[14:], 64240)
	} else {
		binary.BigEndian.PutUint16(seg[4:], uint16(l4len))
	}
	for i := l4hdr; i < l4len; i++ {
		seg[i] = byte(i*31) ^ seed
	}
	csumAt := udpCsumOff
	if c.proto == ipProtoTCP {
		csumAt = tcpCsumOff
	}
	binary.BigEndian.PutUint16(seg[csumAt:], refFold(pseudoSum(ip, c.v6, c.proto, l4len)))
	f = append(f, seg...)
	for i := 0; i < c.pad; i++ {
		f = append(f, 0xa5)
	}
	return f, l4, l4len
}

// verifyRef checks the L4 checksum by summing pseudo-header + segment.
func verifyRef(t *testing.T, frame []byte, c csumCase, l4, l4len int) {
	t.Helper()
	ipStart := l4 - 20 - c.ipOpts
	if c.v6 {
		ipStart = l4 - 40
	}
	ip := frame[ipStart:]
	s := pseudoSum(ip, c.v6, c.proto, l4len)
	if got := refFold(refSum(frame[l4:l4+l4len], s)); got != 0xffff {
		t.Errorf("pseudo-header + segment sums to %#04x, want 0xffff", got)
	}
	if c.proto == ipProtoUDP && binary.BigEndian.Uint16(frame[l4+udpCsumOff:]) == 0 {
		t.Error("UDP checksum written as 0 (means: no checksum)")
	}
}

// verifyGopacket decodes frame with gopacket and recomputes the L4
// checksum with its serializer.
func verifyGopacket(t *testing.T, frame []byte, c csumCase) {
	t.Helper()
	p := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	if el := p.ErrorLayer(); el != nil {
		t.Fatalf("gopacket decode: %v", el.Error())
	}
	if n := len(c.tags); n > 0 {
		if got := len(p.Layers()) - 3; got < n {
			t.Fatalf("gopacket sees %d layers, want %d tags: %v", len(p.Layers()), n, p)
		}
	}
	var nl gopacket.NetworkLayer
	if c.v6 {
		nl, _ = p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
	} else {
		nl, _ = p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	}
	if nl == nil {
		t.Fatalf("no IP layer: %v", p)
	}
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{ComputeChecksums: true}
	var got, want uint16
	switch c.proto {
	case ipProtoTCP:
		tcp, _ := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if tcp == nil {
			t.Fatalf("no TCP layer: %v", p)
		}
		got = tcp.Checksum
		_ = tcp.SetNetworkLayerForChecksum(nl)
		if err := gopacket.SerializeLayers(buf, opts, tcp, gopacket.Payload(tcp.Payload)); err != nil {
			t.Fatal(err)
		}
		want = binary.BigEndian.Uint16(buf.Bytes()[tcpCsumOff:])
	default:
		udp, _ := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
		if udp == nil {
			t.Fatalf("no UDP layer: %v", p)
		}
		got = udp.Checksum
		_ = udp.SetNetworkLayerForChecksum(nl)
		if err := gopacket.SerializeLayers(buf, opts, udp, gopacket.Payload(udp.Payload)); err != nil {
			t.Fatal(err)
		}
		want = binary.BigEndian.Uint16(buf.Bytes()[udpCsumOff:])
	}
	if got != want {
		t.Errorf("checksum %#04x, gopacket computes %#04x", got, want)
	}
}

func csumCases() []csumCase {
	var cs []csumCase
	tagSets := [][]tag{nil, {{0x8100, 100}}, {{0x88a8, 10}, {0x8100, 100}}}
	for _, tags := range tagSets {
		for _, v6 := range []bool{false, true} {
			for _, proto := range []byte{ipProtoTCP, ipProtoUDP} {
				for _, pl := range []int{0, 1, 7, 18, 1000, 1459} {
					cs = append(cs, csumCase{tags: tags, v6: v6, proto: proto, payload: pl})
				}
			}
		}
	}
	cs = append(cs,
		csumCase{proto: ipProtoUDP, payload: 5, pad: 13},            // short frame padded to 60
		csumCase{proto: ipProtoTCP, payload: 0, pad: 6},             // bare ACK padded
		csumCase{proto: ipProtoTCP, payload: 3, ipOpts: 12, pad: 2}, // IHL 8
		csumCase{v6: true, proto: ipProtoUDP, payload: 3, pad: 5},   // v6 with padding
		csumCase{tags: tagSets[2], proto: ipProtoUDP, ipOpts: 4, payload: 33},
	)
	return cs
}

func TestFixL4Checksum(t *testing.T) {
	for i, c := range csumCases() {
		t.Run(c.String(), func(t *testing.T) {
			f, l4, l4len := buildPartial(c, byte(i))
			orig := append([]byte(nil), f...)
			if r := fixL4Checksum(f); r != csumFixed {
				t.Fatalf("fixL4Checksum = %d, want csumFixed", r)
			}
			verifyRef(t, f, c, l4, l4len)
			verifyGopacket(t, f, c)
			// Only the two checksum bytes may change.
			csumAt := l4 + udpCsumOff
			if c.proto == ipProtoTCP {
				csumAt = l4 + tcpCsumOff
			}
			for j := range f {
				if f[j] != orig[j] && j != csumAt && j != csumAt+1 {
					t.Fatalf("byte %d changed (%#02x -> %#02x), outside the checksum field", j, orig[j], f[j])
				}
			}
			// Idempotent: a second pass writes the same value.
			fixed := append([]byte(nil), f...)
			fixL4Checksum(f)
			if !bytes.Equal(f, fixed) {
				t.Fatal("second fix changed the frame")
			}
		})
	}
}

// A UDP datagram whose checksum computes to 0 must carry 0xffff.
func TestFixL4ChecksumUDPZero(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		c := csumCase{v6: v6, proto: ipProtoUDP, payload: 10}
		f, l4, l4len := buildPartial(c, 3)
		// Choose the last payload word so the full sum is 0xffff.
		w := l4 + l4len - 2
		binary.BigEndian.PutUint16(f[w:], 0)
		g := append([]byte(nil), f...)
		fixL4Checksum(g)
		s := ^binary.BigEndian.Uint16(g[l4+udpCsumOff:]) // sum of everything else
		if s == 0xffff {
			s = 0
		}
		binary.BigEndian.PutUint16(f[w:], 0xffff-s)
		if r := fixL4Checksum(f); r != csumFixed {
			t.Fatalf("v6=%v: not fixed", v6)
		}
		if got := binary.BigEndian.Uint16(f[l4+udpCsumOff:]); got != 0xffff {
			t.Fatalf("v6=%v: UDP checksum %#04x, want 0xffff", v6, got)
		}
		verifyRef(t, f, c, l4, l4len)
	}
}

func TestFixL4ChecksumSkips(t *testing.T) {
	udp4 := func(mut func(f []byte)) []byte {
		f, _, _ := buildPartial(csumCase{proto: ipProtoUDP, payload: 20}, 1)
		mut(f)
		return f
	}
	v6 := func(mut func(f []byte)) []byte {
		f, _, _ := buildPartial(csumCase{v6: true, proto: ipProtoTCP, payload: 20}, 1)
		mut(f)
		return f
	}
	threeTags, _, _ := buildPartial(csumCase{tags: []tag{{0x88a8, 1}, {0x8100, 2}, {0x8100, 3}}, proto: ipProtoUDP, payload: 8}, 1)
	cases := map[string][]byte{
		"empty":         {},
		"short":         {1, 2, 3},
		"arp":           ethFrame(1, nil, 0x0806, 28),
		"tagged-cut":    ethFrame(1, []tag{{0x8100, 5}}, 0x0800, 0)[:16],
		"three-tags":    threeTags,
		"v4-fragment":   udp4(func(f []byte) { f[14+6] = 0x20 }), // MF
		"v4-offset":     udp4(func(f []byte) { f[14+7] = 0x10 }),
		"v4-icmp":       udp4(func(f []byte) { f[14+9] = 1 }),
		"v4-sctp":       udp4(func(f []byte) { f[14+9] = 132 }),
		"v4-version":    udp4(func(f []byte) { f[14] = 0x65 }),
		"v4-ihl-small":  udp4(func(f []byte) { f[14] = 0x44 }),
		"v4-ihl-big":    udp4(func(f []byte) { f[14] = 0x4f }),
		"v4-total-long": udp4(func(f []byte) { binary.BigEndian.PutUint16(f[14+2:], 2000) }),
		"v4-total-ihl":  udp4(func(f []byte) { binary.BigEndian.PutUint16(f[14+2:], 19) }),
		"v4-udp-short":  udp4(func(f []byte) { binary.BigEndian.PutUint16(f[14+2:], 27) }),
		"v4-hdr-cut":    udp4(func(f []byte) {})[:30],
		"v6-hopbyhop":   v6(func(f []byte) { f[14+6] = 0 }),
		"v6-fraghdr":    v6(func(f []byte) { f[14+6] = 44 }),
		"v6-jumbo":      v6(func(f []byte) { binary.BigEndian.PutUint16(f[14+4:], 0) }),
		"v6-long":       v6(func(f []byte) { binary.BigEndian.PutUint16(f[14+4:], 41) }),
		"v6-tcp-short":  v6(func(f []byte) { binary.BigEndian.PutUint16(f[14+4:], 19) }),
		"v6-version":    v6(func(f []byte) { f[14] = 0x40 }),
	}
	for name, f := range cases {
		orig := append([]byte(nil), f...)
		if r := fixL4Checksum(f); r != csumSkipped {
			t.Errorf("%s: fixL4Checksum = %d, want csumSkipped", name, r)
		}
		if !bytes.Equal(f, orig) {
			t.Errorf("%s: skipped frame was modified", name)
		}
	}
}

// checksumAdd against the reference on every length and alignment.
func TestChecksumAddMatchesReference(t *testing.T) {
	buf := make([]byte, 300)
	for i := range buf {
		buf[i] = byte(i*151 + 7)
	}
	for n := 0; n <= len(buf); n++ {
		for _, init := range []uint64{0, 0xffff, 0xffffffffffffffff} {
			got := foldChecksum(checksumAdd(buf[:n], init))
			want := refFold(refSum(buf[:n], uint32(foldChecksum(init))))
			// 0 and 0xffff are the same number in one's complement.
			if got != want && !(got|want == 0xffff && got&want == 0) {
				t.Fatalf("len %d init %#x: %#04x, reference %#04x", n, init, got, want)
			}
		}
	}
	// All ones: many carries.
	ones := bytes.Repeat([]byte{0xff}, 1500)
	if got := foldChecksum(checksumAdd(ones, 0)); got != 0xffff {
		t.Fatalf("all-ones sum %#04x", got)
	}
}

// The ring walk completes the checksum only when the kernel says
// TP_STATUS_CSUMNOTREADY, after putting the VLAN tag back (so it parses
// the frame as it was on the wire).
func TestRingFixesPartialChecksum(t *testing.T) {
	r, q := fakeRing(1, 4, plainSlot, false)
	c := csumCase{tags: []tag{{0x8100, 100}}, proto: ipProtoTCP, payload: 100}
	tagged, l4, l4len := buildPartial(c, 9)
	stripped := append(append([]byte(nil), tagged[:12]...), tagged[16:]...) // kernel view
	plain := csumCase{proto: ipProtoUDP, payload: 30}
	untouched, _, _ := buildPartial(plain, 2)
	arp := ethFrame(3, nil, 0x0806, 28)
	writeSlots(r, q, 0, []fakePkt{
		{frame: stripped, status: unix.TP_STATUS_VLAN_VALID | unix.TP_STATUS_CSUMNOTREADY, tci: 100},
		{frame: untouched}, // partial checksum but no flag: not ours to touch
		{frame: arp, status: unix.TP_STATUS_CSUMNOTREADY},
	})
	b := backend.NewBatch(4)
	n, _, dropped := r.fill(b)
	if n != 3 || dropped != 0 {
		t.Fatalf("fill: %d frames, %d dropped", n, dropped)
	}
	got := b.Frame(0)
	if len(got) != len(tagged) || !bytes.Equal(got[:16], tagged[:16]) {
		t.Fatalf("tag not rebuilt: % x", got[:18])
	}
	verifyRef(t, got, c, l4, l4len)
	verifyGopacket(t, got, c)
	if !bytes.Equal(b.Frame(1), untouched) {
		t.Error("frame without TP_STATUS_CSUMNOTREADY was modified")
	}
	if !bytes.Equal(b.Frame(2), arp) {
		t.Error("ARP frame was modified")
	}
	if f, s := r.csumFixed.Load(), r.csumSkipped.Load(); f != 1 || s != 1 {
		t.Fatalf("csumFixed %d csumSkipped %d, want 1 and 1", f, s)
	}
	r.release(b)
}

// Arbitrary bytes: no panic, nothing written outside the frame, a skipped
// frame unchanged, a fixed one verifiable.
func FuzzFixL4Checksum(f *testing.F) {
	for i, c := range csumCases() {
		if i%5 == 0 {
			fr, _, _ := buildPartial(c, byte(i))
			f.Add(fr)
		}
	}
	f.Add(ethFrame(1, []tag{{0x8100, 1}, {0x88a8, 2}}, 0x86dd, 40))
	f.Fuzz(func(t *testing.T, data []byte) {
		const guard = 16
		buf := make([]byte, len(data)+2*guard)
		for i := range buf {
			buf[i] = 0x5a
		}
		copy(buf[guard:], data)
		frame := buf[guard : guard+len(data) : guard+len(data)]
		r := fixL4Checksum(frame)
		for i := 0; i < guard; i++ {
			if buf[i] != 0x5a || buf[len(buf)-1-i] != 0x5a {
				t.Fatal("wrote outside the frame")
			}
		}
		if r == csumSkipped {
			if !bytes.Equal(frame, data) {
				t.Fatal("skipped frame was modified")
			}
			return
		}
		diff := 0
		for i := range frame {
			if frame[i] != data[i] {
				diff++
			}
		}
		if diff > 2 {
			t.Fatalf("%d bytes changed, only the 2 checksum bytes may", diff)
		}
		// Idempotent: the written checksum verifies, so a second pass
		// produces the same bytes.
		again := append([]byte(nil), frame...)
		fixL4Checksum(again)
		if !bytes.Equal(again, frame) {
			t.Fatal("second pass changed the frame: first checksum was not valid")
		}
	})
}

func BenchmarkFixL4Checksum(b *testing.B) {
	for _, bc := range []struct {
		name string
		c    csumCase
	}{
		{"64B-udp4", csumCase{proto: ipProtoUDP, payload: 64 - 14 - 20 - 8}},
		{"64B-tcp4-vlan", csumCase{tags: []tag{{0x8100, 100}}, proto: ipProtoTCP, payload: 64 - 18 - 20 - 20}},
		{"1514B-tcp4", csumCase{proto: ipProtoTCP, payload: 1500 - 20 - 20}},
		{"1514B-tcp6", csumCase{v6: true, proto: ipProtoTCP, payload: 1500 - 40 - 20}},
		{"1518B-udp4-vlan", csumCase{tags: []tag{{0x8100, 100}}, proto: ipProtoUDP, payload: 1500 - 20 - 8}},
	} {
		f, _, _ := buildPartial(bc.c, 1)
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(f)))
			b.ReportAllocs()
			for b.Loop() {
				if fixL4Checksum(f) != csumFixed {
					b.Fatal("not fixed")
				}
			}
		})
	}
}

// With TX checksum offload on (the veth default), a UDP socket's datagram
// crosses the veth as CHECKSUM_PARTIAL: a packet socket on the peer sees the
// pseudo-header sum in the checksum field and TP_STATUS_CSUMNOTREADY in the
// ring header. The Queue must hand it over with the checksum completed.
func TestRecvCompletesPartialChecksum(t *testing.T) {
	n := newTestNet(t)
	const port = 5001
	srcMAC := "02:aa:bb:cc:dd:01" // the test-frame prefix, so collect keeps it
	n.ip("link", "set", "va", "address", srcMAC)
	n.ip("addr", "add", "10.77.0.1/24", "dev", "va")
	n.ip("neigh", "replace", "10.77.0.2", "lladdr", "02:aa:bb:cc:ee:02", "dev", "va", "nud", "permanent")
	if on, err := n.txCsum("va"); err != nil || !on {
		t.Fatalf("TX checksum offload on va: %v (err %v), want on (the veth default)", on, err)
	}
	q := n.open(smallRing(), "vb", backend.QueueConfig{Role: backend.RolePort})
	raw := n.raw("vb", true) // a plain copy of what the kernel hands packet sockets
	ch, _ := collect(q)

	sizes := []int{333, 1400, 1}
	if err := n.do(func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		to := &unix.SockaddrInet4{Port: port, Addr: [4]byte{10, 77, 0, 2}}
		for i, sz := range sizes {
			if err := unix.Sendto(fd, bytes.Repeat([]byte{byte(0x40 + i)}, sz), 0, to); err != nil {
				return fmt.Errorf("sendto %d bytes: %w", sz, err)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	isOurs := func(f []byte) bool {
		return len(f) >= 14+20+8 && binary.BigEndian.Uint16(f[12:]) == etherTypeIPv4 &&
			f[14+9] == ipProtoUDP && binary.BigEndian.Uint16(f[14+20+2:]) == port
	}
	var got [][]byte
	deadline := time.After(3 * time.Second)
	for len(got) < len(sizes) {
		select {
		case f := <-ch:
			if isOurs(f.data) {
				got = append(got, f.data)
			}
		case <-deadline:
			t.Fatalf("received %d of %d datagrams", len(got), len(sizes))
		}
	}
	for i, f := range got {
		c := csumCase{proto: ipProtoUDP, payload: sizes[i]}
		if l := binary.BigEndian.Uint16(f[14+20+4:]); int(l) != 8+sizes[i] {
			t.Fatalf("datagram %d: UDP length %d, want %d", i, l, 8+sizes[i])
		}
		verifyRef(t, f, c, 14+20, 8+sizes[i])
		verifyGopacket(t, f, c)
	}
	cs := customStats(q)
	if fixed := cs[StatChecksumsFixed]; fixed != uint64(len(sizes)) {
		t.Fatalf("%s = %d, want %d (the kernel did not flag TP_STATUS_CSUMNOTREADY?)", StatChecksumsFixed, fixed, len(sizes))
	}
	if u := cs[StatChecksumsUnfixed]; u != 0 {
		t.Fatalf("%s = %d, want 0", StatChecksumsUnfixed, u)
	}
	// The kernel really handed over partial checksums: the plain socket's
	// copy does not verify (it holds only the pseudo-header sum).
	var rawGot [][]byte
	for _, f := range raw.recvMatching(300 * time.Millisecond) {
		if isOurs(f) {
			rawGot = append(rawGot, f)
		}
	}
	if len(rawGot) != len(sizes) {
		t.Fatalf("plain packet socket saw %d datagrams, want %d", len(rawGot), len(sizes))
	}
	for i, f := range rawGot {
		l4len := 8 + sizes[i]
		s := pseudoSum(f[14:], false, ipProtoUDP, l4len)
		if refFold(refSum(f[14+20:14+20+l4len], s)) == 0xffff {
			t.Errorf("datagram %d: the plain copy already has a valid checksum: not CHECKSUM_PARTIAL", i)
		}
		if got, want := binary.BigEndian.Uint16(f[14+20+udpCsumOff:]), refFold(s); got != want {
			t.Errorf("datagram %d: plain copy checksum %#04x, want the pseudo-header sum %#04x", i, got, want)
		}
	}
}

// txCsum reports whether TX checksum offload is on (ETHTOOL_GTXCSUM).
func (n *testNet) txCsum(ifname string) (bool, error) {
	var on bool
	err := n.do(func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		v := struct{ cmd, data uint32 }{cmd: 0x16} // ETHTOOL_GTXCSUM
		var req struct {
			name [unix.IFNAMSIZ]byte
			data uintptr
			_    [16]byte
		}
		copy(req.name[:], ifname)
		req.data = uintptr(unsafe.Pointer(&v))
		_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&req)))
		runtime.KeepAlive(&v)
		if e != 0 {
			return fmt.Errorf("ETHTOOL_GTXCSUM %s: %w", ifname, e)
		}
		on = v.data != 0
		return nil
	})
	return on, err
}
