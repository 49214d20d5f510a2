//go:build linux

package afxdp

import (
	"bytes"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vswitch/vswitch/internal/ethtool"
	"github.com/vswitch/vswitch/pkg/backend"
	vtopo "github.com/vswitch/vswitch/test/topo"
)

// bridgeTopo extends topo into a test switch: B (the peer of our A) and C
// are ports of a Linux bridge, D is C's peer where the test sends raw
// frames:
//
//	D --veth-- C [bridge] B --veth-- A (AF_XDP under test)
//
// C's receive path moves the outer tag of a tagged frame into skb metadata
// (skb_vlan_untag), the bridge forwards the skb as is, and B, a veth with
// txvlan on (the default), hands it to A with the tag still out of band:
// XDP on A sees the frame without its tag unless the program asks the
// driver for it.
type bridgeTopo struct {
	*topo
	c, d       string
	cIdx, dIdx int
}

func newBridgeTopo(t testing.TB) *bridgeTopo {
	t.Helper()
	bt := &bridgeTopo{topo: newTopo(t), c: "xskc", d: "xskd"}
	inNS(t, bt.ns, func() {
		// Keep netfilter out of the bridge path (only present with br_netfilter).
		for _, f := range []string{"iptables", "ip6tables", "arptables"} {
			p := "/proc/sys/net/bridge/bridge-nf-call-" + f
			if _, err := os.Stat(p); err == nil {
				if err := os.WriteFile(p, []byte("0"), 0o644); err != nil {
					t.Fatalf("disable %s: %v", p, err)
				}
			}
		}
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "xskbr", MTU: 1600}}
		if err := netlink.LinkAdd(br); err != nil {
			t.Skipf("cannot create a bridge: %v", err)
		}
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: bt.c, MTU: 1600}, PeerName: bt.d}); err != nil {
			t.Fatalf("add veth %s/%s: %v", bt.c, bt.d, err)
		}
		for _, n := range []string{bt.b, bt.c} {
			l, err := netlink.LinkByName(n)
			if err != nil {
				t.Fatalf("find %s: %v", n, err)
			}
			if err := netlink.LinkSetMaster(l, br); err != nil {
				t.Fatalf("enslave %s: %v", n, err)
			}
		}
		for _, n := range []string{"xskbr", bt.c, bt.d} {
			l, err := netlink.LinkByName(n)
			if err != nil {
				t.Fatalf("find %s: %v", n, err)
			}
			if err := netlink.LinkSetMTU(l, 1600); err != nil {
				t.Fatalf("set %s mtu: %v", n, err)
			}
			if err := netlink.LinkSetUp(l); err != nil {
				t.Fatalf("set %s up: %v", n, err)
			}
			switch n {
			case bt.c:
				bt.cIdx = l.Attrs().Index
			case bt.d:
				bt.dIdx = l.Attrs().Index
			}
		}
		// The point of the topology: the switch-side veth transmits tags
		// out of band.
		on, err := featureActive(bt.b, "tx-vlan-hw-insert")
		if err != nil {
			t.Fatalf("read %s features: %v", bt.b, err)
		}
		if !on {
			t.Fatalf("txvlan is off on %s: the topology would not hold tags out of band", bt.b)
		}
	})
	waitOperUp(t, bt.topo, bt.b, bt.c, bt.d, bt.a)
	return bt
}

// featureActive reads one ethtool feature of ifname (calling thread's netns).
func featureActive(ifname, name string) (bool, error) { return ethtool.Enabled(ifname, name) }

