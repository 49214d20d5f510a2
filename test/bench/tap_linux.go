package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	vtopo "github.com/vswitch/vswitch/test/topo"
)

// vnetHdrLen is the virtio-net header in front of every frame on our tap
// and macvtap file descriptors: struct virtio_net_hdr_v1 (12 bytes), what
// vhost-net uses with a VIRTIO_F_VERSION_1 guest. Ours is always zero: no
// checksum offload, no GSO (the frames carry full checksums).
const vnetHdrLen = 12

// tapNIC is the VM side of a tap (/dev/net/tun, IFF_TAP|IFF_NO_PI|
// IFF_VNET_HDR) or of a macvtap (/dev/tapN): a file descriptor that QEMU
// or vhost-net would read and write. One reader goroutine drains it all
// the time, as a guest's virtio-net driver would: it counts what arrives,
// classifies it for verification, echoes probe requests and hands probe
// replies to the prober attached to it.
type tapNIC struct {
	name string // device name in HV, for messages
	fd   int

	tx, rx            atomic.Uint64
	ok, tagged, other atomic.Uint64
	dst               net.HardwareAddr // the VM's own MAC: frames for it are "ok"
	prober            atomic.Pointer[prober]

	stopping atomic.Bool
	done     chan struct{}
	err      error // of the reader, valid after done
}

// newTapNIC takes over fd (non-blocking, vnet header of vnetHdrLen) and
// starts its reader.
func newTapNIC(name string, fd int, mac net.HardwareAddr) *tapNIC {
	n := &tapNIC{name: name, fd: fd, dst: mac, done: make(chan struct{})}
	go n.readLoop()
	return n
}

// close stops the reader and closes the descriptor (for a tap without
// TUNSETPERSIST that also deletes the device).
func (n *tapNIC) close() {
	if n.fd < 0 {
		return
	}
	n.stopping.Store(true)
	<-n.done
	unix.Close(n.fd)
	n.fd = -1
}

// readLoop is the guest's receive path: poll, then read until the queue is
// empty. It answers probe requests at once from the same buffer.
func (n *tapNIC) readLoop() {
	defer close(n.done)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	buf := make([]byte, vnetHdrLen+9216)
	pfd := []unix.PollFd{{Fd: int32(n.fd), Events: unix.POLLIN}}
	for !n.stopping.Load() {
		_, err := unix.Poll(pfd, 50)
		if err != nil && !errors.Is(err, unix.EINTR) {
			n.err = fmt.Errorf("poll %s: %w", n.name, err)
			return
		}
		for {
			k, err := unix.Read(n.fd, buf)
			if err != nil {
				if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
					break
				}
				n.err = fmt.Errorf("read %s: %w", n.name, err)
				return
			}
			now := monoNow()
			if k <= vnetHdrLen {
				continue
			}
			n.rx.Add(1)
			f := buf[vnetHdrLen:k]
			switch pi := parseProbe(f); pi.Kind {
			case probeRequest:
				echoProbe(f)
				clear(buf[:vnetHdrLen])
				if _, err := unix.Write(n.fd, buf[:k]); err == nil {
					n.tx.Add(1)
				}
				continue
			case probeReply:
				if p := n.prober.Load(); p != nil {
					p.reply(pi, now)
				}
				continue
			}
			switch {
			case isOurFrame(f, n.dst):
				n.ok.Add(1)
			case len(f) >= ethHdrLen && (f[12] == 0x81 && f[13] == 0x00 || f[12] == 0x88 && f[13] == 0xa8):
				n.tagged.Add(1)
			default:
				n.other.Add(1)
			}
		}
	}
}

// write sends one buffer (vnet header + frame), counting it.
func (n *tapNIC) write(b []byte) (bool, error) {
	_, err := unix.Write(n.fd, b)
	if err != nil {
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.ENOBUFS) || errors.Is(err, unix.EINTR) {
			return false, nil
		}
		return false, fmt.Errorf("write %s: %w", n.name, err)
	}
	n.tx.Add(1)
	return true, nil
}

