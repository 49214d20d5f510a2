package topo

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// twoVMs builds vm1 --veth-- sw(br0) --veth-- vm2 with hairpin on p1.
func twoVMs(t *testing.T, tp *Topo) (vm1, vm2, sw *NS) {
	t.Helper()
	var err error
	vm1, err = tp.NewNS("vm1")
	must(t, err)
	vm2, err = tp.NewNS("vm2")
	must(t, err)
	sw, err = tp.NewNS("sw")
	must(t, err)
	must(t, VethPair(vm1, "eth0", sw, "p1"))
	must(t, VethPair(vm2, "eth0", sw, "p2"))
	must(t, Bridge(sw, "br0", Port{Name: "p1", Hairpin: true}, Port{Name: "p2"}))
	must(t, AddrAdd(vm1, "eth0", "10.77.0.1/24"))
	must(t, AddrAdd(vm2, "eth0", "10.77.0.2/24"))
	return vm1, vm2, sw
}

func TestBridgePing(t *testing.T) {
	tp := New(t)
	vm1, vm2, sw := twoVMs(t, tp)
	must(t, Ping(vm1, "10.77.0.1", "10.77.0.2", 3*time.Second))
	p, err := NewPinger(vm2, "10.77.0.2", "10.77.0.1")
	must(t, err)
	n, err := p.Count(5, 20*time.Millisecond, time.Second)
	must(t, err)
	if n != 5 {
		t.Fatalf("got %d of 5 echo replies", n)
	}
	// No reply from an address nobody has.
	if err := Ping(vm1, "10.77.0.1", "10.77.0.99", 300*time.Millisecond); !errors.Is(err, ErrTimeout) {
		t.Fatalf("ping to absent host: got %v, want timeout", err)
	}
	// Bridge settings we promised.
	for _, k := range []string{"iptables", "ip6tables", "arptables"} {
		v, err := sw.ReadSysctl("net.bridge.bridge-nf-call-" + k)
		if err == nil && v != "0" {
			t.Errorf("bridge-nf-call-%s = %s in switch ns", k, v)
		}
	}
	for port, want := range map[string]bool{"p1": true, "p2": false} {
		l, err := sw.Link(port)
		must(t, err)
		pi, err := sw.Netlink().LinkGetProtinfo(l)
		must(t, err)
		if pi.Hairpin != want {
			t.Errorf("%s hairpin = %v, want %v", port, pi.Hairpin, want)
		}
	}
}

// A broadcast from vm1 comes back to vm1 only because p1 has hairpin on.
func TestHairpinReflects(t *testing.T) {
	tp := New(t)
	vm1, vm2, _ := twoVMs(t, tp)
	mac1, err := vm1.MAC("eth0")
	must(t, err)
	c1, err := vm1.PacketConn("eth0")
	must(t, err)
	cap2, err := vm2.Capture("eth0")
	must(t, err)
	payload := []byte("hairpin-probe")
	frame := BuildEth(BroadcastMAC(), mac1, 0x88b5, payload)
	must(t, c1.WriteFrame(frame))
	got := false
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		f, err := c1.ReadFrame(time.Until(deadline))
		if err != nil {
			break
		}
		if bytes.Equal(f, frame) {
			got = true
			break
		}
	}
	if !got {
		t.Fatal("broadcast was not reflected back to vm1 by hairpin port p1")
	}
	if _, err := cap2.WaitFor(time.Second, func(f Frame) bool { return bytes.Equal(f.Data, frame) }); err != nil {
		t.Fatalf("vm2 did not get the broadcast: %v", err)
	}
}