// waitOperUp waits until the interfaces report operstate UP (linkwatch
// runs asynchronously; a frame sent before may be dropped).
func waitOperUp(t testing.TB, tp *topo, names ...string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for _, n := range names {
		for {
			var up bool
			inNS(t, tp.ns, func() {
				l, err := netlink.LinkByName(n)
				up = err == nil && l.Attrs().OperState == netlink.OperUp
			})
			if up {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not operationally up", n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// vlanFrames are what the test sends from D: tags with PCP and DEI bits
// set, so a TCI byte-order or masking mistake shows.
func vlanFrames() [][]byte {
	return [][]byte{
		frame(macA, macB, 1, 64, tag(0x8100, 5<<13|100)),                               // 802.1Q, VID 100, PCP 5
		frame(macA, macB, 2, 68, tag(0x88a8, 3<<13|1<<12|200), tag(0x8100, 5<<13|100)), // 802.1ad + 802.1Q
		frame(macA, macB, 3, 60),                            // untagged
		frame(macA, macB, 4, 1518, tag(0x8100, 7<<13|4094)), // full size, VID 4094
		frame([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, macB, 5, 64, tag(0x8100, 1)),
		lldpFrame(frame(macA, macB, 6, 64, tag(0x8100, 2<<13|300))), // LLDP: control frames get their tag back too
	}
}

// lldpFrame makes f, with one tag, an LLDP frame (ethertype 0x88cc behind the tag).
func lldpFrame(f []byte) []byte {
	copy(f[16:], []byte{0x88, 0xcc})
	return f
}

// TestRecvOutOfBandVLANTag: frames whose tag the kernel holds in skb
// metadata (bridge -> veth with txvlan) reach Recv byte-identical to what
// was sent, tags included; untagged frames stay untagged.
func TestRecvOutOfBandVLANTag(t *testing.T) {
	requireVLANKfunc(t)
	bt := newBridgeTopo(t)
	be := New(testOptions(t))
	q := bt.open(t, be, bt.a, backend.QueueConfig{Role: backend.RolePort})
	in := q.Info()
	t.Logf("queue on veth behind a bridge: xdp mode %q, vlan restore %v", in.XDPMode, in.VLANRestore)
	if !in.VLANRestore {
		t.Fatalf("the VLAN-restoring program is not in use on veth (kernel %s has the kfunc)", kernelRelease())
	}
	if in.XDPMode != "native" {
		t.Errorf("XDP mode %q, want native for a device-bound program", in.XDPMode)
	}
	fd := bt.packetSocket(t, bt.dIdx)
	want := vlanFrames()
	for _, f := range want {
		sendRaw(t, fd, bt.dIdx, f)
	}
	got := recvFrames(t, q, len(want), 5*time.Second)
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Errorf("frame %d differs:\n got %x\nwant %x", i, got[i], want[i])
		}
	}
}

// TestOutOfBandTaggedLinkLocal: with the tag held out of band, a
// link-local LLDP frame reaches the socket with its tag back, while a
// link-local frame that is not LLDP/ECP reaches the stack as the driver
// delivered it: no tag inserted into the bytes, the tag in metadata.
func TestOutOfBandTaggedLinkLocal(t *testing.T) {
	requireVLANKfunc(t)
	bt := newBridgeTopo(t)
	// The bridge forwards 01:80:c2:00:00:0e only with bit 14 of its
	// group_fwd_mask set.
	inNS(t, bt.ns, func() {
		mask := uint16(1 << 14)
		if err := netlink.LinkModify(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "xskbr"}, GroupFwdMask: &mask}); err != nil {
			t.Skipf("bridge group_fwd_mask: %v", err)
		}
	})
	q := bt.open(t, New(testOptions(t)), bt.a, backend.QueueConfig{Role: backend.RolePort})
	if !q.Info().VLANRestore {
		t.Fatalf("VLAN-restoring program not in use")
	}
	sniffA := bt.packetSocket(t, bt.aIdx)
	if err := unix.SetsockoptInt(sniffA, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1); err != nil {
		t.Fatalf("PACKET_AUXDATA: %v", err)
	}
	fd := bt.packetSocket(t, bt.dIdx)
	nearest := []byte{0x01, 0x80, 0xc2, 0x00, 0x00, 0x0e}
	lldp := lldpFrame(frame(nearest, macB, 1, 64, tag(0x8100, 5<<13|100)))
	other := frame(nearest, macB, 2, 64, tag(0x8100, 3<<13|200)) // ethertype 0x88b5
	sendRaw(t, fd, bt.dIdx, other)
	sendRaw(t, fd, bt.dIdx, lldp)
	got := recvFrames(t, q, 1, 5*time.Second)
	if !bytes.Equal(got[0], lldp) {
		t.Errorf("XSK got %x\nwant the LLDP frame with its tag %x", got[0], lldp)
	}

	expectStackTagged(t, sniffA, other, 3<<13|200, "link-local frame", bt.a)
}

// TestRecvOutOfBandVLANTagLostWithoutHint is the control: with the plain
// program the same topology delivers the tagged frames without their outer
// tag. It proves the topology really holds tags out of band, so the test
// above exercises the kfunc path.
func TestRecvOutOfBandVLANTagLostWithoutHint(t *testing.T) {
	bt := newBridgeTopo(t)
	opts := testOptions(t)
	opts.noVLANHint = true
	opts.keepRxVLANOffload = true
	q := bt.open(t, New(opts), bt.a, backend.QueueConfig{Role: backend.RolePort})
	if q.Info().VLANRestore {
		t.Fatalf("VLANRestore reported with the hint disabled")
	}
	fd := bt.packetSocket(t, bt.dIdx)
	want := vlanFrames()
	for _, f := range want {
		sendRaw(t, fd, bt.dIdx, f)
	}
	got := recvFrames(t, q, len(want), 5*time.Second)
	for i := range want {
		if w := stripTags(want[i]); !bytes.Equal(got[i], w) {
			t.Errorf("frame %d: got %x\nwant it without its outer tag %x", i, got[i], w)
		}
	}
}

// requireVLANKfunc skips on kernels without bpf_xdp_metadata_rx_vlan_tag
// (before 6.8) or without BTF.
func requireVLANKfunc(t testing.TB) {
	t.Helper()
	requireRoot(t)
	if _, err := resolveVLANKfunc(); err != nil {
		t.Skipf("kernel %s: %v", kernelRelease(), err)
	}
}

func kernelRelease() string {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return "?"
	}
	return unix.ByteSliceToString(u.Release[:])
}

