//go:build linux

package ethtool

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	ethSSFeatures = 4  // ETH_SS_FEATURES string set
	ethGStringLen = 32 // ETH_GSTRING_LEN
)

// Restore remembers the features Disable switched off on an interface so
// they can be switched on again. It keeps the socket it used: the socket
// belongs to the interface's network namespace, and Restore may run on any
// thread.
type Restore struct {
	fd      int
	ifname  string
	ifindex int      // the interface Disable changed; another one of the same name is left alone
	names   []string // what was switched off, for logs
	off     []uint32 // per 32-bit word: the bits we cleared
}

// Names lists the features that were switched off.
func (r *Restore) Names() []string { return r.names }

// Disable switches off the named features (ethtool -k names, e.g. "rx-gro",
// "rx-vlan-hw-parse") of ifname in the calling thread's network namespace,
// as `ethtool -K` does. It returns nil (and no error) when none was on.
// Features the interface lacks are skipped; one that is on and fixed, or
// that the driver keeps on, makes an error wrapping errors.ErrUnsupported
// (the others stay off: the Restore is returned too).
func Disable(ifname string, names ...string) (*Restore, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socket for ethtool: %w", err)
	}
	r, err := disable(fd, ifname, names)
	if r == nil {
		unix.Close(fd)
	}
	return r, err
}

func disable(fd int, ifname string, names []string) (*Restore, error) {
	idx, n, err := featureIndexes(fd, ifname, names)
	if err != nil {
		return nil, fmt.Errorf("ethtool features of %s: %w", ifname, err)
	}
	words := (n + 31) / 32
	avail, active, err := getFeatures(fd, ifname, words)
	if err != nil {
		return nil, fmt.Errorf("ethtool features of %s: %w", ifname, err)
	}
	want := make([]uint32, words)
	var fixed []string
	for i, k := range idx {
		if k < 0 {
			continue
		}
		w, bit := k/32, uint32(1)<<(k%32)
		switch {
		case active[w]&bit == 0:
		case avail[w]&bit == 0:
			fixed = append(fixed, names[i])
		default:
			want[w] |= bit
		}
	}
	var fixedErr error
	if len(fixed) > 0 {
		fixedErr = fmt.Errorf("%s: %v on and fixed: %w", ifname, fixed, errors.ErrUnsupported)
	}
	if !anyBit(want) {
		return nil, fixedErr
	}
	ifindex, err := indexOf(fd, ifname)
	if err != nil {
		return nil, err
	}
	if err := setFeatures(fd, ifname, want, false); err != nil {
		return nil, fmt.Errorf("switch off %v on %s: %w", names, ifname, err)
	}
	r := &Restore{fd: fd, ifname: ifname, ifindex: ifindex, off: make([]uint32, words)}
	_, active, err = getFeatures(fd, ifname, words)
	if err != nil {
		// Cannot tell what took: restore all we asked to switch off.
		r.off, r.names = want, names
		return r, fmt.Errorf("ethtool features of %s: %w", ifname, err)
	}
	for i, k := range idx {
		if k < 0 {
			continue
		}
		w, bit := k/32, uint32(1)<<(k%32)
		if want[w]&bit != 0 && active[w]&bit == 0 {
			r.off[w] |= bit
			r.names = append(r.names, names[i])
		}
	}
	if !anyBit(r.off) {
		return nil, fmt.Errorf("%s: driver kept %v on: %w", ifname, names, errors.ErrUnsupported)
	}
	return r, fixedErr
}

// Restore switches the features back on and closes the socket. An
// interface that is gone, or was replaced by another of the same name, is
// left alone. It is safe to call on a nil Restore.
func (r *Restore) Restore() error {
	if r == nil {
		return nil
	}
	defer unix.Close(r.fd)
	if idx, err := indexOf(r.fd, r.ifname); err != nil || idx != r.ifindex {
		return nil
	}
	return setFeatures(r.fd, r.ifname, r.off, true)
}

// indexOf returns the ifindex of ifname (SIOCGIFINDEX, in fd's namespace).
func indexOf(fd int, ifname string) (int, error) {
	ifr, err := unix.NewIfreq(ifname)
	if err != nil {
		return 0, fmt.Errorf("interface name %q: %w", ifname, err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFINDEX, ifr); err != nil {
		return 0, fmt.Errorf("index of %s: %w", ifname, err)
	}
	return int(ifr.Uint32()), nil
}

// Enabled reports whether the named feature is on (false when the
// interface has no such feature).
func Enabled(ifname, name string) (bool, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return false, fmt.Errorf("socket for ethtool: %w", err)
	}
	defer unix.Close(fd)
	idx, n, err := featureIndexes(fd, ifname, []string{name})
	if err != nil {
		return false, fmt.Errorf("ethtool features of %s: %w", ifname, err)
	}
	if idx[0] < 0 {
		return false, nil
	}
	_, active, err := getFeatures(fd, ifname, (n+31)/32)
	if err != nil {
		return false, fmt.Errorf("ethtool features of %s: %w", ifname, err)
	}
	return active[idx[0]/32]&(1<<(idx[0]%32)) != 0, nil
}

// ethtool issues a SIOCETHTOOL ioctl with data as the command buffer.
func ethtool(fd int, ifname string, data []byte) (uintptr, error) {
	var ifr struct {
		name [unix.IFNAMSIZ]byte
		data unsafe.Pointer
		_    [16]byte // rest of struct ifreq
	}
	copy(ifr.name[:unix.IFNAMSIZ-1], ifname)
	ifr.data = unsafe.Pointer(&data[0])
	r, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	runtime.KeepAlive(data)
	if errno != 0 {
		return r, errno
	}
	return r, nil
}

