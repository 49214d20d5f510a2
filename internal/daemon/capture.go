package daemon

import (
	"context"
	"errors"
	"fmt"

	"github.com/vswitch/vswitch/pkg/api"
	"github.com/vswitch/vswitch/pkg/datapath"
)

// Capture implements api.CaptureService: GET /v1/capture streams a
// capture taken inside the datapath (datapath.Switch.Capture), so it holds
// what vswitchd sends as well as what it receives, on every backend.
func (d *Daemon) Capture(ctx context.Context, req api.CaptureRequest) (api.CaptureStream, error) {
	dir := datapath.DirBoth
	switch req.Direction {
	case api.DirectionIn:
		dir = datapath.DirIn
	case api.DirectionOut:
		dir = datapath.DirOut
	}
	// A buffer beyond any bound stays beyond it in bytes (no overflow).
	buffer := int(min(uint64(req.BufferKiB), 1<<40)) << 10
	c, err := d.sw.Capture(datapath.CaptureConfig{Interface: req.Port, Direction: dir, Snaplen: req.Snaplen,
		Buffer: buffer, Count: req.Count})
	switch {
	case errors.Is(err, datapath.ErrTooManyCaptures):
		return nil, api.NewError(api.CodeTooManyCaptures, fmt.Sprintf("%v: stop one of them (Ctrl-C its vswctl capture) and try again", err))
	case errors.Is(err, datapath.ErrInvalidCapture):
		return nil, api.NewError(api.CodeInvalidBody, err.Error())
	case err != nil:
		return nil, err // port.ErrNotFound: not_found
	}
	cfg := c.Config()
	d.log.Info("capture started", "port", req.Port, "direction", cfg.Direction, "count", cfg.Count,
		"snaplen", cfg.Snaplen, "buffer_kib", cfg.Buffer>>10)
	return captureStream{c}, nil
}

// captureStream is a datapath capture as an api.CaptureStream.
type captureStream struct{ c *datapath.Capture }

func (s captureStream) Next(ctx context.Context, fn func(api.CapturedFrame) error) error {
	return s.c.Next(ctx, func(f datapath.CapturedFrame) error {
		return fn(api.CapturedFrame{Time: f.Time, Outbound: f.Dir == datapath.DirOut, Data: f.Data, Length: f.Length})
	})
}

func (s captureStream) Close() { s.c.Close() }

func (s captureStream) Summary() api.CaptureSummary {
	st := s.c.Stats()
	return api.CaptureSummary{Frames: st.Captured, Dropped: st.Dropped, Seen: st.Seen, Start: st.Start}
}

var _ api.CaptureService = (*Daemon)(nil)
