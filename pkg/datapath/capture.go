package datapath

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vswitch/vswitch/pkg/backend"
	portcfg "github.com/vswitch/vswitch/pkg/port"
)

// This file is capture from inside the datapath: copies of the frames at
// the points where the switch sees them, into a bounded buffer per
// session that a reader drains (vswitchd streams it as GET /v1/capture).
// Packet sockets beside the switch cannot see what it sends
// (PACKET_QDISC_BYPASS) nor, with AF_XDP, what it receives.
//
// The capture points, all under every backend:
//
//	port in      what the port's worker received from the VM, before any
//	             check (egressWorker.process): dropped frames too
//	port out     what was handed to the port's tap (fanout.sendTo), from
//	             the uplink or, in VEB mode, from another port
//	uplink out   what the ports' workers sent to the uplink, with our
//	             802.1Q tag (PCP, VID) and S-tag pushed (egressWorker.process),
//	             and the control plane's LLDP/ECP (SendControl)
//	uplink in    what the uplink's workers received, as received: tags on,
//	             control frames included (ingressWorker.process)
//
// With no capture running each point costs one atomic pointer load (nil)
// per batch: a port's or the uplink's captureSet. A running capture copies
// each frame, cut to its snaplen, under the session's mutex, once per batch
// (one time stamp per batch, taken under the lock, so the records of
// several workers stay in time order). The buffer is two halves of
// CaptureConfig.Buffer/2: workers fill one while the reader drains the
// other; when the filling half has no room the frame is dropped and
// counted, so a slow reader loses frames and never slows the switch. The
// lock is held for a batch's copies and, by the reader, for the swap of
// the halves; nothing else waits on it.

// Direction selects the frames of a capture by how they cross its
// interface.
type Direction uint8

const (
	// DirIn: frames received on the interface (from the VM on a port, from
	// the network on the uplink).
	DirIn Direction = 1 << iota
	// DirOut: frames sent on the interface.
	DirOut
	// DirBoth: both.
	DirBoth = DirIn | DirOut
)

func (d Direction) String() string {
	switch d {
	case DirIn:
		return "in"
	case DirOut:
		return "out"
	case DirBoth:
		return "both"
	}
	return fmt.Sprintf("direction(%d)", uint8(d))
}

// Capture bounds.
const (
	// MaxCaptures is how many captures may run at once on a switch.
	MaxCaptures = 8
	// DefaultCaptureBuffer is a session's buffer when CaptureConfig.Buffer
	// is 0: about 2,700 full-size frames in each half.
	DefaultCaptureBuffer = 4 << 20
	// MinCaptureBuffer and MaxCaptureBuffer bound CaptureConfig.Buffer: a
	// half holds at least one frame of MaxCaptureSnaplen, and MaxCaptures
	// sessions take at most 256 MiB.
	MinCaptureBuffer = 256 << 10
	MaxCaptureBuffer = 32 << 20
	// MaxCaptureSnaplen is the most bytes of a frame a capture keeps.
	MaxCaptureSnaplen = 65535
)

// Errors of captures, for errors.Is.
var (
	// ErrTooManyCaptures: MaxCaptures sessions run already.
	ErrTooManyCaptures = errors.New("too many captures running")
	// ErrInvalidCapture: a CaptureConfig out of bounds.
	ErrInvalidCapture = errors.New("invalid capture")
	// ErrCaptureEnded: the switch ended the capture (its port was deleted,
	// or the switch stopped); the error says which.
	ErrCaptureEnded = errors.New("capture ended")
)

// CaptureConfig says what a capture records.
type CaptureConfig struct {
	// Interface is a port's name or the uplink's.
	Interface string
	// Direction of the frames recorded; 0 is DirBoth.
	Direction Direction
	// Snaplen is the most bytes kept of each frame (1 to
	// MaxCaptureSnaplen); 0 keeps whole frames.
	Snaplen int
	// Buffer is the session's memory in bytes (MinCaptureBuffer to
	// MaxCaptureBuffer); 0 is DefaultCaptureBuffer.
	Buffer int
	// Count ends the capture after this many frames; 0: no limit.
	Count int
}

// withDefaults checks c and fills in its defaults.
func (c CaptureConfig) withDefaults() (CaptureConfig, error) {
	bad := func(format string, a ...any) (CaptureConfig, error) {
		return c, fmt.Errorf("%w: "+format, append([]any{ErrInvalidCapture}, a...)...)
	}
	switch {
	case c.Direction&^DirBoth != 0:
		return bad("direction %d", c.Direction)
	case c.Snaplen < 0 || c.Snaplen > MaxCaptureSnaplen:
		return bad("snaplen %d: must be 1-%d (0: whole frames)", c.Snaplen, MaxCaptureSnaplen)
	case c.Buffer != 0 && (c.Buffer < MinCaptureBuffer || c.Buffer > MaxCaptureBuffer):
		return bad("buffer of %d KiB: must be %d-%d KiB", c.Buffer>>10, MinCaptureBuffer>>10, MaxCaptureBuffer>>10)
	case c.Count < 0:
		return bad("count %d: must be 0 (no limit) or more", c.Count)
	}
	if c.Direction == 0 {
		c.Direction = DirBoth
	}
	if c.Snaplen == 0 {
		c.Snaplen = MaxCaptureSnaplen
	}
	if c.Buffer == 0 {
		c.Buffer = DefaultCaptureBuffer
	}
	return c, nil
}

