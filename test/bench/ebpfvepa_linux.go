package bench

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
)

// The ebpf-vepa contender is the least work any switch can do on this
// topology: two tc (tcx ingress) eBPF programs in HV and nothing in
// userspace. It is not a product; it measures the ceiling of a VM attached
// through a veth pair, which vswitchd (and OVS) pay for and macvlan does
// not: every frame crosses two more veth hops (VM1 eth0 -> vnet1 and
// vnet2 -> VM2 eth0), each one a trip through a softirq backlog.
//
//	vnet1, vnet2 ingress: skb_vlan_push(802.1Q, VID 100) (metadata only,
//	                      the uplink's transmit writes it), redirect to the uplink
//	uplink ingress:       if tagged VID 100: skb_vlan_pop, look the
//	                      destination MAC up in a hash map, redirect to that
//	                      VM's vnet; anything else to the stack
//
// No learning, no counters, no reflection filter, no broadcast: a switch
// that does those in the same place can only be slower.

// __sk_buff field offsets (include/uapi/linux/bpf.h).
const (
	skbVLANPresent = 20
	skbVLANTCI     = 24
	skbData        = 76
	skbDataEnd     = 80
)

// tc actions.
const (
	tcActOK   = 0
	tcActShot = 2
)

// ebpfVEPA holds the loaded programs, map and links; close releases them.
type ebpfVEPA struct {
	fdb   *ebpf.Map
	progs []*ebpf.Program
	links []link.Link
}

func (e *ebpfVEPA) close() {
	for _, l := range e.links {
		_ = l.Close()
	}
	for _, p := range e.progs {
		_ = p.Close()
	}
	if e.fdb != nil {
		_ = e.fdb.Close()
	}
}

// portProgram tags with benchVID and sends to the uplink.
func portProgram(uplinkIndex int) asm.Instructions {
	proto8021Q := int32(binary.NativeEndian.Uint16([]byte{0x81, 0x00})) // __be16 in a register
	return asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.Mov.Imm(asm.R2, proto8021Q),
		asm.Mov.Imm(asm.R3, benchVID),
		asm.FnSkbVlanPush.Call(),
		asm.JNE.Imm(asm.R0, 0, "shot"),
		asm.Mov.Imm(asm.R1, int32(uplinkIndex)),
		asm.Mov.Imm(asm.R2, 0),
		asm.FnRedirect.Call(),
		asm.Return(),
		asm.Mov.Imm(asm.R0, tcActShot).WithSymbol("shot"),
		asm.Return(),
	}
}

// uplinkProgram untags VID benchVID and delivers by destination MAC.
func uplinkProgram(fdbFD int) asm.Instructions {
	return asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.LoadMem(asm.R2, asm.R6, skbVLANPresent, asm.Word),
		asm.JEq.Imm(asm.R2, 0, "pass"),
		asm.LoadMem(asm.R2, asm.R6, skbVLANTCI, asm.Word),
		asm.And.Imm(asm.R2, 0x0fff),
		asm.JNE.Imm(asm.R2, benchVID, "pass"),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.FnSkbVlanPop.Call(),
		asm.JNE.Imm(asm.R0, 0, "shot"),
		// Key: the destination MAC in 8 zeroed bytes on the stack.
		asm.LoadMem(asm.R2, asm.R6, skbData, asm.Word),
		asm.LoadMem(asm.R3, asm.R6, skbDataEnd, asm.Word),
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, 14),
		asm.JGT.Reg(asm.R4, asm.R3, "shot"),
		asm.StoreImm(asm.RFP, -2, 0, asm.Half),
		asm.LoadMem(asm.R4, asm.R2, 0, asm.Word),
		asm.StoreMem(asm.RFP, -8, asm.R4, asm.Word),
		asm.LoadMem(asm.R4, asm.R2, 4, asm.Half),
		asm.StoreMem(asm.RFP, -4, asm.R4, asm.Half),
		asm.LoadMapPtr(asm.R1, fdbFD),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -8),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "pass"),
		asm.LoadMem(asm.R1, asm.R0, 0, asm.Word),
		asm.Mov.Imm(asm.R2, 0),
		asm.FnRedirect.Call(),
		asm.Return(),
		asm.Mov.Imm(asm.R0, tcActOK).WithSymbol("pass"),
		asm.Return(),
		asm.Mov.Imm(asm.R0, tcActShot).WithSymbol("shot"),
		asm.Return(),
	}
}

// setupEBPFVEPA loads and attaches the programs in HV. They stay until
// the topology is torn down.
func setupEBPFVEPA(_ context.Context, _ *harness, t *topo) (*proc, error) {
	e := &ebpfVEPA{}
	err := t.hv.Do(func() error {
		index := map[string]int{}
		for _, n := range []string{uplinkIf, vnet1, vnet2} {
			l, err := netlink.LinkByName(n)
			if err != nil {
				return fmt.Errorf("look up %s: %w", n, err)
			}
			index[n] = l.Attrs().Index
		}
		fdb, err := ebpf.NewMap(&ebpf.MapSpec{Name: "vsb_fdb", Type: ebpf.Hash, KeySize: 8, ValueSize: 4, MaxEntries: 16})
		if err != nil {
			return fmt.Errorf("create FDB map: %w", err)
		}
		e.fdb = fdb
		for _, ent := range []struct {
			mac  net.HardwareAddr
			port string
		}{{vm1MAC, vnet1}, {vm2MAC, vnet2}} {
			var key [8]byte
			copy(key[:], ent.mac)
			if err := fdb.Put(key, uint32(index[ent.port])); err != nil {
				return fmt.Errorf("FDB entry %s: %w", ent.mac, err)
			}
		}
		attach := []struct {
			dev string
			ins asm.Instructions
		}{
			{uplinkIf, uplinkProgram(fdb.FD())},
			{vnet1, portProgram(index[uplinkIf])},
			{vnet2, portProgram(index[uplinkIf])},
		}
		for _, a := range attach {
			p, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "vsb_vepa", Type: ebpf.SchedCLS, License: "Dual MIT/GPL", Instructions: a.ins})
			if err != nil {
				return fmt.Errorf("load tc program for %s: %w", a.dev, err)
			}
			e.progs = append(e.progs, p)
			l, err := link.AttachTCX(link.TCXOptions{Program: p, Interface: index[a.dev], Attach: ebpf.AttachTCXIngress})
			if err != nil {
				return fmt.Errorf("attach tcx ingress on %s (kernel 6.6+): %w", a.dev, err)
			}
			e.links = append(e.links, l)
		}
		return nil
	})
	if err != nil {
		e.close()
		return nil, fmt.Errorf("ebpf-vepa: %w", err)
	}
	t.onTeardown(e.close)
	return nil, nil
}
