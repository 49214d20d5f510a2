//go:build linux

package afpacket

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/vswitch/vswitch/pkg/backend"
	"golang.org/x/sys/unix"
)

type gsoCase struct {
	csumCase
	mss   int
	flags byte // TCP flags of the super-frame
}

func (c gsoCase) String() string {
	return fmt.Sprintf("%s/mss%d/flags%02x", c.csumCase, c.mss, c.flags)
}

func (c gsoCase) gsoType() uint8 {
	switch {
	case c.proto == ipProtoUDP:
		return vnetGSOUDPL4
	case c.v6:
		return vnetGSOTCPv6
	}
	return vnetGSOTCPv4
}

// buildSuper builds a super-frame as a sender with TSO leaves it: one
// header, payload of c.payload bytes, lengths covering all of it.
func buildSuper(c gsoCase, seed byte) (frame []byte, l3, l4 int) {
	f, l4, _ := buildPartial(c.csumCase, seed)
	l3 = l4 - 20 - c.ipOpts
	if c.v6 {
		l3 = l4 - 40
	} else {
		binary.BigEndian.PutUint16(f[l3+4:], 0xfffe) // ID: wraps during segmentation
	}
	if c.proto == ipProtoTCP {
		f[l4+13] = c.flags
		binary.BigEndian.PutUint32(f[l4+4:], 0xffffff00) // seq wraps too
	}
	return f, l3, l4
}

func gsoCases() []gsoCase {
	var cs []gsoCase
	for _, tags := range [][]tag{nil, {{0x8100, 100}}, {{0x88a8, 200}, {0x8100, 100}}} {
		for _, v6 := range []bool{false, true} {
			for _, proto := range []byte{ipProtoTCP, ipProtoUDP} {
				for _, p := range []struct{ payload, mss int }{{10000, 1448}, {1448 * 3, 1448}, {65000, 1400}, {700, 1448}, {5001, 536}} {
					c := gsoCase{csumCase: csumCase{tags: tags, v6: v6, proto: proto, payload: p.payload}, mss: p.mss,
						flags: 0x80 | 0x10 | 0x08 | 0x01} // CWR ACK PSH FIN
					if !v6 && p.mss == 536 {
						c.ipOpts = 8
					}
					cs = append(cs, c)
				}
			}
		}
	}
	return cs
}

// segmentAll cuts a super-frame into copies of its segments.
func segmentAll(t testing.TB, f []byte, gsoType uint8, mss, maxFrame int) [][]byte {
	var s superFrame
	if !s.parse(f, gsoType, mss, maxFrame) {
		t.Fatalf("parse refused the super-frame")
	}
	var out [][]byte
	dst := make([]byte, maxFrame)
	for !s.done() {
		n := s.next(dst)
		out = append(out, append([]byte(nil), dst[:n]...))
		if len(out) > 1000 {
			t.Fatal("segmentation does not end")
		}
	}
	return out
}

