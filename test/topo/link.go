package topo

import (
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"time"
	"unsafe"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func checkIfname(name string) error {
	if name == "" || len(name) > MaxIfnameLen {
		return fmt.Errorf("interface name %q: must be 1..%d bytes", name, MaxIfnameLen)
	}
	return nil
}

// Link returns the link called name in the namespace.
func (n *NS) Link(name string) (netlink.Link, error) {
	l, err := n.nl.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("link %s in %s: %w", name, n, err)
	}
	return l, nil
}

// MAC returns the hardware address of link name.
func (n *NS) MAC(name string) (net.HardwareAddr, error) {
	l, err := n.Link(name)
	if err != nil {
		return nil, err
	}
	return l.Attrs().HardwareAddr, nil
}

// Index returns the interface index of link name inside the namespace.
func (n *NS) Index(name string) (int, error) {
	l, err := n.Link(name)
	if err != nil {
		return 0, err
	}
	return l.Attrs().Index, nil
}

// SetUp sets link name administratively up.
func (n *NS) SetUp(name string) error {
	l, err := n.Link(name)
	if err != nil {
		return err
	}
	if err := n.nl.LinkSetUp(l); err != nil {
		return fmt.Errorf("set %s up in %s: %w", name, n, err)
	}
	return nil
}

// SetDown sets link name administratively down.
func (n *NS) SetDown(name string) error {
	l, err := n.Link(name)
	if err != nil {
		return err
	}
	if err := n.nl.LinkSetDown(l); err != nil {
		return fmt.Errorf("set %s down in %s: %w", name, n, err)
	}
	return nil
}

// SetMAC sets the hardware address of link name ("52:54:00:12:34:56").
func (n *NS) SetMAC(name, mac string) error {
	hw, err := net.ParseMAC(mac)
	if err != nil {
		return fmt.Errorf("set mac of %s: %w", name, err)
	}
	l, err := n.Link(name)
	if err != nil {
		return err
	}
	if err := n.nl.LinkSetHardwareAddr(l, hw); err != nil {
		return fmt.Errorf("set mac %s on %s in %s: %w", mac, name, n, err)
	}
	return nil
}

// SetMTU sets the MTU of link name.
func (n *NS) SetMTU(name string, mtu int) error {
	l, err := n.Link(name)
	if err != nil {
		return err
	}
	if err := n.nl.LinkSetMTU(l, mtu); err != nil {
		return fmt.Errorf("set mtu %d on %s in %s: %w", mtu, name, n, err)
	}
	return nil
}

// DelLink deletes link name (for a veth, both ends go).
func (n *NS) DelLink(name string) error {
	l, err := n.Link(name)
	if err != nil {
		return err
	}
	if err := n.nl.LinkDel(l); err != nil {
		return fmt.Errorf("delete %s in %s: %w", name, n, err)
	}
	return nil
}

// deferHostLinkDel makes the Topo delete a link it created in the host
// namespace: namespace deletion does not take care of those.
func (n *NS) deferHostLinkDel(name string) {
	if !n.IsHost() || n.topo == nil {
		return
	}
	n.topo.Defer("delete host link "+name, func() error {
		err := n.DelLink(name)
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return err
	})
}

// VethPair creates a veth pair, nameA in a and nameB in b (a and b may be the
// same namespace), and sets both ends up. Links created in the host namespace
// are deleted at Cleanup when the NS came from (*Topo).Host.
func VethPair(a *NS, nameA string, b *NS, nameB string) error {
	if err := checkIfname(nameA); err != nil {
		return err
	}
	if err := checkIfname(nameB); err != nil {
		return err
	}
	v := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: nameA},
		PeerName:      nameB,
		PeerNamespace: netlink.NsFd(int(b.h)),
	}
	if err := a.nl.LinkAdd(v); err != nil {
		return fmt.Errorf("add veth %s(%s)-%s(%s): %w", nameA, a, nameB, b, err)
	}
	a.deferHostLinkDel(nameA)
	if b.IsHost() && !a.IsHost() {
		b.deferHostLinkDel(nameB)
	}
	if err := a.SetUp(nameA); err != nil {
		return err
	}
	return b.SetUp(nameB)
}

