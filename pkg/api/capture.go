package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/vswitch/vswitch/internal/pcapfile"
	"github.com/vswitch/vswitch/pkg/port"
)

// CaptureRequest is the query of GET /v1/capture: which frames of which
// interface to stream, and how.
type CaptureRequest struct {
	// Port is a port's name or the uplink's (query port=IF, required).
	Port string
	// Direction is in, out or both ("": both) (direction=).
	Direction string
	// Count ends the capture after this many frames; 0: when the client
	// stops it (count=).
	Count int
	// Snaplen is the most bytes kept of each frame; 0: whole frames
	// (snaplen=).
	Snaplen int
	// BufferKiB is the capture's buffer in vswitchd, in KiB; 0: its
	// default (buffer=).
	BufferKiB int
	// Format is pcapng or pcap ("": pcapng) (format=).
	Format string
}

// Capture directions (CaptureRequest.Direction).
const (
	DirectionIn   = "in"
	DirectionOut  = "out"
	DirectionBoth = "both"
)

// CheckDirection accepts in, out, both and "" (both).
func CheckDirection(d string) error {
	switch d {
	case "", DirectionIn, DirectionOut, DirectionBoth:
		return nil
	}
	return fmt.Errorf("invalid direction %q: use in, out or both", d)
}

// captureParams are the query parameters of GET /v1/capture.
var captureParams = []string{"port", "direction", "count", "snaplen", "buffer", "format"}

// ParseCaptureQuery reads and checks a GET /v1/capture query. What the
// daemon bounds (the snaplen's, the buffer's and the count's ranges) it
// judges itself; this checks the form: a valid name, known parameters
// given once, numbers, a known direction and format.
func ParseCaptureQuery(q url.Values) (CaptureRequest, error) {
	var r CaptureRequest
	for k, v := range q {
		if !slices.Contains(captureParams, k) {
			return r, fmt.Errorf("unknown parameter %q: use %s", k, strings.Join(captureParams, ", "))
		}
		if len(v) != 1 {
			return r, fmt.Errorf("parameter %q given %d times", k, len(v))
		}
	}
	r.Port = q.Get("port")
	if r.Port == "" {
		return r, errors.New(`parameter "port" is required: the port or uplink to capture`)
	}
	if err := port.CheckName(r.Port); err != nil {
		return r, err
	}
	r.Direction = q.Get("direction")
	if err := CheckDirection(r.Direction); err != nil {
		return r, err
	}
	r.Format = q.Get("format")
	if _, err := pcapfile.ParseFormat(r.Format); err != nil {
		return r, err
	}
	for _, n := range []struct {
		name string
		v    *int
	}{{"count", &r.Count}, {"snaplen", &r.Snaplen}, {"buffer", &r.BufferKiB}} {
		s := q.Get(n.name)
		if s == "" {
			continue
		}
		v, err := strconv.Atoi(s)
		if err != nil || v < 0 {
			return r, fmt.Errorf("invalid %s %q: must be a number, 0 or more", n.name, s)
		}
		*n.v = v
	}
	return r, nil
}

// Query encodes r as the query of GET /v1/capture.
func (r CaptureRequest) Query() string {
	q := url.Values{"port": {r.Port}}
	if r.Direction != "" {
		q.Set("direction", r.Direction)
	}
	if r.Count != 0 {
		q.Set("count", strconv.Itoa(r.Count))
	}
	if r.Snaplen != 0 {
		q.Set("snaplen", strconv.Itoa(r.Snaplen))
	}
	if r.BufferKiB != 0 {
		q.Set("buffer", strconv.Itoa(r.BufferKiB))
	}
	if r.Format != "" {
		q.Set("format", r.Format)
	}
	return q.Encode()
}

// CapturedFrame is one frame of a capture.
type CapturedFrame struct {
	Time time.Time
	// Outbound: sent on the interface (else received on it).
	Outbound bool
	// Data is the frame, cut to the snaplen; valid during the callback.
	Data []byte
	// Length is the frame's length (>= len(Data)).
	Length int
}

