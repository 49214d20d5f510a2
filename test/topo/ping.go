package topo

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Pinger sends ICMP echo requests from a source address inside a namespace
// over a raw IPv4 socket and counts the matching replies. It does not need
// the ping binary.
type Pinger struct {
	ns       *NS
	src, dst net.IP
	conn     *net.IPConn
	id       uint16
	mu       sync.Mutex
	seq      uint16
}

// NewPinger opens a raw ICMP socket inside ns bound to src (which must be an
// address configured in ns) for echo requests to dst. Close it when done;
// when ns belongs to a Topo it is closed at Cleanup.
func NewPinger(ns *NS, src, dst string) (*Pinger, error) {
	s := net.ParseIP(src).To4()
	d := net.ParseIP(dst).To4()
	if s == nil || d == nil {
		return nil, fmt.Errorf("pinger %s -> %s: need IPv4 addresses", src, dst)
	}
	var fd int
	err := ns.Do(func() error {
		var err error
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMP)
		if err != nil {
			return fmt.Errorf("raw icmp socket: %w", err)
		}
		sa := &unix.SockaddrInet4{}
		copy(sa.Addr[:], s)
		if err := unix.Bind(fd, sa); err != nil {
			unix.Close(fd)
			return fmt.Errorf("bind %s: %w", src, err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("pinger in %s: %w", ns, err)
	}
	f := os.NewFile(uintptr(fd), "icmp")
	c, err := net.FilePacketConn(f)
	f.Close() // FilePacketConn dups the fd
	if err != nil {
		return nil, fmt.Errorf("pinger in %s: %w", ns, err)
	}
	var idb [2]byte
	_, _ = rand.Read(idb[:])
	p := &Pinger{ns: ns, src: s, dst: d, conn: c.(*net.IPConn), id: binary.BigEndian.Uint16(idb[:])}
	if ns.topo != nil {
		ns.topo.Defer("close pinger", func() error { _ = p.Close(); return nil })
	}
	return p, nil
}

// Close closes the socket.
func (p *Pinger) Close() error {
	err := p.conn.Close()
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

func (p *Pinger) send(seq uint16) error {
	m := make([]byte, 8+16)
	m[0] = 8 // echo request
	binary.BigEndian.PutUint16(m[4:6], p.id)
	binary.BigEndian.PutUint16(m[6:8], seq)
	binary.BigEndian.PutUint64(m[8:16], uint64(time.Now().UnixNano()))
	copy(m[16:], "vswitch-topo")
	binary.BigEndian.PutUint16(m[2:4], Checksum(m))
	if _, err := p.conn.WriteToIP(m, &net.IPAddr{IP: p.dst}); err != nil {
		return fmt.Errorf("send echo to %s: %w", p.dst, err)
	}
	return nil
}

// recv waits until deadline for an echo reply from dst with our id and
// returns its sequence number.
func (p *Pinger) recv(deadline time.Time) (uint16, error) {
	buf := make([]byte, 1500)
	if err := p.conn.SetReadDeadline(deadline); err != nil {
		return 0, err
	}
	for {
		n, from, err := p.conn.ReadFromIP(buf)
		if err != nil {
			return 0, err
		}
		b := buf[:n]
		// Raw IPv4 sockets deliver the IP header too.
		if len(b) < 20 {
			continue
		}
		ihl := int(b[0]&0x0f) * 4
		if len(b) < ihl+8 || !from.IP.Equal(p.dst) {
			continue
		}
		icmp := b[ihl:]
		if icmp[0] != 0 || icmp[1] != 0 || binary.BigEndian.Uint16(icmp[4:6]) != p.id {
			continue
		}
		return binary.BigEndian.Uint16(icmp[6:8]), nil
	}
}

// Ping sends echo requests (one every 200 ms, the first may wait on ARP)
// until a reply arrives or timeout passes. It returns the round-trip time of
// the first reply.
func (p *Pinger) Ping(timeout time.Duration) (time.Duration, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	deadline := time.Now().Add(timeout)
	sent := map[uint16]time.Time{}
	for time.Now().Before(deadline) {
		p.seq++
		seq := p.seq
		if err := p.send(seq); err != nil {
			return 0, err
		}
		sent[seq] = time.Now()
		wait := time.Now().Add(200 * time.Millisecond)
		if wait.After(deadline) {
			wait = deadline
		}
		for {
			got, err := p.recv(wait)
			if err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					break
				}
				return 0, fmt.Errorf("ping %s from %s in %s: %w", p.dst, p.src, p.ns, err)
			}
			if t, ok := sent[got]; ok {
				return time.Since(t), nil
			}
		}
	}
	return 0, fmt.Errorf("ping %s from %s in %s: no reply within %v: %w", p.dst, p.src, p.ns, timeout, ErrTimeout)
}

// Count sends n echo requests interval apart and returns how many distinct
// replies arrived by timeout after the last one was sent.
func (p *Pinger) Count(n int, interval, timeout time.Duration) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	sent := make(map[uint16]bool, n)
	got := 0
	collect := func(until time.Time) error {
		for got < n {
			seq, err := p.recv(until)
			if err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					return nil
				}
				return err
			}
			if sent[seq] {
				sent[seq] = false // count each sequence once
				got++
			}
		}
		return nil
	}
	for i := 0; i < n; i++ {
		p.seq++
		if err := p.send(p.seq); err != nil {
			return got, err
		}
		sent[p.seq] = true
		if err := collect(time.Now().Add(interval)); err != nil {
			return got, fmt.Errorf("ping %s in %s: %w", p.dst, p.ns, err)
		}
	}
	if err := collect(time.Now().Add(timeout)); err != nil {
		return got, fmt.Errorf("ping %s in %s: %w", p.dst, p.ns, err)
	}
	return got, nil
}

// Ping checks that dst answers ICMP echo sent from src inside ns within
// timeout. It returns nil as soon as one reply arrives.
func Ping(ns *NS, src, dst string, timeout time.Duration) error {
	p, err := NewPinger(ns, src, dst)
	if err != nil {
		return err
	}
	defer p.Close()
	_, err = p.Ping(timeout)
	return err
}
