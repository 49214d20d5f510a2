package vepa

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/vswitch/vswitch/pkg/vlan"
)

// ECP (Edge Control Protocol, IEEE 802.1Qbg-2012 clause 43) carries VDP
// between station and bridge: ethertype 0x8940 to the nearest-customer-
// bridge address, a 4-byte header and a sequence number:
//
//	bits 15-12 version (1), 11-10 operation (0 request, 1 acknowledgement),
//	9-0 subtype (1 = VDP); then u16 sequence number (big endian)
//
// Each side has at most one request outstanding; the receiver acknowledges
// every request with the same sequence number and passes a request up only
// when its sequence number differs from the last one it passed up (a
// retransmission whose acknowledgement was lost is acknowledged again but
// not delivered twice). The sender retransmits after 10 µs × 2^RTE, R times,
// without back-off (as lldpad's ecp22.c); R and RTE are the values the EVB
// TLV negotiated (SetTimers), followed by a request under way too. A
// request is given up when the peer changes (SetPeer).
const (
	EtherTypeECP = 0x8940

	ecpVersion    = 1
	ECPRequest    = 0
	ECPAck        = 1
	ECPSubtypeVDP = 1
	ecpHeaderLen  = 4
)

// ECPHeader is a parsed ECP header.
type ECPHeader struct {
	Version uint8
	Op      uint8
	Subtype uint16
	Seq     uint16
}

// ParseECP splits an untagged Ethernet frame with ethertype 0x8940 into its
// header and payload (a view into frame).
func ParseECP(frame []byte) (ECPHeader, []byte, error) {
	if len(frame) < 14+ecpHeaderLen || binary.BigEndian.Uint16(frame[12:14]) != EtherTypeECP {
		return ECPHeader{}, nil, errors.New("ecp: not an ECP frame")
	}
	w := binary.BigEndian.Uint16(frame[14:16])
	h := ECPHeader{Version: uint8(w >> 12), Op: uint8(w>>10) & 0x3, Subtype: w & 0x3ff, Seq: binary.BigEndian.Uint16(frame[16:18])}
	if h.Version != ecpVersion {
		return h, nil, fmt.Errorf("ecp: version %d, want %d", h.Version, ecpVersion)
	}
	if h.Op > ECPAck {
		return h, nil, fmt.Errorf("ecp: operation %d", h.Op)
	}
	return h, frame[14+ecpHeaderLen:], nil
}

// ECPFrame builds an ECP frame from src to the nearest customer bridge,
// padded to 60 bytes.
func ECPFrame(src [6]byte, op uint8, subtype, seq uint16, payload []byte) []byte {
	b := make([]byte, 0, 18+len(payload)+46)
	b = append(b, NearestCustomerBridge[:]...)
	b = append(b, src[:]...)
	b = binary.BigEndian.AppendUint16(b, EtherTypeECP)
	b = binary.BigEndian.AppendUint16(b, uint16(ecpVersion)<<12|uint16(op&3)<<10|subtype&0x3ff)
	b = binary.BigEndian.AppendUint16(b, seq)
	b = append(b, payload...)
	for len(b) < 60 {
		b = append(b, 0)
	}
	return b
}

// ECPConfig configures an ECP endpoint.
type ECPConfig struct {
	// MAC is the source address.
	MAC [6]byte
	// Send transmits a frame.
	Send func(frame []byte) error
	// Deliver receives the payload of each new request (VDP PDUs); it
	// must not keep the slice.
	Deliver func(payload []byte)
	// Retries (R) and RTE (retransmission exponent) of requests we send
	// (zero: 3 and 8, lldpad's defaults; SetTimers sets any value, the
	// ones the EVB TLV negotiated).
	Retries int
	RTE     uint8
	// Peer is the only address frames are taken from (SetPeer changes
	// it): acknowledgements and requests of anyone else are refused and
	// counted (ECPStats.Foreign). Zero means none yet; then, with Latch,
	// the first sender of a well-formed ECP frame becomes the peer (ECP
	// without LLDP), and without it every frame is refused until SetPeer
	// names one. VDPStation takes the peer from LLDP (SetBridge).
	Peer  [6]byte
	Latch bool
}

// ECP is one end of the protocol for subtype VDP.
type ECP struct {
	cfg ECPConfig

	reqMu sync.Mutex // one request outstanding

	mu      sync.Mutex
	seq     uint16        // last sequence number sent
	waiting chan uint16   // acks of the outstanding request
	changed chan struct{} // the outstanding request's timers or peer changed
	peerGen uint64        // counts changes of the peer (SetPeer)
	lastRx  uint16
	haveRx  bool
	peer    [6]byte
	hasPeer bool
	stats   ECPStats
}

