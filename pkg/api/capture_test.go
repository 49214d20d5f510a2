package api_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/gopacket/pcapgo"
	"github.com/vswitch/vswitch/internal/pcapfile"
	"github.com/vswitch/vswitch/pkg/api"
	"github.com/vswitch/vswitch/pkg/api/apitest"
)

func captureFrames() []api.CapturedFrame {
	t0 := time.Unix(1_700_000_000, 5)
	return []api.CapturedFrame{
		{Time: t0, Data: bytes.Repeat([]byte{1}, 60), Length: 60},
		{Time: t0.Add(time.Millisecond), Outbound: true, Data: bytes.Repeat([]byte{2}, 64), Length: 64},
		{Time: t0.Add(2 * time.Millisecond), Data: bytes.Repeat([]byte{3}, 20), Length: 1514},
	}
}

// captureFake is a fake switch with port vnet1 whose captures deliver
// captureFrames, and a client of it.
func captureFake(t *testing.T) (*apitest.Fake, *api.Client, string) {
	t.Helper()
	fake, c, sock := setup(t)
	if _, err := c.AddPort(context.Background(), api.PortSpec{Name: "vnet1", VLAN: ptr(100)}); err != nil {
		t.Fatal(err)
	}
	fake.CaptureFrames = captureFrames()
	fake.CaptureDropped = 7
	return fake, c, sock
}

// readPackets reads n frames from the start of a capture stream.
func readPackets(t *testing.T, r io.Reader, n int) (*pcapfile.Reader, []pcapfile.Packet) {
	t.Helper()
	pr, err := pcapfile.NewReader(r)
	if err != nil {
		t.Fatal(err)
	}
	var out []pcapfile.Packet
	for len(out) < n {
		p, err := pr.Next()
		if err != nil {
			t.Fatalf("frame %d: %v", len(out), err)
		}
		p.Data = bytes.Clone(p.Data)
		out = append(out, p)
	}
	return pr, out
}

func checkPackets(t *testing.T, got []pcapfile.Packet, want []api.CapturedFrame, withDir bool) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d frames, want %d", len(got), len(want))
	}
	for i, w := range want {
		dir := pcapfile.Inbound
		if w.Outbound {
			dir = pcapfile.Outbound
		}
		if !withDir {
			dir = pcapfile.Unknown
		}
		g := got[i]
		if g.Dir != dir || !bytes.Equal(g.Data, w.Data) || g.Length != w.Length || !g.Time.Equal(w.Time) {
			t.Errorf("frame %d: %v %d/%d at %v, want %v %d/%d at %v", i, g.Dir, len(g.Data), g.Length, g.Time, dir, len(w.Data), w.Length, w.Time)
		}
	}
}

// A capture streams pcapng with each frame's direction as the frames come;
// Stop ends it: the file ends with its statistics and the trailer has the
// summary.
func TestCaptureStreamAndStop(t *testing.T) {
	fake, c, _ := captureFake(t)
	req := api.CaptureRequest{Port: "vnet1", Direction: "in", Snaplen: 100, BufferKiB: 512}
	cr, err := c.Capture(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	defer cr.Close()
	if fake.CaptureReq != req {
		t.Errorf("the service got %+v, want %+v", fake.CaptureReq, req)
	}
	if ct := cr.ContentType(); ct != "application/x-pcapng" {
		t.Errorf("Content-Type %q", ct)
	}
	// The frames arrive while the capture runs: it waits for more.
	pr, got := readPackets(t, cr, 3)
	checkPackets(t, got, captureFrames(), true)
	if _, ok := cr.Summary(); ok {
		t.Error("a summary before the end")
	}
	if ifs := pr.Interfaces(); ifs[0].Name != "vnet1" || ifs[0].Snaplen != 100 || ifs[0].Description != "vswitchd datapath capture, direction in" {
		t.Errorf("interface block %+v", ifs[0])
	}
	if err := cr.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := pr.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("after Stop: %v, want the end of the file", err)
	}
	st, ok := pr.Stats()
	if !ok || st.Dropped != 7 || st.Delivered != 3 || st.Received != 10 {
		t.Errorf("statistics block %+v (%v), want 3 delivered, 7 dropped, 10 seen", st, ok)
	}
	sum, ok := cr.Summary()
	if !ok || sum.Frames != 3 || sum.Dropped != 7 || sum.Seen != 10 || sum.Ended != "" {
		t.Errorf("summary %+v (%v)", sum, ok)
	}
}

