//go:build linux

package afxdp

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"github.com/vswitch/vswitch/internal/ethtool"
	"github.com/vswitch/vswitch/internal/rxwait"
	"golang.org/x/sys/unix"
)

// XDP return codes.
const (
	xdpPass = 2
)

// xdp_md field offsets (struct xdp_md in include/uapi/linux/bpf.h).
const (
	mdData         = 0
	mdDataEnd      = 4
	mdRxQueueIndex = 16
)

// vlanTagKfunc is the XDP metadata kfunc that reports the VLAN tag a driver
// holds out of band (kernel 6.8+):
//
//	int bpf_xdp_metadata_rx_vlan_tag(const struct xdp_md *ctx,
//	                                 __be16 *vlan_proto, u16 *vlan_tci);
//
// It returns 0 and the outermost tag when the driver stripped one (a NIC
// with rx VLAN offload; veth when the sender's skb carried the tag in
// metadata, as a Linux bridge's does), -ENODATA when there is none and
// -EOPNOTSUPP when the driver does not implement the hint. vlan_proto is
// big endian, vlan_tci host order (PCP, DEI and VID as one u16).
const vlanTagKfunc = "bpf_xdp_metadata_rx_vlan_tag"

// Stack slots of the program (below the frame pointer).
const (
	stackVLANProto = -2 // __be16, written by the kfunc
	stackVLANTCI   = -4 // u16 host order, written by the kfunc
)

