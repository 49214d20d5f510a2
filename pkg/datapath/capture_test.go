package datapath_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/vswitch/vswitch/pkg/datapath"
	"github.com/vswitch/vswitch/pkg/port"
	"github.com/vswitch/vswitch/pkg/vlan"
)

// captured is a copy of a CapturedFrame.
type captured struct {
	dir    datapath.Direction
	data   []byte
	length int
	at     time.Time
}

// startCapture starts a capture on the rig's switch and closes it at the
// end of the test.
func (r *rig) startCapture(cfg datapath.CaptureConfig) *datapath.Capture {
	r.t.Helper()
	c, err := r.sw.Capture(cfg)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(c.Close)
	return c
}

// readCapture reads c until it holds n frames or the timeout passes.
func readCapture(t *testing.T, c *datapath.Capture, n int, timeout time.Duration) []captured {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out []captured
	for len(out) < n {
		err := c.Next(ctx, func(f datapath.CapturedFrame) error {
			out = append(out, captured{f.Dir, bytes.Clone(f.Data), f.Length, f.Time})
			return nil
		})
		if err != nil {
			t.Fatalf("after %d of %d frames: %v", len(out), n, err)
		}
	}
	return out
}

// drainCapture closes c and returns every frame it still delivers and the
// error that ended it.
func drainCapture(t *testing.T, c *datapath.Capture) ([]captured, error) {
	t.Helper()
	c.Close()
	var out []captured
	for {
		err := c.Next(context.Background(), func(f datapath.CapturedFrame) error {
			out = append(out, captured{f.Dir, bytes.Clone(f.Data), f.Length, f.Time})
			return nil
		})
		if err != nil {
			return out, err
		}
	}
}

func wantFrames(t *testing.T, what string, got []captured, want ...captured) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d frames, want %d: %v", what, len(got), len(want), got)
	}
	for i := range want {
		if got[i].dir != want[i].dir || !bytes.Equal(got[i].data, want[i].data) || got[i].length != len(want[i].data) {
			t.Errorf("%s frame %d: %v % x (length %d)\nwant %v % x", what, i, got[i].dir, got[i].data, got[i].length, want[i].dir, want[i].data)
		}
	}
}

// Every capture point, on a port and on the uplink: port in (as the VM
// sent it, dropped frames too), uplink out with our tag and PCP, uplink in
// as received (tags on, control frames too), port out untagged, and the
// control plane's own frames out of the uplink.
func TestCapturePoints(t *testing.T) {
	r := newRig(t, datapath.ModeVEPA, access("vnet1", 100, 5, mac1), access("vnet2", 100, 0))
	vm1, up := r.be.Iface("vnet1"), r.be.Iface("up0")
	pc := r.startCapture(datapath.CaptureConfig{Interface: "vnet1"})
	uc := r.startCapture(datapath.CaptureConfig{Interface: "up0"})

	fromVM := eth(macR, mac1)
	spoofed := eth(macR, mac2)
	vm1.Inject(fromVM, spoofed)
	up.Wait(1, time.Second)
	wantFrames(t, "vnet1 after the VM sent", readCapture(t, pc, 2, time.Second),
		captured{dir: datapath.DirIn, data: fromVM}, captured{dir: datapath.DirIn, data: spoofed})
	wantFrames(t, "uplink after the VM sent", readCapture(t, uc, 1, time.Second),
		captured{dir: datapath.DirOut, data: eth(macR, mac1, ctag(5, 100))})

	toVM := eth(mac1, macR, ctag(3, 100))
	up.Inject(toVM)
	vm1.Wait(1, time.Second)
	wantFrames(t, "uplink after the network sent", readCapture(t, uc, 1, time.Second),
		captured{dir: datapath.DirIn, data: toVM})
	wantFrames(t, "vnet1 after the network sent", readCapture(t, pc, 1, time.Second),
		captured{dir: datapath.DirOut, data: eth(mac1, macR)})

	lldp := append(append(append([]byte{}, 0x01, 0x80, 0xc2, 0, 0, 0x0e), macR...), 0x88, 0xcc, 1, 2, 3)
	up.Inject(lldp)
	<-r.ctl
	if err := r.sw.SendControl(lldp); err != nil {
		t.Fatal(err)
	}
	wantFrames(t, "uplink control frames", readCapture(t, uc, 2, time.Second),
		captured{dir: datapath.DirIn, data: lldp}, captured{dir: datapath.DirOut, data: lldp})

	// Nothing of vnet2's reached vnet1's capture, nothing more the uplink's.
	settle()
	rest, err := drainCapture(t, pc)
	if len(rest) != 0 || !errors.Is(err, io.EOF) {
		t.Errorf("vnet1 capture after Close: %d more frames, %v; want none and EOF", len(rest), err)
	}
	if st := pc.Stats(); st.Seen != 3 || st.Captured != 3 || st.Dropped != 0 {
		t.Errorf("vnet1 capture stats %+v, want 3 seen and captured", st)
	}
}