// tapSender sends copies of one frame on a tapNIC, one write(2) each (a tap
// takes one frame per write; vhost-net batches inside the kernel instead).
type tapSender struct {
	nic *tapNIC
	buf []byte // vnet header + frame
}

func (n *tapNIC) newSender(frame []byte) *tapSender {
	buf := make([]byte, vnetHdrLen+len(frame))
	copy(buf[vnetHdrLen:], frame)
	return &tapSender{nic: n, buf: buf}
}

func (s *tapSender) sendBatch(k int) (int, error) {
	sent := 0
	for i := 0; i < k; i++ {
		ok, err := s.nic.write(s.buf)
		if err != nil {
			return sent, err
		}
		if ok {
			sent++
		}
	}
	return sent, nil
}

func (s *tapSender) sendFor(ctx context.Context, d time.Duration) (uint64, time.Duration, error) {
	return blast(ctx, d, 16, func() (uint64, error) {
		ok, err := s.nic.write(s.buf)
		if ok {
			return 1, err
		}
		return 0, err
	})
}

func (s *tapSender) close() {}

func (n *tapNIC) blaster(frame []byte, _ string) (blaster, error) { return n.newSender(frame), nil }

func (n *tapNIC) pacer(frame []byte) (batchSender, error) { return n.newSender(frame), nil }

func (n *tapNIC) sendN(frame []byte, k int) error {
	_, err := n.newSender(frame).sendBatch(k)
	return err
}

func (n *tapNIC) counts() (tx, rx uint64, err error) {
	select {
	case <-n.done:
		if n.err != nil {
			return 0, 0, n.err
		}
		return 0, 0, fmt.Errorf("%s: reader stopped", n.name)
	default:
	}
	return n.tx.Load(), n.rx.Load(), nil
}

func (n *tapNIC) watch() (watcher, error) {
	return &tapWatcher{n: n, ok: n.ok.Load(), tagged: n.tagged.Load(), other: n.other.Load()}, nil
}

func (n *tapNIC) probeLink() (probeLink, error) { return tapLink{n}, nil }

// responder: the reader echoes every probe request anyway.
func (n *tapNIC) responder() (func(), error) { return func() {}, nil }

// tapWatcher reports what the reader classified since it was created.
type tapWatcher struct {
	n                 *tapNIC
	ok, tagged, other uint64
}

func (w *tapWatcher) collect(_ net.HardwareAddr, want int, d time.Duration) (verifyResult, error) {
	deadline := time.Now().Add(d)
	var r verifyResult
	for {
		r = verifyResult{OK: int(w.n.ok.Load() - w.ok), Tagged: int(w.n.tagged.Load() - w.tagged), Other: int(w.n.other.Load() - w.other)}
		if r.OK >= want || time.Now().After(deadline) {
			return r, nil
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (w *tapWatcher) close() {}

// tapLink sends probes on the tap; its reader hands the replies over.
type tapLink struct{ n *tapNIC }

func (l tapLink) hdrLen() int { return vnetHdrLen }

func (l tapLink) send(b []byte) error {
	if ok, err := l.n.write(b); err != nil || !ok {
		return errors.Join(err, errProbeNotSent)
	}
	return nil
}

func (l tapLink) close() {}

func (l tapLink) attach(p *prober) (func(), error) {
	l.n.prober.Store(p)
	return func() { l.n.prober.Store(nil) }, nil
}

// openTap creates tap name in ns through /dev/net/tun with IFF_TAP|
// IFF_NO_PI|IFF_VNET_HDR (as libvirt does for vhost-net), without
// TUNSETPERSIST: the device goes when the descriptor is closed. The
// descriptor is non-blocking with a vnetHdrLen-byte virtio-net header.
func openTap(ns *vtopo.NS, name string) (int, error) {
	fd := -1
	err := ns.Do(func() error {
		var err error
		// The tap is created in the namespace of the thread that opens it.
		fd, err = unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open /dev/net/tun: %w", err)
		}
		ifr, err := unix.NewIfreq(name)
		if err != nil {
			return fmt.Errorf("tap name %q: %w", name, err)
		}
		ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			return fmt.Errorf("TUNSETIFF %s: %w", name, err)
		}
		if err := unix.IoctlSetPointerInt(fd, unix.TUNSETVNETHDRSZ, vnetHdrLen); err != nil {
			return fmt.Errorf("TUNSETVNETHDRSZ on %s: %w", name, err)
		}
		return nil
	})
	if err != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		return -1, fmt.Errorf("tap %s in %s: %w", name, ns.Name, err)
	}
	return fd, nil
}