// programInstructions builds the per-interface XDP program. Both variants
// start with the same classification (classifyInstructions):
//
//	if shorter than 14 bytes                    -> deliver (a runt: the datapath counts it)
//	if dst MAC is not 01:80:c2:00:00:0x         -> deliver
//	if the ethertype, the outer one or the one behind up to two in-band
//	   tags (TPID 0x8100, 0x88a8, 0x9100), is LLDP 0x88cc or ECP 0x8940
//	                                            -> deliver
//	else                                        -> XDP_PASS, untouched
//
// so the control frames the datapath hands to the control plane (pkg/datapath
// Config.Control) reach the socket, while the other IEEE 802.1 link-local
// frames (STP, LACP, 802.1X, ...) go to the kernel stack as they would
// without us, for the host's own bridge, bonding or authenticator to see.
// (Under AF_PACKET the stack gets them too: a packet socket receives a
// copy.)
//
// With vlanKfunc == 0 (the plain program) deliver is the redirect
// (redirectInstructions):
//
//	return bpf_redirect_map(xsks, key, XDP_PASS)
//
// where key picks the socket among those of the frame's NIC queue (see
// ifaceProg.place). The XDP_PASS in the redirect flags is the action the kernel
// takes when the map has no socket there, so a queue without an XSK keeps
// working through the stack.
//
// With vlanKfunc set to the BTF ID of bpf_xdp_metadata_rx_vlan_tag in
// vmlinux (the program must then be loaded device-bound), deliver first
// asks the driver for a tag it holds out of band:
//
//	if bpf_xdp_metadata_rx_vlan_tag(ctx, &proto, &tci) != 0 -> redirect as above (no tag held)
//	if shorter than 14 bytes        -> redirect as above (a runt: the datapath counts it)
//	bpf_xdp_adjust_head(ctx, -4)    (no headroom: redirect untagged)
//	move the MACs 4 bytes toward the head;
//	write proto, htons(tci) at offset 12   // the frame as it was on the wire
//	r = bpf_redirect_map(xsks, key, XDP_PASS)
//	if r == XDP_PASS: undo the insertion (no socket on this queue:
//	    the stack must not see the tag twice, in the bytes and in metadata)
//	return r
//
// A link-local frame the classification passes is passed before the kfunc
// is asked, so the stack gets it as the driver delivered it (a tag held out
// of band stays in metadata). With a tag held out of band the frame's bytes
// start behind it, so the classification looks at the ethertype the tag
// precedes, as the datapath does once the tag is back.
//
// Loads from packet memory are in host byte order, so the classification's
// constants are built from wire bytes (wire16, wire32).
func programInstructions(m progMaps, vlanKfunc btf.TypeID) asm.Instructions {
	// R6 = ctx survives calls.
	insns := append(asm.Instructions{asm.Mov.Reg(asm.R6, asm.R1)}, classifyInstructions()...)
	if vlanKfunc == 0 {
		redirect := redirectInstructions(m, "")
		redirect[0] = redirect[0].WithSymbol("deliver")
		insns = append(insns, redirect...)
		return append(insns,
			asm.Return(),
			asm.Mov.Imm(asm.R0, xdpPass).WithSymbol("pass"),
			asm.Return(),
		)
	}
	insns = append(insns,
		asm.Mov.Reg(asm.R1, asm.R6).WithSymbol("deliver"),
		asm.StoreImm(asm.RFP, stackVLANTCI, 0, asm.Word), // proto and tci start as 0
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, stackVLANProto),
		asm.Mov.Reg(asm.R3, asm.RFP),
		asm.Add.Imm(asm.R3, stackVLANTCI),
		kfuncCall(vlanKfunc),
		asm.JNE.Imm32(asm.R0, 0, "redirect"), // int result: compare 32 bits; no tag held
		// A runt cannot take the tag back: deliver it as it is.
		asm.LoadMem(asm.R2, asm.R6, mdData, asm.Word),
		asm.LoadMem(asm.R3, asm.R6, mdDataEnd, asm.Word),
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, 14),
		asm.JGT.Reg(asm.R4, asm.R3, "redirect"),
		// Grow the head by one tag.
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Imm(asm.R2, -4),
		asm.FnXdpAdjustHead.Call(),
		asm.JNE.Imm(asm.R0, 0, "redirect"), // no headroom: deliver untagged
		asm.LoadMem(asm.R2, asm.R6, mdData, asm.Word),
		asm.LoadMem(asm.R3, asm.R6, mdDataEnd, asm.Word),
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, 18),
		asm.JGT.Reg(asm.R4, asm.R3, "pass"), // cannot happen: it had 14 bytes
		// MACs from [4,16) to [0,12), ascending (destination below source).
		asm.LoadMem(asm.R4, asm.R2, 4, asm.Word),
		asm.StoreMem(asm.R2, 0, asm.R4, asm.Word),
		asm.LoadMem(asm.R4, asm.R2, 8, asm.Word),
		asm.StoreMem(asm.R2, 4, asm.R4, asm.Word),
		asm.LoadMem(asm.R4, asm.R2, 12, asm.Word),
		asm.StoreMem(asm.R2, 8, asm.R4, asm.Word),
		// The tag: TPID as given (big endian), TCI to big endian.
		asm.LoadMem(asm.R4, asm.RFP, stackVLANProto, asm.Half),
		asm.StoreMem(asm.R2, 12, asm.R4, asm.Half),
		asm.LoadMem(asm.R4, asm.RFP, stackVLANTCI, asm.Half),
		asm.HostTo(asm.BE, asm.R4, asm.Half),
		asm.StoreMem(asm.R2, 14, asm.R4, asm.Half),
	)
	insns = append(insns, redirectInstructions(m, "_tagged")...)
	insns = append(insns,
		asm.JNE.Imm(asm.R0, xdpPass, "out"),
		// No socket on this queue: give the stack the frame as the
		// driver delivered it (tag in metadata only).
		asm.LoadMem(asm.R2, asm.R6, mdData, asm.Word),
		asm.LoadMem(asm.R3, asm.R6, mdDataEnd, asm.Word),
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, 16),
		asm.JGT.Reg(asm.R4, asm.R3, "pass"),
		// MACs from [0,12) back to [4,16), descending.
		asm.LoadMem(asm.R4, asm.R2, 8, asm.Word),
		asm.StoreMem(asm.R2, 12, asm.R4, asm.Word),
		asm.LoadMem(asm.R4, asm.R2, 4, asm.Word),
		asm.StoreMem(asm.R2, 8, asm.R4, asm.Word),
		asm.LoadMem(asm.R4, asm.R2, 0, asm.Word),
		asm.StoreMem(asm.R2, 4, asm.R4, asm.Word),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Imm(asm.R2, 4),
		asm.FnXdpAdjustHead.Call(),
		asm.Ja.Label("pass"),
		asm.Return().WithSymbol("out"),
	)
	redirect := redirectInstructions(m, "")
	redirect[0] = redirect[0].WithSymbol("redirect")
	insns = append(insns, redirect...)
	return append(insns,
		asm.Return(),
		asm.Mov.Imm(asm.R0, xdpPass).WithSymbol("pass"),
		asm.Return(),
	)
}

