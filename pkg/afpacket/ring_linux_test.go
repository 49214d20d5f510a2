//go:build linux

package afpacket

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/vswitch/vswitch/pkg/backend"
	"golang.org/x/sys/unix"
)

func TestRebuildTag(t *testing.T) {
	// 4 bytes of headroom, then dst, src, ethertype, payload.
	frame := []byte{0xee, 0xee, 0xee, 0xee,
		1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x08, 0x00, 0x45}
	rebuildTag(frame, 4, 0x88a8, 0xa064)
	want := []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x88, 0xa8, 0xa0, 0x64, 0x08, 0x00, 0x45}
	if !bytes.Equal(frame, want) {
		t.Fatalf("got % x\nwant % x", frame, want)
	}
}

// fakeRing builds ring memory the way the kernel lays out TPACKET_V3 blocks
// (block descriptor, then tpacket3_hdr + sockaddr_ll + reserve + frame per
// packet) so the walk can be tested without root.
type fakePkt struct {
	frame  []byte // as the kernel stores it (outer tag already stripped)
	wire   int    // tp_len; 0 means len(frame)
	status uint32
	tci    uint16
	tpid   uint16
}

const fakeMac = 96 + ringReserve - 14 // TPACKET_ALIGN(68+16) + reserve - maclen

func writeBlock(mem []byte, base int, pkts []fakePkt) {
	ne := binary.NativeEndian
	ne.PutUint32(mem[base+bdBlockStatus:], unix.TP_STATUS_USER)
	ne.PutUint32(mem[base+bdNumPkts:], uint32(len(pkts)))
	ne.PutUint32(mem[base+bdFirstPkt:], 48)
	p := base + 48
	for i, k := range pkts {
		size := (fakeMac + len(k.frame) + 15) &^ 15
		next := size
		if i == len(pkts)-1 {
			next = 0
		}
		wire := k.wire
		if wire == 0 {
			wire = len(k.frame)
		}
		ne.PutUint32(mem[p+phNextOffset:], uint32(next))
		ne.PutUint32(mem[p+phSnaplen:], uint32(len(k.frame)))
		ne.PutUint32(mem[p+phLen:], uint32(wire))
		ne.PutUint32(mem[p+phStatus:], unix.TP_STATUS_USER|k.status)
		ne.PutUint16(mem[p+phMac:], fakeMac)
		ne.PutUint32(mem[p+phVlanTCI:], uint32(k.tci))
		ne.PutUint16(mem[p+phVlanTPID:], k.tpid)
		copy(mem[p+fakeMac:], k.frame)
		p += size
	}
}

func TestRingWalkAndRelease(t *testing.T) {
	const bs = 4096
	r := &rxRing{mem: make([]byte, 2*bs), blockSize: bs, nblocks: 2, maxFrame: defaultFrameSize,
		refs: make([]int32, 2), walked: make([]bool, 2)}
	plain := ethFrame(1, nil, 0x88b5, 46)
	stripped := ethFrame(2, nil, 0x88b5, 46) // kernel view of a tagged frame
	writeBlock(r.mem, 0, []fakePkt{
		{frame: plain},
		{frame: stripped, status: unix.TP_STATUS_VLAN_VALID, tci: 5<<13 | 100}, // no TPID: 0x8100
		{frame: stripped, status: unix.TP_STATUS_VLAN_VALID | unix.TP_STATUS_VLAN_TPID_VALID, tpid: 0x88a8},
	})
	writeBlock(r.mem, bs, []fakePkt{
		{frame: plain[:30], wire: 60}, // truncated: dropped
		{frame: plain},
	})
	want := [][]byte{
		plain,
		append(append(append([]byte{}, stripped[:12]...), 0x81, 0x00, 0xa0, 0x64), stripped[12:]...),
		append(append(append([]byte{}, stripped[:12]...), 0x88, 0xa8, 0x00, 0x00), stripped[12:]...),
		plain,
	}

	b1, b2 := backend.NewBatch(2), backend.NewBatch(4)
	n, _, dropped := r.fill(b1)
	if n != 2 || dropped != 0 {
		t.Fatalf("fill 1: %d frames, %d dropped", n, dropped)
	}
	n, _, dropped = r.fill(b2)
	if n != 2 || dropped != 1 {
		t.Fatalf("fill 2: %d frames, %d dropped; want 2, 1", n, dropped)
	}
	got := [][]byte{b1.Frame(0), b1.Frame(1), b2.Frame(0), b2.Frame(1)}
	offs := []int{b1.Off[0], b1.Off[1], b2.Off[0], b2.Off[1]}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Errorf("frame %d:\n got % x\nwant % x", i, got[i], want[i])
		}
		if offs[i] < backend.Headroom {
			t.Errorf("frame %d: Off %d < Headroom", i, offs[i])
		}
	}
	if r.blockStatus(0) != unix.TP_STATUS_USER || r.blockStatus(1) != unix.TP_STATUS_USER {
		t.Fatal("a block went back to the kernel while its frames are outstanding")
	}
	if r.ready() {
		t.Fatal("ready with both blocks walked")
	}
	r.release(b1)
	if r.blockStatus(0) != unix.TP_STATUS_USER {
		t.Fatal("block 0 returned while batch 2 still holds one of its frames")
	}
	r.release(b2)
	if r.blockStatus(0) != unix.TP_STATUS_KERNEL || r.blockStatus(1) != unix.TP_STATUS_KERNEL {
		t.Fatal("blocks not returned after all frames were released")
	}
	if r.outstanding.Load() != 0 {
		t.Fatalf("outstanding = %d", r.outstanding.Load())
	}
	// The walk wrapped around to block 0 again.
	if r.cur != 0 || r.open {
		t.Fatalf("cursor at block %d (open %v), want 0 closed", r.cur, r.open)
	}
}

func TestRingOversizeDropped(t *testing.T) {
	const bs = 4096
	r := &rxRing{mem: make([]byte, bs), blockSize: bs, nblocks: 1, maxFrame: 100,
		refs: make([]int32, 1), walked: make([]bool, 1)}
	writeBlock(r.mem, 0, []fakePkt{
		{frame: ethFrame(1, nil, 0x88b5, 90)},                                            // 104 bytes > 100
		{frame: ethFrame(2, nil, 0x88b5, 82), status: unix.TP_STATUS_VLAN_VALID, tci: 1}, // 96+4
	})
	b := backend.NewBatch(4)
	n, _, dropped := r.fill(b)
	if n != 1 || dropped != 1 || b.Len[0] != 100 {
		t.Fatalf("fill: %d frames (len %d), %d dropped; want 1 (len 100), 1", n, b.Len[0], dropped)
	}
	r.release(b)
	if r.blockStatus(0) != unix.TP_STATUS_KERNEL {
		t.Fatal("block not returned")
	}
}
