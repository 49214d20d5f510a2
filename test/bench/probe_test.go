package bench

import (
	"bytes"
	"context"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	vtopo "github.com/vswitch/vswitch/test/topo"
)

var testProbeAddrs = probeAddrs{Src: vm1MAC, Dst: vm2MAC, SrcIP: vm1IP, DstIP: vm2IP}

func mustProbe(t testing.TB, session uint16) []byte {
	t.Helper()
	f, err := buildProbe(make([]byte, probeLen), testProbeAddrs, session)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// decodeUDP decodes f with gopacket and checks both checksums by
// re-serializing the IP and UDP layers with gopacket's own checksum code.
func decodeUDP(t *testing.T, f []byte) (*layers.Ethernet, *layers.IPv4, *layers.UDP) {
	t.Helper()
	p := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
	if el := p.ErrorLayer(); el != nil {
		t.Fatalf("decode: %v", el.Error())
	}
	eth, _ := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	udp, _ := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
	if eth == nil || ip == nil || udp == nil {
		t.Fatalf("want Ethernet/IPv4/UDP, got %v", p)
	}
	gotIP, gotUDP := ip.Checksum, udp.Checksum
	if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true},
		ip, udp, gopacket.Payload(udp.Payload)); err != nil {
		t.Fatal(err)
	}
	re := buf.Bytes()
	if want := binary.BigEndian.Uint16(re[10:]); gotIP != want {
		t.Errorf("ip checksum %#x, gopacket says %#x", gotIP, want)
	}
	if want := binary.BigEndian.Uint16(re[ipHdrLen+6:]); gotUDP != want {
		t.Errorf("udp checksum %#x, gopacket says %#x", gotUDP, want)
	}
	return eth, ip, udp
}

// TestProbeFrame checks a stamped request and its echo with gopacket's
// decoder and checksum code, and that parseProbe reads both back.
func TestProbeFrame(t *testing.T) {
	f := mustProbe(t, 0xbeef)
	if len(f) != probeLen || probeLen != 60 {
		t.Fatalf("probe of %d bytes, want 60", len(f))
	}
	for _, tc := range []struct {
		seq uint32
		tx  int64
	}{{0, 0}, {1, 1}, {499, 123456789012345}, {math.MaxUint32, math.MaxInt64}, {0x8000_0001, 1 << 62}} {
		stampProbe(f, tc.seq, tc.tx)
		eth, ip, udp := decodeUDP(t, f)
		if !bytes.Equal(eth.SrcMAC, vm1MAC) || !bytes.Equal(eth.DstMAC, vm2MAC) || !ip.SrcIP.Equal(vm1IP) || !ip.DstIP.Equal(vm2IP) {
			t.Errorf("addresses %v>%v %v>%v", eth.SrcMAC, eth.DstMAC, ip.SrcIP, ip.DstIP)
		}
		if udp.SrcPort != probeSrcPort || udp.DstPort != probeEchoPort || len(udp.Payload) != 18 || string(udp.Payload[:4]) != "VSBP" {
			t.Errorf("udp %d>%d payload %x", udp.SrcPort, udp.DstPort, udp.Payload)
		}
		if ip.Flags != layers.IPv4DontFragment || ip.TTL != 64 || int(ip.Length) != probeLen-ethHdrLen {
			t.Errorf("ip flags %v ttl %d length %d", ip.Flags, ip.TTL, ip.Length)
		}
		want := probeInfo{Kind: probeRequest, Session: 0xbeef, Seq: tc.seq, Tx: tc.tx, ChecksumOK: true}
		if got := parseProbe(f); got != want {
			t.Errorf("parse request: %+v, want %+v", got, want)
		}

		r := bytes.Clone(f)
		echoProbe(r)
		eth, ip, udp = decodeUDP(t, r)
		if !bytes.Equal(eth.SrcMAC, vm2MAC) || !bytes.Equal(eth.DstMAC, vm1MAC) || !ip.SrcIP.Equal(vm2IP) || !ip.DstIP.Equal(vm1IP) ||
			udp.SrcPort != probeEchoPort || udp.DstPort != probeSrcPort {
			t.Errorf("reply not swapped: %v>%v %v>%v %d>%d", eth.SrcMAC, eth.DstMAC, ip.SrcIP, ip.DstIP, udp.SrcPort, udp.DstPort)
		}
		want.Kind = probeReply
		if got := parseProbe(r); got != want {
			t.Errorf("parse reply: %+v, want %+v", got, want)
		}
	}
}