// TestRxVLANOffloadSwitchedOffWhileAttached: the interface's rx VLAN
// offload is off while the program is attached and back on after the last
// receiving queue closes.
func TestRxVLANOffloadSwitchedOffWhileAttached(t *testing.T) {
	tp := newTopo(t)
	state := func() bool {
		var on bool
		inNS(t, tp.ns, func() {
			var err error
			if on, err = featureActive(tp.a, "rx-vlan-hw-parse"); err != nil {
				t.Fatalf("read features: %v", err)
			}
		})
		return on
	}
	if !state() {
		t.Skipf("rx-vlan-hw-parse is off on a new veth already")
	}
	q := tp.open(t, New(testOptions(t)), tp.a, backend.QueueConfig{Role: backend.RolePort})
	if state() {
		t.Errorf("rx-vlan-hw-parse still on while the program is attached")
	}
	q.Close()
	if !state() {
		t.Errorf("rx-vlan-hw-parse not restored after the last Close")
	}
}

// TestTaggedFrameWithoutSocketReachesStackOnce: when the XSKMAP has no
// socket for the queue, the redirect falls back to XDP_PASS and the
// program must undo the tag it inserted: the stack gets the frame as the
// driver delivered it (tag in metadata only), not tagged twice.
func TestTaggedFrameWithoutSocketReachesStackOnce(t *testing.T) {
	requireVLANKfunc(t)
	bt := newBridgeTopo(t)
	q := bt.open(t, New(testOptions(t)), bt.a, backend.QueueConfig{Role: backend.RolePort})
	if !q.Info().VLANRestore {
		t.Fatalf("VLAN-restoring program not in use")
	}
	unplace(t, q)
	sniffA := bt.packetSocket(t, bt.aIdx)
	if err := unix.SetsockoptInt(sniffA, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1); err != nil {
		t.Fatalf("PACKET_AUXDATA: %v", err)
	}
	fd := bt.packetSocket(t, bt.dIdx)
	want := frame(macA, macB, 1, 64, tag(0x8100, 5<<13|100))
	sendRaw(t, fd, bt.dIdx, want)

	expectStackTagged(t, sniffA, want, 5<<13|100, "tagged frame", bt.a)
}