// In VEB mode a frame switched locally is port in on the sender and port
// out on the receiver, and never crosses the uplink.
func TestCaptureVEBLocal(t *testing.T) {
	r := newRig(t, datapath.ModeVEB, access("vnet1", 100, 0, mac1), access("vnet2", 100, 0, mac2))
	c2 := r.startCapture(datapath.CaptureConfig{Interface: "vnet2", Direction: datapath.DirOut})
	uc := r.startCapture(datapath.CaptureConfig{Interface: "up0"})
	f := eth(mac2, mac1)
	r.be.Iface("vnet1").Inject(f)
	r.be.Iface("vnet2").Wait(1, time.Second)
	wantFrames(t, "vnet2 out", readCapture(t, c2, 1, time.Second), captured{dir: datapath.DirOut, data: f})
	settle()
	if rest, _ := drainCapture(t, uc); len(rest) != 0 {
		t.Errorf("uplink capture holds %d frames of a locally switched unicast", len(rest))
	}
}

// A capture of one direction records only that direction's frames.
func TestCaptureDirection(t *testing.T) {
	r := newRig(t, datapath.ModeVEPA, access("vnet1", 100, 0, mac1))
	in := r.startCapture(datapath.CaptureConfig{Interface: "vnet1", Direction: datapath.DirIn})
	out := r.startCapture(datapath.CaptureConfig{Interface: "vnet1", Direction: datapath.DirOut})
	r.be.Iface("vnet1").Inject(eth(macR, mac1))
	r.be.Iface("up0").Wait(1, time.Second)
	r.be.Iface("up0").Inject(eth(mac1, macR, ctag(0, 100)))
	r.be.Iface("vnet1").Wait(1, time.Second)
	settle()
	gotIn, _ := drainCapture(t, in)
	gotOut, _ := drainCapture(t, out)
	wantFrames(t, "in", gotIn, captured{dir: datapath.DirIn, data: eth(macR, mac1)})
	wantFrames(t, "out", gotOut, captured{dir: datapath.DirOut, data: eth(mac1, macR)})
}

// Count ends the capture after that many frames: io.EOF, and the frames
// after them are neither recorded nor counted.
func TestCaptureCount(t *testing.T) {
	r := newRig(t, datapath.ModeVEPA, access("vnet1", 100, 0, mac1))
	c := r.startCapture(datapath.CaptureConfig{Interface: "vnet1", Direction: datapath.DirIn, Count: 3})
	for i := range 10 {
		f := eth(macR, mac1)
		f[20] = byte(i)
		r.be.Iface("vnet1").Inject(f)
	}
	r.be.Iface("up0").Wait(10, time.Second)
	var got []captured
	var err error
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for err == nil {
		err = c.Next(ctx, func(f datapath.CapturedFrame) error {
			got = append(got, captured{data: bytes.Clone(f.Data)})
			return nil
		})
	}
	if !errors.Is(err, io.EOF) || len(got) != 3 {
		t.Fatalf("Count 3: %d frames, then %v; want 3 and EOF", len(got), err)
	}
	for i, f := range got {
		if f.data[20] != byte(i) {
			t.Errorf("frame %d is the VM's frame %d", i, f.data[20])
		}
	}
	if st := c.Stats(); st.Seen != 3 || st.Captured != 3 || st.Dropped != 0 {
		t.Errorf("stats %+v, want 3 seen, 3 captured", st)
	}
}