// CapturedFrame is one frame a capture recorded.
type CapturedFrame struct {
	Time time.Time
	Dir  Direction // DirIn or DirOut
	// Data is the frame, cut to the snaplen; valid during the callback
	// only.
	Data []byte
	// Length is the frame's length (>= len(Data)).
	Length int
}

// CaptureStats are a capture's counters.
type CaptureStats struct {
	// Seen counts the frames of the capture's direction(s) that crossed
	// its points while it ran (up to its Count).
	Seen uint64
	// Captured counts the frames Next delivered.
	Captured uint64
	// Dropped counts the frames lost because the buffer was full: the
	// reader did not keep up.
	Dropped uint64
	// Start is when the capture began.
	Start time.Time
}

// Capture is one capture session: a bounded buffer the datapath's workers
// fill and a reader drains with Next. Close ends it.
type Capture struct {
	s      *Switch
	cfg    CaptureConfig
	port   *port // nil: the uplink
	start  time.Time
	limit  uint64
	wake   chan struct{}
	drain  []byte // the half Next reads (the reader's only)
	closeO sync.Once

	mu     sync.Mutex
	fill   []byte // the half workers fill
	seen   uint64
	kept   uint64
	drops  uint64
	closed bool
	why    error // why the switch ended it (nil: Close or Count)

	delivered atomic.Uint64 // written by the reader only
}

// recordHeader is the size of a record's header in the buffer: time
// (unix ns, 8), length (4), captured length (2), direction (1), pad (1).
const recordHeader = 16

// Capture starts a capture on a port or the uplink. It fails when the
// name is neither (an error matching port.ErrNotFound), when cfg is out of
// bounds (ErrInvalidCapture) or when MaxCaptures run
// (ErrTooManyCaptures). Frames are recorded from the moment it returns,
// whether the port is attached or not, until Close, its Count, the port's
// deletion or Stop.
func (s *Switch) Capture(cfg CaptureConfig) (*Capture, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("capture on %s: %w", cfg.Interface, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.ports[cfg.Interface]
	if !ok && cfg.Interface != s.cfg.Uplink {
		return nil, &captureTargetError{name: cfg.Interface, uplink: s.cfg.Uplink}
	}
	if len(s.captures) >= MaxCaptures {
		var running []string
		for c := range s.captures {
			running = append(running, c.cfg.Interface+" "+c.cfg.Direction.String())
		}
		slices.Sort(running)
		return nil, fmt.Errorf("capture on %s: %w: all %d are taken (%s)", cfg.Interface, ErrTooManyCaptures, MaxCaptures, strings.Join(running, ", "))
	}
	half := cfg.Buffer / 2
	c := &Capture{
		s: s, cfg: cfg, port: p, start: time.Now(), limit: uint64(cfg.Count),
		wake:  make(chan struct{}, 1),
		fill:  make([]byte, 0, half),
		drain: make([]byte, 0, half),
	}
	if s.captures == nil {
		s.captures = map[*Capture]struct{}{}
	}
	s.captures[c] = struct{}{}
	s.publishCapturesLocked(p)
	return c, nil
}

// captureTargetError is Capture's error for a name that is neither a port
// nor the uplink; errors.Is(err, port.ErrNotFound) holds.
type captureTargetError struct{ name, uplink string }

func (e *captureTargetError) Error() string {
	return fmt.Sprintf("no port or uplink named %s (the uplink is %s; see vswctl list-ports)", e.name, e.uplink)
}

func (e *captureTargetError) Unwrap() error { return portcfg.ErrNotFound }

// captureSet is the captures of one port or of the uplink, by direction.
// It is immutable once published.
type captureSet struct{ in, out []*Capture }

// publishCapturesLocked publishes the captureSet of port p (nil: the
// uplink) from s.captures: nil when none runs. s.mu is held.
func (s *Switch) publishCapturesLocked(p *port) {
	var cs captureSet
	for c := range s.captures {
		if c.port != p {
			continue
		}
		if c.cfg.Direction&DirIn != 0 {
			cs.in = append(cs.in, c)
		}
		if c.cfg.Direction&DirOut != 0 {
			cs.out = append(cs.out, c)
		}
	}
	var ptr *captureSet
	if len(cs.in)+len(cs.out) > 0 {
		ptr = &cs
	}
	if p == nil {
		s.upCapture.Store(ptr)
	} else {
		p.capture.Store(ptr)
	}
}

// endCapturesLocked ends the captures of port p (all when all is set)
// with the reason why. s.mu is held.
func (s *Switch) endCapturesLocked(p *port, all bool, why error) {
	touched := map[*port]bool{}
	for c := range s.captures {
		if !all && c.port != p {
			continue
		}
		delete(s.captures, c)
		touched[c.port] = true
		c.end(why)
	}
	for tp := range touched {
		s.publishCapturesLocked(tp)
	}
}

// batch records frames 0..b.N-1 of b in every capture of direction dir.
func (cs *captureSet) batch(dir Direction, b *backend.Batch) {
	for _, c := range cs.of(dir) {
		now, ok := c.begin()
		if !ok {
			continue
		}
		for i := 0; i < b.N; i++ {
			c.put(now, dir, b.Frame(i))
		}
		c.finish()
	}
}

// frames records frames in every capture of direction dir.
func (cs *captureSet) frames(dir Direction, frames [][]byte) {
	if len(frames) == 0 {
		return
	}
	for _, c := range cs.of(dir) {
		now, ok := c.begin()
		if !ok {
			continue
		}
		for _, f := range frames {
			c.put(now, dir, f)
		}
		c.finish()
	}
}

func (cs *captureSet) of(dir Direction) []*Capture {
	if dir == DirIn {
		return cs.in
	}
	return cs.out
}

// begin locks the buffer for a batch and returns its time stamp; false
// (unlocked) when the capture is closed.
func (c *Capture) begin() (int64, bool) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return 0, false
	}
	return time.Now().UnixNano(), true
}

