package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vswitch/vswitch/internal/pcapfile"
	"github.com/vswitch/vswitch/pkg/api"
	"github.com/vswitch/vswitch/pkg/api/apitest"
)

// captureDaemon is a fake vswitchd with port vnet1 whose captures deliver
// three frames (in, out, in) and report 7 drops.
func captureDaemon(t *testing.T) (*apitest.Fake, string) {
	t.Helper()
	fake, sock := daemon(t)
	if _, err := fake.AddPort(context.Background(), api.PortSpec{Name: "vnet1", VLAN: ptrInt(100)}); err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1_700_000_000, 0)
	fake.CaptureFrames = []api.CapturedFrame{
		{Time: t0, Data: bytes.Repeat([]byte{1}, 60), Length: 60},
		{Time: t0.Add(time.Millisecond), Outbound: true, Data: bytes.Repeat([]byte{2}, 64), Length: 64},
		{Time: t0.Add(2 * time.Millisecond), Data: bytes.Repeat([]byte{3}, 70), Length: 70},
	}
	fake.CaptureDropped = 7
	return fake, sock
}

func ptrInt(v int) *int { return &v }

func readCaptureFile(t *testing.T, b []byte) *pcapfile.File {
	t.Helper()
	f, err := pcapfile.ReadAll(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("capture file: %v", err)
	}
	return f
}

// With -c the capture ends by itself; the flags reach vswitchd as the
// request; the file holds the frames with their directions; the summary
// goes to stdout.
func TestCaptureFromDaemonCount(t *testing.T) {
	fc, sock := captureDaemon(t)
	file := filepath.Join(t.TempDir(), "x.pcapng")
	r := vswctl(t, sock, "capture", "vnet1", "-w", file, "-c", "2", "--direction", "in", "-s", "128", "-B", "1024")
	r.expect(t, 0, "")
	if want := "captured 2 frames on vnet1 to " + file + "\n7 frames dropped (the capture was not read fast enough: write to a faster disk, capture one --direction, or raise -B)\n"; r.stdout != want {
		t.Errorf("stdout %q\nwant   %q", r.stdout, want)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	f := readCaptureFile(t, b)
	if f.Format != pcapfile.Pcapng || len(f.Packets) != 2 {
		t.Fatalf("%v file with %d frames, want pcapng with 2", f.Format, len(f.Packets))
	}
	for i, p := range f.Packets {
		want := pcapfile.Inbound
		if fc.CaptureFrames[i].Outbound {
			want = pcapfile.Outbound
		}
		if p.Dir != want || !bytes.Equal(p.Data, fc.CaptureFrames[i].Data) {
			t.Errorf("frame %d: %v % x", i, p.Dir, p.Data)
		}
	}
	if f.Stats == nil || f.Stats.Dropped != 7 {
		t.Errorf("statistics %+v, want 7 dropped", f.Stats)
	}
}

// The request carries every flag.
func TestCaptureFlagsReachDaemon(t *testing.T) {
	fake, sock := captureDaemon(t)
	file := filepath.Join(t.TempDir(), "x.pcap")
	vswctl(t, sock, "capture", "vnet1", "-w", file, "-c", "1", "--direction", "out", "--format", "pcap", "-s", "96", "-B", "2048").expect(t, 0, "")
	want := api.CaptureRequest{Port: "vnet1", Direction: "out", Count: 1, Snaplen: 96, BufferKiB: 2048, Format: "pcap"}
	if got := fake.CaptureReq; got != want {
		t.Errorf("request %+v, want %+v", got, want)
	}
	b, _ := os.ReadFile(file)
	if f := readCaptureFile(t, b); f.Format != pcapfile.Pcap || len(f.Packets) != 1 {
		t.Errorf("%v with %d frames, want pcap with 1", f.Format, len(f.Packets))
	}
}

// -w - streams the file to stdout; when --timeout (as Ctrl-C) stops it,
// vswctl asks vswitchd to end it and writes the rest: a complete file,
// and the summary on stderr.
func TestCaptureFromDaemonToStdoutUntilStopped(t *testing.T) {
	_, sock := captureDaemon(t)
	start := time.Now()
	r := vswctl(t, sock, "capture", "vnet1", "-w", "-", "--timeout", "300ms")
	if el := time.Since(start); el < 300*time.Millisecond || el > 3*time.Second {
		t.Errorf("--timeout 300ms took %v", el)
	}
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if !strings.HasPrefix(r.stderr, "captured 3 frames on vnet1 to stdout\n7 frames dropped (") {
		t.Errorf("stderr %q", r.stderr)
	}
	f := readCaptureFile(t, []byte(r.stdout))
	if len(f.Packets) != 3 || f.Stats == nil || f.Stats.Delivered != 3 || f.Stats.Dropped != 7 {
		t.Errorf("stdout holds %d frames, statistics %+v", len(f.Packets), f.Stats)
	}
}

func TestCaptureFromDaemonJSON(t *testing.T) {
	_, sock := captureDaemon(t)
	file := filepath.Join(t.TempDir(), "x.pcapng")
	r := vswctl(t, sock, "-o", "json", "capture", "vnet1", "-w", file, "-c", "3")
	r.expect(t, 0, "")
	var s captureSummary
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		t.Fatalf("%v: %q", err, r.stdout)
	}
	want := captureSummary{Interface: "vnet1", File: file, Frames: 3, Dropped: 7, Seen: 10, Direction: "both", Format: "pcapng", Source: "vswitchd"}
	if s != want {
		t.Errorf("summary %+v, want %+v", s, want)
	}
}

