package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	vtopo "github.com/vswitch/vswitch/test/topo"
)

// The prober measures round-trip times the way ping does, without ping:
// VM1 sends a probe (see probe.go) every interval, VM2 echoes it, VM1
// takes CLOCK_MONOTONIC when the answer arrives and subtracts the send
// time carried in the payload. Probes are sent on a fixed schedule, not
// after the previous answer, so a slow answer never delays the next probe.
// Nothing allocates per probe: buffers are made once per phase, and the
// answers land in a slot per sequence number.

// monoNow is CLOCK_MONOTONIC in nanoseconds (the clock the payload carries).
func monoNow() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

// sleepFor blocks the calling thread for d with nanosleep(2): on a locked
// thread this wakes within the kernel's timer slack (50 us by default),
// where the Go runtime's timers may round up to a millisecond.
func sleepFor(d time.Duration) {
	if d <= 0 {
		return
	}
	ts := unix.NsecToTimespec(int64(d))
	for {
		if err := unix.Nanosleep(&ts, &ts); !errors.Is(err, unix.EINTR) {
			return
		}
	}
}

// errProbeNotSent marks a probe the link could not take (full queue):
// it counts as sent and lost.
var errProbeNotSent = errors.New("probe not sent")

// probeLink is where a prober sends its probes and how the answers get back.
type probeLink interface {
	// hdrLen is the headroom send expects in front of each frame (a
	// virtio-net header on taps, 0 on packet sockets).
	hdrLen() int
	// send transmits one buffer: hdrLen bytes of zeros, then the frame.
	send(b []byte) error
	// attach hands every probe reply the VM receives to p.reply until
	// the returned detach is called.
	attach(p *prober) (detach func(), err error)
	close()
}

// prober is one phase of probes: n probes, one session.
type prober struct {
	session uint16
	rtt     []atomic.Int64 // per sequence number; 0 = no answer (yet)
	// inVMs is the part of the round trip spent inside the two VMs, per
	// sequence number (see replyAt); 0 = not known.
	inVMs   []atomic.Int64
	got     atomic.Int64 // answered probes
	dup     atomic.Int64 // answers to probes answered before
	stale   atomic.Int64 // answers of another session or out of range
	corrupt atomic.Int64 // answers with a bad IPv4 or UDP checksum
}

func newProber(n int, session uint16) *prober {
	return &prober{session: session, rtt: make([]atomic.Int64, n), inVMs: make([]atomic.Int64, n)}
}

// reply records an answer parsed by parseProbe that arrived at now.
func (p *prober) reply(pi probeInfo, now int64) { p.replyAt(pi, now, 0) }

// replyAt records an answer parsed by parseProbe that the prober read at
// now and the kernel of VM1 received at krx (CLOCK_MONOTONIC ns; 0: not
// known). With the responder's turnaround in the answer that gives the
// time the probe spent inside the VMs (VM2's kernel to the echo's send,
// VM1's kernel to the prober's read), the part of the round trip that is
// the VMs' own scheduling and not the switch's.
func (p *prober) replyAt(pi probeInfo, now, krx int64) {
	switch {
	case pi.Kind != probeReply:
		return
	case !pi.ChecksumOK:
		p.corrupt.Add(1)
		return
	case pi.Session != p.session || int(pi.Seq) >= len(p.rtt):
		p.stale.Add(1)
		return
	}
	d := now - pi.Tx
	if d <= 0 {
		d = 1
	}
	if !p.rtt[pi.Seq].CompareAndSwap(0, d) {
		p.dup.Add(1)
		return
	}
	if pi.TurnOK && krx > 0 && krx <= now {
		p.inVMs[pi.Seq].Store(int64(pi.Turn) + now - krx)
	}
	p.got.Add(1)
}

// probeRun is the outcome of prober.run.
type probeRun struct {
	rttStats
	Corrupt, Dup, Stale int
	Elapsed             time.Duration // first probe to the end of the wait for answers
	// Net summarizes the round trips less their time inside the VMs,
	// over the NetProbes answers where that was known.
	Net       vtopo.Latency
	NetProbes int
}