func TestSegment(t *testing.T) {
	for i, c := range gsoCases() {
		t.Run(c.String(), func(t *testing.T) {
			f, l3, l4 := buildSuper(c, byte(i))
			orig := append([]byte(nil), f...)
			l4hdr := 8
			if c.proto == ipProtoTCP {
				l4hdr = 20
			}
			hdr := l4 + l4hdr
			payload := f[hdr:]
			segs := segmentAll(t, f, c.gsoType(), c.mss, 9000)
			if !bytes.Equal(f, orig) {
				t.Fatal("segmentation modified the super-frame")
			}
			if want := (c.payload + c.mss - 1) / c.mss; len(segs) != want {
				t.Fatalf("%d segments, want %d", len(segs), want)
			}
			var got []byte
			for k, sg := range segs {
				chunk := min(c.mss, c.payload-k*c.mss)
				if len(sg) != hdr+chunk {
					t.Fatalf("segment %d: %d bytes, want %d", k, len(sg), hdr+chunk)
				}
				if !bytes.Equal(sg[:l3], f[:l3]) {
					t.Fatalf("segment %d: L2 header (tags) differs", k)
				}
				sc := c.csumCase
				sc.payload = chunk
				sc.pad = 0
				verifyRef(t, sg, sc, l4, l4hdr+chunk)
				verifyGopacket(t, sg, sc)
				p := gopacket.NewPacket(sg, layers.LayerTypeEthernet, gopacket.Default)
				if c.v6 {
					ip := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
					if int(ip.Length) != l4hdr+chunk {
						t.Fatalf("segment %d: IPv6 payload length %d, want %d", k, ip.Length, l4hdr+chunk)
					}
				} else {
					ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
					if int(ip.Length) != len(sg)-l3 {
						t.Fatalf("segment %d: IPv4 length %d, want %d", k, ip.Length, len(sg)-l3)
					}
					if want := uint16(0xfffe + k); ip.Id != want {
						t.Fatalf("segment %d: IPv4 ID %#x, want %#x", k, ip.Id, want)
					}
					if refFold(refSum(sg[l3:l4], 0)) != 0xffff {
						t.Fatalf("segment %d: IPv4 header checksum does not verify", k)
					}
				}
				if c.proto == ipProtoTCP {
					tcp := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
					if want := uint32(0xffffff00) + uint32(k*c.mss); tcp.Seq != want {
						t.Fatalf("segment %d: seq %#x, want %#x", k, tcp.Seq, want)
					}
					last := k == len(segs)-1
					if tcp.FIN != last || tcp.PSH != last || tcp.CWR != (k == 0) || !tcp.ACK {
						t.Fatalf("segment %d/%d: FIN %v PSH %v CWR %v ACK %v", k, len(segs), tcp.FIN, tcp.PSH, tcp.CWR, tcp.ACK)
					}
					got = append(got, tcp.Payload...)
				} else {
					udp := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
					if int(udp.Length) != 8+chunk {
						t.Fatalf("segment %d: UDP length %d, want %d", k, udp.Length, 8+chunk)
					}
					got = append(got, udp.Payload...)
				}
			}
			if !bytes.Equal(got, payload) {
				t.Fatal("segment payloads do not concatenate to the super-frame's payload")
			}
		})
	}
}

func TestSegmentRefuses(t *testing.T) {
	tcp4 := gsoCase{csumCase: csumCase{proto: ipProtoTCP, payload: 5000}, mss: 1448}
	f, l3, _ := buildSuper(tcp4, 1)
	frag := append([]byte(nil), f...)
	frag[l3+6] = 0x20 // MF
	var s superFrame
	for _, c := range []struct {
		name     string
		f        []byte
		typ      uint8
		mss, max int
	}{
		{"UFO", f, vnetGSOUDP, 1448, 2040},
		{"type mismatch v6", f, vnetGSOTCPv6, 1448, 2040},
		{"type mismatch udp", f, vnetGSOUDPL4, 1448, 2040},
		{"mss 0", f, vnetGSOTCPv4, 0, 2040},
		{"mss 1 (amplification)", f, vnetGSOTCPv4, 1, 2040},
		{"mss below minimum", f, vnetGSOTCPv4, minGSOSize - 1, 2040},
		{"segment larger than frame", f, vnetGSOTCPv4, 4000, 2040},
		{"truncated", f[:len(f)-1], vnetGSOTCPv4, 1448, 2040},
		{"fragment", frag, vnetGSOTCPv4, 1448, 2040},
		{"no payload", f[:l3+40], vnetGSOTCPv4, 1448, 2040},
	} {
		if c.name == "no payload" {
			g := append([]byte(nil), c.f...)
			binary.BigEndian.PutUint16(g[l3+2:], 40)
			c.f = g
		}
		if s.parse(c.f, c.typ, c.mss, c.max) {
			t.Errorf("%s: parse accepted it", c.name)
		}
	}
	if !s.parse(f, vnetGSOTCPv4, 1448, 2040) {
		t.Fatal("control case refused")
	}
}

