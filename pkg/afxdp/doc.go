// Package afxdp is the AF_XDP datapath backend: it implements
// backend.Backend and backend.Queue with XDP sockets (XSKs), an XSKMAP and
// a small XDP program written with cilium/ebpf's asm package at run time (no
// clang, no object files), in pure Go.
//
// # How AF_XDP moves frames
//
// An XSK does not carry frames through socket buffers. Frames live in the
// UMEM, one block of user memory divided into equal chunks (2048 or 4096
// bytes here), which the socket registers with the kernel
// (setsockopt XDP_UMEM_REG). Ownership of chunks moves between user space
// and the kernel through four single-producer/single-consumer rings, each an
// array plus a producer and a consumer index in memory mmapped from the
// socket:
//
//	fill ring        user -> kernel   addresses of empty chunks to receive into
//	RX ring          kernel -> user   {addr, len} of received frames
//	TX ring          user -> kernel   {addr, len} of frames to transmit
//	completion ring  kernel -> user   addresses of chunks whose frame was sent
//
// Receiving: the kernel takes a chunk from the fill ring, writes the frame
// into it and posts a descriptor on the RX ring; we hand the frame to the
// caller as a view into the UMEM (no copy) and, on Release, put the chunk
// back on the fill ring. Transmitting: we copy the frame into a free chunk,
// post it on the TX ring and kick the kernel; when the frame has left, the
// chunk's address comes back on the completion ring and is free again.
// Each UMEM here has 2048 RX chunks and 2048 TX chunks (one UMEM per NIC
// queue: the sockets sharing a queue share its UMEM, see "Sockets per
// CPU"), and each ring is as large as the set of chunks that travels on
// it, so a producer never meets a full ring while it holds a chunk.
//
// The indexes are free-running uint32 counters (slot = index & (size-1)).
// A producer writes entries, then stores its index (a release store); a
// consumer loads the other side's index (an acquire load), reads, then
// stores its own. We cache the kernel's index and only reload it when the
// cache says "full" or "empty", so the fast path touches the shared cache
// line once per batch, not once per frame.
//
// Headroom: in both copy and zero-copy mode the kernel writes a received
// frame XDP_PACKET_HEADROOM (256) bytes into its chunk and the RX
// descriptor's addr points at the frame itself (in zero-copy mode the XDP
// program works in the chunk, so a frame whose VLAN tag it re-inserted
// starts 4 bytes earlier, at 252). Batch.Buf[i] is the whole chunk and
// Batch.Off[i] (from the descriptor) is where the frame starts, so the pipeline
// has far more than backend.Headroom bytes to push VLAN tags in place. The
// UMEM headroom option is therefore left at 0.
//
// need_wakeup: with XDP_USE_NEED_WAKEUP the kernel sets a flag in a ring
// when it needs a syscall to make progress. Send kicks (sendto) only when
// the TX ring's flag is set (in copy mode it always is: the kernel never
// clears it, and sends inside sendto, a budget of frames per call,
// answering EAGAIN when frames remain, so we kick again while it makes
// progress). Every Send that queued a frame kicks at once: no frame waits
// for a later batch, and none waits for completions either (Send reaps the
// completion ring before it takes chunks). Release and a Recv about to
// sleep poke the kernel (recvfrom) only when the fill ring's flag is set
// (zero-copy drivers that ran dry). The kicks are raw system calls: they
// never block, and a plain syscall.Syscall would tell the Go scheduler
// about them, which wakes its monitor thread after a quiet spell.
//
// # Waiting for frames
//
// At light load a frame must not wait for a timer or a batch to fill, and
// it should cost as few thread wake-ups as possible; under load the
// workers must run in parallel; idle, nothing may run. Recv therefore
// waits in one of two ways (internal/rxwait has the details and the measurements
// behind them):
//
//   - In the Go runtime's netpoller, the default. The goroutine parks
//     holding no thread; the runtime's polling thread, woken by the socket,
//     runs it. A frame then crosses the switch on that one thread: the
//     egress worker's sendto on the uplink runs the kernel's bridge path
//     inline, the reflected frame is in the uplink's RX ring when the
//     egress worker parks, and the same thread finds the ingress worker
//     ready.
//   - On the goroutine's own thread, in poll(2), after a Recv returned a
//     backlog (rxwait.SpreadBatch frames or more) or rxwait.BusyStreak (4)
//     Recvs in a row that each returned frames less than rxwait.BusyGap
//     (200 us) after the one before (a stream), until a poll sees nothing
//     for rxwait.SpreadIdle (2 ms). The kernel then wakes each worker's own thread on
//     a free CPU, so the workers run in parallel; in the netpoller a
//     stream's work ends up on one thread. A thread in poll holds a P, so
//     at most GOMAXPROCS-1 queues of a Backend wait this way and one P
//     stays free for the netpoller.
//
// Either way the socket is watched for POLLIN only: transmissions on the
// socket (its TX ring, completion ring) do not wake a receiver.
//
// Copy vs zero-copy: a socket is bound with XDP_ZEROCOPY first (the NIC DMAs
// straight into the UMEM); drivers without support refuse it and we bind
// again with XDP_COPY (the kernel copies between its buffers and the UMEM).
// veth and tun/tap give copy mode. Queue.Info reports what was obtained.
//
// # The XDP program
//
// Received frames reach an XSK only if an XDP program on the interface
// redirects them there. The program (see programInstructions) is:
//
//	if dst MAC is 01:80:c2:00:00:0x and the ethertype (the outer one, or
//	   the one behind up to two in-band tags) is neither LLDP 0x88cc nor ECP 0x8940:
//	    return XDP_PASS            // to the kernel stack, untouched
//	tagged = bpf_xdp_metadata_rx_vlan_tag(ctx, &proto, &tci) == 0
//	if tagged: put the tag back into the frame (see below)
//	cpu = bpf_get_smp_processor_id()
//	state[1 + ctx->rx_queue_index] = cpu + 1
//	k = state[0] == 0 ? cpu : hash(dst MAC, src MAC) % cpus
//	return bpf_redirect_map(&xsks, ctx->rx_queue_index * cpus + k, XDP_PASS)
//
// xsks is an XSKMAP with an entry per (NIC queue, possible CPU), each
// holding one of the queue's receiving sockets (see "Sockets per CPU"
// below; with one socket per queue, every entry of the queue holds it).
// The XDP_PASS in the redirect's flags is the fallback when a queue has no
// socket, so a queue we do not serve keeps working through the stack.
//
// state is a small array map we map into memory (BPF_F_MMAPABLE), so
// reading or setting it is a load or a store: the CPU that received each
// NIC queue's last frame, which is where a port's VM runs (the tap's or
// veth's receive runs in the sender's softirq): Queue.IncomingCPU, which
// lets the datapath's CPU pollers (internal/cpupoll) receive a port on
// its VM's CPU; and the steering mode, by CPU or by MAC pair.
//
// LLDP and ECP frames (by ethertype, whatever their destination) are
// redirected like data: the datapath, which owns the uplink's control
// frame I/O, hands them to the control plane (pkg/datapath Config.Control),
// as under AF_PACKET. The other IEEE 802.1 link-local frames (STP BPDUs,
// LACP, 802.1X, ...) are none of the switch's business: they go to the
// stack as they would without the program, for the host's bridge, bonding,
// or authenticator, as a packet socket leaves the kernel its copy
// under AF_PACKET. The classification comes before the VLAN tag kfunc, so
// a passed frame keeps a tag held out of band in metadata, not in its
// bytes.
//
// # VLAN tags held out of band
//
// The datapath contract is that Recv returns a frame as it was on the wire,
// tags included. XDP runs before the stack's own VLAN handling, so a tag
// that is in the frame's bytes is still there. But a tag can also travel
// beside the frame, out of band, and then XDP does not see it:
//
//   - a NIC with rx VLAN offload (ethtool -k: rx-vlan-hw-parse,
//     rx-vlan-stag-hw-parse) strips the outer tag into the RX descriptor;
//   - a veth whose peer transmits with txvlan on (the default) passes the
//     sender's skb along with its tag in skb metadata. A Linux bridge (a
//     test switch) holds the tag of every tagged frame it forwards there,
//     because the ingress port moved it out of the bytes (skb_vlan_untag),
//     so a veth behind a bridge sees every tagged frame untagged.
//
// Since kernel 6.8 an XDP program can ask the driver for that tag with the
// metadata kfunc bpf_xdp_metadata_rx_vlan_tag(ctx, &proto, &tci): 0 and the
// outer tag (proto big endian, tci in host order: PCP, DEI and VID) when the
// driver holds one, -ENODATA when there is none, -EOPNOTSUPP when the
// driver does not implement the hint (veth does, veth_xdp_rx_vlan_tag; so
// do ice and mlx5 at the time of writing; most drivers do not). When it answers 0 the program
// grows the head by 4 bytes (bpf_xdp_adjust_head), moves the two MAC
// addresses to the new head and writes proto and htons(tci) after them:
// the frame as it was on the wire. An 802.1ad+802.1Q frame comes back with
// its outer S-tag re-inserted in front of the inner C-tag still in the
// bytes. If the redirect then falls back to XDP_PASS (no socket on the
// queue) the program undoes the insertion, so the stack does not find the
// tag twice, in the bytes and in metadata.
//
// Metadata kfuncs are implemented per driver, so the kernel accepts them
// only in a device-bound program: loaded with BPF_F_XDP_DEV_BOUND_ONLY and
// the interface's ifindex, attachable to that interface only and in native
// mode only. cilium/ebpf resolves kfunc calls only for programs read from
// ELF, so we look the function up in the kernel's BTF (/sys/kernel/btf/
// vmlinux, once per Backend) and emit the BPF_PSEUDO_KFUNC_CALL with its
// BTF ID ourselves. Attach order: the device-bound program in native mode,
// then the plain program (no kfunc) in native, then generic mode. When the
// plain program is what runs (kernel before 6.8, no BTF, generic mode), a
// warning is logged once per interface: frames whose tag is held out of
// band reach the datapath untagged. Queue.Info().VLANRestore reports which
// program runs. On a driver without the hint the device-bound program
// loads and simply finds no tag.
//
// Independently of the kfunc, while the program is attached the interface's rx VLAN
// offloads are switched off (ETHTOOL_SFEATURES for rx-vlan-hw-parse and
// rx-vlan-stag-hw-parse, what `ethtool -K IF rxvlan off` does), best effort:
// a driver that refuses is left alone. This is what helps on NICs without
// the hint; it is restored when the program detaches (a crashed daemon
// leaves it off). It does not help a veth: what a veth receives is decided
// by the transmitting peer's txvlan, which is not ours to change, which is
// why the kfunc matters there.
//
// There is one program and one XSKMAP per interface, attached when the first
// receiving queue opens and detached when the last one closes, reference
// counted in the Backend (no globals). It is attached with a bpf_link in
// native (driver) mode, or generic (skb) mode when the driver has no XDP
// (veth and tun/tap have native XDP). A bpf_link is released by the kernel
// when its owner's fds close, so a crashed daemon leaves no program behind.
// A program attached the older way, through netlink, outlives its loader
// and would block the link: Open finds it and detaches it first (whatever
// its mode), logging a warning. A program held by a live bpf_link belongs to
// a running process (another vswitchd, xdp-loader) and is an error.
//
// # Roles and sharing a NIC queue
//
// The kernel allows one UMEM owner per (device, queue): a second socket
// bound to the same queue gets EBUSY unless it shares the first one's UMEM
// and fill/completion rings (XDP_SHARED_UMEM; see "Sockets per CPU" for
// the receiving sockets that do). The Backend keeps one socket per (netns,
// ifindex, NIC queue, class) and hands out Queues that share it. With n
// the interface's RX queue count (RXQueues):
//
//   - RolePort binds queue 0 of a tap/veth, receives and transmits.
//   - RoleUplinkRX with QueueID i receives NIC queue i % n, as its class
//     i / n (and may send, through class 0's socket).
//   - RoleUplinkTX is transmit-only and needs no program: it joins the
//     class 0 socket of NIC queue QueueID % n, creating it if needed. All
//     transmitters of a socket serialise on one mutex per Send batch
//     (never per frame); give ports different QueueIDs when the NIC has
//     several queues to spread them.
//
// At most one Queue receives on a socket; a second receiver on the same
// queue and class is refused. When a receiver closes while transmitters
// (or sockets sharing its UMEM) keep its socket, frames left in its RX ring
// go back to the fill ring. A socket closes with its last Queue, class 0
// after the last socket sharing it. QueueConfig.FanoutGroup is ignored:
// spreading uplink traffic is the NIC's RSS across queues, one
// RoleUplinkRX per queue, and the XDP program's across the sockets of a
// queue (below).
//
// # Sockets per CPU
//
// The datapath's CPU pollers (internal/cpupoll) receive a queue on the
// CPU where its frames arrive, so that a frame wakes no thread on another
// CPU (an inter-processor interrupt, 17-50 us on a virtual machine). A NIC
// queue's frames arrive on the CPU of its interrupt; but a veth's arrive on
// the CPU that sent them: through a veth uplink, on the CPU whose transmit
// the bridge hairpinned. So RoleUplinkRX accepts queue IDs beyond the
// NIC's count (above), and vswitchd opens one uplink queue per CPU on a
// single-queue device. Class 0 is the NIC queue's own socket; the others
// are bound to the same (device, queue) with XDP_SHARED_UMEM: they share
// its UMEM, fill ring and completion ring (the kernel allows it for
// sockets of one queue: the program then picks the socket), have an RX
// ring of their own, and transmit through class 0's socket. All sockets
// of a NIC queue take and release chunks under class 0's rxMu. NIC queue
// q's XSKMAP entry for key k holds its socket socketFor(k, n, classes)
// (ifaceProg.place): with n = 1, CPU c's frames go to class c % classes,
// the socket the datapath's poller of CPU c receives.
//
// By CPU, a stream through a veth would follow its transmitting thread as
// the kernel moves it, split over the sockets, out of order and with two
// receiving threads competing for the CPUs (pkg/afpacket's steer measured
// it: vm->vm 0.12-0.17 instead of 0.21 Mpps). So while any receiving queue
// of the interface streams (waits on its own thread, internal/rxwait's
// spread), the program keys by a hash of the MAC pair instead, as
// afpacket's fanout program does: a VM pair's frames stay on one socket.
//
// QueueConfig.Promisc is held with a packet socket (internal/rawsock) that
// receives nothing but carries a PACKET_MR_PROMISC membership: the kernel counts it and drops
// it when the queue closes (or the daemon dies), never switching off
// promiscuity someone else asked for.
//
// # Counters
//
// Stats (backend.QueueStats) has what every backend counts; for a
// receiving queue RxDropped and RxOversize come from the kernel's
// XDP_STATISTICS for its socket. A receiving queue also reports all six of
// those counters, under stable names, through backend.CustomStatser
// (vswitchd shows them in the API's "backend" objects and in /metrics):
// xsk_rx_dropped, xsk_rx_invalid_descs, xsk_tx_invalid_descs,
// xsk_rx_ring_full, xsk_fill_ring_empty and xsk_tx_ring_empty (the Stat*
// constants say what each counts). They are per socket, so transmit-only
// queues, which send through their receiver's socket, report none; the
// fill ring's misses (xsk_fill_ring_empty) are counted per NIC queue, and
// reported by its class 0 socket only (see rxDrops). The
// kernel counts over the socket's whole life: a queue reports what was
// counted while it was the receiver, and reads them a last time in Close.
//
// # Concurrency and lifetime
//
// Recv is for one goroutine and Release may run on another (Recv does not
// hold the ring lock while it sleeps). Send may run from many goroutines.
// Close wakes a waiting Recv (closing its netpoller registration, and
// through an eventfd when it sleeps in poll), waits for it to return, and
// only then lets the socket close, so no call ever uses a closed or reused
// fd. The UMEM is anonymous memory we map ourselves; it
// stays mapped until the last batch that points into it is released, so a
// late reader never faults. Recv, Release and Send allocate nothing.
//
// The kernel frees a closed socket's claim on its queue from a workqueue,
// so an Open right after a Close may see EBUSY for tens of milliseconds;
// Open retries for up to a second.
//
// # Namespaces
//
// Open and Probe work in the network namespace of the calling thread (they
// lock the OS thread for their duration). The returned Queue holds only
// fds, so it may be used and closed from any goroutine or thread.
package afxdp
