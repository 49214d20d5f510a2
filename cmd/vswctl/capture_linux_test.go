package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vswitch/vswitch/internal/capture"
	"github.com/vswitch/vswitch/internal/pcapfile"
	"github.com/vswitch/vswitch/pkg/api"
	"github.com/vswitch/vswitch/pkg/api/apitest"
	"github.com/vswitch/vswitch/test/topo"
)

// capLab is a namespace with veth cap0 (captured) and peer0 (frames are
// sent from it).
type capLab struct {
	ns   *topo.NS
	peer *topo.PacketConn
}

func newCapLab(t *testing.T) *capLab {
	t.Helper()
	ns := topo.VethNS(t, "vc", "cap0", "peer0") // skips unless root
	peer, err := ns.PacketConn("peer0")
	if err != nil {
		t.Fatal(err)
	}
	return &capLab{ns: ns, peer: peer}
}

// vswctlIn runs vswctl in-process on a thread inside the namespace.
func (l *capLab) vswctlIn(t *testing.T, args ...string) result {
	t.Helper()
	var r result
	var out, errb bytes.Buffer
	if err := l.ns.Do(func() error { r.code = run(args, &out, &errb); return nil }); err != nil {
		t.Fatal(err)
	}
	r.stdout, r.stderr = out.String(), errb.String()
	return r
}

// seqFrame is frame number i of a test stream: odd ones carry an 802.1Q tag
// VID 100 PCP 5, which the kernel moves into metadata on receive and the
// capture must put back.
func seqFrame(i int) []byte {
	f := topo.BuildUDPv4(topo.MustMAC("52:54:00:00:00:02"), topo.MustMAC("52:54:00:00:00:01"),
		net.IPv4(10, 0, 0, 1), net.IPv4(10, 0, 0, 2), uint16(1000+i), 7, []byte(fmt.Sprintf("seq %d", i)))
	if i%2 == 1 {
		f = topo.PushTag(f, 0x8100, 5<<13|100)
	}
	return f
}

// sendUntil sends seqFrame(0), seqFrame(1), ... every 10ms until stop is
// closed.
func (l *capLab) sendUntil(t *testing.T, stop <-chan struct{}) *sync.WaitGroup {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			if err := l.peer.WriteFrame(seqFrame(i)); err != nil {
				t.Errorf("send frame %d: %v", i, err)
				return
			}
		}
	}()
	return &wg
}

// readRecords reads a capture file (pcapng or pcap) and returns its
// frames.
func readRecords(t *testing.T, r io.Reader) [][]byte {
	t.Helper()
	f, err := pcapfile.ReadAll(r)
	if err != nil {
		t.Fatalf("not a capture file: %v", err)
	}
	if f.Interfaces[0].Snaplen != 65535 {
		t.Errorf("snaplen %d, want 65535", f.Interfaces[0].Snaplen)
	}
	var out [][]byte
	for _, p := range f.Packets {
		out = append(out, p.Data)
	}
	return out
}

// checkSequence asserts recs are consecutive frames of the seqFrame stream,
// byte for byte (tags included).
func checkSequence(t *testing.T, recs [][]byte) {
	t.Helper()
	if len(recs) == 0 {
		return
	}
	first := -1
	for i := range 2000 {
		if bytes.Equal(recs[0], seqFrame(i)) {
			first = i
			break
		}
	}
	if first < 0 {
		t.Fatalf("first record is no frame the test sent: % x", recs[0])
	}
	for j, r := range recs {
		if want := seqFrame(first + j); !bytes.Equal(r, want) {
			t.Errorf("record %d:\n got % x\nwant % x", j, r, want)
		}
	}
}

