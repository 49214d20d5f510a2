// Package afpacket is the AF_PACKET backend of the datapath: it implements
// backend.Backend and backend.Queue with Linux packet sockets, in pure Go
// on top of golang.org/x/sys/unix.
//
// # One queue, one socket
//
// Every Queue is one SOCK_RAW packet socket bound to one interface. What it
// carries depends on its backend.Role:
//
//   - RolePort (a VM's tap or veth): a TPACKET_V2 receive ring with
//     PACKET_VNET_HDR (GSO metadata, see "Segmentation offload" below) and
//     sendmmsg transmit on the same socket.
//   - RoleUplinkRX (an uplink worker): a receive ring that joins the
//     PACKET_FANOUT group cfg.FanoutGroup in PACKET_FANOUT_HASH mode, so N
//     workers share the uplink's traffic and every flow stays on one worker
//     (order is kept per flow). IP fragments hash on addresses only, so they
//     stay together too; we do not ask for PACKET_FANOUT_FLAG_DEFRAG, since a
//     switch must forward fragments as they are.
//   - RoleUplinkTX (a port's own transmit queue on the uplink): the socket is
//     bound with protocol 0, so it never receives anything and has no ring.
//
// The socket (an internal/rawsock Conn, kept blocking and out of the Go
// netpoller: Recv waits on the ring itself, see "Wake-ups") is bound to the
// interface with protocol 0 and bound again to ETH_P_ALL only after the
// ring is set up, so nothing lands in a half-configured ring. Open must
// run on a thread that is in the interface's network namespace; a socket
// keeps its namespace for life, so the Queue can then be used from any
// goroutine. The package itself knows nothing about namespaces.
//
// # The receive ring (TPACKET_V2)
//
// The ring is Blocks x BlockSize bytes shared with the kernel by mmap,
// cut into fixed frame slots (tp_frame_size), each holding one frame of
// up to QueueConfig.FrameSize bytes after its header and our headroom:
// 2128 bytes for the default frame size (2040), so 123 slots per 256 KiB
// block. Defaults: 8 blocks of 256 KiB (984 slots, 2 MiB) per port queue,
// 32 blocks of 128 KiB (1952 slots, 4 MiB) per uplink worker.
//
//	block 0                                 block 1
//	+--------+--------+-- ... --+---------+--------+-- ...
//	| slot 0 | slot 1 |         | (spare) | slot N |
//	+--------+--------+-- ... --+---------+--------+-- ...
//
//	one slot (tp_status: TP_STATUS_KERNEL, the kernel may fill it, or
//	TP_STATUS_USER and flags, it holds a frame for us):
//	+----------------+-------------+-----------------------+-------------+
//	| tpacket2_hdr   | sockaddr_ll | free: 14 + RESERVE    | MAC header  |...
//	| 32 bytes       | 20 bytes    | (+ virtio_net_hdr)    | at tp_mac   |
//	+----------------+-------------+-----------------------+-------------+
//	                               ^ Batch.Buf[i] starts here; Off[i] points
//	                                 at the MAC header
//
// The kernel fills slots in order, one frame each, flips tp_status to
// TP_STATUS_USER when the frame is complete and wakes the reader
// (sk_data_ready) for every frame. So light traffic is handed over at once,
// and heavy traffic still comes in full batches without a system call:
// Recv walks the slots from its cursor while they are TP_STATUS_USER and
// only sleeps when the slot under the cursor is not (NAPI's rule: poll
// while there is work, sleep on a per-frame wake-up when idle).
//
// This replaced a TPACKET_V3 ring, which hands over whole blocks: the
// kernel packs frames back to back and gives a block to user space (and
// wakes the reader) only when it is full or its retire timer
// (tp_retire_blk_tov, 1 ms at least, often more at timer granularity)
// fires. At low rates every frame waited for that timer, and a round trip
// between two VMs crosses four rings (port RX, uplink RX, and back): a ping
// took 2.5 ms where kernel macvlan takes 0.04 ms. No user-space trick can
// read an unretired V3 block safely. What V2 costs in exchange: a status
// flip and a wake-up per frame instead of per block (see "Wake-ups"
// below), and a slot of 2 KiB per frame however small the frame (a 2 MiB
// V3 block ring held about 12000 minimum-sized frames, the V2 ring holds
// 984, a few milliseconds of traffic: a reader that is descheduled drops
// sooner).
//
// Recv fills the Batch with zero-copy views into the ring: Buf[i] is the
// frame's slot (capacity limited to the frame), Off/Len select the frame,
// Meta[i] records the slot. Release gives each slot back (tp_status =
// TP_STATUS_KERNEL), in whatever order batches are released; the kernel
// only ever looks at the slot under its own head. A caller that keeps
// several batches can wrap the cursor around onto a slot it still holds;
// Recv then returns ErrRingHeld instead of waiting for a Release that can
// never happen. When the kernel's head reaches a slot that is not free it
// drops frames, counted in Stats().RxDropped (PACKET_STATISTICS tp_drops).
// The ring_freezes custom counter counts those episodes: when a batch is
// released, the slot before its first one (walked and given back earlier)
// holding a frame again means the kernel has gone all the way round and
// waits on this batch. An episode counts once however many batches it
// lasts, and the count does not depend on who reads the counters when.
//
// # Wake-ups
//
// Recv sleeps through an internal/rxwait Waiter, in one of two ways (that
// package has the measurements behind them):
//
//   - In the Go runtime's netpoller, when frames come far apart (light
//     load). The netpoller watches an epoll instance of the queue's own,
//     which watches the socket for EPOLLIN only (not EPOLLOUT, which
//     every transmit on the socket would signal). The goroutine parks
//     holding no thread and no P; the runtime's polling thread, woken by
//     the frame, runs it. A frame crossing the switch then crosses it on
//     that one thread: the port's worker transmits on the uplink with
//     sendmmsg, which runs the kernel's bridge and puts the reflected
//     frame in the uplink worker's ring before it returns, and the same
//     thread, parking the port's worker, finds the uplink worker ready
//     (TestHandoffRunsToCompletion). In ppoll each worker had a thread of
//     its own, and every frame woke a second thread at each crossing; the
//     Go runtime's monitor (sysmon) took the P of every worker asleep for
//     10 ms, and woke on the next frame, hundreds of times a second.
//     A parked wait ends after at most 500 ms, so the jam watchdog (below)
//     looks even when nothing wakes the queue.
//   - On the goroutine's own thread, in ppoll on the socket and the
//     waiter's eventfd, while frames stream (a Recv returned 16 frames or
//     more, or four Recvs in a row each returned frames less than 200 us
//     after the one before), until ppoll sees nothing for 2 ms: the kernel wakes each worker's thread
//     on a free CPU, so the workers run in parallel. The socket polls
//     readable when the slot before the kernel's head is not
//     TP_STATUS_KERNEL; if that is a slot the caller still holds (it
//     keeps the previous batch while calling Recv again), ppoll would
//     return at once forever. Recv then switches to an edge-triggered
//     epoll on the socket, which returns on the next frame's wake-up
//     only, and drops the socket from it when the ring has a frame again
//     (a registered epoll callback runs for every frame). The netpoller
//     is edge-triggered by itself.
//
// Either way an idle queue sleeps in the kernel and costs no CPU, and Close
// wakes it. The system calls of the hot path that never block (sendmmsg
// and recvmsg with MSG_DONTWAIT, PACKET_STATISTICS, a zero-timeout ppoll)
// are raw: the Go scheduler need not hear of them, and a plain one wakes
// a sleeping sysmon when it starts (the first frame after a quiet spell).
//
// Per-frame wake-ups have a price when the reader is faster than the
// traffic: it empties the ring, sleeps, and the next frame wakes it again,
// so the sending CPU runs try_to_wake_up (an IPI under a hypervisor) from
// tpacket_rcv for every frame or two and the reader switches context as
// often; BenchmarkRecvRelease lost half its rate to that. The cure is
// NAPI's interrupt moderation (napi_defer_hard_irqs, gro_flush_timeout):
// while frames stream, the next empty Recv on the goroutine's own thread
// first naps 50 us on the eventfd alone, then takes what gathered, and
// only sleeps on the per-frame wake-up if that was nothing. An isolated
// frame is handed over at once; a frame within a stream waits at most one
// nap.
//
// # Why and how VLAN tags are rebuilt
//
// On receive the kernel moves the outermost 802.1Q or 802.1ad tag out of the
// frame into skb metadata before packet sockets see it (skb_vlan_untag runs
// for every frame, with or without the 8021q module). A packet socket that
// just copies bytes therefore sees tagged traffic as untagged, and a VEPA
// switch whose whole job is VLANs would be blind. The slot header keeps what
// was removed: tp_vlan_tci, tp_vlan_tpid and the status bits
// TP_STATUS_VLAN_VALID / TP_STATUS_VLAN_TPID_VALID (and PACKET_AUXDATA
// carries the same for a frame read with recvmsg, see below).
//
// Recv puts the tag back in place, in the slot, without copying the frame:
// the 12 address bytes move 4 bytes towards the front and TPID + TCI fill
// the gap (TPID 0x8100 when the kernel did not report one):
//
//	before:            [ free ][ dst | src ][ type | payload ]
//	after:   [ free ][ dst | src ][ TPID | TCI ][ type | payload ]
//
// PACKET_RESERVE (backend.Headroom + 4 bytes) guarantees the room: even
// after the rebuild Off[i] >= backend.Headroom, so the pipeline can still
// push two tags in place. Only the outermost tag is stripped; inner tags
// (QinQ) are still in the data and come out unchanged. A priority tag (VID
// 0, possibly PCP bits) is reported with TP_STATUS_VLAN_VALID and TCI 0 and
// is rebuilt like any other, so frames leave Recv exactly as they were on
// the wire. (A tagged frame that ends right after its inner EtherType is
// dropped by the kernel before packet sockets see it.)
// On transmit nothing is needed: tags are ordinary frame bytes.
//
// # Checksums left to offload (CHECKSUM_PARTIAL)
//
// A VM whose interface has TX checksum offload on (the default for veth, and
// for virtio guests through a tap with a virtio-net header) does not compute
// its TCP/UDP checksums: the kernel marks the skb CHECKSUM_PARTIAL and leaves
// in the checksum field only the folded pseudo-header sum, for "hardware" to
// finish. veth and tap keep that state, so our packet socket receives the
// unfinished bytes; tpacket_rcv says so with TP_STATUS_CSUMNOTREADY in
// tp_status (but the slot header has no csum_start/csum_offset). Sent on
// through another packet socket the frame is CHECKSUM_NONE, no device
// finishes the job, and the receiver drops it: without help, TCP between VMs
// fails while ping works.
//
// So Recv completes the checksum in the ring, for every frame with that
// status bit, after the tag rebuild (the frame is parsed as it was on the
// wire): Ethernet, up to two 802.1Q/802.1ad tags, IPv4 (any IHL; fragments
// are skipped) or IPv6 (no extension headers), then TCP (checksum at offset
// 16) or UDP (offset 6; a result of 0 is sent as 0xffff). It sums the
// pseudo-header and the L4 segment whose length the IP header gives (not the
// frame length, which may include Ethernet padding) with a 64-bit
// end-around-carry accumulator, 8 bytes per step, and writes the result in
// place; the old field is ignored. About 15 ns for a 64-byte frame and 90 ns
// for 1514 bytes, no allocation. Frames it cannot fix (other protocols,
// truncated or inconsistent headers) pass unchanged. The checksums_fixed
// and checksums_unfixed custom counters count both outcomes.
//
// Not covered: CHECKSUM_PARTIAL for anything but plain TCP/UDP (SCTP's
// CRC32c, tunnels with an inner partial checksum) is not completed.
//
// # Segmentation offload (TSO/GSO super-frames from VMs)
//
// With TSO/GSO on in a VM (the default for veth and virtio guests), kernel
// TCP does not cut its stream into MTU-sized segments: it hands the device
// one GSO skb of up to 64 KiB with a single set of headers, and a packet
// socket receives it as one "frame" far above the MTU. Forwarded as it is,
// no device would segment it; so port queues do it in userspace.
//
// Port queues set PACKET_VNET_HDR (before the ring: the kernel refuses it
// after). tpacket_rcv then writes a 10-byte struct virtio_net_hdr right
// before the MAC header of every frame (virtio_net_hdr_from_skb): flags,
// gso_type (TCPv4, TCPv6, UDP L4, ECN bit), hdr_len,
// gso_size (the MSS), csum_start/csum_offset. Recv reads it before the VLAN
// tag rebuild (which overwrites its last 4 bytes). A frame with gso_type
// NONE goes on as before. A super-frame is parsed like fixL4Checksum does
// (Ethernet, up to two tags, IPv4 any IHL and not a fragment, or IPv6
// without extension headers, then TCP or UDP; the gso_type must match) and
// cut into segments, each written to a slot of an arena the queue owns:
//
//	slot: [ reserve (12) | L2 incl. tags | IP | TCP/UDP hdr | <= gso_size payload ]
//	       ^ Buf[i]        ^ Off[i]
//
// per segment: IPv4 total length, ID (+1 per segment) and header checksum,
// or IPv6 payload length; TCP sequence number (+ payload offset), FIN and
// PSH kept only on the last segment, CWR only on the first; UDP length; and
// the full TCP/UDP checksum (the super-frame's own field holds only the
// pseudo-header sum). That is what the kernel's software GSO does. About
// 5.7 us per 64 KiB super-frame (45 segments), no allocation.
//
// A super-frame of up to 64 KiB does not fit a 2 KiB slot. Port queues
// therefore also set PACKET_COPY_THRESH (any non-zero value) and
// PACKET_AUXDATA: for a frame longer than its slot, tpacket_rcv stores only
// the head in the slot, marks it TP_STATUS_COPY and queues the whole skb on
// the socket's receive queue (while sk_rmem_alloc < sk_rcvbuf: port queues
// ask for a receive buffer as large as the ring with SO_RCVBUFFORCE).
// It assigns the slot and queues the skb under one lock and sets the
// slot's status only afterwards, so the receive queue holds exactly one
// skb per TP_STATUS_COPY slot not yet read, in slot order. When Recv meets
// such a slot it reads the head of the queue with one recvmsg(MSG_DONTWAIT)
// into a 64 KiB buffer of the queue (virtio_net_hdr first, then the frame;
// the VLAN tag and TP_STATUS_CSUMNOTREADY come in the PACKET_AUXDATA
// control message, whose length must match the slot's tp_len), gives the
// slot back at once and segments the frame from that buffer. One skb
// dequeued per TP_STATUS_COPY slot, whatever happens to the frame, keeps
// slots and skbs in step: a recvmsg that fails before it dequeues (a
// pending socket error such as ENETDOWN, which Recv reports afterwards) is
// repeated, one that fails after (EINVAL: the kernel could not describe
// the skb) counts as the slot's. Should the step be lost all the same (no
// skb for the slot, an skb whose length is not the slot's tp_len, socket
// errors without end), Recv starts over from a known state: it unbinds the
// socket (the kernel waits until no tpacket_rcv runs for it, so every
// assigned slot has its status and every skb is queued), counts the
// TP_STATUS_COPY slots it has yet to walk, empties the receive queue and
// binds again; those slots then drop their frames without a read, and
// every later slot finds its own skb at the head of the queue. The
// super-frames in flight are lost (gso_dropped), the event counts in the
// copy_resyncs custom counter and is logged (at most once a minute per
// queue). Nobody can tell which slot a queued skb belongs to, so the
// queue is emptied rather than searched. A frame longer than a slot that
// is not a GSO super-frame
// is longer than FrameSize: it is read, dropped and counted as oversize,
// as before. (A super-frame small enough for its slot is segmented in
// place; its slot goes back after its last segment.)
//
// The arena has 256 slots of ringReserve + FrameSize bytes (528 KiB
// per port queue at the default frame size), kept on a free stack; an
// arena frame is marked in Batch.Meta (high bit + slot index) and its slot
// goes back on Release. A super-frame whose segments do not all fit the
// batch (or the free slots) stays pending: the next Recv continues it
// before walking further, so frame order is kept. If every arena slot is
// held by unreleased batches, Recv returns ErrRingHeld, as for ring slots.
//
// A super-frame that cannot be segmented (UFO, IPv6 extension headers,
// BIG TCP jumbograms or frames beyond the 64 KiB buffer, inconsistent
// lengths, a gso_size whose segments exceed FrameSize) is dropped and
// counted in Stats().RxOversize and in the gso_dropped custom counter; so
// is one the kernel truncated without a copy (receive buffer full).
// The gso_frames and gso_segments custom counters count the work done.
//
// With PACKET_VNET_HDR the socket also expects a virtio_net_hdr in front
// of every frame it sends: Send puts a zeroed one (no GSO, checksum
// complete) as a first iovec of each message. Uplink queues do not use it:
// their frames come from a NIC (GRO'd frames on an uplink would still be
// dropped as oversize: vswitchd switches the uplink's GRO/LRO off while it
// runs, see internal/daemon).
//
// # When the kernel loses step
//
// Recv trusts that the kernel fills slots in order from where its cursor
// is. One frame breaks that: tpacket_rcv claims the slot under its head
// (rx_owner_map) before it writes the virtio_net_hdr of a port queue, and
// when virtio_net_hdr_from_skb refuses the skb (a GSO type it has no
// virtio name for: UFO, which any VM can send through its tap) it drops
// the frame without moving its head or releasing the claim. Every later
// frame finds the slot claimed and is dropped too: the port is deaf for
// good, one frame from a hostile or buggy VM is enough (seen on 6.18,
// TestRecvRecoversFromRejectedGSO reproduces it).
//
// A watchdog in Recv catches this and any other loss of step. Before Recv
// sleeps, at most every 100 ms (and at least every poll timeout), it reads
// PACKET_STATISTICS and looks at the slot under its cursor. An in-step
// kernel writes that slot before any other and never drops while it is
// free; so when two checks in a row find the kernel's drop count risen,
// nothing received and the cursor slot still free (TP_STATUS_KERNEL, not
// held), the ring is stuck. If the kernel wrote frames past the cursor,
// the cursor moves to the oldest of them. If it wrote nothing anywhere, a
// port queue rebuilds its ring: it binds the socket to protocol 0 (the
// kernel waits until no tpacket_rcv runs for it), unmaps and frees the ring,
// sets up and maps a new one of the same geometry (a new head and a clean
// rx_owner_map), empties the receive queue and binds again to ETH_P_ALL.
// That needs every frame of the old ring back (the datapath releases each
// batch before the next Recv; a caller holding batches delays it to a
// later check). Uplink queues are never rebuilt: they have no
// virtio_net_hdr, and a fanout member cannot be rebound.
//
// The jam costs the VM about a second of its own traffic (counted in
// RxDropped, the kernel's tp_drops) and nothing else; each resync counts
// in the ring_resyncs custom counter and is logged as a warning, at most
// once a minute per queue. A rebuild that fails half-way (out of memory)
// leaves the queue without a ring: every later Recv returns that error.
//
// # Transmit (sendmmsg)
//
// Send hands a batch to the kernel with one sendmmsg(2) system call per
// Batch frames (x/sys/unix has no wrapper, so it is a RawSyscall6 on
// preallocated mmsghdr/iovec arrays; a small pool of such arrays lets several
// goroutines Send at once without allocating or sharing a lock per frame).
// The socket sets PACKET_QDISC_BYPASS: frames go straight to the driver,
// skipping the qdisc, and are not looped back to packet sockets (ours or
// tcpdump's). Send never blocks (MSG_DONTWAIT): EAGAIN/ENOBUFS drop the rest
// of the call, EMSGSIZE (longer than the MTU allows) or an empty frame drops
// that frame; both are counted in TxErrors. Note the kernel allows
// MTU + 14 + 4 bytes only when the outer TPID is 0x8100: frames with an
// 802.1ad S-tag, or two tags, need an uplink MTU raised by 4 or 8 bytes to
// carry full-size payloads. ENETDOWN, ENXIO and ENODEV (interface down or
// gone) are returned as *OpError wrapping the errno.
//
// # Receive options
//
// PACKET_IGNORE_OUTGOING keeps frames leaving the interface (ours or anyone
// else's) out of our ring; without it a switch sees its own transmissions
// and loops. A fanout group has its own hook, so uplink workers set
// PACKET_FANOUT_FLAG_IGNORE_OUTGOING as well. cfg.Promisc adds a
// PACKET_MR_PROMISC membership, which the kernel drops with the socket.
//
// # Counters
//
// What every backend counts is in Stats (backend.QueueStats): frames and
// bytes each way, RxDropped (the kernel's tp_drops: ring full), RxOversize
// (ours: too long, truncated or unsegmentable), TxErrors. What only
// AF_PACKET does is counted in custom counters, which a Queue reports
// through backend.CustomStatser and vswitchd shows per port and for the
// uplink in the API's "backend" objects and in /metrics: gso_frames,
// gso_segments, gso_dropped, checksums_fixed, checksums_unfixed,
// ring_freezes, ring_resyncs and copy_resyncs (the Stat* constants say
// what each counts). Every queue reports all of them, zero where they cannot happen. PACKET_STATISTICS resets
// the kernel's counters on every read, so the queue adds up each read, and
// reads them a last time in Close: the totals survive the socket.
//
// # Closing
//
// Close is safe against concurrent Recv and Send: every call holds a read
// lock on the queue's lifetime for the duration of its system calls; Close
// marks the queue closed, wakes a blocked Recv (closing its netpoller
// registration, and through the waiter's eventfd), takes the
// write lock (waiting for in-flight calls), and closes the socket. Calls
// after that return backend.ErrClosed and never touch a closed or reused
// descriptor. The ring stays mapped until the last outstanding batch is
// Released, so views handed out before Close never point into unmapped
// memory. If the interface is deleted or goes down, a blocked Recv returns an
// *OpError wrapping ENETDOWN (from the socket error the kernel posts) and
// Send one wrapping ENXIO/ENETDOWN; neither spins.
//
// Recv and Release are meant for one goroutine (the queue's reader);
// Send, Stats and CustomStats may be called from any number of goroutines.
package afpacket
