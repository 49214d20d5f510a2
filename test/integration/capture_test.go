package integration

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
	"github.com/vswitch/vswitch/internal/pcapfile"
	"github.com/vswitch/vswitch/pkg/api"
	"github.com/vswitch/vswitch/test/topo"
)

// ctlCapture is a `vswctl capture` running in the background against a
// hypervisor's daemon.
type ctlCapture struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdout topo.SyncBuffer
	stderr topo.SyncBuffer
	done   chan struct{}
	err    error
}

// startCapture runs `vswctl --socket S capture ARGS...`; stdout, when
// non-nil, replaces the captured stdout buffer.
func (h *hv) startCapture(stdout io.Writer, args ...string) *ctlCapture {
	t := h.lab.t
	t.Helper()
	c := &ctlCapture{t: t, done: make(chan struct{})}
	c.cmd = exec.Command(vswctlBin, append([]string{"--socket", h.sock, "capture"}, args...)...)
	c.cmd.Stdout, c.cmd.Stderr = &c.stdout, &c.stderr
	if stdout != nil {
		c.cmd.Stdout = stdout
	}
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("start vswctl capture: %v", err)
	}
	go func() { c.err = c.cmd.Wait(); close(c.done) }()
	t.Cleanup(func() {
		select {
		case <-c.done:
		default:
			_ = c.cmd.Process.Kill()
			<-c.done
		}
	})
	return c
}

// exited reports whether vswctl has exited.
func (c *ctlCapture) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// interrupt sends SIGINT (Ctrl-C) and waits for the exit; it fails the
// test unless vswctl exits 0 within timeout.
func (c *ctlCapture) interrupt(timeout time.Duration) {
	c.t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGINT); err != nil {
		c.t.Fatalf("SIGINT vswctl capture: %v", err)
	}
	select {
	case <-c.done:
	case <-time.After(timeout):
		c.t.Fatalf("vswctl capture still running %v after SIGINT (stderr %q)", timeout, c.stderr.String())
	}
	if c.err != nil {
		c.t.Fatalf("vswctl capture: %v (stderr %q)", c.err, c.stderr.String())
	}
}