// TestStampProbeChecksum compares the incremental checksum update with a
// full computation for many stamps in a row on the same frame.
func TestStampProbeChecksum(t *testing.T) {
	f := mustProbe(t, 7)
	rng := rand.New(rand.NewPCG(1, 2))
	udp := f[ethHdrLen+ipHdrLen:]
	for i := 0; i < 20000; i++ {
		seq, tx := rng.Uint32(), int64(rng.Uint64()>>1)
		switch i % 4 {
		case 1:
			seq = uint32(i)
		case 2:
			tx = int64(i)
		}
		stampProbe(f, seq, tx)
		got := binary.BigEndian.Uint16(udp[6:])
		c := bytes.Clone(udp)
		c[6], c[7] = 0, 0
		if want := udpChecksum(vm1IP.To4(), vm2IP.To4(), c); got != want {
			t.Fatalf("stamp %d (seq %d tx %d): checksum %#x, full computation %#x", i, seq, tx, got, want)
		}
	}
}

func TestParseProbeRejects(t *testing.T) {
	f := mustProbe(t, 1)
	stampProbe(f, 5, 1000)
	other, err := buildFrame(frameSpec{Dst: vm2MAC, Src: vm1MAC, SrcIP: vm1IP, DstIP: vm2IP, Size: minFrame})
	if err != nil {
		t.Fatal(err)
	}
	mod := func(fn func(b []byte)) []byte { b := bytes.Clone(f); fn(b); return b }
	for name, b := range map[string][]byte{
		"throughput frame": other,
		"truncated":        f[:probeEnd-1],
		"empty":            nil,
		"arp":              mod(func(b []byte) { b[12], b[13] = 0x08, 0x06 }),
		"tagged":           append(append(bytes.Clone(f[:12]), 0x81, 0x00, 0x00, 100), f[12:]...),
		"tcp":              mod(func(b []byte) { b[ethHdrLen+9] = 6 }),
		"ip options":       mod(func(b []byte) { b[ethHdrLen] = 0x46 }),
		"fragment":         mod(func(b []byte) { b[ethHdrLen+6] |= 0x20 }),
		"other port":       mod(func(b []byte) { b[ethHdrLen+ipHdrLen+3] = 9 }),
		"bad magic":        mod(func(b []byte) { b[probeMagicOff] = 'X' }),
		"bad udp length":   mod(func(b []byte) { b[ethHdrLen+ipHdrLen+5]++ }),
		"ip length beyond": mod(func(b []byte) { b[ethHdrLen+3] += 10 }),
	} {
		if pi := parseProbe(b); pi.Kind != probeNone {
			t.Errorf("%s: parsed as %+v", name, pi)
		}
	}
	// Corruption keeps the kind but fails the checksums.
	for name, b := range map[string][]byte{
		"payload bit":   mod(func(b []byte) { b[probeTxOff+7] ^= 1 }),
		"ip ttl":        mod(func(b []byte) { b[ethHdrLen+8]-- }),
		"udp checksum":  mod(func(b []byte) { b[ethHdrLen+ipHdrLen+6] ^= 0x80 }),
		"ip address":    mod(func(b []byte) { b[ethHdrLen+15] ^= 1 }),
		"zero checksum": mod(func(b []byte) { b[ethHdrLen+ipHdrLen+6], b[ethHdrLen+ipHdrLen+7] = 0, 0 }),
	} {
		if pi := parseProbe(b); pi.Kind != probeRequest || pi.ChecksumOK {
			t.Errorf("%s: %+v, want a request failing its checksums", name, pi)
		}
	}
	// Trailing bytes (padding a NIC may add) are fine.
	if pi := parseProbe(append(bytes.Clone(f), 0, 0, 0, 0)); pi.Kind != probeRequest || !pi.ChecksumOK {
		t.Errorf("padded probe: %+v", pi)
	}
	if _, err := buildProbe(make([]byte, 59), testProbeAddrs, 0); err == nil {
		t.Error("built a probe into a 59-byte buffer")
	}
	if _, err := buildProbe(make([]byte, 60), probeAddrs{Src: vm1MAC, Dst: vm2MAC, SrcIP: net.ParseIP("::1"), DstIP: vm2IP}, 0); err == nil {
		t.Error("built a probe from an IPv6 address")
	}
}