// run sends the probes from tmpl (a request built by buildProbe) over
// link, one every interval on a fixed schedule, then waits up to grace
// for the last answers. The probe sent at i*interval carries sequence
// number i. It stops early when ctx ends.
func (p *prober) run(ctx context.Context, link probeLink, tmpl []byte, interval, grace time.Duration) (probeRun, error) {
	var res probeRun
	h := link.hdrLen()
	buf := make([]byte, h+len(tmpl))
	copy(buf[h:], tmpl)
	frame := buf[h:]
	detach, err := link.attach(p)
	if err != nil {
		return res, err
	}
	defer detach()

	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	pinFromEnv("prober")
	start := time.Now()
	sent := 0
	for i := range p.rtt {
		sleepFor(time.Until(start.Add(time.Duration(i) * interval)))
		if ctx.Err() != nil {
			break
		}
		stampProbe(frame, uint32(i), monoNow())
		err := link.send(buf)
		sent++ // a probe the link refused is lost
		if err != nil && !errors.Is(err, errProbeNotSent) {
			return res, fmt.Errorf("send probe %d: %w", i, err)
		}
	}
	deadline := time.Now().Add(grace)
	for p.got.Load() < int64(sent) && time.Now().Before(deadline) && ctx.Err() == nil {
		sleepFor(2 * time.Millisecond)
	}
	res.Elapsed = time.Since(start)
	detach()
	rtts := make([]int64, 0, sent)
	for i := 0; i < sent; i++ {
		if v := p.rtt[i].Load(); v > 0 {
			rtts = append(rtts, v)
		}
	}
	res.rttStats = summarizeRTT(rtts, sent)
	var net []time.Duration
	for i := 0; i < sent; i++ {
		if r, v := p.rtt[i].Load(), p.inVMs[i].Load(); r > 0 && v > 0 {
			net = append(net, time.Duration(max(r-v, 1)))
		}
	}
	if len(net) > 0 {
		res.Net, res.NetProbes = vtopo.Summarize(net), len(net)
	}
	res.Corrupt, res.Dup, res.Stale = int(p.corrupt.Load()), int(p.dup.Load()), int(p.stale.Load())
	return res, ctx.Err()
}

// openProbeSocket opens a packet socket on ifname in ns that receives only
// untagged IPv4/UDP frames to dstPort (a classic BPF filter, attached before
// the socket is bound so no other frame ever queues on it) and never its
// own transmissions. Reads time out every 50 ms so loops can stop.
func openProbeSocket(ns *vtopo.NS, ifname string, dstPort uint16) (int, error) {
	fd := -1
	err := ns.Do(func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return fmt.Errorf("find %s: %w", ifname, err)
		}
		// Protocol 0: nothing is received until bind names one.
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("packet socket: %w", err)
		}
		filter := udpPortFilter(dstPort)
		prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
		if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &prog); err != nil {
			return fmt.Errorf("SO_ATTACH_FILTER: %w", err)
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1); err != nil {
			return fmt.Errorf("PACKET_IGNORE_OUTGOING: %w", err)
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1); err != nil {
			return fmt.Errorf("PACKET_QDISC_BYPASS: %w", err)
		}
		// The kernel's receive time of each frame, for the round trip's
		// split (see tsReader).
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
			return fmt.Errorf("SO_TIMESTAMPNS: %w", err)
		}
		tv := unix.NsecToTimeval(int64(50 * time.Millisecond))
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return fmt.Errorf("SO_RCVTIMEO: %w", err)
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: ifi.Index}); err != nil {
			return fmt.Errorf("bind to %s: %w", ifname, err)
		}
		return nil
	})
	if err != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		return -1, fmt.Errorf("probe socket on %s in %s: %w", ifname, ns.Name, err)
	}
	return fd, nil
}

// udpPortFilter is a classic BPF program accepting untagged IPv4/UDP
// frames whose UDP destination port is port (no IP options, as our
// probes).
func udpPortFilter(port uint16) []unix.SockFilter {
	const (
		ldH  = unix.BPF_LD | unix.BPF_H | unix.BPF_ABS
		ldB  = unix.BPF_LD | unix.BPF_B | unix.BPF_ABS
		jeq  = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
		retK = unix.BPF_RET | unix.BPF_K
	)
	return []unix.SockFilter{
		{Code: ldH, K: 12},                  // 0: ethertype
		{Code: jeq, K: 0x0800, Jf: 5},       // 1: IPv4, else drop
		{Code: ldB, K: ethHdrLen + 9},       // 2: IP protocol
		{Code: jeq, K: 17, Jf: 3},           // 3: UDP, else drop
		{Code: ldH, K: ethHdrLen + 20 + 2},  // 4: UDP destination port
		{Code: jeq, K: uint32(port), Jf: 1}, // 5
		{Code: retK, K: 0xffff},             // 6: accept
		{Code: retK, K: 0},                  // 7: drop
	}
}

// tsReader reads frames with the kernel's receive timestamp
// (SO_TIMESTAMPNS, set by openProbeSocket) from a packet socket, without
// allocating.
type tsReader struct {
	fd  int
	buf []byte
	oob []byte
	msg unix.Msghdr
	iov unix.Iovec
}

func newTSReader(fd int) *tsReader {
	r := &tsReader{fd: fd, buf: make([]byte, 2048), oob: make([]byte, unix.CmsgSpace(int(unsafe.Sizeof(unix.Timespec{}))))}
	r.iov.Base = &r.buf[0]
	r.iov.SetLen(len(r.buf))
	r.msg.Iov = &r.iov
	r.msg.SetIovlen(1)
	return r
}

