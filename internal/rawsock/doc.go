// Package rawsock is vswitch's one way to open a Linux packet socket
// (AF_PACKET) on an interface. pkg/afpacket builds its rings on it, pkg/afxdp
// holds an interface promiscuous with it, and internal/capture records
// frames through it. It is modelled on github.com/mdlayher/packet: one Conn
// type, errors shaped as *net.OpError, and a file descriptor owned by an
// *os.File so the Go runtime does the waiting.
//
// # Opening
//
// Listen(ifindex, Raw, protocol, cfg) creates the socket and binds it to the
// interface with the given protocol (an ethertype in host byte order;
// unix.ETH_P_ALL for every frame). Protocol 0 is the idiom for a socket
// that must be configured before anything arrives: bound to the interface
// it receives nothing until Bind names a protocol, so no frame of another
// interface, and no frame of this one, lands in a buffer or ring that is
// still being set up. A socket that only transmits (or only holds a
// membership) stays at protocol 0 for good. InterfaceIndex resolves a name
// first; like Listen it works in the calling thread's network namespace,
// and the socket stays in that namespace afterwards, whichever goroutine
// uses it.
//
// # Waiting: the netpoller, not timeouts
//
// By default the socket is non-blocking and registered with the runtime's
// netpoller (os.NewFile): ReadMsg parks the goroutine until a frame is
// queued, and SetReadDeadline wakes it with an error that matches
// os.ErrDeadlineExceeded (and whose Timeout method reports true). Nothing
// polls with a receive timeout. Close may be called while another goroutine
// is blocked in ReadMsg: the read returns an error matching net.ErrClosed,
// and the descriptor is only released once no call uses it any more, so it
// is never reused under a reader.
//
// Config.Unpolled keeps the descriptor blocking and out of the netpoller,
// for a caller that waits on it itself: pkg/afpacket sleeps in ppoll on its
// TPACKET ring together with an eventfd, and a netpoller registration would
// only add an epoll wake-up per ring block received and per frame
// transmitted. ReadMsg, TryReadMsg and SetReadDeadline are not available
// then; SyscallConn and Control are.
//
// # Reading
//
// ReadMsg and TryReadMsg allocate nothing: one reader at a time fills a
// msghdr held by the Conn and hands a cached method value to the RawConn.
// They return the control messages with the frame (SetAuxdata makes every
// frame carry a tpacket_auxdata: the kernel moves an 802.1Q/802.1ad tag
// out of the frame into metadata before packet sockets see it, and this
// is the only way to get it back without a ring). A frame longer than the
// buffer is cut; the length returned is the frame's own and the flags
// include unix.MSG_TRUNC. TryReadMsg does not wait: with nothing queued it
// fails with unix.EAGAIN, so a reader can do its idle work (capture flushes
// its file) before it waits in ReadMsg.
//
// There is no write path: pkg/afpacket transmits through its TX ring and
// the other users only receive (tests send with Control and sendto).
//
// # Options
//
// SetPromiscuous adds or drops a PACKET_MR_PROMISC membership: the kernel
// counts memberships per interface and drops a socket's when it closes, so
// promiscuity someone else asked for is never turned off and a crashed
// process leaves none behind. SetIgnoreOutgoing hides the frames this host
// transmits (PACKET_IGNORE_OUTGOING) from the socket, SetFanout joins a
// PACKET_FANOUT group, SetQdiscBypass makes transmission skip the qdisc
// layer, Stats reads (and resets) PACKET_STATISTICS. Everything else
// (rings, timestamps, buffer sizes) goes through Control or SyscallConn.
package rawsock