func TestCaptureFromDaemonErrors(t *testing.T) {
	_, sock := captureDaemon(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "x.pcapng")
	r := vswctl(t, sock, "capture", "vnet9", "-w", file)
	r.expect(t, 1, "port vnet9 not found (see vswctl list-ports); vswctl capture --local vnet9 captures any interface")
	if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused capture created %s", file)
	}
	r = vswctl(t, filepath.Join(dir, "none.sock"), "capture", "vnet1", "-w", file)
	r.expect(t, 1, "is vswitchd running?")
	if !strings.Contains(r.stderr, "vswctl capture --local vnet1 captures with a packet socket instead") {
		t.Errorf("stderr %q does not mention --local", r.stderr)
	}
	r = vswctl(t, sock, "capture", "vnet1", "-w", filepath.Join(dir, "no", "such", "x.pcapng"))
	r.expect(t, 1, "cannot write "+filepath.Join(dir, "no", "such", "x.pcapng")+": no such file or directory")
}

// When vswitchd ends the capture (the port deleted), vswctl keeps the
// frames and says why, exit 1.
func TestCaptureEndedByDaemon(t *testing.T) {
	fake, sock := captureDaemon(t)
	fake.CaptureEnd = errors.New("capture ended: port vnet1 was deleted")
	file := filepath.Join(t.TempDir(), "x.pcapng")
	r := vswctl(t, sock, "capture", "vnet1", "-w", file)
	r.expect(t, 1, "vswitchd ended the capture on vnet1 after 3 frames (7 dropped): port vnet1 was deleted; they are saved in "+file)
	b, _ := os.ReadFile(file)
	if f := readCaptureFile(t, b); len(f.Packets) != 3 || f.Stats == nil {
		t.Errorf("%d frames, statistics %v", len(f.Packets), f.Stats)
	}
}

// Without --format the file's name chooses: FILE.pcap is classic pcap, as
// `vswctl capture IF -w FILE.pcap` always wrote (scripts read it with
// pcap-only readers), anything else (FILE.pcapng, -) is pcapng; --format
// overrides the name.
func TestCaptureFormatFromFileName(t *testing.T) {
	fake, sock := captureDaemon(t)
	dir := t.TempDir()
	for _, tc := range []struct {
		file   string
		flags  []string
		format pcapfile.Format
	}{
		{"x.pcap", nil, pcapfile.Pcap},
		{"X.PCAP", nil, pcapfile.Pcap},
		{"x.pcapng", nil, pcapfile.Pcapng},
		{"x", nil, pcapfile.Pcapng},
		{"-", nil, pcapfile.Pcapng},
		{"y.pcap", []string{"--format", "pcapng"}, pcapfile.Pcapng},
		{"y.pcapng", []string{"--format", "pcap"}, pcapfile.Pcap},
	} {
		file := tc.file
		if file != "-" {
			file = filepath.Join(dir, tc.file)
		}
		args := append([]string{"-o", "json", "capture", "vnet1", "-w", file, "-c", "1"}, tc.flags...)
		r := vswctl(t, sock, args...)
		if r.code != 0 {
			t.Fatalf("%s %v: exit %d: %s", tc.file, tc.flags, r.code, r.stderr)
		}
		if fake.CaptureReq.Format != tc.format.String() {
			t.Errorf("%s %v: asked vswitchd for %q, want %q", tc.file, tc.flags, fake.CaptureReq.Format, tc.format)
		}
		b := []byte(r.stdout)
		if file != "-" {
			b, _ = os.ReadFile(file)
			var s captureSummary
			if err := json.Unmarshal([]byte(r.stdout), &s); err != nil || s.Format != tc.format.String() {
				t.Errorf("%s %v: summary %q says another format than %v", tc.file, tc.flags, r.stdout, tc.format)
			}
		}
		if f := readCaptureFile(t, b); f.Format != tc.format {
			t.Errorf("%s %v: a %v file, want %v", tc.file, tc.flags, f.Format, tc.format)
		}
	}
}

// A vswitchd that takes the capture request and never answers (stuck)
// does not hold vswctl capture past its --timeout: scripts count on it.
func TestCaptureTimeoutWhileVswitchdSilent(t *testing.T) {
	sock := filepath.Join(apitest.ShortTempDir(t), "silent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	file := filepath.Join(t.TempDir(), "x.pcapng")
	done := make(chan result, 1)
	start := time.Now()
	go func() { done <- vswctl(t, sock, "capture", "vnet1", "-w", file, "--timeout", "300ms") }()
	select {
	case r := <-done:
		if el := time.Since(start); el > 3*time.Second {
			t.Errorf("--timeout 300ms took %v", el)
		}
		r.expect(t, 1, "vswitchd at "+sock+" did not start the capture on vnet1 before --timeout or the signal")
		if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a capture that never started created %s", file)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("vswctl capture --timeout 300ms still waits for a silent vswitchd after 10 s")
	}
}