// With a count the stream ends by itself; pcap is plain pcap.
func TestCaptureCountAndPcap(t *testing.T) {
	_, c, _ := captureFake(t)
	cr, err := c.Capture(context.Background(), api.CaptureRequest{Port: "vnet1", Count: 2, Format: "pcap"})
	if err != nil {
		t.Fatal(err)
	}
	defer cr.Close()
	if ct := cr.ContentType(); ct != "application/vnd.tcpdump.pcap" {
		t.Errorf("Content-Type %q", ct)
	}
	b, err := io.ReadAll(cr)
	if err != nil {
		t.Fatal(err)
	}
	r, err := pcapgo.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("pcapgo: %v", err)
	}
	n := 0
	for {
		if _, _, err := r.ReadPacketData(); err != nil {
			break
		}
		n++
	}
	f, err := pcapfile.ReadAll(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("pcapgo read %d frames, want 2", n)
	}
	checkPackets(t, f.Packets, captureFrames()[:2], false)
	if sum, ok := cr.Summary(); !ok || sum.Frames != 2 {
		t.Errorf("summary %+v (%v)", sum, ok)
	}
}

// When vswitchd ends a capture (its port deleted) the trailer says why.
func TestCaptureEndedByService(t *testing.T) {
	fake, c, _ := captureFake(t)
	fake.CaptureEnd = errors.New("capture ended: port vnet1 was deleted")
	cr, err := c.Capture(context.Background(), api.CaptureRequest{Port: "vnet1"})
	if err != nil {
		t.Fatal(err)
	}
	defer cr.Close()
	f, err := pcapfile.ReadAll(cr)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Packets) != 3 || f.Stats == nil {
		t.Fatalf("%d frames, statistics %v", len(f.Packets), f.Stats)
	}
	if sum, ok := cr.Summary(); !ok || sum.Ended != "capture ended: port vnet1 was deleted" {
		t.Errorf("summary %+v (%v)", sum, ok)
	}
}

func TestCaptureRefusals(t *testing.T) {
	_, c, sock := captureFake(t)
	for _, tc := range []struct {
		query  string
		status int
		code   string
		msg    string
	}{
		{"", 400, api.CodeInvalidBody, `parameter "port" is required`},
		{"port=a/b", 400, api.CodeInvalidName, `invalid interface name "a/b"`},
		{"port=vnet1&direction=sideways", 400, api.CodeInvalidBody, `invalid direction "sideways": use in, out or both`},
		{"port=vnet1&count=-1", 400, api.CodeInvalidBody, `invalid count "-1"`},
		{"port=vnet1&snaplen=x", 400, api.CodeInvalidBody, `invalid snaplen "x"`},
		{"port=vnet1&format=erf", 400, api.CodeInvalidBody, `invalid format "erf": use pcapng or pcap`},
		{"port=vnet1&filter=icmp", 400, api.CodeInvalidBody, `unknown parameter "filter"`},
		{"port=vnet1&port=vnet2", 400, api.CodeInvalidBody, `parameter "port" given 2 times`},
		{"port=vnet9", 404, api.CodeNotFound, "port vnet9 not found"},
	} {
		t.Run(tc.query, func(t *testing.T) {
			status, _, body := raw(t, sock, "GET", "/v1/capture?"+tc.query, "", nil)
			wantAPIError(t, status, body, tc.status, tc.code, tc.msg)
		})
	}
	status, _, body := raw(t, sock, "POST", "/v1/capture?port=vnet1", "", nil)
	wantAPIError(t, status, body, 405, api.CodeMethodNotAllowed, "use GET")
	if status, _, _ := raw(t, sock, "HEAD", "/v1/capture?port=vnet1", "", nil); status != 405 {
		t.Errorf("HEAD /v1/capture: %d, want 405 (no capture without a body)", status)
	}

	_, err := c.Capture(context.Background(), api.CaptureRequest{Port: "vnet9"})
	if api.CodeOf(err) != api.CodeNotFound {
		t.Errorf("Client.Capture of an unknown port: %v", err)
	}
	if _, err := api.NewClient(filepath.Join(t.TempDir(), "none.sock")).Capture(context.Background(), api.CaptureRequest{Port: "vnet1"}); !api.IsUnreachable(err) {
		t.Errorf("no daemon: %v", err)
	}

	// A Service that cannot capture says so.
	sock2 := apitest.Serve(t, noCapture{apitest.NewFake()})
	status, _, body = raw(t, sock2, "GET", "/v1/capture?port=vnet1", "", nil)
	wantAPIError(t, status, body, 501, api.CodeNotSupported, "this server cannot capture")
	for code, want := range map[string]int{api.CodeTooManyCaptures: http.StatusTooManyRequests,
		api.CodeForbidden: http.StatusForbidden, api.CodeNotSupported: http.StatusNotImplemented} {
		if got := api.HTTPStatus(code); got != want {
			t.Errorf("%s is HTTP %d, want %d", code, got, want)
		}
	}
}