// Port is a bridge port for Bridge.
type Port struct {
	Name string
	// Hairpin makes the bridge send frames back out the port they came in
	// on (reflective relay, `bridge link set dev X hairpin on`).
	Hairpin bool
}

// Bridge creates a Linux bridge name in ns with the given ports enslaved and
// up, STP off (ports forward at once), multicast snooping off (multicast
// floods like broadcast) and the bridge-nf-call-{iptables,ip6tables,arptables}
// sysctls set to 0 in ns, so the bridge forwards every frame untouched.
func Bridge(ns *NS, name string, ports ...Port) error {
	if err := checkIfname(name); err != nil {
		return err
	}
	for _, k := range []string{"iptables", "ip6tables", "arptables"} {
		err := ns.Sysctl("net.bridge.bridge-nf-call-"+k, "0")
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	off := false
	ageing := uint32(30000) // centiseconds: 300 s, the default, stated
	br := &netlink.Bridge{
		LinkAttrs:         netlink.LinkAttrs{Name: name},
		MulticastSnooping: &off,
		AgeingTime:        &ageing,
	}
	if err := ns.nl.LinkAdd(br); err != nil {
		return fmt.Errorf("add bridge %s in %s: %w", name, ns, err)
	}
	ns.deferHostLinkDel(name)
	for _, p := range ports {
		if err := AddBridgePort(ns, name, p); err != nil {
			return err
		}
	}
	return ns.SetUp(name)
}

// AddBridgePort enslaves p.Name to bridge br, sets hairpin as asked, and
// sets the port up.
func AddBridgePort(ns *NS, br string, p Port) error {
	brl, err := ns.Link(br)
	if err != nil {
		return err
	}
	l, err := ns.Link(p.Name)
	if err != nil {
		return err
	}
	if err := ns.nl.LinkSetMaster(l, brl); err != nil {
		return fmt.Errorf("add %s to bridge %s in %s: %w", p.Name, br, ns, err)
	}
	if p.Hairpin {
		if err := Hairpin(ns, p.Name, true); err != nil {
			return err
		}
	}
	return ns.SetUp(p.Name)
}

// Hairpin turns hairpin mode (reflective relay) on or off on bridge port.
func Hairpin(ns *NS, port string, on bool) error {
	l, err := ns.Link(port)
	if err != nil {
		return err
	}
	if err := ns.nl.LinkSetHairpin(l, on); err != nil {
		return fmt.Errorf("set hairpin %v on %s in %s: %w", on, port, ns, err)
	}
	return nil
}

// AddrAdd adds an address in CIDR form ("10.0.0.1/24") to link.
func AddrAdd(ns *NS, link, cidr string) error {
	a, err := netlink.ParseAddr(cidr)
	if err != nil {
		return fmt.Errorf("add address %s: %w", cidr, err)
	}
	l, err := ns.Link(link)
	if err != nil {
		return err
	}
	if err := ns.nl.AddrAdd(l, a); err != nil {
		return fmt.Errorf("add address %s to %s in %s: %w", cidr, link, ns, err)
	}
	return nil
}

// ifreq as TUNSETIFF wants it: name then flags, padded to 40 bytes.
type ifreqFlags struct {
	Name  [unix.IFNAMSIZ]byte
	Flags uint16
	_     [22]byte
}

// Tap creates (or attaches to, if it exists) a persistent tap device name in
// ns through /dev/net/tun with IFF_TAP|IFF_NO_PI, sets it up, and returns
// the tun fd: the "VM" side. Reading it yields frames the host sends to the
// VM, writing it injects frames from the VM. The fd is non-blocking and
// registered with the runtime poller, so SetReadDeadline works.
//
// While the file is open the tap has carrier; after Close the device stays
// (persistent) without carrier until the namespace goes or DelLink. When ns
// belongs to a Topo the file is closed at Cleanup.
func Tap(ns *NS, name string) (*os.File, error) {
	return openTap(ns, name, true)
}

// TapTransient is Tap without TUNSETPERSIST: the device disappears when the
// returned file is closed, as a tap does when QEMU exits.
func TapTransient(ns *NS, name string) (*os.File, error) {
	return openTap(ns, name, false)
}

func openTap(ns *NS, name string, persist bool) (*os.File, error) {
	if err := checkIfname(name); err != nil {
		return nil, err
	}
	var fd int
	err := ns.Do(func() error {
		var err error
		// The tun socket takes the namespace of the thread that opens it.
		fd, err = unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open /dev/net/tun: %w", err)
		}
		var req ifreqFlags
		copy(req.Name[:], name)
		req.Flags = unix.IFF_TAP | unix.IFF_NO_PI
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TUNSETIFF, uintptr(unsafe.Pointer(&req))); e != 0 {
			unix.Close(fd)
			return fmt.Errorf("TUNSETIFF %s: %w", name, e)
		}
		if persist {
			if err := unix.IoctlSetInt(fd, unix.TUNSETPERSIST, 1); err != nil {
				unix.Close(fd)
				return fmt.Errorf("TUNSETPERSIST %s: %w", name, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("tap %s in %s: %w", name, ns, err)
	}
	f := os.NewFile(uintptr(fd), "tap:"+name)
	if persist {
		ns.deferHostLinkDel(name)
	}
	if err := ns.SetUp(name); err != nil {
		f.Close()
		return nil, err
	}
	if ns.topo != nil {
		ns.topo.Defer("close tap "+name, func() error {
			if err := f.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
				return err
			}
			return nil
		})
	}
	return f, nil
}

// ethtool ioctl bits for DisableOffloads.
const (
	ethtoolSTXCSUM = 0x17 // ETHTOOL_STXCSUM
	ethtoolSSG     = 0x19 // ETHTOOL_SSG
	ethtoolSTSO    = 0x1f // ETHTOOL_STSO
	ethtoolSGSO    = 0x24 // ETHTOOL_SGSO
)

type ethtoolValue struct {
	Cmd  uint32
	Data uint32
}

type ifreqData struct {
	Name [unix.IFNAMSIZ]byte
	Data uintptr
	_    [16]byte
}

// DisableOffloads turns off TX checksum offload, scatter-gather, TSO and GSO
// on link name (`ethtool -K name tx off sg off tso off gso off`). Needed when
// kernel-generated TCP/UDP traffic crosses a userspace switch: with offload
// on, veth hands out frames whose checksum is left for hardware that never
// computes it.
func DisableOffloads(ns *NS, name string) error {
	return ns.Do(func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("ethtool socket: %w", err)
		}
		defer unix.Close(fd)
		for _, cmd := range []uint32{ethtoolSTSO, ethtoolSGSO, ethtoolSSG, ethtoolSTXCSUM} {
			// Heap objects do not move, so the uintptr inside req stays valid.
			v := &ethtoolValue{Cmd: cmd}
			req := &ifreqData{}
			copy(req.Name[:], name)
			req.Data = uintptr(unsafe.Pointer(v))
			_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(req)))
			runtime.KeepAlive(v)
			if e != 0 && e != unix.EOPNOTSUPP {
				return fmt.Errorf("ethtool cmd %#x on %s in %s: %w", cmd, name, ns, e)
			}
		}
		return nil
	})
}