func FuzzSegment(f *testing.F) {
	for i, c := range gsoCases() {
		if i%7 == 0 && c.payload < 20000 {
			fr, _, _ := buildSuper(c, byte(i))
			f.Add(fr, c.gsoType(), uint16(c.mss), uint16(2040))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, typ uint8, mss, maxFrame uint16) {
		orig := append([]byte(nil), data...)
		var s superFrame
		if !s.parse(data, typ, int(mss), int(maxFrame)) {
			return
		}
		const guard = 16
		buf := make([]byte, int(maxFrame)+2*guard)
		for i := range buf {
			buf[i] = 0x5a
		}
		dst := buf[guard : guard+int(maxFrame) : guard+int(maxFrame)]
		total, segs := 0, 0
		for !s.done() {
			n := s.next(dst)
			if n > int(maxFrame) || n < s.hdrLen {
				t.Fatalf("segment of %d bytes (max %d, header %d)", n, maxFrame, s.hdrLen)
			}
			total += n - s.hdrLen
			segs++
			if segs > 70000 {
				t.Fatal("does not end")
			}
		}
		for i := 0; i < guard; i++ {
			if buf[i] != 0x5a || buf[len(buf)-1-i] != 0x5a {
				t.Fatal("wrote outside the segment buffer")
			}
		}
		if total != s.payLen {
			t.Fatalf("segments carry %d payload bytes, want %d", total, s.payLen)
		}
		if !bytes.Equal(data, orig) {
			t.Fatal("super-frame modified")
		}
	})
}

func BenchmarkSegment(b *testing.B) {
	c := gsoCase{csumCase: csumCase{proto: ipProtoTCP, payload: 65000, tags: []tag{{0x8100, 100}}}, mss: 1448}
	f, _, _ := buildSuper(c, 1)
	dst := make([]byte, 2048)
	var s superFrame
	b.SetBytes(int64(len(f)))
	b.ReportAllocs()
	for b.Loop() {
		if !s.parse(f, vnetGSOTCPv4, c.mss, 2040) {
			b.Fatal("parse")
		}
		for !s.done() {
			s.next(dst)
		}
	}
}

// A super-frame in the ring comes out as segments spread over several
// batches, in order, followed by the frame after it; its slot stays ours
// until the last segment is out, arena slots come back on Release. (In a
// real ring a super-frame this long arrives through TP_STATUS_COPY, see
// TestRingCopySlots; one that fits its slot is segmented in place.)
func TestRingSegmentsAcrossBatches(t *testing.T) {
	r, q := fakeRing(1, 2, 16<<10, true)
	r.initArena(defaultFrameSize, 8)
	c := gsoCase{csumCase: csumCase{proto: ipProtoTCP, payload: 14480}, mss: 1448, flags: 0x18}
	super, _, _ := buildSuper(c, 3)
	plain := ethFrame(1, nil, 0x88b5, 46)
	writeSlots(r, q, 0, []fakePkt{
		{frame: super, status: unix.TP_STATUS_CSUMNOTREADY, gsoType: vnetGSOTCPv4 | vnetGSOECN, gsoSize: c.mss},
		{frame: plain},
	})
	want := segmentAll(t, super, vnetGSOTCPv4, c.mss, defaultFrameSize)
	if len(want) != 10 {
		t.Fatalf("%d reference segments", len(want))
	}
	want = append(want, plain)

	var got [][]byte
	b1, b2 := backend.NewBatch(4), backend.NewBatch(4)
	n, _, dropped := r.fill(b1)
	if n != 4 || dropped != 0 || !r.pending() {
		t.Fatalf("fill 1: %d frames, %d dropped, pending %v", n, dropped, r.pending())
	}
	n, _, _ = r.fill(b2)
	if n != 4 {
		t.Fatalf("fill 2: %d frames, want 4 (8 slots)", n)
	}
	b3 := backend.NewBatch(4)
	if n, _, _ = r.fill(b3); n != 0 || r.ready() {
		t.Fatalf("fill with every slot held: %d frames, ready %v", n, r.ready())
	}
	for _, b := range []*backend.Batch{b1, b2} {
		for i := 0; i < b.N; i++ {
			if b.Off[i] < backend.Headroom || b.Meta[i]&arenaMeta == 0 {
				t.Fatalf("segment: Off %d, Meta %#x", b.Off[i], b.Meta[i])
			}
			got = append(got, append([]byte(nil), b.Frame(i)...))
		}
		r.release(b)
		b.Reset()
	}
	if r.slotStatus(0)&unix.TP_STATUS_USER == 0 {
		t.Fatal("slot returned while its super-frame is still being segmented")
	}
	for r.ready() {
		n, _, _ := r.fill(b3)
		for i := 0; i < n; i++ {
			got = append(got, append([]byte(nil), b3.Frame(i)...))
		}
		r.release(b3)
		b3.Reset()
	}
	if len(got) != len(want) {
		t.Fatalf("%d frames, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("frame %d differs", i)
		}
	}
	if r.slotStatus(0) != unix.TP_STATUS_KERNEL || r.slotStatus(1) != unix.TP_STATUS_KERNEL || r.outstanding.Load() != 0 || r.nfree != 8 {
		t.Fatalf("after release: slot status %d/%d, outstanding %d, free slots %d",
			r.slotStatus(0), r.slotStatus(1), r.outstanding.Load(), r.nfree)
	}
	if r.gsoFrames.Load() != 1 || r.gsoSegments.Load() != 10 {
		t.Fatalf("gso counters %d frames %d segments", r.gsoFrames.Load(), r.gsoSegments.Load())
	}
}

