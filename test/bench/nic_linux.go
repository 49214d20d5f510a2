package bench

import (
	"fmt"
	"net"
	"time"

	vtopo "github.com/vswitch/vswitch/test/topo"
)

// vmNIC is a VM's network interface as the VM sees it: what the generator
// sends on, what the sink counts on, where the prober and the echo
// responder sit. A veth or macvlan end inside a VM namespace (vethNIC) and
// a tap or macvtap file descriptor (tapNIC) implement it.
type vmNIC interface {
	// blaster returns a generator that sends frame as fast as it can; gen
	// is the -gen choice ("ring" or "mmsg") where the NIC has a choice.
	blaster(frame []byte, gen string) (blaster, error)
	// pacer returns a generator of frame for paced batches.
	pacer(frame []byte) (batchSender, error)
	// sendN sends n copies of frame (learning and verification frames).
	sendN(frame []byte, n int) error
	// counts returns the frames the VM sent and received on this NIC so far.
	counts() (tx, rx uint64, err error)
	// watch starts looking at what the VM receives, for verification.
	watch() (watcher, error)
	// probeLink is where a prober in this VM sends its probes.
	probeLink() (probeLink, error)
	// responder starts answering probe requests in this VM.
	responder() (stop func(), err error)
}

// watcher collects what a VM received since watch was called.
type watcher interface {
	collect(dst net.HardwareAddr, want int, d time.Duration) (verifyResult, error)
	close()
}

// vethNIC is a veth (or macvlan) end in a VM namespace.
type vethNIC struct {
	ns     *vtopo.NS
	ifname string
	stats  *statsReader
}

func newVethNIC(ns *vtopo.NS, ifname string) (*vethNIC, error) {
	s, err := newStatsReader(ns, ifname)
	if err != nil {
		return nil, err
	}
	return &vethNIC{ns: ns, ifname: ifname, stats: s}, nil
}

func (v *vethNIC) close() { v.stats.close() }

func (v *vethNIC) blaster(frame []byte, gen string) (blaster, error) {
	if gen == "ring" {
		s, err := openRingSender(v.ns, v.ifname, frame)
		if err != nil {
			return nil, err
		}
		return s, nil
	}
	s, err := openSender(v.ns, v.ifname, frame)
	if err != nil {
		return nil, err
	}
	return s, nil
}

func (v *vethNIC) pacer(frame []byte) (batchSender, error) {
	s, err := openSender(v.ns, v.ifname, frame)
	if err != nil {
		return nil, err
	}
	return s, nil
}

func (v *vethNIC) sendN(frame []byte, n int) error {
	s, err := openSender(v.ns, v.ifname, frame)
	if err != nil {
		return err
	}
	defer s.close()
	if _, err := s.sendN(n); err != nil {
		return fmt.Errorf("send on %s in %s: %w", v.ifname, v.ns.Name, err)
	}
	return nil
}

// counts reads the interface counters: what left the VM and what reached it.
func (v *vethNIC) counts() (tx, rx uint64, err error) {
	rx, tx, _, err = v.stats.read()
	return tx, rx, err
}

func (v *vethNIC) watch() (watcher, error) {
	r, err := openReceiver(v.ns, v.ifname)
	if err != nil {
		return nil, err
	}
	return r, nil
}

func (v *vethNIC) probeLink() (probeLink, error) {
	fd, err := openProbeSocket(v.ns, v.ifname, probeSrcPort)
	if err != nil {
		return nil, err
	}
	return &sockLink{fd: fd}, nil
}

func (v *vethNIC) responder() (func(), error) {
	fd, err := openProbeSocket(v.ns, v.ifname, probeEchoPort)
	if err != nil {
		return nil, err
	}
	r := &sockResponder{fd: fd, done: make(chan struct{})}
	go r.run()
	return r.stop, nil
}