// TestSummarizeRTT: the prober's summary is topo.Summarize's (one
// percentile rule for the benchmark and the integration tests) plus the
// sent and received counts.
func TestSummarizeRTT(t *testing.T) {
	s := summarizeRTT([]int64{4000, 1000, 3000, 2000}, 5)
	want := rttStats{Sent: 5, Received: 4, Latency: vtopo.Latency{N: 4, Min: time.Microsecond, P50: 2 * time.Microsecond, P99: 4 * time.Microsecond,
		Max: 4 * time.Microsecond, Mean: 2500 * time.Nanosecond, Stdev: time.Duration(math.Sqrt(1.25e6))}}
	if s != want {
		t.Errorf("summary %+v, want %+v", s, want)
	}
	if s := summarizeRTT(nil, 3); s != (rttStats{Sent: 3}) {
		t.Errorf("no answers: %+v", s)
	}
	// 500 probes: p99 is the 495th smallest, i.e. the 6th largest.
	five := make([]int64, 500)
	for i := range five {
		five[i] = int64(499 - i)
	}
	if s := summarizeRTT(five, 500); s.P99 != 494 || s.P50 != 249 || s.Min != 0 || s.Max != 499 {
		t.Errorf("0..499 ns: %+v", s)
	}
}

func TestProberReply(t *testing.T) {
	p := newProber(4, 9)
	reply := func(session uint16, seq uint32, tx int64, ok bool) probeInfo {
		return probeInfo{Kind: probeReply, Session: session, Seq: seq, Tx: tx, ChecksumOK: ok}
	}
	p.reply(reply(9, 0, 100, true), 250)
	p.reply(reply(9, 0, 100, true), 300) // duplicate
	p.reply(reply(8, 1, 100, true), 300) // earlier session
	p.reply(reply(9, 4, 100, true), 300) // out of range
	p.reply(reply(9, 2, 100, false), 300)
	p.reply(probeInfo{Kind: probeRequest, Session: 9, Seq: 3, ChecksumOK: true}, 300)
	p.reply(reply(9, 3, 500, true), 500) // same clock tick: counts as 1 ns
	if p.got.Load() != 2 || p.dup.Load() != 1 || p.stale.Load() != 2 || p.corrupt.Load() != 1 {
		t.Errorf("got %d dup %d stale %d corrupt %d", p.got.Load(), p.dup.Load(), p.stale.Load(), p.corrupt.Load())
	}
	if p.rtt[0].Load() != 150 || p.rtt[1].Load() != 0 || p.rtt[2].Load() != 0 || p.rtt[3].Load() != 1 {
		t.Errorf("rtts %d %d %d %d", p.rtt[0].Load(), p.rtt[1].Load(), p.rtt[2].Load(), p.rtt[3].Load())
	}
}

// The responder's turnaround rides in the IPv4 Identification field of
// the reply, the header checksum stays valid (checked by parseProbe and by
// gopacket's own checksum code), and the prober subtracts it and its own
// wake-up from the round trip.
func TestStampTurn(t *testing.T) {
	f := mustProbe(t, 5)
	if pi := parseProbe(f); pi.TurnOK {
		t.Fatalf("a fresh request carries a turnaround: %+v", pi)
	}
	stampProbe(f, 2, 1000)
	echoProbe(f)
	stampTurn(f, 1234*time.Microsecond+700)
	pi := parseProbe(f)
	if pi.Kind != probeReply || !pi.ChecksumOK || !pi.TurnOK || pi.Turn != 1234*time.Microsecond || pi.Seq != 2 || pi.Tx != 1000 {
		t.Fatalf("reply with a turnaround: %+v", pi)
	}
	decodeUDP(t, f)
	stampTurn(f, time.Second) // over the field's range: saturates
	if pi := parseProbe(f); !pi.ChecksumOK || pi.Turn != maxTurnUs*time.Microsecond {
		t.Errorf("a 1 s turnaround: %+v", pi)
	}
	stampTurn(f, -time.Millisecond) // clocks disagree: 0, still marked
	if pi := parseProbe(f); !pi.ChecksumOK || !pi.TurnOK || pi.Turn != 0 {
		t.Errorf("a negative turnaround: %+v", pi)
	}

	p := newProber(3, 5)
	stampTurn(f, 40*time.Microsecond)
	p.replyAt(parseProbe(f), 5000, 4900) // round trip 4000 ns: 40 us in VM2 is more than all of it
	if p.inVMs[2].Load() != 40000+100 {
		t.Errorf("time in the VMs %d ns, want 40100", p.inVMs[2].Load())
	}
	g := mustProbe(t, 5)
	stampProbe(g, 1, 1000)
	echoProbe(g) // no turnaround: the responder could not timestamp
	p.replyAt(parseProbe(g), 9000, 8000)
	if p.rtt[1].Load() != 8000 || p.inVMs[1].Load() != 0 {
		t.Errorf("answer without a turnaround: rtt %d, in VMs %d; want 8000, 0 (unknown)", p.rtt[1].Load(), p.inVMs[1].Load())
	}
}

