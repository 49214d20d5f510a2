//go:build linux

package afxdp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
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

// programInstructions builds the per-interface XDP program:
//
//	if frame shorter than 14 bytes           -> XDP_PASS
//	if dst MAC is 01:80:c2:00:00:0x          -> XDP_PASS (IEEE link-local group: LLDP, EVB, ...)
//	if ethertype is 0x88cc (LLDP) or 0x8940 (ECP) -> XDP_PASS
//	else bpf_redirect_map(xsks, rx_queue_index, XDP_PASS)
//
// The control plane (pkg/vepa) reads what we pass with an ordinary packet
// socket. The XDP_PASS in the redirect flags is the action the kernel takes
// when the map has no socket for the queue, so a queue without an XSK
// keeps working through the stack.
//
// Loads from packet memory are in host byte order, so the constants are
// built from wire bytes with binary.NativeEndian.
func programInstructions(xsksFD int) asm.Instructions {
	ne := binary.NativeEndian
	linkLocal := int32(ne.Uint32([]byte{0x01, 0x80, 0xc2, 0x00}))
	lastTwoMask := int32(ne.Uint16([]byte{0xff, 0xf0})) // byte 4 == 0, high nibble of byte 5 == 0
	lldp := int32(ne.Uint16([]byte{0x88, 0xcc}))
	ecp := int32(ne.Uint16([]byte{0x89, 0x40}))

	return asm.Instructions{
		asm.LoadMem(asm.R2, asm.R1, mdData, asm.Word),
		asm.LoadMem(asm.R3, asm.R1, mdDataEnd, asm.Word),
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, 14),
		asm.JGT.Reg(asm.R4, asm.R3, "pass"),
		// Destination MAC 01:80:c2:00:00:0x?
		asm.LoadMem(asm.R5, asm.R2, 0, asm.Word),
		asm.JNE.Imm(asm.R5, linkLocal, "ethertype"),
		asm.LoadMem(asm.R5, asm.R2, 4, asm.Half),
		asm.And.Imm(asm.R5, lastTwoMask),
		asm.JEq.Imm(asm.R5, 0, "pass"),
		// Ethertype (the outer one: control frames are untagged).
		asm.LoadMem(asm.R5, asm.R2, 12, asm.Half).WithSymbol("ethertype"),
		asm.JEq.Imm(asm.R5, lldp, "pass"),
		asm.JEq.Imm(asm.R5, ecp, "pass"),
		// return bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS)
		asm.LoadMem(asm.R2, asm.R1, mdRxQueueIndex, asm.Word),
		asm.LoadMapPtr(asm.R1, xsksFD),
		asm.Mov.Imm(asm.R3, xdpPass),
		asm.FnRedirectMap.Call(),
		asm.Return(),
		asm.Mov.Imm(asm.R0, xdpPass).WithSymbol("pass"),
		asm.Return(),
	}
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
}

// loadProgram creates the XSKMAP and the program (not attached).
func loadProgram(ifname string, queues int) (*ebpf.Map, *ebpf.Program, error) {
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
		return nil, nil, fmt.Errorf("create XSKMAP for %s: %w", ifname, err)
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         "vsw_xsk_redir",
		Type:         ebpf.XDP,
		License:      "Dual MIT/GPL",
		Instructions: programInstructions(xsks.FD()),
	})
	if err != nil {
		xsks.Close()
		return nil, nil, fmt.Errorf("load XDP program for %s: %w", ifname, err)
	}
	return xsks, prog, nil
}

// attachProgram loads the program and attaches it to the interface with a
// bpf_link, native (driver) mode first, generic (skb) mode as fallback.
//
// A bpf_link detaches by itself when its last fd closes, so a crashed
// daemon leaves nothing behind. A program attached the old way, through
// netlink (an older build, ip link set xdp, a test), does outlive its
// loader and blocks bpf_link attachment; it is removed first. A program
// held by a live bpf_link belongs to a running process and is not touched.
func attachProgram(log *slog.Logger, ifname string, ifindex int, mode XDPMode) (*ifaceProg, error) {
	nl, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		return nil, fmt.Errorf("look up %s: %w", ifname, err)
	}
	if err := removeStaleProgram(log, nl); err != nil {
		return nil, err
	}
	xsks, prog, err := loadProgram(ifname, nl.Attrs().NumRxQueues)
	if err != nil {
		return nil, err
	}
	p := &ifaceProg{ifname: ifname, xsks: xsks, prog: prog}
	var attachErrs []error
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
		p.link, p.mode = l, t.name
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