func TestCaptureCountInProcess(t *testing.T) {
	l := newCapLab(t)
	file := filepath.Join(t.TempDir(), "c3.pcap")
	stop := make(chan struct{})
	wg := l.sendUntil(t, stop)
	r := l.vswctlIn(t, "capture", "cap0", "--local", "-w", file, "-c", "3", "--timeout", "10s")
	close(stop)
	wg.Wait()
	r.expect(t, 0, "")
	if want := "captured 3 frames on cap0 to " + file + "\n"; r.stdout != want {
		t.Errorf("stdout %q, want %q", r.stdout, want)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs := readRecords(t, f)
	if len(recs) != 3 {
		t.Fatalf("pcap holds %d frames, want 3", len(recs))
	}
	checkSequence(t, recs)
	tagged := 0
	for _, rec := range recs {
		if tpid, tci, ok := topo.OuterTag(rec); ok && tpid == 0x8100 && tci == 5<<13|100 {
			tagged++
		}
	}
	if tagged == 0 {
		t.Error("no record carries the rebuilt VID 100 PCP 5 tag")
	}
}

func TestCaptureTimeoutAndJSON(t *testing.T) {
	l := newCapLab(t)
	file := filepath.Join(t.TempDir(), "t.pcap")
	start := time.Now()
	r := l.vswctlIn(t, "-o", "json", "capture", "cap0", "--local", "-w", file, "--timeout", "300ms")
	el := time.Since(start)
	r.expect(t, 0, "")
	if el < 300*time.Millisecond || el > 3*time.Second {
		t.Errorf("--timeout 300ms took %v", el)
	}
	if !strings.Contains(r.stdout, `"frames": 0`) || !strings.Contains(r.stdout, `"interface": "cap0"`) {
		t.Errorf("json summary %q", r.stdout)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if recs := readRecords(t, bytes.NewReader(b)); len(recs) != 0 {
		t.Errorf("silent link: %d records", len(recs))
	}
}

func TestCaptureErrorsInNamespace(t *testing.T) {
	l := newCapLab(t)
	dir := t.TempDir()
	missing := filepath.Join(dir, "vnet9.pcap")
	r := l.vswctlIn(t, "capture", "vnet9", "--local", "-w", missing)
	r.expect(t, 1, "no interface vnet9 in this network namespace (see ip link; vswctl must run where vswitchd runs)")
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed capture created %s (%v)", missing, err)
	}
	r = l.vswctlIn(t, "capture", "cap0", "--local", "-w", filepath.Join(dir, "no", "such", "dir.pcap"))
	r.expect(t, 1, "cannot write "+filepath.Join(dir, "no", "such", "dir.pcap")+": no such file or directory")

	// The interface disappears mid-capture: exit 1, frames kept.
	file := filepath.Join(dir, "gone.pcap")
	go func() {
		time.Sleep(300 * time.Millisecond)
		_ = l.peer.WriteFrame(seqFrame(0))
		time.Sleep(100 * time.Millisecond)
		_ = l.ns.DelLink("cap0")
	}()
	r = l.vswctlIn(t, "capture", "cap0", "--local", "-w", file, "--timeout", "10s")
	r.expect(t, 1, "interface cap0 disappeared (deleted or moved to another namespace) after 1 frames; they are saved in "+file)
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	checkSequence(t, readRecords(t, f))
}

// TestCaptureFlagErrors needs no root: the arguments are rejected before
// any socket is opened.
func TestCaptureFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"capture"}, 2, "capture needs one interface name (IF)"},
		{[]string{"capture", "a", "b", "-w", "f"}, 2, `got extra argument "b"`},
		{[]string{"capture", "vnet1"}, 2, "capture needs -w FILE (- for stdout)"},
		{[]string{"capture", "vnet1", "-w"}, 2, "flag needs an argument: 'w' in -w"},
		{[]string{"capture", "vnet1", "-w", "f", "-c", "many"}, 2, `invalid argument "many"`},
		{[]string{"capture", "vnet1", "-w", "f", "--timeout", "soon"}, 2, `invalid argument "soon"`},
		{[]string{"capture", "vnet1", "-w", "f", "--filter", "icmp"}, 2, "unknown flag: --filter"},
		{[]string{"capture", "vnet1", "-w", "f", "--direction", "sideways"}, 1, `invalid direction "sideways": use in, out or both`},
		{[]string{"capture", "vnet1", "-w", "f", "--format", "erf"}, 1, `invalid format "erf": use pcapng or pcap`},
		{[]string{"capture", "vnet1", "-w", "f", "-s", "70000"}, 1, "invalid snaplen 70000: must be 1-65535 (0: whole frames)"},
		{[]string{"capture", "vnet1", "-w", "f", "-B", "-1"}, 1, "invalid buffer size -1 KiB"},
		{[]string{"capture", "vnet1", "-w", "f", "--local", "-B", "1024"}, 1, "a --local capture has none"},
		{[]string{"capture", "vnet1", "-w", "f", "-c", "-1"}, 1, "invalid count -1: must be 0 (no limit) or more"},
		{[]string{"capture", "vnet1", "-w", "f", "--timeout", "-1s"}, 1, "invalid timeout -1s"},
		{[]string{"capture", "a/b", "-w", "f"}, 1, `invalid interface name "a/b"`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			vswctl(t, "", tc.args...).expect(t, tc.code, tc.want)
		})
	}
}

