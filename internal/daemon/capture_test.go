package daemon

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/vswitch/vswitch/pkg/api"
)

// The daemon's CaptureService: a capture of a port streams what the
// datapath saw, with directions; refusals carry the API's codes.
func TestCaptureService(t *testing.T) {
	r := newRig(t)
	d := r.start(t)
	ctx := context.Background()
	if _, err := d.AddPort(ctx, api.PortSpec{Name: "vnet1", VLAN: intp(100)}); err != nil {
		t.Fatal(err)
	}
	r.linksUp("up0", "vnet1")
	if !d.sw.Attached("vnet1") {
		t.Fatal("vnet1 not attached after its link event")
	}
	st, err := d.Capture(ctx, api.CaptureRequest{Port: "vnet1", Direction: api.DirectionIn, Count: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	f := frame(1, 2)
	r.mem.Iface("vnet1").Inject(f)
	var got []api.CapturedFrame
	for err == nil {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err = st.Next(cctx, func(c api.CapturedFrame) error {
			c.Data = bytes.Clone(c.Data)
			got = append(got, c)
			return nil
		})
		cancel()
	}
	if !errors.Is(err, io.EOF) || len(got) != 1 || got[0].Outbound || !bytes.Equal(got[0].Data, f) {
		t.Fatalf("capture: %v then %v, want the VM's frame, inbound, then EOF", got, err)
	}
	if sum := st.Summary(); sum.Frames != 1 || sum.Seen != 1 || sum.Dropped != 0 {
		t.Errorf("summary %+v", sum)
	}

	for _, tc := range []struct {
		req  api.CaptureRequest
		code string
		msg  string
	}{
		{api.CaptureRequest{Port: "vnet9"}, api.CodeNotFound, "no port or uplink named vnet9 (the uplink is up0"},
		{api.CaptureRequest{Port: "vnet1", Snaplen: 70000}, api.CodeInvalidBody, "invalid capture: snaplen 70000"},
		{api.CaptureRequest{Port: "vnet1", BufferKiB: 1 << 62}, api.CodeInvalidBody, "invalid capture: buffer of"},
		{api.CaptureRequest{Port: "up0", BufferKiB: 16}, api.CodeInvalidBody, "must be 256-32768 KiB"},
	} {
		_, err := d.Capture(ctx, tc.req)
		if api.CodeOf(err) != tc.code || err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%+v: %v (code %s), want %s %q", tc.req, err, api.CodeOf(err), tc.code, tc.msg)
		}
	}
	var running []api.CaptureStream
	for range 8 {
		s, err := d.Capture(ctx, api.CaptureRequest{Port: "up0"})
		if err != nil {
			t.Fatal(err)
		}
		running = append(running, s)
	}
	_, err = d.Capture(ctx, api.CaptureRequest{Port: "vnet1"})
	if api.CodeOf(err) != api.CodeTooManyCaptures || !strings.Contains(err.Error(), "stop one of them") {
		t.Errorf("a ninth capture: %v", err)
	}
	for _, s := range running {
		s.Close()
	}
}