// progMaps are the maps a program uses and the geometry of its keys.
type progMaps struct {
	xsks  int // XSKMAP descriptor
	state int // state map descriptor (see stateMode, stateCPU)
	cpus  int // XSKMAP entries per NIC queue: the possible CPUs
}

// The state map (vsw_xsk_state) is an array map we map into memory
// (BPF_F_MMAPABLE) with a cache line per element, so that queues noted on
// different CPUs do not share one; slot i is at byte 64*i:
//
//	slot 0       steering mode: 0 by receiving CPU, 1 by MAC pair (see steerKey)
//	slot 1 + q   1 + the CPU that received NIC queue q's last frame (0: none yet)
const (
	stateSlot    = 64 // bytes per slot
	stateMode    = 0  // slot of the steering mode
	stateCPUBase = 1  // slot of NIC queue 0's receiving CPU
	stackKey     = -8
)

// redirectInstructions is the program's redirect, with ctx in R6: it
// notes the receiving CPU of the frame's NIC queue in the state map and
// returns with R0 = bpf_redirect_map(xsks, key, XDP_PASS), the key being
//
//	rx_queue_index * cpus + (mode == 0 ? cpu : hash(MAC pair) % cpus)
//
// (ifaceProg.place says which socket each key holds). sfx makes its labels unique when it appears twice.
// It uses R7 and R8 and clobbers R1-R5.
func redirectInstructions(m progMaps, sfx string) asm.Instructions {
	noted, key := "noted"+sfx, "key"+sfx
	lookup := func(label string) asm.Instructions {
		return asm.Instructions{
			asm.LoadMapPtr(asm.R1, m.state),
			asm.Mov.Reg(asm.R2, asm.RFP),
			asm.Add.Imm(asm.R2, stackKey),
			asm.FnMapLookupElem.Call(),
			asm.JEq.Imm(asm.R0, 0, label),
		}
	}
	insns := asm.Instructions{
		asm.FnGetSmpProcessorId.Call(),
		asm.Mov.Reg(asm.R7, asm.R0),
		asm.LoadMem(asm.R8, asm.R6, mdRxQueueIndex, asm.Word),
		// state[1+queue] = cpu+1
		asm.Mov.Reg(asm.R1, asm.R8),
		asm.Add.Imm(asm.R1, stateCPUBase),
		asm.StoreMem(asm.RFP, stackKey, asm.R1, asm.Word),
	}
	insns = append(insns, lookup(noted)...)
	insns = append(insns,
		// Stored only when it changed: a store per frame would bounce
		// the cache line between CPUs.
		asm.LoadMem(asm.R1, asm.R0, 0, asm.Word),
		asm.Mov.Reg(asm.R2, asm.R7),
		asm.Add.Imm(asm.R2, 1),
		asm.JEq.Reg(asm.R1, asm.R2, noted),
		asm.StoreMem(asm.R0, 0, asm.R2, asm.Word),
		asm.StoreImm(asm.RFP, stackKey, stateMode, asm.Word).WithSymbol(noted),
	)
	insns = append(insns, lookup(key)...)
	insns = append(insns,
		asm.LoadMem(asm.R1, asm.R0, 0, asm.Word),
		asm.JEq.Imm(asm.R1, 0, key),
		// By MAC pair: the 12 address bytes as three words, folded.
		asm.LoadMem(asm.R2, asm.R6, mdData, asm.Word),
		asm.LoadMem(asm.R3, asm.R6, mdDataEnd, asm.Word),
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, 12),
		asm.JGT.Reg(asm.R4, asm.R3, key), // a runt: by CPU
		asm.LoadMem(asm.R7, asm.R2, 0, asm.Word),
		asm.LoadMem(asm.R1, asm.R2, 4, asm.Word),
		asm.Xor.Reg(asm.R7, asm.R1),
		asm.LoadMem(asm.R1, asm.R2, 8, asm.Word),
		asm.Xor.Reg(asm.R7, asm.R1),
		asm.Mov.Reg(asm.R1, asm.R7),
		asm.RSh.Imm(asm.R1, 16),
		asm.Xor.Reg(asm.R7, asm.R1),
		asm.Mod.Imm(asm.R7, int32(m.cpus)),
		// key = queue*cpus + R7
		asm.Mov.Reg(asm.R2, asm.R8).WithSymbol(key),
		asm.Mul.Imm(asm.R2, int32(m.cpus)),
		asm.Add.Reg(asm.R2, asm.R7),
		asm.LoadMapPtr(asm.R1, m.xsks),
		asm.Mov.Imm(asm.R3, xdpPass),
		asm.FnRedirectMap.Call(),
	)
	return insns
}