// TestCaptureBinaryToStdoutUntilSIGINT runs the built vswctl via
// `ip netns exec`, writing pcap to stdout, and stops it with SIGINT.
func TestCaptureBinaryToStdoutUntilSIGINT(t *testing.T) {
	l := newCapLab(t)
	bin := buildVswctl(t)
	var stdout, stderr topo.SyncBuffer
	cmd := l.ns.Command(context.Background(), bin, "capture", "cap0", "--local", "-w", "-")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			_ = cmd.Process.Kill()
			<-exited
		}
	})

	stop := make(chan struct{})
	wg := l.sendUntil(t, stop)
	// Frames reach stdout as soon as the socket is idle: wait for 4.
	deadline := time.Now().Add(10 * time.Second)
	for countRecords(stdout.Bytes()) < 4 {
		if time.Now().After(deadline) {
			close(stop)
			wg.Wait()
			t.Fatalf("no 4 frames on stdout after 10s (stderr %q)", stderr.Bytes())
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
		if waitErr != nil {
			t.Fatalf("vswctl exited with %v after SIGINT (stderr %q)", waitErr, stderr.Bytes())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("vswctl did not stop on SIGINT")
	}
	recs := readRecords(t, bytes.NewReader(stdout.Bytes()))
	m := regexp.MustCompile(`^captured (\d+) frames on cap0 to stdout\n$`).FindSubmatch(stderr.Bytes())
	if m == nil {
		t.Fatalf("stderr %q, want the summary line", stderr.Bytes())
	}
	if n, _ := strconv.Atoi(string(m[1])); n != len(recs) || n < 4 {
		t.Errorf("summary says %d frames, stdout holds %d (want >= 4 and equal)", n, len(recs))
	}
	checkSequence(t, recs)
}

// countRecords counts the complete records at the start of b, a capture
// file still being written.
func countRecords(b []byte) int {
	r, err := pcapfile.NewReader(bytes.NewReader(b))
	if err != nil {
		return 0
	}
	n := 0
	for {
		if _, err := r.Next(); err != nil {
			return n
		}
		n++
	}
}

// buildVswctl builds the vswctl binary into a temporary directory.
func buildVswctl(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "vswctl")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestCaptureNotRoot runs the binary as nobody without capabilities.
func TestCaptureNotRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch to an unprivileged user")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv (util-linux) not installed")
	}
	bin := buildVswctl(t)
	if err := os.Chmod(filepath.Dir(bin), 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "x.pcap")
	cmd := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all",
		"--", bin, "capture", "lo", "--local", "-w", file)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("unprivileged capture: %v, want exit 1 (stderr %q)", err, stderr.String())
	}
	if want := "vswctl: capture needs root (CAP_NET_RAW): run vswctl capture as root\n"; stderr.String() != want {
		t.Errorf("stderr %q, want %q", stderr.String(), want)
	}
	if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("refused capture touched %s (%v)", file, err)
	}
}

