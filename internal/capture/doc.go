// Package capture records the frames on one network interface into a
// capture file with a packet socket beside vswitchd: vswctl capture
// --local, for when vswitchd is down or for an interface that is no port.
// vswctl capture without --local asks vswitchd, whose datapath copies the
// frames from inside the switch (pkg/datapath's Capture, GET /v1/capture)
// and so sees what this cannot: what vswitchd sends, and under AF_XDP
// what it receives.
//
// # What it opens
//
// A capture is one AF_PACKET SOCK_RAW socket (internal/rawsock) bound to the
// interface with protocol ETH_P_ALL: it sees every frame the interface receives and every
// frame the host's stack sends out of it. Frames sent on a packet socket with
// PACKET_QDISC_BYPASS, as vswitchd's datapath sends them, skip the point
// where the kernel copies outgoing frames to packet sockets and are not
// seen: on the uplink the capture shows what the bridge sends back, not what
// vswitchd transmits (capture from inside the datapath does). It is not
// PACKET_IGNORE_OUTGOING: what the stack sends is shown. Each frame's
// direction comes from the packet type of its sender's address
// (sll_pkttype: PACKET_OUTGOING is out, anything else in); Options.Direction
// keeps one of them.
//
// The socket is bound to the interface with protocol 0 (receives nothing),
// configured, and only then bound again with ETH_P_ALL, so no frame slips in
// before the options that describe it are set. The interface is looked up
// with SIOCGIFINDEX in the calling thread's network namespace, where the
// socket is created too: Open must run on a thread that is in the
// namespace vswitchd uses (vswctl simply runs there; tests lock a goroutine
// to its thread and switch). After Open the Capture can be used from any
// goroutine.
//
// # VLAN tags
//
// On receive the kernel takes an 802.1Q/802.1ad tag out of the frame and
// keeps it as metadata (skb->vlan_tci) before packet sockets see the frame;
// on transmit a tag may also sit in metadata when the device offloads
// insertion. With PACKET_AUXDATA enabled every recvmsg carries a
// tpacket_auxdata control message; when its tp_status has
// TP_STATUS_VLAN_VALID, tp_vlan_tci holds the tag (and tp_vlan_tpid its TPID
// when TP_STATUS_VLAN_TPID_VALID, else 0x8100). The capture puts the tag back
// at offset 12, so the pcap holds the frame as it was on the wire:
//
//	kernel gives:   | dst | src | type | payload |        + aux{tci, tpid}
//	pcap holds:     | dst | src | tpid tci | type | payload |
//
// The frame is read into buf[4:] so the rebuild is an in-place 12-byte move
// of the MAC addresses, not a copy of the frame.
//
// # Timestamps and the file
//
// SO_TIMESTAMPNS makes the kernel stamp each frame when it was received (or
// handed to the device); the stamp arrives as an SCM_TIMESTAMPNS control
// message. The file is written by internal/pcapfile: pcapng by default
// (Options.Format), each frame with its direction and, at the end, an
// Interface Statistics Block with the kernel's drop count, or classic pcap;
// nanosecond timestamps, link type Ethernet, snaplen 65535 (or
// Options.Snaplen). Frames longer than that (GSO super-packets on a veth)
// are cut; the record keeps their real length.
//
// Output is buffered and flushed whenever the socket has nothing more to
// read, so `vswctl capture IF -w - | wireshark -k -i -` shows frames live
// while a burst still costs one write per buffer, not per frame.
//
// # Stopping
//
// Run stops after Options.Count frames (0: no limit), when Options.Timeout
// has passed, when its context is cancelled (vswctl cancels it on SIGINT and
// SIGTERM) or when the interface disappears. A cancelled context or timeout
// is a normal end (nil error); a vanished interface is an error wrapping
// ErrInterfaceGone. In every case what was captured is flushed first.
//
// An interface that goes down does not end the capture: the kernel reports
// ENETDOWN once and unhooks the socket, and hooks it again when the
// interface comes back up (a VM rebooting takes its tap down and up). When
// the interface is deleted or moved to another namespace the kernel sets the
// socket's bound ifindex to -1, which getsockname shows; that is how Run
// tells "down" from "gone" without looking the name up in any namespace.
// The deletion of an interface that is down wakes nothing on the socket
// (it is unhooked already), so while it is down Run also listens to
// netlink link events in the namespace Open ran in and looks again when
// the kernel reports the interface deleted (RTM_DELLINK). Nothing polls on
// a timer: reads wait in the Go netpoller, woken by a frame, a link event
// or cancellation.
//
// # How many at once
//
// Each capture costs the host an 8 MiB socket buffer and a copy of every
// frame of its interface, and vswctl capture needs only root to start one,
// so a script that starts captures and forgets them could grow without
// end. Open therefore bounds them: a capture holds one of Limit.Max
// session slots (MaxSessions, 8, host-wide by default) from Open to Close.
// A slot is an flock on Dir/slot-N.lock (SessionDir,
// /run/vswitchd/captures, made 0700); the file says "PID IFNAME" of its
// holder. When every slot is held Open fails with an error wrapping
// ErrTooManySessions that names the holders ("all 8 slots are taken (pid
// 4711 on vnet0, ...)"); vswctl adds what to do. The kernel drops an flock
// when its file is closed, also when the process dies by SIGKILL, together
// with the packet socket: a killed capture frees its slot at once, and no
// stale file can keep one (the files stay, unlocked, for reuse). Where the
// directory or a file cannot be made for lack of permission (no root:
// such a capture fails at the socket anyway, unless it has CAP_NET_RAW
// alone) the capture runs without a slot, as vswitchd's uplink lock does.
//
// A capture writing to a pipe whose reader went away ends at its next
// write (vswctl dies of SIGPIPE, as any filter does); one whose reader is
// alive but stopped reading blocks in that write and keeps its slot until
// it is stopped.
//
// # Allocation
//
// The per-frame path (recvmsg, control message parse, tag rebuild, record
// write into the buffered pcapfile.Writer) allocates nothing; see
// BenchmarkHandleFrame.
package capture
