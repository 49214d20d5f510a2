package integration

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/vswitch/vswitch/test/topo"
)

// With the VMs' TX checksum offload left on (the veth and virtio default),
// kernel TCP in a VM hands its veth CHECKSUM_PARTIAL frames: the checksum
// field holds only the pseudo-header sum. vswitchd must complete it before
// forwarding, or the receiving VM drops every segment and the connection
// never gets past the SYN. TSO/GSO stay off: vswitchd does not segment.
func TestOffloadTCPEcho(t *testing.T) {
	forEachDatapath(t, func(t *testing.T, dp string) {
		if portBackend(dp) == "afxdp" {
			// Measured on kernel 6.18 (this test without the skip: the
			// connect times out). veth runs its peer's XDP program on
			// the CHECKSUM_PARTIAL skb's bytes (veth_xdp_rcv_skb), with
			// only the pseudo-header sum in the checksum field; the
			// XDP_REDIRECT into the XSK frees the skb, and ip_summed,
			// csum_start and csum_offset with it. Neither the AF_XDP RX
			// descriptor nor the XDP RX metadata kfuncs (timestamp,
			// hash, VLAN tag) say "checksum not ready", so the backend
			// cannot tell such a frame from a corrupt one.
			t.Skip("afxdp-xsk (VM ports on AF_XDP): veth's XDP path drops the CHECKSUM_PARTIAL state before the XSK (no RX descriptor flag or metadata kfunc reports it), so frames reach AF_XDP with the pseudo-header sum as their checksum; VMs on afxdp ports need TX checksum offload off")
		}
		_, hvs := newLab(t, dp, 1)
		h := hvs[0]
		vm1, vm2 := h.addVM(1), h.addVM(2)
		for _, v := range []*vm{vm1, vm2} {
			// addVM turned every offload off; put TX checksumming back,
			// leaving SG/TSO/GSO off.
			if err := setTxCsum(v.ns, "eth0", true); err != nil {
				t.Fatal(err)
			}
			for _, f := range []struct {
				name string
				get  uint32
				want bool
			}{{"tx-checksumming", ethtoolGTXCSUM, true}, {"tso", ethtoolGTSO, false}, {"gso", ethtoolGGSO, false}} {
				on, err := ethtoolGet(v.ns, "eth0", f.get)
				if err != nil {
					t.Fatal(err)
				}
				if on != f.want {
					t.Fatalf("%s eth0: %s is %v, want %v", v.ns, f.name, on, f.want)
				}
			}
		}
		h.start()
		h.addPort(vm1.port, "--vlan", "100")
		h.addPort(vm2.port, "--vlan", "100")
		vm1.mustPing(vm2)
		vm2.mustPing(vm1)

		const size = 100 << 10
		tcpEcho(t, vm1, vm2, size, 15*time.Second)
		// Still offloaded at the end (nothing turned it off behind us).
		if on, err := ethtoolGet(vm1.ns, "eth0", ethtoolGTXCSUM); err != nil || !on {
			t.Fatalf("vm1 eth0 tx-checksumming on = %v (%v), want on", on, err)
		}
		for _, p := range h.ports() {
			if p.Name == vm1.port && p.RxPackets < size/1500 {
				t.Errorf("%s rx_packets %d: the transfer did not go through vswitchd", p.Name, p.RxPackets)
			}
		}
		// The completed checksums are counted per port (afpacket's
		// backend counters).
		for _, p := range h.stats().Ports {
			if p.Name == vm1.port && p.Backend["checksums_fixed"] < size/1500 {
				t.Errorf("%s backend counters %v: want checksums_fixed >= %d", p.Name, p.Backend, size/1500)
			}
		}
	})
}

// Legacy ethtool commands (linux/ethtool.h).
const (
	ethtoolGTXCSUM = 0x16
	ethtoolSTXCSUM = 0x17
	ethtoolGTSO    = 0x1e
	ethtoolGGSO    = 0x23
)

type ethtoolVal struct {
	cmd, data uint32
}

type ethtoolIfreq struct {
	name [unix.IFNAMSIZ]byte
	data uintptr
	_    [16]byte
}

// ethtoolIoctl runs one SIOCETHTOOL ethtool_value command on ifname in ns.
func ethtoolIoctl(ns *topo.NS, ifname string, cmd, data uint32) (uint32, error) {
	var out uint32
	err := ns.Do(func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("ethtool socket: %w", err)
		}
		defer unix.Close(fd)
		v := &ethtoolVal{cmd: cmd, data: data}
		req := &ethtoolIfreq{}
		copy(req.name[:], ifname)
		req.data = uintptr(unsafe.Pointer(v))
		_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(req)))
		runtime.KeepAlive(v)
		if e != 0 {
			return fmt.Errorf("ethtool cmd %#x on %s in %s: %w", cmd, ifname, ns, e)
		}
		out = v.data
		return nil
	})
	return out, err
}

func setTxCsum(ns *topo.NS, ifname string, on bool) error {
	var d uint32
	if on {
		d = 1
	}
	_, err := ethtoolIoctl(ns, ifname, ethtoolSTXCSUM, d)
	return err
}

func ethtoolGet(ns *topo.NS, ifname string, cmd uint32) (bool, error) {
	v, err := ethtoolIoctl(ns, ifname, cmd, 0)
	return v != 0, err
}

// tcpEcho opens a TCP connection from `from` to an echo server in `to`,
// sends size bytes and checks they come back unchanged.
func tcpEcho(t *testing.T, from, to *vm, size int, timeout time.Duration) {
	t.Helper()
	var ln net.Listener
	if err := to.ns.Do(func() error {
		var err error
		ln, err = net.Listen("tcp4", to.ip+":0")
		return err
	}); err != nil {
		t.Fatalf("listen in %s: %v", to.ns, err)
	}
	defer ln.Close()
	srvErr := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			srvErr <- fmt.Errorf("accept: %w", err)
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(timeout))
		if _, err := io.Copy(c, c); err != nil {
			srvErr <- fmt.Errorf("echo: %w", err)
			return
		}
		srvErr <- c.(*net.TCPConn).CloseWrite()
	}()

	var conn net.Conn
	if err := from.ns.Do(func() error {
		d := net.Dialer{Timeout: 5 * time.Second}
		var err error
		conn, err = d.DialContext(context.Background(), "tcp4", ln.Addr().String())
		return err
	}); err != nil {
		t.Fatalf("connect %s -> %s: %v", from.ip, ln.Addr(), err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(timeout))

	msg := make([]byte, size)
	for i := range msg {
		msg[i] = byte(i*13 + i>>9)
	}
	wrErr := make(chan error, 1)
	go func() {
		_, err := conn.Write(msg)
		if err == nil {
			err = conn.(*net.TCPConn).CloseWrite()
		}
		wrErr <- err
	}()
	got, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("read echo: %v (got %d of %d bytes)", err, len(got), size)
	}
	if err := <-wrErr; err != nil {
		t.Fatalf("write %d bytes: %v", size, err)
	}
	if err := <-srvErr; err != nil {
		t.Fatalf("server: %v", err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("echo differs: got %d bytes, want %d", len(got), size)
	}
}