// Tags the kernel strips on receive are rebuilt from PACKET_AUXDATA.
func TestCaptureRebuildsVLANTag(t *testing.T) {
	tp := New(t)
	a, err := tp.NewNS("a")
	must(t, err)
	b, err := tp.NewNS("b")
	must(t, err)
	must(t, VethPair(a, "va", b, "vb"))
	ca, err := a.PacketConn("va")
	must(t, err)
	cb, err := b.Capture("vb")
	must(t, err)
	src := MustMAC("52:54:00:00:00:01")
	dst := MustMAC("52:54:00:00:00:02")
	inner := BuildUDPv4(dst, src, net.IPv4(10, 1, 0, 1), net.IPv4(10, 1, 0, 2), 1000, 2000, []byte("x"))
	ctag := PushTag(inner, TPID8021Q, 3<<13|100)
	stag := PushTag(ctag, TPID8021AD, 200)
	must(t, ca.WriteFrame(ctag))
	must(t, ca.WriteFrame(stag))
	f, err := cb.WaitFor(2*time.Second, func(f Frame) bool { return bytes.Equal(f.Data, ctag) })
	if err != nil {
		t.Fatalf("802.1Q frame not seen with its tag: %v; frames: %+v", err, cb.Frames())
	}
	if tpid, tci, ok := OuterTag(f.Data); !ok || tpid != 0x8100 || tci&0xfff != 100 || tci>>13 != 3 {
		t.Fatalf("tag = %#x %#x %v", tpid, tci, ok)
	}
	if _, err := cb.WaitFor(2*time.Second, func(f Frame) bool { return bytes.Equal(f.Data, stag) }); err != nil {
		t.Fatalf("802.1ad+802.1Q frame not seen intact: %v", err)
	}
	frames := cb.Stop()
	for _, f := range frames {
		if f.Outgoing {
			t.Errorf("unexpected outgoing frame on vb: %x", f.Data)
		}
	}
}

func TestTapToPacketSocket(t *testing.T) {
	tp := New(t)
	hv, err := tp.NewNS("hv")
	must(t, err)
	tap, err := Tap(hv, "vnet0")
	must(t, err)
	l, err := hv.Link("vnet0")
	must(t, err)
	if _, ok := l.(*netlink.Tuntap); !ok {
		t.Fatalf("vnet0 is %T, want tuntap", l)
	}
	pc, err := hv.PacketConn("vnet0")
	must(t, err)
	vmMAC := MustMAC("52:54:00:aa:bb:cc")
	frame := PushTag(BuildEth(BroadcastMAC(), vmMAC, 0x88b5, []byte("from-vm")), TPID8021Q, 42)
	// VM -> host: write on the tun fd, read on the packet socket.
	if _, err := tap.Write(frame); err != nil {
		t.Fatal(err)
	}
	got, err := pc.ReadFrame(2 * time.Second)
	must(t, err)
	if !bytes.Equal(got, frame) {
		t.Fatalf("host read %x, want %x", got, frame)
	}
	// Host -> VM: write on the packet socket, read on the tun fd.
	back := BuildEth(vmMAC, MustMAC("52:54:00:00:00:01"), 0x88b5, []byte("to-vm"))
	must(t, pc.WriteFrame(back))
	must(t, tap.SetReadDeadline(time.Now().Add(2*time.Second)))
	buf := make([]byte, 2048)
	for {
		n, err := tap.Read(buf)
		must(t, err)
		if bytes.Equal(buf[:n], back) {
			break
		}
	}
	// Persistent: still there after the VM closes its fd.
	must(t, tap.Close())
	if _, err := hv.Link("vnet0"); err != nil {
		t.Fatalf("persistent tap gone after close: %v", err)
	}
	// Transient: gone after close.
	tt, err := TapTransient(hv, "vnet1")
	must(t, err)
	must(t, tt.Close())
	if _, err := hv.Link("vnet1"); err == nil {
		t.Fatal("transient tap still present after close")
	}
}