// vswctlLimited runs vswctl in-process inside the namespace like
// vswctlIn, with captures bounded by lim instead of the host's slots.
func (l *capLab) vswctlLimited(t *testing.T, lim capture.Limit, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	a := &app{stdout: &out, stderr: &errb, captureLimit: lim}
	root := a.newRoot()
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errb)
	var err error
	if derr := l.ns.Do(func() error { err = root.ExecuteContext(context.Background()); return nil }); derr != nil {
		t.Fatal(derr)
	}
	r := result{stdout: out.String(), stderr: errb.String()}
	if err != nil {
		r.code = exitError
		r.stderr += "vswctl: " + oneLine(err.Error()) + "\n"
	}
	return r
}

// With every capture slot taken, vswctl capture is refused with a message
// that names the running captures and says what to do, and leaves FILE
// alone; once one stops, the next capture runs.
func TestCaptureRefusedWhenAllSlotsTaken(t *testing.T) {
	l := newCapLab(t)
	lim := capture.Limit{Dir: t.TempDir(), Max: 2}
	var held []*capture.Capture
	for range 2 {
		if err := l.ns.Do(func() error {
			c, err := lim.Open("cap0")
			if err == nil {
				held = append(held, c)
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	file := filepath.Join(t.TempDir(), "x.pcap")
	if err := os.WriteFile(file, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	me := fmt.Sprintf("pid %d on cap0", os.Getpid())
	r := l.vswctlLimited(t, lim, "capture", "cap0", "--local", "-w", file, "-c", "1")
	r.expect(t, 1, "capture on cap0: too many captures running: all 2 slots are taken ("+me+", "+me+
		"): stop one of them (Ctrl-C, or kill PID) and try again")
	if b, _ := os.ReadFile(file); string(b) != "keep" {
		t.Errorf("a refused capture changed %s: %q", file, b)
	}

	held[0].Close()
	held = held[1:]
	stop := make(chan struct{})
	wg := l.sendUntil(t, stop)
	r = l.vswctlLimited(t, lim, "capture", "cap0", "--local", "-w", file, "-c", "2", "--timeout", "10s")
	close(stop)
	wg.Wait()
	r.expect(t, 0, "")
	if !strings.HasPrefix(r.stdout, "captured 2 frames on cap0") {
		t.Errorf("stdout %q", r.stdout)
	}
}

// A capture writing to a pipe whose reader is killed (`vswctl capture IF
// -w - | wireshark -k -i -`, wireshark closed) ends at its next write
// (SIGPIPE) instead of running on unseen, and its packet socket is gone
// with it.
func TestCaptureBinaryEndsWhenReaderGone(t *testing.T) {
	l := newCapLab(t)
	bin := buildVswctl(t)
	before := l.packetSockets(t)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr topo.SyncBuffer
	cmd := l.ns.Command(context.Background(), bin, "capture", "cap0", "--local", "-w", "-")
	cmd.Stdout, cmd.Stderr = pw, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	// The reader sees the pcap header, so the capture runs; then it dies.
	hdr := make([]byte, 24)
	if _, err := io.ReadFull(pr, hdr); err != nil {
		t.Fatalf("pcap header: %v (stderr %q)", err, stderr.Bytes())
	}
	if len(l.packetSockets(t)) != len(before)+1 {
		t.Fatalf("packet sockets %v while capturing, %v before: want one more", l.packetSockets(t), before)
	}
	pr.Close()

	stop := make(chan struct{})
	wg := l.sendUntil(t, stop)
	defer func() { close(stop); wg.Wait() }()
	gone := time.Now()
	select {
	case <-exited:
		t.Logf("ended %v after its reader", time.Since(gone).Round(time.Millisecond))
	case <-time.After(5 * time.Second):
		t.Fatal("vswctl capture still running 5 s after its reader went away")
	}
	var ee *exec.ExitError
	if !errors.As(waitErr, &ee) {
		t.Fatalf("vswctl exited with %v, want a failure (SIGPIPE or EPIPE)", waitErr)
	}
	if ws := ee.Sys().(syscall.WaitStatus); !(ws.Signaled() && ws.Signal() == syscall.SIGPIPE) &&
		!strings.Contains(string(stderr.Bytes()), "broken pipe") {
		t.Fatalf("vswctl ended with %v (stderr %q), want SIGPIPE or a broken pipe error", waitErr, stderr.Bytes())
	}
	if got := l.packetSockets(t); !slices.Equal(got, before) {
		t.Fatalf("packet sockets %v after the capture ended, want %v", got, before)
	}
}

// packetSockets lists the inodes of the packet sockets in the lab's
// namespace.
func (l *capLab) packetSockets(t *testing.T) []string {
	t.Helper()
	inodes, err := l.ns.PacketSockets()
	if err != nil {
		t.Fatal(err)
	}
	return inodes
}

// Reaching vswitchd's socket (its --socket-group) is not enough to
// capture: vswitchd answers only root or a process with CAP_NET_RAW, as a
// packet capture would need. The binary runs as nobody, in the socket's
// group, without and with CAP_NET_RAW.
func TestCaptureThroughDaemonNeedsNetRaw(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch to an unprivileged user")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv (util-linux) not installed")
	}
	fake := apitest.NewFake()
	if _, err := fake.AddPort(context.Background(), api.PortSpec{Name: "vnet1", VLAN: ptrInt(100)}); err != nil {
		t.Fatal(err)
	}
	fake.CaptureFrames = []api.CapturedFrame{{Time: time.Now(), Data: make([]byte, 60), Length: 60}}
	dir := apitest.ShortTempDir(t)
	sock := filepath.Join(dir, "v.sock")
	l, err := api.ListenUnixGroup(sock, 65534)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- api.NewServer(fake, nil).Serve(ctx, l) }()
	defer func() { cancel(); <-done }()
	bin := buildVswctl(t)
	out := apitest.ShortTempDir(t)
	for _, d := range []string{filepath.Dir(bin), dir, out} {
		if err := os.Chmod(d, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	// The test's own temporary directory (0700): a process in a user
	// namespace of its own cannot pass it, even as that namespace's root.
	if err := os.Chmod(filepath.Dir(filepath.Dir(bin)), 0o711); err != nil {
		t.Fatal(err)
	}
	run := func(caps ...string) (int, string, string) {
		file := filepath.Join(out, fmt.Sprintf("x%d.pcapng", len(caps)))
		args := append([]string{"--reuid=65534", "--regid=65534", "--clear-groups"}, caps...)
		args = append(args, "--", bin, "--socket", sock, "capture", "vnet1", "-w", file, "-c", "1")
		cmd := exec.Command(setpriv, args...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return code, stdout.String(), stderr.String()
	}
	code, _, stderr := run("--inh-caps=-all")
	if want := "vswctl: capturing needs root or CAP_NET_RAW, as a packet capture does (uid 65534 has neither): run vswctl capture as root\n"; code != 1 || stderr != want {
		t.Errorf("nobody: exit %d, stderr %q; want 1, %q", code, stderr, want)
	}
	if _, err := os.Stat(filepath.Join(out, "x1.pcapng")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused capture created its file (%v)", err)
	}
	code, stdout, stderr := run("--inh-caps=+net_raw", "--ambient-caps=+net_raw")
	if code != 0 || !strings.HasPrefix(stdout, "captured 1 frames on vnet1") {
		t.Errorf("nobody with CAP_NET_RAW: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	// Every capability, but in a user namespace of its own (unshare -Ur,
	// which any user may run): they count there, not on the host.
	if unshare, err := exec.LookPath("unshare"); err == nil {
		code, stdout, stderr = run("--inh-caps=-all", "--", unshare, "-Ur")
		if want := "vswctl: capturing needs root or CAP_NET_RAW, as a packet capture does (uid 65534 has neither): run vswctl capture as root\n"; code != 1 || stderr != want {
			t.Errorf("nobody, root of its own user namespace: exit %d, stdout %q, stderr %q; want 1, %q", code, stdout, stderr, want)
		}
	}
}