func TestCaptureQueryRoundTrip(t *testing.T) {
	req := api.CaptureRequest{Port: "vnet1", Direction: "out", Count: 5, Snaplen: 96, BufferKiB: 1024, Format: "pcap"}
	q, err := url.ParseQuery(req.Query())
	if err != nil {
		t.Fatal(err)
	}
	got, err := api.ParseCaptureQuery(q)
	if err != nil || got != req {
		t.Errorf("round trip: %+v, %v; want %+v", got, err, req)
	}
}

// serveWith serves the fake's API on a socket with a server whose
// timeouts are short, and returns a client of it.
func serveWith(t *testing.T, fake *apitest.Fake, hs *http.Server) *api.Client {
	t.Helper()
	sock := filepath.Join(apitest.ShortTempDir(t), "s.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	hs.Handler = api.NewServer(fake, nil).Handler()
	hs.ConnContext = api.ConnContext
	go hs.Serve(l)
	t.Cleanup(func() { hs.Close() })
	c := api.NewClient(sock)
	t.Cleanup(c.Close)
	return c
}

// A capture outlives the server's read and write timeouts (the read one
// would end the request's context, the write one the stream).
func TestCaptureOutlivesTimeouts(t *testing.T) {
	fake := apitest.NewFake()
	fake.CaptureFrames = captureFrames()
	c := serveWith(t, fake, &http.Server{ReadTimeout: 100 * time.Millisecond, WriteTimeout: 100 * time.Millisecond})
	cr, err := c.Capture(context.Background(), api.CaptureRequest{Port: "eth0"}) // the fake's uplink
	if err != nil {
		t.Fatal(err)
	}
	defer cr.Close()
	pr, _ := readPackets(t, cr, 3)
	ended := make(chan error, 1)
	go func() { _, err := pr.Next(); ended <- err }()
	select {
	case err := <-ended:
		t.Fatalf("the capture ended by itself after the server's timeouts: %v", err)
	case <-time.After(500 * time.Millisecond):
	}
	if err := cr.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := <-ended; !errors.Is(err, io.EOF) {
		t.Fatalf("after Stop: %v", err)
	}
	if sum, ok := cr.Summary(); !ok || sum.Frames != 3 {
		t.Errorf("summary %+v (%v): the end was not written", sum, ok)
	}
}

// A server shutting down ends its captures in time, with their summary
// and the reason.
func TestCaptureEndsAtShutdown(t *testing.T) {
	fake := apitest.NewFake()
	fake.CaptureFrames = captureFrames()
	sock := filepath.Join(apitest.ShortTempDir(t), "v.sock")
	l, err := api.ListenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- api.NewServer(fake, nil).Serve(ctx, l) }()
	cr, err := api.NewClient(sock).Capture(context.Background(), api.CaptureRequest{Port: "eth0"})
	if err != nil {
		t.Fatal(err)
	}
	defer cr.Close()
	pr, _ := readPackets(t, cr, 3)
	start := time.Now()
	cancel()
	if _, err := pr.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("at shutdown: %v", err)
	}
	// It says why it ended: not a normal end (vswctl would report one and
	// exit 0 while vswitchd went away).
	if sum, ok := cr.Summary(); !ok || sum.Frames != 3 || sum.Ended != "vswitchd is stopping" {
		t.Errorf("summary %+v (%v), want 3 frames, ended: vswitchd is stopping", sum, ok)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > api.ShutdownGrace/2 {
		t.Errorf("shutdown took %v with a capture running", el)
	}
}

// noCapture is a Service without Capture.
type noCapture struct{ api.Service }