// featureIndexes finds the bit index of each name in the interface's
// ETH_SS_FEATURES strings (-1 when absent) and the number of features.
func featureIndexes(fd int, ifname string, names []string) ([]int, int, error) {
	ne := binary.NativeEndian
	// struct ethtool_sset_info { u32 cmd, reserved; u64 sset_mask; u32 data[]; }
	info := make([]byte, 20)
	ne.PutUint32(info[0:], unix.ETHTOOL_GSSET_INFO)
	ne.PutUint64(info[8:], 1<<ethSSFeatures)
	if _, err := ethtool(fd, ifname, info); err != nil {
		return nil, 0, fmt.Errorf("ETHTOOL_GSSET_INFO: %w", err)
	}
	if ne.Uint64(info[8:])&(1<<ethSSFeatures) == 0 {
		return nil, 0, fmt.Errorf("no feature strings: %w", unix.EOPNOTSUPP)
	}
	n := int(ne.Uint32(info[16:]))
	// struct ethtool_gstrings { u32 cmd, string_set, len; u8 data[len][32]; }
	strs := make([]byte, 12+n*ethGStringLen)
	ne.PutUint32(strs[0:], unix.ETHTOOL_GSTRINGS)
	ne.PutUint32(strs[4:], ethSSFeatures)
	ne.PutUint32(strs[8:], uint32(n))
	if _, err := ethtool(fd, ifname, strs); err != nil {
		return nil, 0, fmt.Errorf("ETHTOOL_GSTRINGS: %w", err)
	}
	idx := make([]int, len(names))
	for i := range idx {
		idx[i] = -1
	}
	for k := 0; k < n; k++ {
		s := strs[12+k*ethGStringLen : 12+(k+1)*ethGStringLen]
		if z := bytes.IndexByte(s, 0); z >= 0 {
			s = s[:z]
		}
		for i, name := range names {
			if string(s) == name {
				idx[i] = k
			}
		}
	}
	return idx, n, nil
}

// getFeatures returns, per 32-bit word, the changeable and active bits.
func getFeatures(fd int, ifname string, words int) (avail, active []uint32, err error) {
	ne := binary.NativeEndian
	// struct ethtool_gfeatures { u32 cmd, size; {u32 available, requested, active, never_changed}[size]; }
	buf := make([]byte, 8+words*16)
	ne.PutUint32(buf[0:], unix.ETHTOOL_GFEATURES)
	ne.PutUint32(buf[4:], uint32(words))
	if _, err := ethtool(fd, ifname, buf); err != nil {
		return nil, nil, fmt.Errorf("ETHTOOL_GFEATURES: %w", err)
	}
	avail = make([]uint32, words)
	active = make([]uint32, words)
	for w := 0; w < words; w++ {
		avail[w] = ne.Uint32(buf[8+w*16:])
		active[w] = ne.Uint32(buf[8+w*16+8:])
	}
	return avail, active, nil
}

// setFeatures sets the bits in mask to on (or off).
func setFeatures(fd int, ifname string, mask []uint32, on bool) error {
	ne := binary.NativeEndian
	// struct ethtool_sfeatures { u32 cmd, size; {u32 valid, requested}[size]; }
	buf := make([]byte, 8+len(mask)*8)
	ne.PutUint32(buf[0:], unix.ETHTOOL_SFEATURES)
	ne.PutUint32(buf[4:], uint32(len(mask)))
	for w, m := range mask {
		ne.PutUint32(buf[8+w*8:], m)
		if on {
			ne.PutUint32(buf[8+w*8+4:], m)
		}
	}
	// A positive result (ETHTOOL_F_WISH...) means the kernel could not
	// apply everything; the caller reads the result back.
	if _, err := ethtool(fd, ifname, buf); err != nil {
		return fmt.Errorf("ETHTOOL_SFEATURES: %w", err)
	}
	return nil
}

func anyBit(m []uint32) bool {
	for _, w := range m {
		if w != 0 {
			return true
		}
	}
	return false
}

// RXQueues returns how many receive queues ifname uses now (ethtool -l:
// its RX plus combined channels, ETHTOOL_GCHANNELS), in the calling
// thread's network namespace. Drivers without channels (tun, bridges)
// answer with an error wrapping errors.ErrUnsupported.
func RXQueues(ifname string) (int, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("socket for ethtool: %w", err)
	}
	defer unix.Close(fd)
	// struct ethtool_channels { u32 cmd, max_rx, max_tx, max_other,
	// max_combined, rx_count, tx_count, other_count, combined_count; }
	buf := make([]byte, 9*4)
	ne := binary.NativeEndian
	ne.PutUint32(buf, unix.ETHTOOL_GCHANNELS)
	if _, err := ethtool(fd, ifname, buf); err != nil {
		if errors.Is(err, unix.EOPNOTSUPP) {
			err = fmt.Errorf("%w: %w", errors.ErrUnsupported, err)
		}
		return 0, fmt.Errorf("ethtool channels of %s: %w", ifname, err)
	}
	n := int(ne.Uint32(buf[5*4:])) + int(ne.Uint32(buf[8*4:]))
	if n <= 0 {
		return 0, fmt.Errorf("ethtool channels of %s: no RX channel: %w", ifname, errors.ErrUnsupported)
	}
	return n, nil
}