func TestCleanupRemovesEverything(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	tp, err := NewTopo()
	must(t, err)
	host, err := tp.Host()
	must(t, err)
	a, err := tp.NewNS("a")
	must(t, err)
	b, err := tp.NewNS("b")
	must(t, err)
	hostIf := tp.Ifname("h0")
	must(t, VethPair(host, hostIf, a, "a0"))
	must(t, VethPair(a, "a1", b, "b1"))
	must(t, Bridge(b, "br0", Port{Name: "b1", Hairpin: true}))
	_, err = Tap(b, "tap0")
	must(t, err)
	proc, err := a.Start("sleep", "300")
	must(t, err)
	out, err := a.Run(context.Background(), "ip", "-o", "link", "show")
	must(t, err)
	if !strings.Contains(string(out), "a1@") || strings.Contains(string(out), hostIf) {
		t.Fatalf("ip link in ns a shows:\n%s", out)
	}
	list, err := exec.Command("ip", "netns", "list").CombinedOutput()
	must(t, err)
	if !strings.Contains(string(list), tp.Name("a")) {
		t.Fatalf("ip netns list lacks %s:\n%s", tp.Name("a"), list)
	}

	must(t, tp.Cleanup())

	select {
	case <-proc.Done():
	default:
		t.Fatal("process still running after Cleanup")
	}
	list, err = exec.Command("ip", "netns", "list").CombinedOutput()
	must(t, err)
	if strings.Contains(string(list), tp.Prefix) {
		t.Fatalf("namespaces left behind:\n%s", list)
	}
	links, err := netlink.LinkList()
	must(t, err)
	for _, l := range links {
		if strings.HasPrefix(l.Attrs().Name, tp.Prefix) {
			t.Fatalf("host link %s left behind", l.Attrs().Name)
		}
	}
	must(t, tp.Cleanup()) // idempotent
}

func TestRunAndProc(t *testing.T) {
	tp := New(t)
	ns, err := tp.NewNS("x")
	must(t, err)
	out, err := ns.Run(context.Background(), "sh", "-c", "cat /proc/sys/net/ipv6/conf/all/disable_ipv6; echo hi >&2")
	must(t, err)
	if !strings.Contains(string(out), "1") || !strings.Contains(string(out), "hi") {
		t.Fatalf("output %q", out)
	}
	if _, err := ns.Run(context.Background(), "false"); err == nil {
		t.Fatal("Run(false) succeeded")
	}
	p, err := ns.Start("sh", "-c", "echo started; exec sleep 300")
	must(t, err)
	deadline := time.Now().Add(2 * time.Second)
	for !strings.Contains(p.Output(), "started") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(p.Output(), "started") {
		t.Fatalf("output %q", p.Output())
	}
	if err := p.Stop(2 * time.Second); err == nil {
		t.Fatal("killed sleep exited 0")
	}
}

func TestNameLimits(t *testing.T) {
	tp := &Topo{Prefix: "vs0000"}
	if got := tp.Ifname("abcdefghi"); len(got) != 15 {
		t.Fatalf("Ifname = %q", got)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("Ifname did not panic on a 16-byte name")
		}
	}()
	tp.Ifname("abcdefghij")
}

func TestBuildUDPv4Checksums(t *testing.T) {
	src := MustMAC("02:00:00:00:00:01")
	dst := MustMAC("02:00:00:00:00:02")
	f := BuildUDPv4(dst, src, net.IPv4(192, 0, 2, 1), net.IPv4(192, 0, 2, 2), 53, 5353, []byte("hello"))
	if len(f) != 60 {
		t.Fatalf("len %d, want padded 60", len(f))
	}
	if binary.BigEndian.Uint16(f[12:]) != EtherTypeIPv4 {
		t.Fatal("ethertype")
	}
	ip := f[14:]
	if Checksum(ip[:20]) != 0 {
		t.Fatal("IPv4 header checksum does not verify")
	}
	ulen := int(binary.BigEndian.Uint16(ip[24:26]))
	udp := ip[20 : 20+ulen]
	ps := sum16(ip[12:20], 0) + 17 + uint32(ulen)
	if ^fold(sum16(udp, ps)) != 0 {
		t.Fatal("UDP checksum does not verify")
	}
	tagged := PushTag(f, TPID8021Q, 5<<13|100)
	if tpid, tci, ok := OuterTag(tagged); !ok || tpid != 0x8100 || tci != 5<<13|100 {
		t.Fatalf("OuterTag = %#x %#x %v", tpid, tci, ok)
	}
	if !bytes.Equal(tagged[16:], f[12:]) || !bytes.Equal(tagged[:12], f[:12]) {
		t.Fatal("PushTag moved the wrong bytes")
	}
	if _, _, ok := OuterTag(f); ok {
		t.Fatal("untagged frame reported a tag")
	}
}

