//go:build linux

package vepa

import (
	"bytes"
	"os"
	"testing"
	"time"

	"github.com/vswitch/vswitch/test/topo"
)

// readLLDP reads from s until a frame equal to want arrives or d passes.
func readLLDP(s *Socket, want []byte, d time.Duration) bool {
	buf := make([]byte, 2048)
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		f, err := s.Read(buf)
		if err == nil && bytes.Equal(f, want) {
			return true
		}
	}
	return false
}

// The LLDP socket receives on its interface, keeps its binding while the
// interface is down (no reopen churn) and follows the name when the
// interface is deleted and created again.
func TestSocketFollowsInterface(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespaces and packet sockets")
	}
	ns := topo.VethNS(t, "vepa", "up0", "peer0")
	var src [6]byte
	copy(src[:], bridgeMAC[:])
	d := &LLDPDU{ChassisSubtype: ChassisIDMAC, ChassisID: bridgeMAC[:], PortSubtype: PortIDIfName, PortID: []byte("peer0"), TTL: 120}
	frame, err := d.Frame(NearestCustomerBridge, src)
	if err != nil {
		t.Fatal(err)
	}
	send := func() {
		t.Helper()
		c, err := ns.PacketConn("peer0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.WriteFrame(frame); err != nil {
			t.Fatal(err)
		}
	}
	// The socket opens and reopens in the calling thread's namespace: run
	// the whole test on one thread inside ns.
	err = ns.Do(func() error {
		s, err := OpenSocket("up0", EtherTypeLLDP)
		if err != nil {
			return err
		}
		defer s.Close()
		send()
		if !readLLDP(s, frame, 2*time.Second) {
			t.Fatal("LLDP frame not received")
		}

		fd := s.fd
		if err := ns.SetDown("up0"); err != nil {
			return err
		}
		start := time.Now()
		for i := 0; i < 5; i++ {
			if _, err := s.Read(make([]byte, 2048)); err != nil {
				return err
			}
		}
		if el := time.Since(start); el < 400*time.Millisecond {
			t.Errorf("5 reads on a down interface took %v: spinning", el)
		}
		if s.fd != fd {
			t.Errorf("socket reopened while the interface was only down (fd %d -> %d)", fd, s.fd)
		}
		if err := ns.SetUp("up0"); err != nil {
			return err
		}
		send()
		if !readLLDP(s, frame, 2*time.Second) {
			t.Fatal("LLDP frame not received after the interface came back up")
		}

		if err := ns.DelLink("up0"); err != nil {
			return err
		}
		time.Sleep(300 * time.Millisecond)
		if err := topo.VethPair(ns, "up0", ns, "peer0"); err != nil {
			return err
		}
		send()
		if !readLLDP(s, frame, 3*time.Second) {
			send() // the first may have gone out before the socket reopened
			if !readLLDP(s, frame, 2*time.Second) {
				t.Fatal("LLDP frame not received on the recreated interface")
			}
		}
		return s.Send(frame)
	})
	if err != nil {
		t.Fatal(err)
	}
}