// classifyInstructions is the programs' common start (programInstructions):
// with ctx in R6, it jumps to "deliver" for a frame the datapath must get
// and to "pass" for an IEEE 802.1 link-local frame that is neither LLDP nor
// ECP. It uses R2-R5 only.
func classifyInstructions() asm.Instructions {
	linkLocal := wire32(0x0180c200)
	lastTwoMask := wire16(0xfff0) // byte 4 == 0, high nibble of byte 5 == 0
	lldp, ecp := wire16(0x88cc), wire16(0x8940)
	tpids := []int32{wire16(0x8100), wire16(0x88a8), wire16(0x9100)} // vlan.IsTPID
	insns := asm.Instructions{
		asm.LoadMem(asm.R2, asm.R6, mdData, asm.Word),
		asm.LoadMem(asm.R3, asm.R6, mdDataEnd, asm.Word),
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, 14),
		asm.JGT.Reg(asm.R4, asm.R3, "deliver"),
		// Destination MAC 01:80:c2:00:00:0x?
		asm.LoadMem(asm.R5, asm.R2, 0, asm.Word),
		asm.JNE.Imm32(asm.R5, linkLocal, "deliver"),
		asm.LoadMem(asm.R5, asm.R2, 4, asm.Half),
		asm.And.Imm(asm.R5, lastTwoMask),
		asm.JNE.Imm(asm.R5, 0, "deliver"),
	}
	// The ethertype at 12, 16 or 20: behind zero, one or two in-band tags.
	for _, off := range []int16{12, 16, 20} {
		load := asm.LoadMem(asm.R5, asm.R2, off, asm.Half)
		if off > 12 {
			insns = append(insns,
				asm.Mov.Reg(asm.R4, asm.R2).WithSymbol(fmt.Sprintf("tag%d", off)),
				asm.Add.Imm(asm.R4, int32(off)+2),
				asm.JGT.Reg(asm.R4, asm.R3, "pass"), // truncated tag
			)
		}
		insns = append(insns,
			load,
			asm.JEq.Imm(asm.R5, lldp, "deliver"),
			asm.JEq.Imm(asm.R5, ecp, "deliver"),
		)
		if off == 20 {
			break // a third tag is more than the datapath parses
		}
		for _, t := range tpids {
			insns = append(insns, asm.JEq.Imm(asm.R5, t, fmt.Sprintf("tag%d", off+4)))
		}
		insns = append(insns, asm.Ja.Label("pass"))
	}
	return append(insns, asm.Ja.Label("pass"))
}

// wire16 and wire32 are the values a load from packet memory yields for
// the big-endian (wire order) v.
func wire16(v uint16) int32 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return int32(binary.NativeEndian.Uint16(b[:]))
}

func wire32(v uint32) int32 {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return int32(binary.NativeEndian.Uint32(b[:]))
}

// kfuncCall calls the kernel function with BTF ID id in vmlinux
// (BPF_PSEUDO_KFUNC_CALL, offset 0 = vmlinux rather than a module's BTF).
// cilium/ebpf resolves kfunc calls itself only for programs read from ELF,
// so we resolve the ID against the kernel's BTF (resolveVLANKfunc).
func kfuncCall(id btf.TypeID) asm.Instruction {
	return asm.Instruction{
		OpCode:   asm.OpCode(asm.JumpClass).SetJumpOp(asm.Call),
		Src:      asm.PseudoKfuncCall,
		Constant: int64(id),
	}
}

// resolveVLANKfunc finds bpf_xdp_metadata_rx_vlan_tag in the kernel's BTF.
func resolveVLANKfunc() (btf.TypeID, error) {
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		return 0, fmt.Errorf("load kernel BTF: %w", err)
	}
	var fn *btf.Func
	if err := spec.TypeByName(vlanTagKfunc, &fn); err != nil {
		return 0, fmt.Errorf("find kfunc %s in kernel BTF: %w", vlanTagKfunc, err)
	}
	id, err := spec.TypeID(fn)
	if err != nil {
		return 0, fmt.Errorf("BTF ID of %s: %w", vlanTagKfunc, err)
	}
	return id, nil
}