// read returns the next frame, the time it was read and the time the
// kernel received it (both CLOCK_MONOTONIC ns; krx 0 when the frame came
// without a timestamp).
func (r *tsReader) read() (frame []byte, now, krx int64, err error) {
	r.msg.Control = &r.oob[0]
	r.msg.SetControllen(len(r.oob))
	n, _, e := unix.Syscall(unix.SYS_RECVMSG, uintptr(r.fd), uintptr(unsafe.Pointer(&r.msg)), 0)
	now = monoNow()
	if e != 0 {
		return nil, now, 0, e
	}
	return r.buf[:n], now, r.kernelTime(now), nil
}

// kernelTime converts the SCM_TIMESTAMPNS control message of the last
// read (CLOCK_REALTIME) to CLOCK_MONOTONIC, by the offset between the two
// clocks now; 0 if there is none.
func (r *tsReader) kernelTime(now int64) int64 {
	oob := r.oob[:r.msg.Controllen]
	hdr := unix.SizeofCmsghdr
	for len(oob) >= hdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		if int(h.Len) < hdr || int(h.Len) > len(oob) {
			return 0
		}
		if h.Level == unix.SOL_SOCKET && h.Type == unix.SCM_TIMESTAMPNS && int(h.Len) >= unix.CmsgLen(int(unsafe.Sizeof(unix.Timespec{}))) {
			ts := (*unix.Timespec)(unsafe.Pointer(&oob[unix.CmsgLen(0)]))
			var real unix.Timespec
			_ = unix.ClockGettime(unix.CLOCK_REALTIME, &real)
			return ts.Nano() - (real.Nano() - now)
		}
		oob = oob[min(unix.CmsgSpace(int(h.Len)-unix.CmsgLen(0)), len(oob)):]
	}
	return 0
}

// sockLink is a prober's packet socket (see openProbeSocket).
type sockLink struct{ fd int }

func (l *sockLink) hdrLen() int { return 0 }

func (l *sockLink) send(b []byte) error {
	_, err := unix.Write(l.fd, b)
	if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.ENOBUFS) || errors.Is(err, unix.EINTR) {
		return errProbeNotSent
	}
	return err
}

// attach runs a receiver on its own thread that hands every answer to p.
func (l *sockLink) attach(p *prober) (func(), error) {
	var stop atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		pinFromEnv("reader")
		r := newTSReader(l.fd)
		for !stop.Load() {
			f, now, krx, err := r.read()
			if err != nil {
				if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
					continue
				}
				return
			}
			p.replyAt(parseProbe(f), now, krx)
		}
	}()
	var once atomic.Bool
	return func() {
		if once.CompareAndSwap(false, true) {
			stop.Store(true)
			<-done
		}
	}, nil
}

func (l *sockLink) close() { unix.Close(l.fd) }

// sockResponder answers probe requests on a packet socket of VM2.
type sockResponder struct {
	fd      int
	stopped atomic.Bool
	done    chan struct{}
}

func (r *sockResponder) run() {
	defer close(r.done)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	pinFromEnv("responder")
	rd := newTSReader(r.fd)
	for !r.stopped.Load() {
		f, _, krx, err := rd.read()
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			return
		}
		if parseProbe(f).Kind != probeRequest {
			continue
		}
		echoProbe(f)
		if krx > 0 {
			stampTurn(f, time.Duration(monoNow()-krx)) // the time it spent in this VM
		}
		_, _ = unix.Write(r.fd, f)
	}
}

func (r *sockResponder) stop() {
	if r.stopped.CompareAndSwap(false, true) {
		<-r.done
		unix.Close(r.fd)
	}
}

// batchSender sends up to n copies of its frame and says how many went.
type batchSender interface {
	sendBatch(n int) (int, error)
	close()
}

// pace sends frames through s at rate frames per second until stop is
// closed or ctx ends, on one locked thread: every ~100 us it sends what is
// due (in batches of at most genBatch), so the stream is smooth at the
// scale of a probe. A backlog the sender could not keep up with is
// dropped beyond 2 ms, not sent as a burst. It returns the frames the
// sender took and the time it ran.
func pace(ctx context.Context, s batchSender, rate float64, stop <-chan struct{}) (uint64, time.Duration, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	maxBacklog := max(int64(rate*0.002), genBatch)
	start := time.Now()
	var sent uint64
	var issued int64
	for {
		select {
		case <-stop:
			return sent, time.Since(start), nil
		default:
		}
		if ctx.Err() != nil {
			return sent, time.Since(start), ctx.Err()
		}
		due := int64(rate*time.Since(start).Seconds()) - issued
		if due > maxBacklog {
			issued += due - maxBacklog
			due = maxBacklog
		}
		for due > 0 {
			k := min(due, genBatch)
			m, err := s.sendBatch(int(k))
			sent += uint64(m)
			if err != nil {
				return sent, time.Since(start), err
			}
			issued += k
			due -= k
		}
		sleepFor(100 * time.Microsecond)
	}
}