// put copies one frame into the filling half, or counts it dropped when
// the half has no room. c.mu is held.
func (c *Capture) put(now int64, dir Direction, f []byte) {
	if c.limit != 0 && c.kept >= c.limit {
		return // past Count: not part of the capture
	}
	c.seen++
	n := min(len(f), c.cfg.Snaplen)
	if len(c.fill)+recordHeader+n > cap(c.fill) {
		c.drops++
		return
	}
	le := binary.LittleEndian
	c.fill = le.AppendUint64(c.fill, uint64(now))
	c.fill = le.AppendUint32(c.fill, uint32(len(f)))
	c.fill = le.AppendUint16(c.fill, uint16(n))
	c.fill = append(c.fill, byte(dir), 0)
	c.fill = append(c.fill, f[:n]...)
	c.kept++
}

// finish unlocks the buffer and wakes the reader.
func (c *Capture) finish() {
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// end stops recording; why (nil: a normal end) is what Next returns once
// the buffer is drained.
func (c *Capture) end(why error) {
	c.mu.Lock()
	if !c.closed {
		c.closed, c.why = true, why
	}
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Config is the capture's configuration, defaults filled in.
func (c *Capture) Config() CaptureConfig { return c.cfg }

// Next waits until frames are recorded, then calls fn for each, in the
// order recorded (fn's error ends Next and the rest of those frames are
// lost). It returns nil after a batch of frames, ctx's error when ctx is
// done first, and once the capture has ended and every frame recorded was
// delivered: io.EOF after Close or Count, or an error wrapping
// ErrCaptureEnded that says why the switch ended it. Next must not be
// called from more than one goroutine at a time.
func (c *Capture) Next(ctx context.Context, fn func(CapturedFrame) error) error {
	for {
		c.mu.Lock()
		if len(c.fill) > 0 {
			c.fill, c.drain = c.drain[:0], c.fill
			c.mu.Unlock()
			return c.deliver(fn)
		}
		closed, why := c.closed, c.why
		c.mu.Unlock()
		if closed {
			if why != nil {
				return why
			}
			return io.EOF
		}
		select {
		case <-c.wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// deliver calls fn for each record of the drained half; at Count the
// capture closes.
func (c *Capture) deliver(fn func(CapturedFrame) error) error {
	b := c.drain
	le := binary.LittleEndian
	for len(b) >= recordHeader {
		n := int(le.Uint16(b[12:]))
		f := CapturedFrame{
			Time:   time.Unix(0, int64(le.Uint64(b[0:]))),
			Length: int(le.Uint32(b[8:])),
			Dir:    Direction(b[14]),
			Data:   b[recordHeader : recordHeader+n],
		}
		b = b[recordHeader+n:]
		if c.limit != 0 && c.delivered.Load() >= c.limit {
			break
		}
		c.delivered.Add(1)
		if err := fn(f); err != nil {
			return err
		}
	}
	if c.limit != 0 && c.delivered.Load() >= c.limit {
		c.Close()
	}
	return nil
}

// Close stops the capture: no frame is recorded any more, and Next
// delivers what is buffered, then returns io.EOF (or why the switch ended
// it, if it did first). Safe to call more than once and concurrently with
// Next.
func (c *Capture) Close() {
	c.closeO.Do(func() {
		s := c.s
		s.mu.Lock()
		if _, ok := s.captures[c]; ok {
			delete(s.captures, c)
			s.publishCapturesLocked(c.port)
		}
		s.mu.Unlock()
		c.end(nil)
	})
}

// Stats returns the capture's counters so far.
func (c *Capture) Stats() CaptureStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return CaptureStats{Seen: c.seen, Captured: c.delivered.Load(), Dropped: c.drops, Start: c.start}
}