// TestGenericModeWarnsOnce: generic XDP cannot use driver metadata, so the
// plain program runs and the loss of out-of-band tags is logged once per
// interface, not on every attach.
func TestGenericModeWarnsOnce(t *testing.T) {
	bt := newBridgeTopo(t)
	var logs vtopo.SyncBuffer
	opts := Options{XDPMode: XDPModeGeneric, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	be := New(opts)
	for i := 0; i < 2; i++ {
		q := bt.open(t, be, bt.a, backend.QueueConfig{Role: backend.RolePort})
		in := q.Info()
		if in.XDPMode != "generic" || in.VLANRestore {
			t.Fatalf("open %d: mode %q, vlan restore %v; want generic without restore", i, in.XDPMode, in.VLANRestore)
		}
		if i == 0 {
			// Report what generic XDP on a veth sees of an out-of-band tag.
			fd := bt.packetSocket(t, bt.dIdx)
			f := frame(macA, macB, 1, 64, tag(0x8100, 100))
			sendRaw(t, fd, bt.dIdx, f)
			got := recvFrames(t, q, 1, 5*time.Second)
			t.Logf("generic mode: sent %x\n received %x (tag kept: %v)", f[:18], got[0][:18], bytes.Equal(got[0], f))
		}
		q.Close()
	}
	if n := strings.Count(logs.String(), "cannot restore VLAN tags"); n != 1 {
		t.Errorf("warning logged %d times over two attaches, want once:\n%s", n, logs.String())
	}
}

// expectStackTagged waits up to 2 s on sniff (a packet socket with
// PACKET_AUXDATA) for sent, a frame from B carrying one 802.1Q tag with
// tci, and checks the stack got it as the kernel hands tags over: the
// bytes without the tag, the tag (TPID 0x8100, tci) in the aux data.
func expectStackTagged(t *testing.T, sniff int, sent []byte, tci uint16, what, ifname string) {
	t.Helper()
	buf := make([]byte, 2048)
	oob := make([]byte, 256)
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		n, oobn, _, _, err := unix.Recvmsg(sniff, buf, oob, 0)
		if err != nil || !fromB(buf[:n]) {
			continue
		}
		if w := stripTags(sent); !bytes.Equal(buf[:n], w) {
			t.Fatalf("stack got %x\nwant the %s without its tag in the bytes %x", buf[:n], what, w)
		}
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			t.Fatalf("parse control messages: %v", err)
		}
		for _, m := range msgs {
			if m.Header.Level != unix.SOL_PACKET || m.Header.Type != unix.PACKET_AUXDATA {
				continue
			}
			aux := (*unix.TpacketAuxdata)(unsafe.Pointer(&m.Data[0]))
			if aux.Status&unix.TP_STATUS_VLAN_VALID == 0 || aux.Vlan_tci != tci || aux.Vlan_tpid != 0x8100 {
				t.Fatalf("stack got tag status %#x tci %#x tpid %#x, want the tag in metadata (tci %#x, tpid 0x8100)",
					aux.Status, aux.Vlan_tci, aux.Vlan_tpid, tci)
			}
			return
		}
		t.Fatalf("no PACKET_AUXDATA with the %s", what)
	}
	t.Fatalf("the %s did not reach the stack on %s", what, ifname)
}