// ECPStats counts ECP traffic.
type ECPStats struct {
	// Our requests: Sent (first transmissions), Retransmitted (again
	// after an acknowledgement timer ran out), Acked, Failed (not
	// acknowledged after R retries: timed out).
	Sent, Retransmitted, Acked, Failed uint64
	Received, Duplicates, Bad          uint64 // the peer's requests
	// Refused frames: Tagged carried a VLAN tag (ECP runs untagged
	// between station and bridge), Foreign came from another address
	// than the peer's (or before there was a peer) or went to another
	// address than the nearest-customer-bridge group address (the
	// bridge's ECP sends to it, and no bridge forwards it: a frame to us
	// or to everyone was forwarded from elsewhere).
	Tagged, Foreign uint64
}

// add adds b's counts to a's.
func (a *ECPStats) add(b ECPStats) {
	a.Sent += b.Sent
	a.Retransmitted += b.Retransmitted
	a.Acked += b.Acked
	a.Failed += b.Failed
	a.Received += b.Received
	a.Duplicates += b.Duplicates
	a.Bad += b.Bad
	a.Tagged += b.Tagged
	a.Foreign += b.Foreign
}

// NewECP returns an ECP endpoint.
func NewECP(cfg ECPConfig) (*ECP, error) {
	if cfg.Send == nil || cfg.Deliver == nil {
		return nil, errors.New("ecp: Send and Deliver are required")
	}
	if cfg.Retries <= 0 {
		cfg.Retries = 3
	}
	if cfg.RTE == 0 {
		cfg.RTE = 8
	}
	// Start where a peer that remembers our last run's sequence numbers
	// (lldpad does) cannot take the first request for a repeat.
	return &ECP{cfg: cfg, seq: uint16(rand.N(1 << 16)), peer: cfg.Peer, hasPeer: cfg.Peer != [6]byte{}}, nil
}

// SetPeer names the only address frames are taken from from now on (the
// bridge's, learnt from LLDP); anything but a 6-byte address means none:
// every frame is refused (or, with Latch, the next sender is taken).
func (e *ECP) SetPeer(mac net.HardwareAddr) {
	var peer [6]byte
	has := len(mac) == 6
	if has {
		peer = [6]byte(mac)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if has != e.hasPeer || peer != e.peer {
		e.haveRx = false // a new peer's sequence numbers start afresh
		e.peerGen++      // and a request for the old one is given up
		e.signalLocked()
	}
	e.peer, e.hasPeer = peer, has
}

// signalLocked tells the outstanding request, if any, that its timers or
// its peer changed. e.mu is held.
func (e *ECP) signalLocked() {
	if e.changed != nil {
		select {
		case e.changed <- struct{}{}:
		default:
		}
	}
}

// SetTimers sets R (retries, 0-7) and RTE (the acknowledgement timer,
// 10 µs × 2^RTE). A request under way follows them too: its running timer
// counts the new value from its last try, and when it runs out the request
// is given up if it already made R retries. Otherwise a bridge that once
// advertised RTE 31 (a 6-hour timer) would hold VDP behind one lost frame
// for up to 8 × 6 hours, whatever it advertised next.
func (e *ECP) SetTimers(r, rte uint8) {
	e.mu.Lock()
	e.cfg.Retries, e.cfg.RTE = int(r), rte
	e.signalLocked()
	e.mu.Unlock()
}

// params are the outstanding request's retries and timer now, and whether
// the peer changed since it started (gen).
func (e *ECP) params(gen uint64) (retries int, timeout time.Duration, peerChanged bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.cfg.Retries, Timer(e.cfg.RTE), e.peerGen != gen
}

// SetMAC changes the source address of the frames sent from now on.
func (e *ECP) SetMAC(mac net.HardwareAddr) {
	if len(mac) != 6 {
		return
	}
	e.mu.Lock()
	copy(e.cfg.MAC[:], mac)
	e.mu.Unlock()
}

func (e *ECP) src() [6]byte {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.cfg.MAC
}

// Stats returns the counters.
func (e *ECP) Stats() ECPStats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stats
}

// ErrNoAck is returned when a request was not acknowledged after all retries.
var ErrNoAck = errors.New("ecp: request not acknowledged")

// ErrPeerChanged is returned for a request given up because the peer it
// was sent to changed or went (SetPeer).
var ErrPeerChanged = errors.New("ecp: the peer changed while the request waited")