// fakeLink echoes probes after a delay on another goroutine and drops
// every dropEvery-th one.
type fakeLink struct {
	hdr       int
	delay     time.Duration
	dropEvery int
	n         atomic.Int64
	wg        sync.WaitGroup
	p         atomic.Pointer[prober]
}

func (l *fakeLink) hdrLen() int { return l.hdr }
func (l *fakeLink) close()      {}

func (l *fakeLink) send(b []byte) error {
	if len(b) != l.hdr+probeLen {
		panic("bad buffer length")
	}
	if n := l.n.Add(1); l.dropEvery > 0 && n%int64(l.dropEvery) == 0 {
		return nil
	}
	f := bytes.Clone(b[l.hdr:])
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		time.Sleep(l.delay)
		echoProbe(f)
		if p := l.p.Load(); p != nil {
			p.reply(parseProbe(f), monoNow())
		}
	}()
	return nil
}

func (l *fakeLink) attach(p *prober) (func(), error) {
	l.p.Store(p)
	return func() { l.p.Store(nil) }, nil
}

func TestProberRun(t *testing.T) {
	l := &fakeLink{hdr: 12, delay: 3 * time.Millisecond, dropEvery: 10}
	p := newProber(40, 77)
	start := time.Now()
	res, err := p.run(context.Background(), l, mustProbe(t, 77), 5*time.Millisecond, 300*time.Millisecond)
	l.wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < 195*time.Millisecond {
		t.Errorf("40 probes 5 ms apart took %v", el)
	}
	if res.Sent != 40 || res.Received != 36 {
		t.Errorf("sent %d received %d, want 40 and 36 (every 10th dropped)", res.Sent, res.Received)
	}
	if res.Min < 3*time.Millisecond || res.P50 < res.Min || res.P99 < res.P50 || res.Max < res.P99 {
		t.Errorf("rtt min %v p50 %v p99 %v max %v, want >= 3ms and ordered", res.Min, res.P50, res.P99, res.Max)
	}
	if res.Dup != 0 || res.Stale != 0 || res.Corrupt != 0 {
		t.Errorf("dup %d stale %d corrupt %d", res.Dup, res.Stale, res.Corrupt)
	}

	// A canceled context stops the probes early.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res, err = newProber(40, 1).run(ctx, &fakeLink{}, mustProbe(t, 1), time.Millisecond, 0)
	if err == nil || res.Sent > 1 {
		t.Errorf("canceled run: sent %d, err %v", res.Sent, err)
	}
}

type countingSender struct{ n, calls int }

func (s *countingSender) sendBatch(k int) (int, error) {
	s.n += k
	s.calls++
	return k, nil
}
func (s *countingSender) close() {}

func TestPace(t *testing.T) {
	s := &countingSender{}
	stop := make(chan struct{})
	time.AfterFunc(300*time.Millisecond, func() { close(stop) })
	sent, el, err := pace(context.Background(), s, 20000, stop)
	if err != nil {
		t.Fatal(err)
	}
	rate := float64(sent) / el.Seconds()
	// A busy machine can delay the pacer (its backlog beyond 2 ms is
	// dropped), never speed it up.
	if rate > 20000*1.05 || rate < 20000*0.3 {
		t.Errorf("paced %d frames in %v: %.0f/s, want about 20000/s", sent, el, rate)
	}
	if s.calls < 100 {
		t.Errorf("%d batches in %v: want small batches every ~100 us", s.calls, el)
	}
}

