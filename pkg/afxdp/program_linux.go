//go:build linux

package afxdp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"github.com/vswitch/vswitch/internal/ethtool"
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
// With vlanKfunc == 0 (the plain program) deliver is one call:
//
//	return bpf_redirect_map(xsks, rx_queue_index, XDP_PASS)
//
// The XDP_PASS in the redirect flags is the action the kernel takes when
// the map has no socket for the queue, so a queue without an XSK keeps
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
//	r = bpf_redirect_map(xsks, rx_queue_index, XDP_PASS)
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
func programInstructions(xsksFD int, vlanKfunc btf.TypeID) asm.Instructions {
	// redirect is the plain program's deliver; ctx is in R6.
	redirect := asm.Instructions{
		// return bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS)
		asm.LoadMem(asm.R2, asm.R6, mdRxQueueIndex, asm.Word),
		asm.LoadMapPtr(asm.R1, xsksFD),
		asm.Mov.Imm(asm.R3, xdpPass),
		asm.FnRedirectMap.Call(),
		asm.Return(),
	}
	// R6 = ctx survives calls.
	insns := append(asm.Instructions{asm.Mov.Reg(asm.R6, asm.R1)}, classifyInstructions()...)
	if vlanKfunc == 0 {
		redirect[0] = redirect[0].WithSymbol("deliver")
		insns = append(insns, redirect...)
		return append(insns,
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
		// r = bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS)
		asm.LoadMem(asm.R2, asm.R6, mdRxQueueIndex, asm.Word),
		asm.LoadMapPtr(asm.R1, xsksFD),
		asm.Mov.Imm(asm.R3, xdpPass),
		asm.FnRedirectMap.Call(),
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
	redirect[0] = redirect[0].WithSymbol("redirect")
	insns = append(insns, redirect...)
	return append(insns,
		asm.Mov.Imm(asm.R0, xdpPass).WithSymbol("pass"),
		asm.Return(),
	)
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
}

// newXSKMap creates the XSKMAP of an interface.
func newXSKMap(ifname string, queues int) (*ebpf.Map, error) {
	if queues < 64 {
		queues = 64
	}
	xsks, err := ebpf.NewMap(&ebpf.MapSpec{
		Name:       "vsw_xsks",
		Type:       ebpf.XSKMap,
		KeySize:    4,
		ValueSize:  4,
		MaxEntries: uint32(queues),
	})
	if err != nil {
		return nil, fmt.Errorf("create XSKMAP for %s: %w", ifname, err)
	}
	return xsks, nil
}

// loadProgram loads the program (not attached). With vlanKfunc set it is
// the VLAN-restoring variant, bound to ifindex: metadata kfuncs are
// implemented per driver, so the kernel only accepts them in a program
// loaded for one device (BPF_F_XDP_DEV_BOUND_ONLY), which can then be
// attached to that device only, in native mode only.
func loadProgram(ifname string, xsks *ebpf.Map, ifindex int, vlanKfunc btf.TypeID) (*ebpf.Program, error) {
	spec := &ebpf.ProgramSpec{
		Name:         "vsw_xsk_redir",
		Type:         ebpf.XDP,
		License:      "Dual MIT/GPL",
		Instructions: programInstructions(xsks.FD(), vlanKfunc),
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
	xsks, err := newXSKMap(ifname, nl.Attrs().NumRxQueues)
	if err != nil {
		return nil, err
	}
	p := &ifaceProg{ifname: ifname, xsks: xsks}
	if mode == XDPModeGeneric && vlanErr == nil {
		vlanErr = errors.New("generic XDP mode has no driver metadata")
	}
	if vlanErr == nil && vlanKfunc == 0 {
		vlanErr = errors.New("kfunc " + vlanTagKfunc + " not resolved")
	}
	var attachErrs []error
	if vlanErr == nil {
		prog, err := loadProgram(ifname, xsks, ifindex, vlanKfunc)
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
	prog, err := loadProgram(ifname, xsks, ifindex, 0)
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
}