// A reader that does not read loses frames, counted, while the switch
// forwards every one of them; what fitted is delivered intact, and seen =
// captured + dropped.
func TestCaptureSlowReaderDrops(t *testing.T) {
	r := newRig(t, datapath.ModeVEPA, access("vnet1", 100, 0, mac1))
	c := r.startCapture(datapath.CaptureConfig{Interface: "vnet1", Buffer: datapath.MinCaptureBuffer})
	const n = 1000
	big := append(eth(macR, mac1), make([]byte, 1400)...) // 1474 bytes: ~88 fit in a half
	for range n {
		r.be.Iface("vnet1").Inject(big)
	}
	if got := r.be.Iface("up0").Wait(n, 5*time.Second); len(got) != n {
		t.Fatalf("the uplink got %d of %d frames while nobody read the capture", len(got), n)
	}
	settle()
	if d := r.portDrops("vnet1"); len(d) != 0 {
		t.Errorf("datapath drops %v with a stalled capture", d)
	}
	got, err := drainCapture(t, c)
	if !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	st := c.Stats()
	half := datapath.MinCaptureBuffer / 2 / (len(big) + 16)
	if len(got) != half || st.Captured != uint64(half) || st.Dropped != uint64(n-half) || st.Seen != n {
		t.Errorf("delivered %d, stats %+v; want %d captured, %d dropped, %d seen", len(got), st, half, n-half, n)
	}
	for i, f := range got {
		if !bytes.Equal(f.data, big) || f.dir != datapath.DirIn {
			t.Fatalf("frame %d damaged", i)
		}
	}
}

// Snaplen cuts frames; Length keeps their real size.
func TestCaptureSnaplen(t *testing.T) {
	r := newRig(t, datapath.ModeVEPA, access("vnet1", 100, 0, mac1))
	c := r.startCapture(datapath.CaptureConfig{Interface: "vnet1", Direction: datapath.DirIn, Snaplen: 20})
	f := eth(macR, mac1)
	r.be.Iface("vnet1").Inject(f)
	got := readCapture(t, c, 1, time.Second)
	if !bytes.Equal(got[0].data, f[:20]) || got[0].length != len(f) {
		t.Errorf("snaplen 20: %d bytes of %d, want 20 of %d", len(got[0].data), got[0].length, len(f))
	}
}

// At most MaxCaptures run; the refusal names them; one closed makes room.
// Unknown names and bad settings are refused with errors callers can
// tell apart.
func TestCaptureLimitsAndErrors(t *testing.T) {
	r := newRig(t, datapath.ModeVEPA, access("vnet1", 100, 0))
	var cs []*datapath.Capture
	for range datapath.MaxCaptures {
		cs = append(cs, r.startCapture(datapath.CaptureConfig{Interface: "vnet1", Direction: datapath.DirIn}))
	}
	_, err := r.sw.Capture(datapath.CaptureConfig{Interface: "up0"})
	if !errors.Is(err, datapath.ErrTooManyCaptures) || !strings.Contains(err.Error(), "all 8 are taken (vnet1 in, vnet1 in,") {
		t.Errorf("capture %d: %v", datapath.MaxCaptures+1, err)
	}
	cs[0].Close()
	r.startCapture(datapath.CaptureConfig{Interface: "up0"})

	_, err = r.sw.Capture(datapath.CaptureConfig{Interface: "vnet9"})
	if !errors.Is(err, port.ErrNotFound) || err.Error() != "no port or uplink named vnet9 (the uplink is up0; see vswctl list-ports)" {
		t.Errorf("unknown interface: %v", err)
	}
	for _, cfg := range []datapath.CaptureConfig{
		{Interface: "vnet1", Snaplen: -1},
		{Interface: "vnet1", Snaplen: 65536},
		{Interface: "vnet1", Buffer: 1024},
		{Interface: "vnet1", Buffer: datapath.MaxCaptureBuffer + 1},
		{Interface: "vnet1", Count: -1},
		{Interface: "vnet1", Direction: 4},
	} {
		if _, err := r.sw.Capture(cfg); !errors.Is(err, datapath.ErrInvalidCapture) {
			t.Errorf("%+v: %v, want ErrInvalidCapture", cfg, err)
		}
	}
}