// waitCaptureFile waits until file starts with a capture file's header:
// vswctl opens it once vswitchd runs the capture.
func waitCaptureFile(t *testing.T, c *ctlCapture, file string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if b, err := os.ReadFile(file); err == nil {
			if _, err := pcapfile.NewReader(bytes.NewReader(b)); err == nil {
				return
			}
		}
		if c.exited() || time.Now().After(deadline) {
			t.Fatalf("no capture file %s (vswctl exited %v: %v, stderr %q)", file, c.exited(), c.err, c.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func readCaptureFile(t *testing.T, file string) *pcapfile.File {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	f, err := pcapfile.ReadAll(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return f
}

// echoFrame is an ICMP echo request or reply in a capture.
type echoFrame struct {
	dir      pcapfile.Direction
	vid, pcp int // -1: untagged
	src, dst string
	reply    bool
}

func (e echoFrame) String() string {
	kind := "request"
	if e.reply {
		kind = "reply"
	}
	tag := "untagged"
	if e.vid >= 0 {
		tag = fmt.Sprintf("VID %d PCP %d", e.vid, e.pcp)
	}
	return fmt.Sprintf("%s %s %s->%s %s", e.dir, kind, e.src, e.dst, tag)
}

// echoFrames decodes the ICMP echoes of a capture.
func echoFrames(f *pcapfile.File) []echoFrame {
	var out []echoFrame
	for _, p := range f.Packets {
		pkt := gopacket.NewPacket(p.Data, layers.LayerTypeEthernet, gopacket.NoCopy)
		icmp, ok := pkt.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
		if !ok {
			continue
		}
		typ := icmp.TypeCode.Type()
		if typ != layers.ICMPv4TypeEchoRequest && typ != layers.ICMPv4TypeEchoReply {
			continue
		}
		ip := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		e := echoFrame{dir: p.Dir, vid: -1, pcp: -1, src: ip.SrcIP.String(), dst: ip.DstIP.String(), reply: typ == layers.ICMPv4TypeEchoReply}
		if q, ok := pkt.Layer(layers.LayerTypeDot1Q).(*layers.Dot1Q); ok {
			e.vid, e.pcp = int(q.VLANIdentifier), int(q.Priority)
		}
		out = append(out, e)
	}
	return out
}

// wantEcho asserts that es holds want (and says what it holds if not).
func wantEcho(t *testing.T, what string, es []echoFrame, want echoFrame) {
	t.Helper()
	for _, e := range es {
		if e == want {
			return
		}
	}
	t.Errorf("%s capture lacks %v; it holds %v", what, want, es)
}

var summaryLine = regexp.MustCompile(`^captured (\d+) frames on (\S+) to (\S+)\n(\d+) frames dropped`)

// A capture through vswitchd, on every backend, of a ping in both
// directions between two VMs: the VM port's capture holds each echo
// request and reply, untagged, with the direction it crossed the port;
// the uplink's holds both going out with our 802.1Q tag (VID 100, the
// sending port's PCP) and coming back from the bridge's reflective relay
// as received.
func TestCaptureThroughDatapath(t *testing.T) {
	forEachDatapath(t, func(t *testing.T, dp string) {
		_, hvs := newLab(t, dp, 1)
		h := hvs[0]
		vm1, vm2 := h.addVM(1), h.addVM(2)
		h.start()
		h.addPort(vm1.port, "--vlan", "100", "--pcp", "5")
		h.addPort(vm2.port, "--vlan", "100", "--pcp", "3")
		dir := t.TempDir()
		portFile, upFile := filepath.Join(dir, "vnet1.pcapng"), filepath.Join(dir, "uplink.pcapng")
		pc := h.startCapture(nil, vm1.port, "-w", portFile)
		uc := h.startCapture(nil, "uplink", "-w", upFile)
		waitCaptureFile(t, pc, portFile)
		waitCaptureFile(t, uc, upFile)

		vm1.mustPing(vm2)
		vm2.mustPing(vm1)
		time.Sleep(100 * time.Millisecond) // the last reply reaches the captures
		pc.interrupt(10 * time.Second)
		uc.interrupt(10 * time.Second)

		for _, c := range []struct {
			c    *ctlCapture
			name string
			file string
		}{{pc, vm1.port, portFile}, {uc, "uplink", upFile}} {
			m := summaryLine.FindStringSubmatch(c.c.stdout.String())
			if m == nil || m[2] != c.name || m[3] != c.file {
				t.Fatalf("%s: summary %q", c.name, c.c.stdout.String())
			}
			f := readCaptureFile(t, c.file)
			if n, _ := strconv.Atoi(m[1]); n != len(f.Packets) || n == 0 {
				t.Errorf("%s: the summary says %s frames, the file holds %d", c.name, m[1], len(f.Packets))
			}
			if f.Stats == nil || f.Stats.Delivered != uint64(len(f.Packets)) || f.Stats.Dropped != 0 {
				t.Errorf("%s: statistics %+v with %d frames", c.name, f.Stats, len(f.Packets))
			}
			for i, p := range f.Packets {
				if p.Dir != pcapfile.Inbound && p.Dir != pcapfile.Outbound {
					t.Errorf("%s: frame %d has no direction", c.name, i)
				}
			}
			// Another reader (gopacket's, as tshark would) reads it too.
			b, _ := os.ReadFile(c.file)
			ng, err := pcapgo.NewNgReader(bytes.NewReader(b), pcapgo.DefaultNgReaderOptions)
			if err != nil {
				t.Fatalf("%s: pcapgo: %v", c.name, err)
			}
			for i, p := range f.Packets {
				data, _, err := ng.ReadPacketData()
				if err != nil || !bytes.Equal(data, p.Data) {
					t.Fatalf("%s: pcapgo frame %d: %v", c.name, i, err)
				}
			}
		}

		a, b := vm1.ip, vm2.ip
		in, out := pcapfile.Inbound, pcapfile.Outbound
		port := echoFrames(readCaptureFile(t, portFile))
		for _, e := range port {
			if e.vid >= 0 {
				t.Errorf("a tagged echo on the access port: %v", e)
			}
		}
		// vm1 pings vm2: its request goes in, the reply comes out to it.
		wantEcho(t, "port", port, echoFrame{dir: in, vid: -1, pcp: -1, src: a, dst: b})
		wantEcho(t, "port", port, echoFrame{dir: out, vid: -1, pcp: -1, src: b, dst: a, reply: true})
		// vm2 pings vm1: the request comes out to vm1, its reply goes in.
		wantEcho(t, "port", port, echoFrame{dir: out, vid: -1, pcp: -1, src: b, dst: a})
		wantEcho(t, "port", port, echoFrame{dir: in, vid: -1, pcp: -1, src: a, dst: b, reply: true})

		up := echoFrames(readCaptureFile(t, upFile))
		for _, e := range up {
			if e.vid != 100 {
				t.Errorf("an echo on the uplink without our VID 100 tag: %v", e)
			}
		}
		for _, d := range []pcapfile.Direction{out, in} { // out: ours; in: the relay's reflection
			wantEcho(t, "uplink", up, echoFrame{dir: d, vid: 100, pcp: 5, src: a, dst: b})
			wantEcho(t, "uplink", up, echoFrame{dir: d, vid: 100, pcp: 3, src: b, dst: a, reply: true})
			wantEcho(t, "uplink", up, echoFrame{dir: d, vid: 100, pcp: 3, src: b, dst: a})
			wantEcho(t, "uplink", up, echoFrame{dir: d, vid: 100, pcp: 5, src: a, dst: b, reply: true})
		}
	})
}

// udpIn opens a UDP socket bound to ip:port in ns.
func udpIn(t *testing.T, ns *topo.NS, ip string, port int) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	if err := ns.Do(func() error {
		var err error
		c, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(ip), Port: port})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// datapathDrops sums the drops that mean the datapath itself lost frames
// (rings overrun, sends refused, ports down) over the ports and the uplink.
func datapathDrops(st api.Stats) map[string]uint64 {
	out := map[string]uint64{}
	for _, r := range []string{"rx_overrun", "tx_error", "port_down"} {
		out[r] = st.Uplink.Drops[r]
		for _, p := range st.Ports {
			out[r] += p.Drops[r]
		}
	}
	return out
}

// A reader that stops reading a capture while traffic flows: vswitchd
// forwards every frame as before (no datapath drop, every datagram
// arrives, a ping answers), the capture loses frames and says how many,
// in the summary and in the file's statistics, once the reader reads
// again.
func TestCaptureSlowReader(t *testing.T) {
	forEachDatapath(t, func(t *testing.T, dp string) {
		_, hvs := newLab(t, dp, 1)
		h := hvs[0]
		vm1, vm2 := h.addVM(1), h.addVM(2)
		h.start()
		h.addPort(vm1.port, "--vlan", "100")
		h.addPort(vm2.port, "--vlan", "100")
		vm1.mustPing(vm2)

		pr, pw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer pr.Close()
		c := h.startCapture(pw, vm1.port, "-w", "-", "-B", "256")
		pw.Close()
		// The reader takes the file's header, then stops reading.
		hdr := make([]byte, 28)
		if _, err := io.ReadFull(pr, hdr); err != nil {
			t.Fatalf("capture header: %v (stderr %q)", err, c.stderr.String())
		}
		before := datapathDrops(h.stats())

		rx := udpIn(t, vm2.ns, vm2.ip, 9000)
		tx := udpIn(t, vm1.ns, vm1.ip, 9001)
		const n = 3000
		got := make(chan int, 1)
		go func() {
			buf := make([]byte, 2048)
			count := 0
			for {
				_ = rx.SetReadDeadline(time.Now().Add(2 * time.Second))
				if _, _, err := rx.ReadFromUDP(buf); err != nil {
					got <- count
					return
				}
				count++
			}
		}()
		payload := bytes.Repeat([]byte("x"), 1400)
		dst := &net.UDPAddr{IP: net.ParseIP(vm2.ip), Port: 9000}
		for i := range n {
			if _, err := tx.WriteToUDP(payload, dst); err != nil {
				t.Fatalf("send datagram %d: %v", i, err)
			}
			if i%10 == 9 {
				time.Sleep(5 * time.Millisecond) // about 2,000 a second
			}
		}
		if err := vm1.ping(vm2.ip, pingOK); err != nil {
			t.Errorf("a ping while the capture's reader is stalled: %v", err)
		}
		if r := <-got; r != n {
			t.Errorf("vm2 received %d of %d datagrams while the capture's reader was stalled", r, n)
		}
		if after := datapathDrops(h.stats()); fmt.Sprint(after) != fmt.Sprint(before) {
			t.Errorf("datapath drops %v before the stall, %v after", before, after)
		}

		// Ctrl-C, then read again: vswctl writes the rest and the end.
		if err := c.cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		rest, err := io.ReadAll(pr)
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-c.done:
		case <-time.After(10 * time.Second):
			t.Fatal("vswctl capture did not end after SIGINT")
		}
		if c.err != nil {
			t.Fatalf("vswctl capture: %v (stderr %q)", c.err, c.stderr.String())
		}
		m := summaryLine.FindStringSubmatch(c.stderr.String())
		if m == nil {
			t.Fatalf("stderr %q, want the summary", c.stderr.String())
		}
		frames, _ := strconv.ParseUint(m[1], 10, 64)
		dropped, _ := strconv.ParseUint(m[4], 10, 64)
		f, err := pcapfile.ReadAll(io.MultiReader(bytes.NewReader(hdr), bytes.NewReader(rest)))
		if err != nil {
			t.Fatalf("the stream read again after the stall: %v", err)
		}
		if dropped == 0 || frames+dropped < n || uint64(len(f.Packets)) != frames {
			t.Errorf("summary %q: want drops, at least %d frames seen, and %d frames in the stream", m[0], n, len(f.Packets))
		}
		if f.Stats == nil || f.Stats.Dropped != dropped || f.Stats.Delivered != frames || f.Stats.Received != frames+dropped {
			t.Errorf("statistics block %+v, summary %q", f.Stats, m[0])
		}
		t.Logf("stalled reader: %d frames captured, %d dropped", frames, dropped)
	})
}

// A capture of an unknown interface is refused with the way out; one of a
// port that is deleted ends with the reason and keeps its frames.
func TestCaptureRefusedAndEnded(t *testing.T) {
	needBinaries(t)
	t.Parallel()
	_, hvs := newLab(t, "afpacket", 1)
	h := hvs[0]
	vm1, vm2 := h.addVM(1), h.addVM(2)
	h.start()
	h.addPort(vm1.port, "--vlan", "100")
	h.addPort(vm2.port, "--vlan", "100")
	r := h.ctl("capture", "vnet9", "-w", filepath.Join(t.TempDir(), "x"))
	if r.code != 1 || r.stderr != "vswctl: no port or uplink named vnet9 (the uplink is uplink; see vswctl list-ports); vswctl capture --local vnet9 captures any interface\n" {
		t.Errorf("unknown interface: exit %d, %q", r.code, r.stderr)
	}

	file := filepath.Join(t.TempDir(), "vnet1.pcapng")
	c := h.startCapture(nil, vm1.port, "-w", file)
	waitCaptureFile(t, c, file)
	vm1.mustPing(vm2)
	h.mustCtl("del-port", vm1.port)
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the capture of a deleted port still runs")
	}
	var ee *exec.ExitError
	if !errors.As(c.err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("vswctl exited %v, want 1", c.err)
	}
	want := regexp.MustCompile(`^vswctl: vswitchd ended the capture on vnet1 after (\d+) frames \(0 dropped\): port vnet1 was deleted; they are saved in ` + regexp.QuoteMeta(file) + "\n$")
	m := want.FindStringSubmatch(c.stderr.String())
	if m == nil {
		t.Fatalf("stderr %q", c.stderr.String())
	}
	f := readCaptureFile(t, file)
	if n, _ := strconv.Atoi(m[1]); n != len(f.Packets) || n < 2 || f.Stats == nil {
		t.Errorf("%s frames said, %d in the file (statistics %v)", m[1], len(f.Packets), f.Stats)
	}
}