func TestRebuildTagFromAuxdata(t *testing.T) {
	// Without aux data: copy unchanged.
	fr := BuildEth(BroadcastMAC(), MustMAC("02:00:00:00:00:01"), 0x0800, nil)
	if got := rebuildTag(fr, nil); !bytes.Equal(got, fr) {
		t.Fatal("changed an untagged frame")
	}
}

func TestReapStale(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	tp, err := NewTopo()
	must(t, err)
	defer tp.Cleanup()
	// A namespace the "dead run" left behind (not registered for cleanup).
	ns, err := NewNS(tp.Name("left"))
	must(t, err)
	ns.nl.Close()
	ns.h.Close()
	host, err := HostNS()
	must(t, err)
	defer host.Close()
	hostIf := tp.Ifname("lk")
	must(t, VethPair(host, hostIf, host, tp.Ifname("lk2")))
	// Pretend the owner died.
	cmd := exec.Command("true")
	must(t, cmd.Run())
	must(t, os.WriteFile(ownerDir+"/"+tp.Prefix, []byte(strconv.Itoa(cmd.Process.Pid)), 0o644))
	must(t, ReapStale())
	if _, err := os.Stat(netnsDir + "/" + tp.Name("left")); !os.IsNotExist(err) {
		t.Fatalf("stale netns still there: %v", err)
	}
	if _, err := host.Link(hostIf); err == nil {
		t.Fatal("stale host link still there")
	}
	if _, err := os.Stat(ownerDir + "/" + tp.Prefix); !os.IsNotExist(err) {
		t.Fatal("owner record not removed")
	}
	// A live owner's things are left alone.
	tp2 := New(t)
	live, err := tp2.NewNS("live")
	must(t, err)
	must(t, ReapStale())
	if _, err := os.Stat(netnsDir + "/" + live.Name); err != nil {
		t.Fatalf("live netns reaped: %v", err)
	}
}

func TestDisableOffloads(t *testing.T) {
	tp := New(t)
	ns, err := tp.NewNS("off")
	must(t, err)
	must(t, VethPair(ns, "o0", ns, "o1"))
	txcsum := func() uint32 {
		var v uint32
		must(t, ns.Do(func() error {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return err
			}
			defer unix.Close(fd)
			ev := &ethtoolValue{Cmd: 0x16} // ETHTOOL_GTXCSUM
			req := &ifreqData{}
			copy(req.Name[:], "o0")
			req.Data = uintptr(unsafe.Pointer(ev))
			if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(req))); e != 0 {
				return e
			}
			runtime.KeepAlive(ev)
			v = ev.Data
			return nil
		}))
		return v
	}
	if txcsum() != 1 {
		t.Skip("veth starts without tx checksum offload here")
	}
	must(t, DisableOffloads(ns, "o0"))
	if got := txcsum(); got != 0 {
		t.Fatalf("tx checksum offload still %d", got)
	}
}

func TestSummarize(t *testing.T) {
	var rtts []time.Duration
	for i := 100; i >= 1; i-- { // 1..100 ms, unsorted
		rtts = append(rtts, time.Duration(i)*time.Millisecond)
	}
	l := Summarize(rtts)
	if l.N != 100 || l.Min != time.Millisecond || l.P50 != 50*time.Millisecond || l.P99 != 99*time.Millisecond || l.Max != 100*time.Millisecond {
		t.Fatalf("Summarize(1..100 ms) = %+v", l)
	}
	if l.Mean != 50500*time.Microsecond || l.Stdev < 28866*time.Microsecond || l.Stdev > 28867*time.Microsecond {
		t.Fatalf("Summarize(1..100 ms): mean %v stdev %v, want 50.5 ms and 28.866 ms", l.Mean, l.Stdev)
	}
	if rtts[0] != 100*time.Millisecond {
		t.Fatal("Summarize sorted its input in place")
	}
	if one := Summarize([]time.Duration{7}); one.P50 != 7 || one.P99 != 7 || one.Max != 7 {
		t.Fatalf("one sample: %+v", one)
	}
	if Summarize(nil).N != 0 {
		t.Fatal("empty input")
	}
}