// An unsupported super-frame is dropped and counted.
func TestRingDropsUnsupportedGSO(t *testing.T) {
	r, q := fakeRing(1, 2, 16<<10, true)
	r.initArena(defaultFrameSize, 8)
	c := gsoCase{csumCase: csumCase{proto: ipProtoUDP, payload: 4000}, mss: 1400}
	super, _, _ := buildSuper(c, 3)
	writeSlots(r, q, 0, []fakePkt{
		{frame: super, gsoType: vnetGSOUDP, gsoSize: c.mss}, // UFO
		{frame: ethFrame(1, nil, 0x88b5, 46)},
	})
	b := backend.NewBatch(8)
	n, _, dropped := r.fill(b)
	if n != 1 || dropped != 1 || r.gsoDropped.Load() != 1 {
		t.Fatalf("%d frames, %d dropped, gsoDropped %d", n, dropped, r.gsoDropped.Load())
	}
	if r.slotStatus(0) != unix.TP_STATUS_KERNEL {
		t.Fatal("slot of the dropped super-frame not returned")
	}
	r.release(b)
	b.Reset()
	if r.slotStatus(1) != unix.TP_STATUS_KERNEL {
		t.Fatal("slot not returned")
	}
}

// TestRecvSegmentsTSO: kernel TCP over a veth with TSO/GSO on (the
// default) hands the port queue GSO super-frames; Recv must return only
// wire-sized frames with valid checksums whose payloads rebuild the bytes
// sent.
func TestRecvSegmentsTSO(t *testing.T) {
	n := newTestNet(t)  // the switch side: tA, the queue and the TCP server
	n2 := newTestNet(t) // the VM: tB and the TCP client
	n.ip("link", "add", "tA", "type", "veth", "peer", "name", "tB", "netns", n2.name)
	n2.ip("link", "set", "tB", "address", "02:aa:bb:cc:dd:01") // test-frame prefix: collect keeps it
	n.ip("addr", "add", "10.78.0.2/24", "dev", "tA")
	n2.ip("addr", "add", "10.78.0.1/24", "dev", "tB")
	n.ip("link", "set", "tA", "up")
	n2.ip("link", "set", "tB", "up")
	n.waitUp("tA")
	n2.waitUp("tB")
	q := n.open(&Backend{}, "tA", backend.QueueConfig{Role: backend.RolePort})
	ch, _ := collect(q)

	const size = 200 << 10
	const port = 5002
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i*7 + i>>11)
	}
	var lfd int
	if err := n.do(func() error {
		var err error
		if lfd, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0); err != nil {
			return err
		}
		if err := unix.Bind(lfd, &unix.SockaddrInet4{Port: port, Addr: [4]byte{10, 78, 0, 2}}); err != nil {
			return err
		}
		return unix.Listen(lfd, 1)
	}); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(lfd)
	srv := make(chan int, 1)
	go func() {
		fd, _, err := unix.Accept(lfd)
		if err != nil {
			srv <- -1
			return
		}
		defer unix.Close(fd)
		total := 0
		buf := make([]byte, 64<<10)
		for {
			k, err := unix.Read(fd, buf)
			if k <= 0 || err != nil {
				break
			}
			total += k
		}
		srv <- total
	}()
	if err := n2.do(func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if err := unix.Connect(fd, &unix.SockaddrInet4{Port: port, Addr: [4]byte{10, 78, 0, 2}}); err != nil {
			return fmt.Errorf("connect: %w", err)
		}
		for off := 0; off < size; {
			k, err := unix.Write(fd, data[off:])
			if err != nil {
				return fmt.Errorf("write: %w", err)
			}
			off += k
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := <-srv; got != size {
		t.Fatalf("server read %d bytes, want %d", got, size)
	}

	// Rebuild the stream from what the queue handed out.
	rebuilt := make([]byte, size)
	covered := make([]bool, size)
	var isn uint32
	haveSyn := false
	deadline := time.After(5 * time.Second)
	left := size
	for left > 0 {
		var f rxFrame
		select {
		case f = <-ch:
		case <-deadline:
			t.Fatalf("%d of %d bytes seen; custom stats %v, stats %+v", size-left, size, customStats(q), q.Stats())
		}
		d := f.data
		if len(d) < 14+20+20 || binary.BigEndian.Uint16(d[12:]) != etherTypeIPv4 || d[14+9] != ipProtoTCP {
			continue
		}
		if len(d) > 1500+18 {
			t.Fatalf("frame of %d bytes > MTU + 18", len(d))
		}
		ihl := int(d[14]&0xf) * 4
		tot := int(binary.BigEndian.Uint16(d[16:]))
		l4 := 14 + ihl
		if refFold(refSum(d[14:l4], 0)) != 0xffff {
			t.Fatal("IPv4 header checksum does not verify")
		}
		if s := pseudoSum(d[14:], false, ipProtoTCP, tot-ihl); refFold(refSum(d[l4:14+tot], s)) != 0xffff {
			t.Fatalf("TCP checksum does not verify (frame of %d bytes)", len(d))
		}
		if binary.BigEndian.Uint16(d[l4+2:]) != port {
			continue
		}
		seq := binary.BigEndian.Uint32(d[l4+4:])
		if d[l4+13]&0x02 != 0 { // SYN
			isn, haveSyn = seq+1, true
			continue
		}
		if !haveSyn {
			t.Fatal("data before the SYN")
		}
		pay := d[l4+int(d[l4+12]>>4)*4 : 14+tot]
		at := int(seq - isn)
		for i, c := range pay {
			if at+i < size && !covered[at+i] {
				covered[at+i] = true
				rebuilt[at+i] = c
				left--
			}
		}
	}
	if !bytes.Equal(rebuilt, data) {
		t.Fatal("segments do not rebuild the sent stream")
	}
	cs := customStats(q)
	if cs[StatGSOFrames] == 0 || cs[StatGSOSegments] <= cs[StatGSOFrames] {
		t.Fatalf("%s %d, %s %d: the sender did not use TSO/GSO?", StatGSOFrames, cs[StatGSOFrames], StatGSOSegments, cs[StatGSOSegments])
	}
	if cs[StatGSODropped] != 0 || q.Stats().RxOversize != 0 {
		t.Fatalf("%s %d, RxOversize %d", StatGSODropped, cs[StatGSODropped], q.Stats().RxOversize)
	}
	t.Logf("%d super-frames -> %d segments", cs[StatGSOFrames], cs[StatGSOSegments])
}