// WaitLink waits until link name exists in the namespace (e.g. created by a
// process under test) and returns it.
func (n *NS) WaitLink(name string, timeout time.Duration) (netlink.Link, error) {
	deadline := time.Now().Add(timeout)
	for {
		l, err := n.nl.LinkByName(name)
		if err == nil {
			return l, nil
		}
		if !time.Now().Before(deadline) {
			return nil, fmt.Errorf("wait for link %s in %s: %w", name, n, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// MacvlanVEPA creates a macvlan in mode vepa on parent (in ns), named
// name inside dst, up: the kernel's VEPA port, the anchor every latency and
// throughput comparison of vswitchd is measured against.
func MacvlanVEPA(ns *NS, parent string, dst *NS, name string) error {
	if err := checkIfname(name); err != nil {
		return err
	}
	p, err := ns.Link(parent)
	if err != nil {
		return err
	}
	m := &netlink.Macvlan{
		LinkAttrs: netlink.LinkAttrs{Name: name, ParentIndex: p.Attrs().Index, Namespace: netlink.NsFd(int(dst.h))},
		Mode:      netlink.MACVLAN_MODE_VEPA,
	}
	if err := ns.nl.LinkAdd(m); err != nil {
		return fmt.Errorf("add macvlan %s on %s(%s) into %s: %w", name, parent, ns, dst, err)
	}
	return dst.SetUp(name)
}