// Request sends payload as the next request and waits for its
// acknowledgement, retransmitting as configured (R and RTE as they are
// now: SetTimers applies to a request under way too). It is given up with
// ErrPeerChanged when the peer changes or goes (SetPeer) before the
// acknowledgement. Requests are serialised.
func (e *ECP) Request(ctx context.Context, payload []byte) error {
	e.reqMu.Lock()
	defer e.reqMu.Unlock()
	e.mu.Lock()
	e.seq++
	if e.seq == 0 { // never 0 after a wrap
		e.seq = 1
	}
	seq := e.seq
	acks, changed := make(chan uint16, 4), make(chan struct{}, 1)
	e.waiting, e.changed = acks, changed
	gen := e.peerGen
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		e.waiting, e.changed = nil, nil
		e.mu.Unlock()
	}()
	frame := ECPFrame(e.src(), ECPRequest, ECPSubtypeVDP, seq, payload)
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for try := 0; ; try++ {
		retries, to, gone := e.params(gen)
		if gone {
			return fmt.Errorf("%w: sequence %d", ErrPeerChanged, seq)
		}
		if try > retries {
			e.count(func(s *ECPStats) { s.Failed++ })
			return fmt.Errorf("%w: sequence %d, %d tries %v apart", ErrNoAck, seq, try, to)
		}
		if err := e.cfg.Send(frame); err != nil {
			return fmt.Errorf("ecp: send request %d: %w", seq, err)
		}
		e.count(func(s *ECPStats) {
			if try == 0 {
				s.Sent++
			} else {
				s.Retransmitted++
			}
		})
		sent, timeout := time.Now(), to
		resetTimer(t, timeout)
		for waiting := true; waiting; {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case got := <-acks:
				if got == seq {
					e.count(func(s *ECPStats) { s.Acked++ })
					return nil
				}
			case <-changed:
				_, to, gone := e.params(gen)
				if gone {
					waiting = false // given up at the top of the loop
					continue
				}
				if to != timeout { // R is looked at when this try's timer runs out
					timeout = to
					resetTimer(t, max(0, time.Until(sent.Add(timeout))))
				}
			case <-t.C:
				waiting = false
			}
		}
	}
}

// resetTimer stops t, drains a value it may hold, and starts it for d.
func resetTimer(t *time.Timer, d time.Duration) {
	if !t.Stop() {
		select {
		case <-t.C:
		default:
		}
	}
	t.Reset(d)
}

func (e *ECP) count(f func(*ECPStats)) {
	e.mu.Lock()
	f(&e.stats)
	e.mu.Unlock()
}

// Handle takes a received ECP frame (as it was on the wire, tags
// included): acknowledgements complete the outstanding request; requests
// are acknowledged and, unless repeated, delivered. Only untagged frames
// from the peer to the nearest-customer-bridge address count (see
// ECPConfig.Peer): a tagged one crossed a VLAN, one to another address
// (ours, broadcast) was forwarded by a bridge from elsewhere, and anyone
// else's acknowledgement must not complete our request nor its request
// change what the bridge is believed to know.
func (e *ECP) Handle(frame []byte) {
	if vlan.IsTagged(frame) {
		e.count(func(s *ECPStats) { s.Tagged++ })
		return
	}
	h, payload, err := ParseECP(frame)
	if err != nil || h.Subtype != ECPSubtypeVDP {
		e.count(func(s *ECPStats) { s.Bad++ })
		return
	}
	if [6]byte(frame[:6]) != NearestCustomerBridge { // ParseECP checked the length
		// Not the adjacent bridge's ECP: it sends to the nearest-
		// customer-bridge address, which no 802.1Q bridge forwards. A
		// frame to us or to everyone with the bridge's source address
		// was forwarded from elsewhere: a forgery.
		e.count(func(s *ECPStats) { s.Foreign++ })
		return
	}
	if !e.fromPeer([6]byte(frame[6:12])) {
		return
	}
	if h.Op == ECPAck {
		e.mu.Lock()
		ch := e.waiting
		e.mu.Unlock()
		if ch != nil {
			select {
			case ch <- h.Seq:
			default:
			}
		}
		return
	}
	_ = e.cfg.Send(ECPFrame(e.src(), ECPAck, ECPSubtypeVDP, h.Seq, nil))
	e.mu.Lock()
	dup := e.haveRx && e.lastRx == h.Seq
	e.lastRx, e.haveRx = h.Seq, true
	if dup {
		e.stats.Duplicates++
	} else {
		e.stats.Received++
	}
	e.mu.Unlock()
	if !dup {
		e.cfg.Deliver(payload)
	}
}

// fromPeer reports whether src is the peer's address, taking it as the
// peer when there is none and the endpoint latches; a frame from anyone
// else is counted as Foreign.
func (e *ECP) fromPeer(src [6]byte) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.hasPeer && e.cfg.Latch && src != [6]byte{} {
		e.peer, e.hasPeer = src, true
	}
	if e.hasPeer && src == e.peer {
		return true
	}
	e.stats.Foreign++
	return false
}
