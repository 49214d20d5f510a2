//go:build linux

package afpacket

import (
	"fmt"
	"slices"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/vswitch/vswitch/internal/rxwait"
	"golang.org/x/sys/unix"
)

// steer is how a polled uplink's fanout group (QueueConfig.Polled) spreads
// frames over its queues: a PACKET_FANOUT_EBPF program that picks queue
// cpu % N while no queue of the group streams, and a hash of the frame's
// MAC addresses % N while one does.
//
// By CPU, a frame wakes the poller of the CPU that received it (see
// internal/cpupoll): a NIC queue's interrupt CPU, or, when the uplink is a
// veth, the CPU whose transmit reflected the frame back, so that a frame
// the switch sent out and the bridge hairpinned comes back to the very
// thread that sent it, without a wake-up. But a stream through a veth
// uplink then follows the transmitting thread as the kernel moves it
// between CPUs, and its frames split over every queue: measured on the
// 2-CPU benchmark machine, vm->vm 64 B 0.12-0.17 Mpps against 0.21 with
// PACKET_FANOUT_HASH, two receiving threads competing for the CPUs instead
// of one. So while a queue of the group streams (waits on its own thread,
// see internal/rxwait) the program spreads by flow, as PACKET_FANOUT_HASH
// does; the MAC pair is the flow of a switch (the kernel's flow hash is not
// available to the program), and keeps a VM pair's frames in order.
//
// The mode is a one-entry array map we map into memory: a store switches
// it (rxwait.Steering counts the members that stream and stores it).
type steer struct {
	rxwait.Steering
	refs int    // member queues (Backend.steerMu)
	mem  []byte // the mode map's value, mapped read-write
}

// skfLLOff is SKF_LL_OFF: an absolute load at this offset plus k reads
// byte k of the link-layer header (skb->data is at the network header in
// a fanout group's demultiplexer).
const skfLLOff = -0x200000

// newSteer loads the program and its mode map; the program's descriptor
// is returned for PACKET_FANOUT_DATA, to be closed by the caller.
func newSteer() (*steer, *ebpf.Program, error) {
	m, err := ebpf.NewMap(&ebpf.MapSpec{Name: "vsw_fanout_mode", Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1, Flags: unix.BPF_F_MMAPABLE})
	if err != nil {
		return nil, nil, fmt.Errorf("fanout mode map: %w", err)
	}
	defer m.Close()
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "vsw_fanout", Type: ebpf.SocketFilter, License: "Dual MIT/GPL",
		Instructions: slices.Concat(asm.Instructions{
			asm.Mov.Reg(asm.R6, asm.R1), // the context, for LoadAbs
		}, lookupFirst(m.FD(), "cpu"), asm.Instructions{
			asm.LoadMem(asm.R0, asm.R0, 0, asm.Word),
			asm.JEq.Imm(asm.R0, 0, "cpu"),
			// Streaming: the MAC addresses, folded.
			asm.LoadAbs(skfLLOff+0, asm.Word),
			asm.Mov.Reg(asm.R7, asm.R0),
			asm.LoadAbs(skfLLOff+4, asm.Word),
			asm.Xor.Reg(asm.R7, asm.R0),
			asm.LoadAbs(skfLLOff+8, asm.Word),
			asm.Xor.Reg(asm.R7, asm.R0),
			asm.Mov.Reg(asm.R0, asm.R7),
			asm.RSh.Imm(asm.R0, 16),
			asm.Xor.Reg(asm.R0, asm.R7),
			asm.Return(),
			asm.FnGetSmpProcessorId.Call().WithSymbol("cpu"),
			asm.Return(),
		}),
	})
	if err != nil {
		return nil, nil, fmt.Errorf("fanout program: %w", err)
	}
	mem, err := unix.Mmap(m.FD(), 0, unix.Getpagesize(), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		prog.Close()
		return nil, nil, fmt.Errorf("map fanout mode map: %w", err)
	}
	s := &steer{mem: mem}
	s.SetMode((*uint32)(unsafe.Pointer(&mem[0])))
	return s, prog, nil
}

// joinSteer joins q to polled fanout group id: the first member of the
// group loads the program. Without eBPF the group spreads by CPU alone.
func (b *Backend) joinSteer(q *Queue, id uint16) error {
	b.steerMu.Lock()
	defer b.steerMu.Unlock()
	if b.steers == nil {
		b.steers = map[uint16]*steer{}
	}
	s, ok := b.steers[id]
	var prog *ebpf.Program
	if !ok {
		var err error
		if s, prog, err = newSteer(); err != nil {
			q.log.Warn("afpacket: uplink frames spread by CPU only, streams included (vm-to-vm streams through a veth uplink may lose throughput)", "iface", q.ifname, "err", err)
			s = &steer{} // no mem: PACKET_FANOUT_CPU
		}
		b.steers[id] = s
	}
	mode := unix.PACKET_FANOUT_CPU
	if s.mem != nil {
		mode = unix.PACKET_FANOUT_EBPF
	}
	if err := q.conn.SetFanout(id, mode|unix.PACKET_FANOUT_FLAG_IGNORE_OUTGOING); err != nil {
		if !ok {
			s.free()
			delete(b.steers, id)
		}
		if prog != nil {
			prog.Close()
		}
		return err
	}
	if prog != nil {
		defer prog.Close()
		if err := unix.SetsockoptInt(q.fd, unix.SOL_PACKET, unix.PACKET_FANOUT_DATA, prog.FD()); err != nil {
			// Without its program the group would give every frame to
			// its first member: fail (closing q takes the group away).
			s.free()
			delete(b.steers, id)
			return fmt.Errorf("set the fanout group's program: %w", err)
		}
	}
	s.refs++
	if s.mem != nil {
		q.steer = s
	}
	return nil
}

// leaveSteer drops q's membership (Close): a member that was streaming
// stops counting, and the last one frees the map.
func (b *Backend) leaveSteer(q *Queue, id uint16) {
	b.steerMu.Lock()
	defer b.steerMu.Unlock()
	s := b.steers[id]
	if s == nil {
		return
	}
	if q.steering {
		q.steering = false
		s.Note(false)
	}
	if s.refs--; s.refs == 0 {
		s.free()
		delete(b.steers, id)
	}
}

func (s *steer) free() {
	if s.mem != nil {
		s.SetMode(nil)
		_ = unix.Munmap(s.mem)
		s.mem = nil
	}
}

// noteSpread tells q's fanout group when q starts or stops receiving on
// its own thread.
func (q *Queue) noteSpread() {
	if q.steer == nil {
		return
	}
	if on := q.waiter.Spread(); on != q.steering {
		q.steering = on
		q.steer.Note(on)
	}
}