// openMacvtap opens the character device of macvtap link name in ns, as
// QEMU does for libvirt's <interface type='direct'>: the node /dev/tapN
// (N = ifindex) is made with mknod in dir from the numbers in
// /sys/class/net/NAME/macvtap/tapN/dev (read inside ns, whose sysfs `ip
// netns exec` mounts). Non-blocking, IFF_VNET_HDR with a vnetHdrLen header.
func openMacvtap(ctx context.Context, ns *vtopo.NS, name, dir string) (int, error) {
	idx, err := ns.Index(name)
	if err != nil {
		return -1, err
	}
	sys := fmt.Sprintf("/sys/class/net/%s/macvtap/tap%d/dev", name, idx)
	out, err := run(ctx, nil, "ip", "netns", "exec", ns.Name, "cat", sys)
	if err != nil {
		return -1, err
	}
	var major, minor uint32
	if _, err := fmt.Sscanf(out, "%d:%d", &major, &minor); err != nil {
		return -1, fmt.Errorf("parse %s (%q): %w", sys, out, err)
	}
	node := fmt.Sprintf("%s/tap%d", dir, idx)
	if err := unix.Mknod(node, unix.S_IFCHR|0o600, int(unix.Mkdev(major, minor))); err != nil {
		return -1, fmt.Errorf("mknod %s c %d %d: %w", node, major, minor, err)
	}
	fd, err := unix.Open(node, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open %s (macvtap %s): %w", node, name, err)
	}
	ifr, err := unix.NewIfreq("")
	if err == nil {
		ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
		err = unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr)
	}
	if err == nil {
		err = unix.IoctlSetPointerInt(fd, unix.TUNSETVNETHDRSZ, vnetHdrLen)
	}
	if err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("macvtap %s: vnet header: %w", name, err)
	}
	return fd, nil
}

// tapNICs creates the VMs' taps in HV, as libvirt does before QEMU runs:
// tun taps vnet1 and vnet2 (the switch under test adds them as ports), or
// macvtaps macvtap1 and macvtap2 in mode vepa on the uplink, carrying the
// VMs' MACs. Each VM is the tap's file descriptor with a reader goroutine;
// closing it at teardown (before the namespace goes) removes a tun tap.
func (t *topo) tapNICs(ctx context.Context, kind vmLinkKind) error {
	for i, v := range []struct {
		nic *vmNIC
		mac net.HardwareAddr
	}{{&t.nic1, vm1MAC}, {&t.nic2, vm2MAC}} {
		var (
			name string
			fd   int
			err  error
		)
		if kind == vmTap {
			name = []string{vnet1, vnet2}[i]
			if fd, err = openTap(t.hv, name); err != nil {
				return err
			}
		} else {
			name = fmt.Sprintf("macvtap%d", i+1)
			if err := ipCmd(ctx, "-n", t.hv.Name, "link", "add", "link", uplinkIf, "name", name, "address", v.mac.String(),
				"type", "macvtap", "mode", "vepa"); err != nil {
				return err
			}
			if err := ipCmd(ctx, "-n", t.hv.Name, "link", "set", name, "up"); err != nil {
				return err
			}
			if fd, err = openMacvtap(ctx, t.hv, name, t.tmp); err != nil {
				return err
			}
		}
		if kind == vmTap {
			if err := ipCmd(ctx, "-n", t.hv.Name, "link", "set", name, "up"); err != nil {
				unix.Close(fd)
				return err
			}
		}
		nic := newTapNIC(name, fd, v.mac)
		t.onTeardown(nic.close)
		*v.nic = nic
	}
	return t.vethNICs() // REM
}
