//go:build linux

package afpacket

import (
	"fmt"
	"slices"
	"sync/atomic"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"
)

// cpuNote tells which CPU received a socket's last frame: an eBPF socket
// filter, run by the kernel for every frame it gives the socket, stores
// bpf_get_smp_processor_id()+1 in a one-entry array map that we map into
// memory, so reading it is a load. The filter accepts every frame whole.
// A VM's frames are received on the CPU that sent them (the tap's or veth's
// receive runs in the sender's softirq), so this is where the VM's thread
// runs: the CPU whose poller should wake for the port (QueueConfig.Polled).
// No system call reports it: SO_INCOMING_CPU is not kept for packet
// sockets, and TPACKET_V2 headers carry no CPU.
type cpuNote struct {
	mem []byte // the map's value, mapped read-only
}

// attachCPUNote loads the filter for socket fd and attaches it. The
// program and map descriptors are closed again: the socket holds the
// program, the mapping holds the map.
func attachCPUNote(fd int) (*cpuNote, error) {
	m, err := ebpf.NewMap(&ebpf.MapSpec{Name: "vsw_rx_cpu", Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1, Flags: unix.BPF_F_MMAPABLE})
	if err != nil {
		return nil, fmt.Errorf("receive-CPU map: %w", err)
	}
	defer m.Close()
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "vsw_rx_cpu", Type: ebpf.SocketFilter, License: "Dual MIT/GPL",
		Instructions: slices.Concat(asm.Instructions{
			asm.FnGetSmpProcessorId.Call(),
			asm.Add.Imm(asm.R0, 1),
			asm.Mov.Reg(asm.R6, asm.R0),
		}, lookupFirst(m.FD(), "accept"), asm.Instructions{
			asm.StoreMem(asm.R0, 0, asm.R6, asm.Word),
			asm.Mov.Imm32(asm.R0, -1).WithSymbol("accept"), // the whole frame
			asm.Return(),
		}),
	})
	if err != nil {
		return nil, fmt.Errorf("receive-CPU filter: %w", err)
	}
	defer prog.Close()
	mem, err := unix.Mmap(m.FD(), 0, unix.Getpagesize(), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("map receive-CPU map: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ATTACH_BPF, prog.FD()); err != nil {
		_ = unix.Munmap(mem)
		return nil, fmt.Errorf("attach receive-CPU filter: %w", err)
	}
	return &cpuNote{mem: mem}, nil
}

// lookupFirst looks up entry 0 of the array map mapFD: R0 is the value's
// address, or it jumps to label when there is none (R1-R5 are clobbered).
func lookupFirst(mapFD int, label string) asm.Instructions {
	return asm.Instructions{
		asm.StoreImm(asm.RFP, -4, 0, asm.Word),
		asm.LoadMapPtr(asm.R1, mapFD),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -4),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, label),
	}
}

// cpu is the CPU that received the last frame, -1 before the first.
func (c *cpuNote) cpu() int {
	if c == nil || c.mem == nil {
		return -1
	}
	return int(atomic.LoadUint32((*uint32)(unsafe.Pointer(&c.mem[0])))) - 1
}

// close unmaps the map; the socket must be closed (or the filter
// detached) already.
func (c *cpuNote) close() {
	if c != nil && c.mem != nil {
		_ = unix.Munmap(c.mem)
		c.mem = nil
	}
}