// TestProbeAllocs: the per-probe work allocates nothing.
func TestProbeAllocs(t *testing.T) {
	f := mustProbe(t, 3)
	p := newProber(16, 3)
	var seq uint32
	allocs := testing.AllocsPerRun(1000, func() {
		stampProbe(f, seq%16, monoNow())
		echoProbe(f)
		stampTurn(f, 30*time.Microsecond)
		now := monoNow()
		p.replyAt(parseProbe(f), now, now-1000)
		echoProbe(f)
		seq++
	})
	if allocs != 0 {
		t.Errorf("%v allocations per probe", allocs)
	}
}

// TestSocketProber runs the packet-socket prober and echo responder over a
// bare veth pair between two namespaces, with a stream of non-probe frames
// towards the responder that its BPF filter must keep away.
func TestSocketProber(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespaces and packet sockets")
	}
	id := newID()
	var nss []*vtopo.NS
	for _, s := range []string{"-pa", "-pb"} {
		ns, err := vtopo.NewNS(id + s)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = ns.Close() })
		nss = append(nss, ns)
	}
	a, b := nss[0], nss[1]
	ctx := context.Background()
	if err := ipCmd(ctx, "-n", a.Name, "link", "add", vmIf, "address", vm1MAC.String(), "type", "veth",
		"peer", "name", vmIf, "address", vm2MAC.String(), "netns", b.Name); err != nil {
		t.Fatal(err)
	}
	for _, ns := range nss {
		if err := ipCmd(ctx, "-n", ns.Name, "link", "set", vmIf, "up"); err != nil {
			t.Fatal(err)
		}
	}
	fd, err := openProbeSocket(b, vmIf, probeEchoPort)
	if err != nil {
		t.Fatal(err)
	}
	r := &sockResponder{fd: fd, done: make(chan struct{})}
	go r.run()
	defer r.stop()
	fd, err = openProbeSocket(a, vmIf, probeSrcPort)
	if err != nil {
		t.Fatal(err)
	}
	link := &sockLink{fd: fd}
	defer link.close()

	// Other traffic VM1 -> VM2 meanwhile.
	frame, err := buildFrame(frameSpec{Dst: vm2MAC, Src: vm1MAC, SrcIP: vm1IP, DstIP: vm2IP, Size: minFrame})
	if err != nil {
		t.Fatal(err)
	}
	bg, err := openSender(a, vmIf, frame)
	if err != nil {
		t.Fatal(err)
	}
	defer bg.close()
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() { _, _, err := pace(ctx, bg, 20000, stop); done <- err }()

	p := newProber(100, 0x1234)
	res, err := p.run(ctx, link, mustProbe(t, 0x1234), 2*time.Millisecond, 500*time.Millisecond)
	close(stop)
	if perr := <-done; perr != nil {
		t.Errorf("background stream: %v", perr)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("rtt over a bare veth: min %v p50 %v p99 %v max %v, %d/%d answered", res.Min, res.P50, res.P99, res.Max, res.Received, res.Sent)
	if res.Sent != 100 || res.Received < 90 || res.Corrupt != 0 || res.Dup != 0 || res.Stale != 0 {
		t.Errorf("sent %d received %d corrupt %d dup %d stale %d", res.Sent, res.Received, res.Corrupt, res.Dup, res.Stale)
	}
	if res.Min <= 0 || res.P50 < res.Min || res.P99 < res.P50 || res.Max < res.P99 || res.P50 > 100*time.Millisecond {
		t.Errorf("rtt min %v p50 %v p99 %v max %v", res.Min, res.P50, res.P99, res.Max)
	}
	// Both ends timestamp: every answer splits into the VMs' time and the
	// rest, which is never more than the round trip.
	t.Logf("less the time in the VMs: p50 %v p99 %v max %v over %d answers", res.Net.P50, res.Net.P99, res.Net.Max, res.NetProbes)
	if res.NetProbes != res.Received || res.Net.Min <= 0 || res.Net.P50 > res.P50 || res.Net.Max > res.Max {
		t.Errorf("net of the VMs' time: %d of %d answers, min %v p50 %v max %v (round trip p50 %v max %v)",
			res.NetProbes, res.Received, res.Net.Min, res.Net.P50, res.Net.Max, res.P50, res.Max)
	}
}