// Deleting a port ends its captures, after what they recorded; Stop ends
// every capture.
func TestCaptureEndsWithPortAndSwitch(t *testing.T) {
	r := newRig(t, datapath.ModeVEPA, access("vnet1", 100, 0, mac1))
	c := r.startCapture(datapath.CaptureConfig{Interface: "vnet1"})
	uc := r.startCapture(datapath.CaptureConfig{Interface: "up0"})
	r.be.Iface("vnet1").Inject(eth(macR, mac1))
	r.be.Iface("up0").Wait(1, time.Second)
	settle()
	if err := r.sw.DeletePort("vnet1"); err != nil {
		t.Fatal(err)
	}
	var got int
	err := c.Next(context.Background(), func(datapath.CapturedFrame) error { got++; return nil })
	if err != nil || got != 1 {
		t.Fatalf("after the port's deletion: %d frames, %v; want the one recorded first", got, err)
	}
	err = c.Next(context.Background(), func(datapath.CapturedFrame) error { return nil })
	if !errors.Is(err, datapath.ErrCaptureEnded) || !strings.Contains(err.Error(), "port vnet1 was deleted") {
		t.Errorf("then %v", err)
	}
	r.sw.Stop()
	_, err = drainCapture(t, uc)
	if !errors.Is(err, datapath.ErrCaptureEnded) || !strings.Contains(err.Error(), "stopping") {
		t.Errorf("uplink capture after Stop: %v", err)
	}
}

// A capture of a port that is not attached (its tap absent) records once
// the port attaches; a Next that waits returns when its context ends.
func TestCaptureBeforeAttach(t *testing.T) {
	r := newRig(t, datapath.ModeVEPA)
	if err := r.sw.AddPort(access("vnet1", 100, 0, mac1)); err != nil {
		t.Fatal(err)
	}
	c := r.startCapture(datapath.CaptureConfig{Interface: "vnet1"})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := c.Next(ctx, func(datapath.CapturedFrame) error { return nil }); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next on a silent port: %v", err)
	}
	if err := r.sw.Attach("vnet1"); err != nil {
		t.Fatal(err)
	}
	r.be.Iface("vnet1").Inject(eth(macR, mac1))
	wantFrames(t, "after attach", readCapture(t, c, 1, time.Second), captured{dir: datapath.DirIn, data: eth(macR, mac1)})
}

// Frames of several workers reach one capture in time order.
func TestCaptureTimeOrder(t *testing.T) {
	r := newRig(t, datapath.ModeVEPA, access("vnet1", 100, 0, mac1), access("vnet2", 100, 0, mac2))
	uc := r.startCapture(datapath.CaptureConfig{Interface: "up0", Direction: datapath.DirOut})
	for i := range 200 {
		src, name := mac1, "vnet1"
		if i%2 == 1 {
			src, name = mac2, "vnet2"
		}
		r.be.Iface(name).Inject(eth(macR, src))
	}
	got := readCapture(t, uc, 200, 2*time.Second)
	for i := 1; i < len(got); i++ {
		if got[i].at.Before(got[i-1].at) {
			t.Fatalf("frame %d at %v, before frame %d at %v", i, got[i].at, i-1, got[i-1].at)
		}
	}
	for _, f := range got {
		if binary.BigEndian.Uint16(f.data[12:]) != vlan.TPIDCTag {
			t.Fatalf("uplink frame without our tag: % x", f.data)
		}
	}
}