// CaptureSummary is how a capture went: the trailer of its stream.
type CaptureSummary struct {
	// Frames written to the stream.
	Frames uint64
	// Dropped: frames lost because the reader did not keep up.
	Dropped uint64
	// Seen: frames of the capture's direction(s) that crossed its
	// interface while it ran (Frames + Dropped).
	Seen uint64
	// Start is when the capture began (not in the trailer).
	Start time.Time
	// Ended says why vswitchd ended the capture before the client did
	// (its port was deleted, vswitchd is stopping); "" when the count was
	// reached or the client stopped it.
	Ended string
}

// Trailer fields of a GET /v1/capture stream: the CaptureSummary.
const (
	TrailerFrames  = "Vswitch-Capture-Frames"
	TrailerDropped = "Vswitch-Capture-Dropped"
	TrailerSeen    = "Vswitch-Capture-Seen"
	TrailerEnded   = "Vswitch-Capture-Ended"
)

// CaptureStream is a running capture, as a CaptureService starts it.
type CaptureStream interface {
	// Next waits for frames, then calls fn for each; it returns nil after
	// a batch, ctx's error when ctx ends first, io.EOF once the stream
	// ended normally (Close, or the count reached) and everything was
	// delivered, and another error when the service ended it (the
	// message says why). fn's error is returned as is.
	Next(ctx context.Context, fn func(CapturedFrame) error) error
	// Close stops recording; Next then delivers what is buffered.
	Close()
	// Summary is the counts so far.
	Summary() CaptureSummary
}

// CaptureService is implemented by a Service that can capture (vswitchd);
// the server answers GET /v1/capture with not_supported otherwise.
type CaptureService interface {
	Capture(ctx context.Context, req CaptureRequest) (CaptureStream, error)
}

// captureWriteError is a failed write of the stream: the client is gone.
type captureWriteError struct{ err error }

func (e *captureWriteError) Error() string { return "write capture stream: " + e.err.Error() }
func (e *captureWriteError) Unwrap() error { return e.err }

// capture streams GET /v1/capture: the file header, then the frames as
// they come, flushed after each batch; the end (a statistics block, then
// the CaptureSummary as HTTP trailers) once the count is reached, the
// client closes its side of the connection (vswctl on Ctrl-C), vswitchd
// ends it or shuts down. A client that stops reading blocks only this
// handler: the datapath drops what does not fit in the capture's buffer
// and counts it.
func (s *Server) capture(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet { // the GET pattern also takes HEAD: no capture without a body
		w.Header().Set("Allow", http.MethodGet)
		writeError(w, http.StatusMethodNotAllowed, CodeMethodNotAllowed, fmt.Sprintf("method %s not allowed on %s: use GET", r.Method, r.URL.Path))
		return
	}
	req, err := ParseCaptureQuery(r.URL.Query())
	if err != nil {
		code := CodeInvalidBody
		var pe *port.Error
		if errors.As(err, &pe) {
			code = CodeOf(err)
		}
		writeError(w, http.StatusBadRequest, code, err.Error())
		return
	}
	format, _ := pcapfile.ParseFormat(req.Format) // checked above
	cs, ok := s.svc.(CaptureService)
	if !ok {
		writeError(w, http.StatusNotImplemented, CodeNotSupported, "this server cannot capture")
		return
	}
	// Reaching the socket (its group) is the permission to configure,
	// not to read every VM's traffic.
	conn, _ := r.Context().Value(connKey{}).(net.Conn)
	if conn == nil {
		err = errors.New("capturing: cannot tell who is asking (the server does not record its connections: see ConnContext)")
	} else {
		err = peerMayCapture(conn)
	}
	if err != nil {
		writeError(w, http.StatusForbidden, CodeForbidden, err.Error())
		return
	}
	st, err := cs.Capture(r.Context(), req)
	if err != nil {
		s.reply(w, r, http.StatusOK, nil, err)
		return
	}
	defer st.Close()
	// The client ends the capture by closing its side (or going away):
	// the request's context ends; so does a shutdown of the server.
	stopClient := context.AfterFunc(r.Context(), st.Close)
	defer stopClient()
	// A shutdown ends it too, and the summary says so (else the client
	// would take it for a normal end).
	var stopping atomic.Bool
	if sctx, ok := r.Context().Value(serveCtxKey{}).(context.Context); ok {
		stopServe := context.AfterFunc(sctx, func() {
			if r.Context().Err() == nil { // not stopped by the client first
				stopping.Store(true)
			}
			st.Close()
		})
		defer stopServe()
	}
	// A capture runs as long as it runs: lift the server's read and write
	// timeouts for this connection (the read one would end the request's
	// context, the write one the stream).
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})

	h := w.Header()
	h.Set("Content-Type", format.ContentType())
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Trailer", strings.Join([]string{TrailerFrames, TrailerDropped, TrailerSeen, TrailerEnded}, ", "))
	w.WriteHeader(http.StatusOK)
	dir := req.Direction
	if dir == "" {
		dir = DirectionBoth
	}
	pw, err := pcapfile.NewWriter(w, format, pcapfile.Interface{Name: req.Port, Snaplen: req.Snaplen,
		Description: "vswitchd datapath capture, direction " + dir})
	if err == nil {
		err = s.flushCapture(pw, rc)
	}
	if err != nil {
		s.log.Info("capture ended: the client went away", "port", req.Port, "direction", dir, "err", err)
		return
	}
	write := func(f CapturedFrame) error {
		d := pcapfile.Inbound
		if f.Outbound {
			d = pcapfile.Outbound
		}
		if err := pw.WritePacket(pcapfile.Packet{Time: f.Time, Dir: d, Data: f.Data, Length: f.Length}); err != nil {
			return &captureWriteError{err}
		}
		return nil
	}
	var ended error