// ifaceProg is the XDP program and XSKMAP of one interface, shared by all
// receiving sockets on it and reference counted by the Backend.
type ifaceProg struct {
	key    ifKey
	ifname string
	xsks   *ebpf.Map
	stateM *ebpf.Map
	prog   *ebpf.Program
	link   link.Link
	mode   string // "native" or "generic"
	refs   int
	// vlanHint: the program re-inserts VLAN tags the driver holds out of
	// band (device-bound program calling bpf_xdp_metadata_rx_vlan_tag).
	vlanHint bool
	// vlanErr says why the VLAN-restoring program is not in use (nil when
	// it is): frames whose tag the driver holds out of band then reach
	// the socket untagged.
	vlanErr error
	// offload holds the rx VLAN offloads we switched off, restored on close.
	offload *ethtool.Restore

	queues int // NIC RX queues the maps have room for
	cpus   int // XSKMAP entries per NIC queue: the possible CPUs
	// rx: per NIC queue, its receiving sockets in ascending class
	// (Backend.mu).
	rx map[int][]*xsk
	// state is the state map's memory, mapped read-write (see stateMode);
	// unmapped by close, which runs once no receiving queue is left.
	state []byte

	// steering counts the receiving queues that wait on their own thread
	// and keeps the program's mode (state slot stateMode).
	steering rxwait.Steering
}

// newProgMaps creates the XSKMAP and the state map of an interface with
// queues RX queues: an XSKMAP entry per (queue, possible CPU).
func newProgMaps(ifname string, queues int) (xsks, state *ebpf.Map, cpus int, err error) {
	cpus, err = ebpf.PossibleCPU()
	if err != nil {
		return nil, nil, 0, fmt.Errorf("possible CPUs: %w", err)
	}
	queues = max(queues, 1)
	xsks, err = ebpf.NewMap(&ebpf.MapSpec{
		Name:       "vsw_xsks",
		Type:       ebpf.XSKMap,
		KeySize:    4,
		ValueSize:  4,
		MaxEntries: uint32(queues * cpus),
	})
	if err != nil {
		return nil, nil, 0, fmt.Errorf("create XSKMAP for %s: %w", ifname, err)
	}
	state, err = ebpf.NewMap(&ebpf.MapSpec{
		Name:       "vsw_xsk_state",
		Type:       ebpf.Array,
		KeySize:    4,
		ValueSize:  stateSlot,
		MaxEntries: uint32(stateCPUBase + queues),
		Flags:      unix.BPF_F_MMAPABLE,
	})
	if err != nil {
		xsks.Close()
		return nil, nil, 0, fmt.Errorf("create XDP state map for %s: %w", ifname, err)
	}
	return xsks, state, cpus, nil
}

// mapState maps the state map into memory.
func (p *ifaceProg) mapState() error {
	size := (stateCPUBase + p.queues) * stateSlot
	page := unix.Getpagesize()
	mem, err := unix.Mmap(p.stateM.FD(), 0, (size+page-1)/page*page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("map XDP state map of %s: %w", p.ifname, err)
	}
	p.state = mem
	p.steering.SetMode(p.slot(stateMode))
	return nil
}

// slot is the address of state slot i.
func (p *ifaceProg) slot(i int) *uint32 {
	return (*uint32)(unsafe.Pointer(&p.state[i*stateSlot]))
}

// incomingCPU is the CPU that received NIC queue q's last frame, -1 when
// none came yet. The caller keeps p open.
func (p *ifaceProg) incomingCPU(q int) int {
	if q < 0 || q >= p.queues || p.state == nil {
		return -1
	}
	return int(atomic.LoadUint32(p.slot(stateCPUBase+q))) - 1
}

// noteStreaming counts a receiving queue that starts (on) or stops
// waiting on its own thread: the program steers by MAC pair while one does
// (rxwait.Steering says why).
func (p *ifaceProg) noteStreaming(on bool) { p.steering.Note(on) }

