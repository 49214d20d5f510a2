package apitest

import (
	"context"
	"io"
	"sync"
	"time"

	"github.com/vswitch/vswitch/pkg/api"
	"github.com/vswitch/vswitch/pkg/port"
)

// Capture implements api.CaptureService on the fake switch: a capture of
// a configured port or of the uplink (StatusV.Uplink) delivers
// CaptureFrames (up to the request's count, which then ends it), then
// waits until it is stopped; its summary counts CaptureDropped drops.
// CaptureEnd, when set, ends it after the frames with that reason, as
// vswitchd does when the port is deleted. The last request is kept in
// CaptureReq.
func (f *Fake) Capture(ctx context.Context, req api.CaptureRequest) (api.CaptureStream, error) {
	f.enter("Capture")
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.ports[req.Port]; !ok && req.Port != f.StatusV.Uplink {
		return nil, port.NotFound(req.Port)
	}
	f.CaptureReq = req
	frames := f.CaptureFrames
	if req.Count > 0 && len(frames) > req.Count {
		frames = frames[:req.Count]
	}
	return &fakeStream{frames: frames, dropped: f.CaptureDropped, end: f.CaptureEnd,
		count: req.Count > 0 && len(frames) == req.Count, start: time.Now(), closed: make(chan struct{})}, nil
}

type fakeStream struct {
	frames  []api.CapturedFrame
	dropped uint64
	end     error
	count   bool // the frames reach the request's count
	start   time.Time

	once   sync.Once
	closed chan struct{}
	mu     sync.Mutex
	sent   uint64
}

func (s *fakeStream) Next(ctx context.Context, fn func(api.CapturedFrame) error) error {
	s.mu.Lock()
	frames := s.frames
	s.frames = nil
	s.mu.Unlock()
	if len(frames) > 0 {
		for _, f := range frames {
			s.mu.Lock()
			s.sent++
			s.mu.Unlock()
			if err := fn(f); err != nil {
				return err
			}
		}
		return nil
	}
	if s.end != nil {
		return s.end
	}
	if s.count {
		return io.EOF
	}
	select {
	case <-s.closed:
		return io.EOF
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *fakeStream) Close() { s.once.Do(func() { close(s.closed) }) }

func (s *fakeStream) Summary() api.CaptureSummary {
	s.mu.Lock()
	defer s.mu.Unlock()
	return api.CaptureSummary{Frames: s.sent, Dropped: s.dropped, Seen: s.sent + s.dropped, Start: s.start}
}

var _ api.CaptureService = (*Fake)(nil)