stream:
	for {
		err := st.Next(context.Background(), write)
		if err == nil {
			err = s.flushCapture(pw, rc)
		}
		var we *captureWriteError
		switch {
		case err == nil:
		case errors.As(err, &we):
			s.log.Info("capture ended: the client went away", "port", req.Port, "direction", dir, "err", err)
			return
		case errors.Is(err, io.EOF):
			break stream
		default:
			ended = err
			break stream
		}
	}
	sum := st.Summary()
	switch {
	case ended != nil:
		sum.Ended = ended.Error()
	case stopping.Load():
		sum.Ended = "vswitchd is stopping"
	}
	if err := pw.WriteStats(pcapfile.Stats{Start: sum.Start, End: time.Now(), Received: sum.Seen,
		Dropped: sum.Dropped, Delivered: sum.Frames}); err == nil {
		_ = pw.Flush()
	}
	h.Set(TrailerFrames, strconv.FormatUint(sum.Frames, 10))
	h.Set(TrailerDropped, strconv.FormatUint(sum.Dropped, 10))
	h.Set(TrailerSeen, strconv.FormatUint(sum.Seen, 10))
	if sum.Ended != "" {
		h.Set(TrailerEnded, oneLine(sum.Ended))
	}
	s.log.Info("capture ended", "port", req.Port, "direction", dir, "frames", sum.Frames, "dropped", sum.Dropped, "ended", sum.Ended)
}

// flushCapture sends what the writer buffered to the client now.
func (s *Server) flushCapture(pw *pcapfile.Writer, rc *http.ResponseController) error {
	if err := pw.Flush(); err != nil {
		return &captureWriteError{err}
	}
	if err := rc.Flush(); err != nil {
		return &captureWriteError{err}
	}
	return nil
}

// serveCtxKey is the request context value Serve stores: the context
// whose end starts the shutdown, so that streams can end in time.
type serveCtxKey struct{}

// connKey is the request context value ConnContext stores: the
// connection, to ask who is at its other end.
type connKey struct{}

// ConnContext records the connection c in ctx, so that a handler can tell
// who is at its other end (GET /v1/capture answers only root or
// CAP_NET_RAW). Serve sets it as its http.Server's ConnContext; a server
// of its own must too.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	if lc, ok := c.(*limitedConn); ok {
		c = lc.Conn
	}
	return context.WithValue(ctx, connKey{}, c)
}

