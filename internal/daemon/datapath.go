package daemon

import (
	"fmt"
	"runtime"

	"github.com/vswitch/vswitch/internal/rxwait"
	"github.com/vswitch/vswitch/pkg/backend"
	"github.com/vswitch/vswitch/pkg/datapath"
)

// startSwitch chooses the backends (planBackends: --datapath and
// --port-datapath over an AF_XDP probe) and starts the switch on them; with
// auto, an AF_XDP uplink that fails to start falls back to AF_PACKET.
// present are the configured ports whose interfaces exist now.
func (d *Daemon) startSwitch(present []string) error {
	p, err := planBackends(planInput{
		datapath: d.opts.Datapath, portDatapath: d.opts.PortDatapath,
		uplink: d.opts.Uplink, mtu: d.opts.MTU, presentPorts: present,
	}, d.sys.probeXDP)
	if err != nil {
		return err
	}
	if d.opts.Datapath == "" || d.opts.Datapath == backendAuto {
		if p.uplink != backendAFXDP {
			d.log.Warn("AF_XDP unavailable, falling back to AF_PACKET", "why", p.reason)
		}
	}
	if d.busy == nil && d.opts.BusyPoll > 0 && !d.opts.CPUPoll {
		// Before the first switch, so that its failure is not taken for
		// AF_XDP's; every switch's queues, on both backends, share it.
		// Only without CPU pollers: with them no queue waits in the
		// netpoller, where the busy poll is made.
		if d.busy, err = rxwait.NewGroup(d.opts.BusyPoll); err != nil {
			return fmt.Errorf("busy poll: %w", err)
		}
	}
	err = d.newSwitch(p)
	if err != nil && p.fallback {
		d.log.Warn("AF_XDP failed to start on the uplink, falling back to AF_PACKET", "err", err)
		p = p.afpacketFallback(err)
		err = d.newSwitch(p)
	}
	if err != nil {
		return err
	}
	d.reason = p.describe()
	if p.port == backendAFXDP {
		d.log.Warn("VM ports on AF_XDP (--port-datapath afxdp): VMs must not use TX checksum offload or TSO/GSO (AF_XDP gets neither the partial-checksum mark nor GSO metadata; TCP from such VMs would fail); leave --port-datapath at afpacket if you cannot turn them off")
	}
	return nil
}

// newSwitch builds and starts the switch on the plan's backends (one
// instance of each backend, shared by the uplink and the ports when they
// are the same).
func (d *Daemon) newSwitch(p backendPlan) error {
	up := d.sys.backend(p.uplink, d.busy) // d.busy: made by startSwitch
	be := up
	if p.port != p.uplink {
		be = backend.Split{Port: d.sys.backend(p.port, d.busy), Uplink: up}
	}
	nic := 0
	if p.uplink == backendAFXDP {
		nic = d.sys.rxQueues(d.opts.Uplink) // one XSK per NIC queue
	}
	queues, short := uplinkQueues(d.opts.UplinkQueues, nic, runtime.NumCPU())
	if short {
		// The XDP program passes frames of a queue without a socket to
		// the kernel: they never reach the switch or the EVB station.
		d.log.Warn("--uplink-queues is below the uplink's RX queue count: frames the NIC puts on the other queues (data and LLDP/ECP alike) bypass vswitchd; use the NIC's count or `ethtool -L` it down",
			"uplink_queues", queues, "nic_rx_queues", nic)
	}
	d.ctlQueue = newControlQueue()
	if d.procs == nil {
		d.procs = newProcSizer() // once: a second switch must not take the first one's Ps for the CPUs
	}
	sw, err := datapath.New(datapath.Config{Uplink: d.opts.Uplink, Mode: d.mode, Backend: be, UplinkQueues: queues, MTU: d.opts.MTU, Priority: d.opts.Priority, CPUPoll: d.opts.CPUPoll, Workers: d.procs.workers, Control: d.ctlQueue.take, FDB: d.opts.FDB, FirstFrame: d.firstFrame, Logger: d.log})
	if err != nil {
		return err
	}
	if err := sw.Start(); err != nil {
		return fmt.Errorf("start %s datapath: %w", be.Name(), err)
	}
	d.sw = sw
	return nil
}

// uplinkQueues is the number of uplink RX queues (workers) to open:
// requested (--uplink-queues) when set, else one per CPU. nic is the
// uplink's RX queue count on AF_XDP (0 on AF_PACKET, whose fanout group
// spreads over any number of queues): there one per NIC queue, a socket
// each; and on a single-queue device (a veth, where a frame arrives on
// the CPU that sent it) one per CPU still, the ones beyond the first
// sharing its UMEM and taking the frames of their CPUs
// (afxdp.Backend.OpenQueue). A NIC with several queues spreads its frames
// over its queues' interrupt CPUs itself. short: the request leaves NIC
// queues without a socket.
func uplinkQueues(requested, nic, cpus int) (n int, short bool) {
	switch {
	case requested > 0:
		return requested, requested < nic
	case nic > 1:
		return nic, false
	}
	return max(cpus, 1), false
}