// addSocket adds receiving socket x to its NIC queue's and points the
// queue's XSKMAP entries anew (place); on failure x is out again.
func (p *ifaceProg) addSocket(x *xsk) error {
	q := x.queueID
	i, _ := slices.BinarySearchFunc(p.rx[q], x.class, func(o *xsk, c int) int { return cmp.Compare(o.class, c) })
	p.rx[q] = slices.Insert(p.rx[q], i, x) // ascending class
	err := p.place(q)
	if err != nil {
		_ = p.removeSocket(x)
	}
	return err
}

// removeSocket takes receiving socket x from its NIC queue's and points the
// queue's XSKMAP entries anew (place).
func (p *ifaceProg) removeSocket(x *xsk) error {
	q := x.queueID
	p.rx[q] = slices.DeleteFunc(p.rx[q], func(o *xsk) bool { return o == x })
	if len(p.rx[q]) == 0 {
		delete(p.rx, q)
	}
	return p.place(q)
}

// socketFor is the index of the socket among a NIC queue's n receiving
// sockets (ascending class) that gets the frames keyed c, on an interface
// with queues NIC queues (see place).
func socketFor(c, queues, n int) int { return (c / queues) % n }

// place points NIC queue q's XSKMAP entries at its receiving sockets:
// entry q*cpus + c, for the frames the program keys c (the CPU that
// received them, or their MAC pair's hash), holds socket
// rx[q][socketFor(c, queues, len(rx[q]))]. With one socket per NIC queue
// that is every entry of the queue; with more (a veth uplink: see
// Backend.OpenQueue), the CPUs take turns, so that uplink queue i, which
// the datapath polls on CPU i (of n), gets the frames CPU i receives.
// Caller holds Backend.mu.
func (p *ifaceProg) place(q int) error {
	socks := p.rx[q]
	var errs []error
	for c := 0; c < p.cpus; c++ {
		k := uint32(q*p.cpus + c)
		if len(socks) == 0 {
			if err := p.xsks.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				errs = append(errs, err)
			}
			continue
		}
		x := socks[socketFor(c, p.queues, len(socks))]
		if err := p.xsks.Put(k, uint32(x.fd)); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("XSKMAP entries of %s queue %d: %w", p.ifname, q, err)
	}
	return nil
}

// loadProgram loads the program (not attached). With vlanKfunc set it is
// the VLAN-restoring variant, bound to ifindex: metadata kfuncs are
// implemented per driver, so the kernel only accepts them in a program
// loaded for one device (BPF_F_XDP_DEV_BOUND_ONLY), which can then be
// attached to that device only, in native mode only.
func loadProgram(ifname string, m progMaps, ifindex int, vlanKfunc btf.TypeID) (*ebpf.Program, error) {
	spec := &ebpf.ProgramSpec{
		Name:         "vsw_xsk_redir",
		Type:         ebpf.XDP,
		License:      "Dual MIT/GPL",
		Instructions: programInstructions(m, vlanKfunc),
	}
	if vlanKfunc != 0 {
		spec.Name = "vsw_xsk_vlan"
		spec.Ifindex = uint32(ifindex)
		spec.Flags = unix.BPF_F_XDP_DEV_BOUND_ONLY
	}
	prog, err := ebpf.NewProgram(spec)
	if err != nil {
		return nil, fmt.Errorf("load XDP program %s for %s: %w", spec.Name, ifname, err)
	}
	return prog, nil
}