// CaptureReader is a capture streaming from vswitchd (Client.Capture): a
// pcapng or pcap file, read with Read. Stop ends it gracefully: vswitchd
// then writes what it still holds and the file's end, and Read returns
// io.EOF, after which Summary has the counts.
type CaptureReader struct {
	resp *http.Response
	conn interface{ CloseWrite() error }
	tr   *http.Transport
	eof  bool
}

// CapturePath is the request path of GET /v1/capture for req.
func CapturePath(req CaptureRequest) string { return "/v1/capture?" + req.Query() }

// Capture starts a capture (GET /v1/capture) on a connection of its own.
// ctx bounds the whole stream: its end aborts it (use Stop to end it with
// a complete file). Refusals come back as *ServiceError (not_found,
// too_many_captures, invalid_request, ...), a daemon that does not answer
// as *UnreachableError.
func (c *Client) Capture(ctx context.Context, req CaptureRequest) (*CaptureReader, error) {
	cr := &CaptureReader{}
	d := net.Dialer{Timeout: 2 * time.Second}
	cr.tr = &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			conn, err := d.DialContext(ctx, "unix", c.socket)
			if err != nil {
				return nil, &dialError{err}
			}
			if hc, ok := conn.(interface{ CloseWrite() error }); ok {
				cr.conn = hc
			}
			return conn, nil
		},
		DisableKeepAlives: true,
	}
	path := CapturePath(req)
	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://vswitchd"+path, nil)
	if err != nil {
		return nil, fmt.Errorf("build capture request: %w", err)
	}
	resp, err := (&http.Client{Transport: cr.tr}).Do(hreq)
	if err != nil {
		cr.tr.CloseIdleConnections()
		var de *dialError
		if errors.As(err, &de) {
			return nil, &UnreachableError{Socket: c.socket, Err: de.err}
		}
		return nil, fmt.Errorf("GET %s on vswitchd at %s: %w", path, c.socket, err)
	}
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		cr.tr.CloseIdleConnections()
		return nil, c.answerError(resp, data, http.MethodGet, path)
	}
	cr.resp = resp
	return cr, nil
}

// ContentType is the stream's media type (application/x-pcapng or
// application/vnd.tcpdump.pcap).
func (r *CaptureReader) ContentType() string { return r.resp.Header.Get("Content-Type") }

// Read reads the capture file as vswitchd streams it.
func (r *CaptureReader) Read(p []byte) (int, error) {
	n, err := r.resp.Body.Read(p)
	if errors.Is(err, io.EOF) {
		r.eof = true
	}
	return n, err
}

// Stop asks vswitchd to end the capture by closing the request side of
// the connection; Read goes on until vswitchd has sent the rest.
func (r *CaptureReader) Stop() error {
	if r.conn == nil {
		return errors.New("stop capture: the connection cannot be half-closed")
	}
	if err := r.conn.CloseWrite(); err != nil {
		return fmt.Errorf("stop capture: %w", err)
	}
	return nil
}

// Summary returns the counts vswitchd sent at the end of the stream;
// false before Read returned io.EOF, or when the stream was cut short.
func (r *CaptureReader) Summary() (CaptureSummary, bool) {
	t := r.resp.Trailer
	if !r.eof || t.Get(TrailerFrames) == "" {
		return CaptureSummary{}, false
	}
	num := func(k string) uint64 {
		v, _ := strconv.ParseUint(t.Get(k), 10, 64)
		return v
	}
	return CaptureSummary{Frames: num(TrailerFrames), Dropped: num(TrailerDropped), Seen: num(TrailerSeen), Ended: t.Get(TrailerEnded)}, true
}

// Close ends the stream at once (without the end vswitchd writes after
// Stop) and releases the connection.
func (r *CaptureReader) Close() error {
	err := r.resp.Body.Close()
	r.tr.CloseIdleConnections()
	return err
}