// TestPercentile is the nearest-rank rule shared by Summarize and the
// benchmark harness (test/bench).
func TestPercentile(t *testing.T) {
	hundred := make([]int64, 100)
	for i := range hundred {
		hundred[i] = int64(i + 1)
	}
	for _, tc := range []struct {
		xs   []int64
		p    float64
		want int64
	}{
		{nil, 50, 0},
		{[]int64{7}, 50, 7},
		{[]int64{7}, 99, 7},
		{[]int64{1, 2}, 50, 1},
		{[]int64{1, 2}, 51, 2},
		{[]int64{1, 2, 3}, 50, 2},
		{[]int64{1, 2, 3, 4}, 50, 2},
		{[]int64{1, 2, 3, 4}, 75, 3},
		{[]int64{1, 2, 3, 4}, 99, 4},
		{hundred, 50, 50},
		{hundred, 99, 99},
		{hundred, 99.5, 100},
		{hundred, 100, 100},
		{hundred, 1, 1},
		{hundred, 0, 1}, // clamped to the first rank
		{hundred[:10], 99, 10},
	} {
		if got := Percentile(tc.xs, tc.p); got != tc.want {
			t.Errorf("Percentile(%d values, %v) = %d, want %d", len(tc.xs), tc.p, got, tc.want)
		}
	}
	// 500 probes: p99 is the 495th smallest, i.e. the 6th largest.
	five := make([]int64, 500)
	for i := range five {
		five[i] = int64(i)
	}
	if got := Percentile(five, 99); got != 494 {
		t.Errorf("p99 of 0..499 = %d, want 494", got)
	}
}

func TestPercentileDurations(t *testing.T) {
	if got := Percentile([]time.Duration{time.Millisecond, 2 * time.Millisecond}, 50); got != time.Millisecond {
		t.Errorf("p50 of 1, 2 ms = %v", got)
	}
	if got := Percentile([]time.Duration(nil), 99); got != 0 {
		t.Errorf("p99 of nothing = %v", got)
	}
}

// lldpad's debug log as its VDP bridge role writes it (lldpad 1.1,
// Debian 12), other lines between.
const lldpadVDPLog = `07:42:35.213462 vdp22_input:p1 input_len:53
07:42:35.213466 vdp22_station_info:p1 received VSI hit:(nil)
07:42:35.213469 vsi:0x7ffe6efad2a0 flags:0 vsi_mode:1,0 status:0 mgrid:12 id:1193047(0x123457) version:2 id_fmt:5 f985643c-8674-5aed-a391-f5777dbb02ca format:2 no:1
07:42:35.213473 check_vsi:p1 vsi_mode:1 filter_fmt:2 vsi_fmt:5 rc:1
07:42:36.000000 ptlv_2_vsi22:p2 TLV ignored
07:42:36.000001 vsi:0x7ffe6efad2a0 flags:0 vsi_mode:3,0 status:0x40 mgrid:12 id:1(0x1) version:0 id_fmt:5 x format:2 no:1
07:42:37.328893 vdp22_station_info:p2 received VSI hit:0x55ea56b3bbe0
07:42:37.328897 vsi:0x7ffe6efad2a0 flags:0 vsi_mode:4,0 status:0x20 mgrid:vswitchd id:0(0) version:0 id_fmt:5 0b6d9a3c-5e55-4f4e-9f11-2f0d5a6b7c8d format:2 no:1
07:42:37.328898 vdp22_station_info:p2 vsi_mode:3 flags:0
`

// The VSIs a bridge role received, each with its port; a TLV lldpad
// ignored (no vdp22_station_info line before it) is not one.
func TestParseVSIRecords(t *testing.T) {
	got := ParseVSIRecords(lldpadVDPLog)
	want := []VSIRecord{
		{Port: "p1", Mode: 1, Status: 0, MgrID: "12", TypeID: 1193047, Version: 2, IDFmt: 5, ID: "f985643c-8674-5aed-a391-f5777dbb02ca"},
		{Port: "p2", Mode: 4, Status: 0x20, MgrID: "vswitchd", TypeID: 0, Version: 0, IDFmt: 5, ID: "0b6d9a3c-5e55-4f4e-9f11-2f0d5a6b7c8d"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("record %d: %v, want %v", i, got[i], want[i])
		}
	}
}