// attachProgram loads the program and attaches it to the interface with a
// bpf_link: first the VLAN-restoring program in native mode (when
// vlanKfunc is known), then the plain program in native (driver) mode,
// then in generic (skb) mode, as mode allows; vlanErr on the result says
// why the VLAN-restoring program is not in use.
//
// A bpf_link detaches by itself when its last fd closes, so a crashed
// daemon leaves nothing behind. A program attached the old way, through
// netlink (an older build, ip link set xdp, a test), does outlive its
// loader and blocks bpf_link attachment; it is removed first. A program
// held by a live bpf_link belongs to a running process and is not touched.
func attachProgram(log *slog.Logger, ifname string, ifindex int, mode XDPMode, vlanKfunc btf.TypeID, vlanErr error) (*ifaceProg, error) {
	nl, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		return nil, fmt.Errorf("look up %s: %w", ifname, err)
	}
	if err := removeStaleProgram(log, nl); err != nil {
		return nil, err
	}
	queues := rxQueues(ifname, nl)
	xsks, state, cpus, err := newProgMaps(ifname, queues)
	if err != nil {
		return nil, err
	}
	p := &ifaceProg{ifname: ifname, xsks: xsks, stateM: state, queues: queues, cpus: cpus, rx: map[int][]*xsk{}}
	if err := p.mapState(); err != nil {
		p.close()
		return nil, err
	}
	m := progMaps{xsks: xsks.FD(), state: state.FD(), cpus: cpus}
	if mode == XDPModeGeneric && vlanErr == nil {
		vlanErr = errors.New("generic XDP mode has no driver metadata")
	}
	if vlanErr == nil && vlanKfunc == 0 {
		vlanErr = errors.New("kfunc " + vlanTagKfunc + " not resolved")
	}
	var attachErrs []error
	if vlanErr == nil {
		prog, err := loadProgram(ifname, m, ifindex, vlanKfunc)
		if err == nil {
			l, err := link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifindex, Flags: link.XDPDriverMode})
			if err == nil {
				p.prog, p.link, p.mode, p.vlanHint = prog, l, "native", true
				return p, nil
			}
			prog.Close()
			vlanErr = fmt.Errorf("attach device-bound program in native mode: %w", err)
		} else {
			vlanErr = err
		}
	}
	prog, err := loadProgram(ifname, m, ifindex, 0)
	if err != nil {
		p.close()
		return nil, err
	}
	p.prog = prog
	try := []struct {
		flags link.XDPAttachFlags
		name  string
	}{
		{link.XDPDriverMode, "native"},
		{link.XDPGenericMode, "generic"},
	}
	for _, t := range try {
		if mode == XDPModeNative && t.name != "native" || mode == XDPModeGeneric && t.name != "generic" {
			continue
		}
		l, err := link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifindex, Flags: t.flags})
		if err != nil {
			attachErrs = append(attachErrs, fmt.Errorf("%s mode: %w", t.name, err))
			continue
		}
		p.link, p.mode, p.vlanErr = l, t.name, vlanErr
		return p, nil
	}
	p.close()
	return nil, fmt.Errorf("attach XDP program to %s: %w", ifname, errors.Join(attachErrs...))
}

// removeStaleProgram detaches a netlink-attached XDP program (any mode).
func removeStaleProgram(log *slog.Logger, l netlink.Link) error {
	x := l.Attrs().Xdp
	if x == nil || !x.Attached {
		return nil
	}
	var flags []int
	switch x.AttachMode {
	case 1: // XDP_ATTACHED_DRV
		flags = []int{unix.XDP_FLAGS_DRV_MODE}
	case 2: // XDP_ATTACHED_SKB
		flags = []int{unix.XDP_FLAGS_SKB_MODE}
	case 3: // XDP_ATTACHED_HW
		flags = []int{unix.XDP_FLAGS_HW_MODE}
	default: // XDP_ATTACHED_MULTI
		flags = []int{unix.XDP_FLAGS_DRV_MODE, unix.XDP_FLAGS_SKB_MODE, unix.XDP_FLAGS_HW_MODE}
	}
	name := l.Attrs().Name
	log.Warn("replacing XDP program already attached to interface (stale from a crash or another tool)",
		"interface", name, "prog_id", x.ProgId, "attach_mode", x.AttachMode)
	for _, f := range flags {
		if err := netlink.LinkSetXdpFdWithFlags(l, -1, f); err != nil {
			if errors.Is(err, unix.EBUSY) {
				return fmt.Errorf("interface %s has XDP program %d held by a live bpf_link (another vswitchd or XDP tool is running): %w", name, x.ProgId, err)
			}
			if len(flags) == 1 {
				return fmt.Errorf("detach stale XDP program %d from %s: %w", x.ProgId, name, err)
			}
		}
	}
	return nil
}

func (p *ifaceProg) close() {
	if p.offload != nil {
		_ = p.offload.Restore()
		p.offload = nil
	}
	if p.link != nil {
		_ = p.link.Close()
		p.link = nil
	}
	if p.prog != nil {
		_ = p.prog.Close()
		p.prog = nil
	}
	if p.xsks != nil {
		_ = p.xsks.Close()
		p.xsks = nil
	}
	if p.state != nil {
		p.steering.SetMode(nil)
		_ = unix.Munmap(p.state)
		p.state = nil
	}
	if p.stateM != nil {
		_ = p.stateM.Close()
		p.stateM = nil
	}
}
