package topo

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// ErrNoLLDPAD is returned by StartLLDPAD when lldpad is not installed
// (under CI, with CI set, that is another error: the tests fail, not skip).
var ErrNoLLDPAD = errors.New("lldpad not installed (apt-get install lldpad)")

// LLDPAD is Debian's lldpad (intel/openlldp) running in a namespace, used
// as the 802.1Qbg bridge peer. lldpad keeps its pid in POSIX shared memory
// (/dev/shm/lldpad.state) and refuses to start while another one runs, so
// it gets a private mount namespace with its own /dev/shm. Its control
// socket is abstract, hence per network namespace: lldptool runs in the
// same network namespace.
type LLDPAD struct {
	ns   *NS
	proc *Proc
}

// StartLLDPAD starts lldpad in ns with its configuration file in dir and
// waits until lldptool reaches it. lldpad logs with printf, block-buffered
// on a pipe: it runs under `stdbuf -oL` so that each line reaches Output
// (and ReceivedVSIs) when it is written, not with the next 4 KiB. lldpad fixes each interface's VDP role
// when it starts, from the saved EVB mode: to be a VDP bridge, configure
// EVBBridge, Stop, and start it again with the same dir. When ns belongs to a Topo, lldpad is
// stopped at Cleanup (and its log shown if the test failed).
func StartLLDPAD(ns *NS, dir string) (*LLDPAD, error) {
	if _, err := exec.LookPath("lldpad"); err != nil {
		if os.Getenv("CI") != "" {
			// CI installs lldpad (make deps): its absence there is a
			// failure, not a reason for the caller to skip.
			return nil, fmt.Errorf("%w: CI must run the lldpad tests", err)
		}
		return nil, ErrNoLLDPAD
	}
	conf := filepath.Join(dir, "lldpad.conf")
	p, err := ns.Start("unshare", "-m", "--propagation", "private", "sh", "-c",
		"mount -t tmpfs lldpad-shm /dev/shm && exec stdbuf -oL lldpad -p -V 7 -f "+conf)
	if err != nil {
		return nil, err
	}
	l := &LLDPAD{ns: ns, proc: p}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := l.Tool("-p"); err == nil {
			return l, nil
		}
		select {
		case <-p.Done():
			return nil, fmt.Errorf("lldpad exited (%v): %s", p.Err(), p.Output())
		default:
		}
		if time.Now().After(deadline) {
			_ = p.Stop(3 * time.Second)
			return nil, fmt.Errorf("lldpad's control socket did not answer within 10 s: %s", p.Output())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Tool runs lldptool ARGS in the namespace and returns its output.
func (l *LLDPAD) Tool(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := l.ns.Run(ctx, "lldptool", args...)
	return string(out), err
}

// EVBBridge makes lldpad an EVB bridge on port (nearest-customer-bridge
// agent, rx and tx), with or without the reflective relay capability.
func (l *LLDPAD) EVBBridge(port string, rrcap bool) error {
	yes := map[bool]string{true: "yes", false: "no"}
	for _, args := range [][]string{
		{"-L", "-i", port, "-g", "ncb", "adminStatus=rxtx"},
		{"-T", "-i", port, "-g", "ncb", "-V", "evb", "-c", "evbmode=bridge"},
		{"-T", "-i", port, "-g", "ncb", "-V", "evb", "-c", "evbrrcap=" + yes[rrcap]},
		{"-T", "-i", port, "-g", "ncb", "-V", "evb", "-c", "enableTx=yes"},
	} {
		if _, err := l.Tool(args...); err != nil {
			return err
		}
	}
	return nil
}

// SetRRCAP changes the reflective relay capability of an EVB bridge set
// up with EVBBridge. lldpad sends it with its next LLDPDU: at once only
// when what it receives changes.
func (l *LLDPAD) SetRRCAP(port string, rrcap bool) error {
	_, err := l.Tool("-T", "-i", port, "-g", "ncb", "-V", "evb", "-c", "evbrrcap="+map[bool]string{true: "yes", false: "no"}[rrcap])
	return err
}

// ReceivedEVB is lldptool's rendering of the last EVB TLV lldpad received
// on port ("" before any).
func (l *LLDPAD) ReceivedEVB(port string) (string, error) {
	out, err := l.Tool("-t", "-n", "-i", port, "-g", "ncb", "-V", "evb")
	return strings.TrimSpace(out), err
}

// Output is what lldpad logged so far.
func (l *LLDPAD) Output() string { return l.proc.Output() }

// Stop stops lldpad.
func (l *LLDPAD) Stop() error {
	_ = l.proc.Stop(3 * time.Second)
	return nil
}

// BridgeSTP turns the kernel's STP on or off on bridge br (forward delay
// 2 s, the minimum; ports that forward keep forwarding). With STP off a
// Linux bridge forwards frames to the bridge group address
// 01:80:c2:00:00:00 itself, so an LLDP agent on a bridge port (lldpad)
// never hears the nearest-customer-bridge LLDPDUs; with STP on they go up
// the port's stack, as on a real bridge.
func BridgeSTP(ns *NS, br string, on bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	state := map[bool]string{true: "1", false: "0"}[on]
	_, err := ns.Run(ctx, "ip", "link", "set", br, "type", "bridge", "forward_delay", "200", "stp_state", state)
	return err
}

// VSIRecord is a VSI TLV that lldpad's VDP bridge role received from a
// station, as its debug log (-V 7) shows it: qbg/vdp22sm.c's
// vdp22_station_info names the interface, then qbg/vdp22.c's
// vdp22_showvsi prints the TLV.
type VSIRecord struct {
	Port    string // lldpad's interface (the station's bridge port)
	Mode    int    // 1 PRE-ASSOC, 2 PRE-ASSOC with reservation, 3 ASSOC, 4 DE-ASSOC
	Status  int    // the request's status byte: 0x10 the M bit, 0x20 the S bit
	MgrID   string // lldpad's rendering: a number for a one-byte manager ID, else the text
	TypeID  int
	Version int
	IDFmt   int    // 5: a UUID
	ID      string // the VSIID as lldpad prints it (a UUID for format 5)
}

func (v VSIRecord) String() string {
	return fmt.Sprintf("%s mode %d status %#x mgrid %s type %d version %d fmt %d id %s", v.Port, v.Mode, v.Status, v.MgrID, v.TypeID, v.Version, v.IDFmt, v.ID)
}

var showVSI = regexp.MustCompile(`vsi_mode:(\d+),\d+ status:(0x[0-9a-f]+|0) mgrid:(\S+) id:(\d+)\((?:0x[0-9a-f]+|0)\) version:(\d+) id_fmt:(\d+) (\S+) format:`)

// ReceivedVSIs reads, in order, the VSI TLVs lldpad's bridge role received
// so far.
func (l *LLDPAD) ReceivedVSIs() []VSIRecord { return ParseVSIRecords(l.Output()) }

// ParseVSIRecords reads the VSI TLVs a bridge role received from lldpad's
// debug log.
func ParseVSIRecords(log string) []VSIRecord {
	var out []VSIRecord
	port := ""
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.Index(line, "vdp22_station_info:"); i >= 0 {
			if f := strings.Fields(line[i+len("vdp22_station_info:"):]); len(f) > 1 && f[1] == "received" {
				port = f[0]
			}
			continue
		}
		m := showVSI.FindStringSubmatch(line)
		if m == nil || port == "" {
			continue
		}
		v := VSIRecord{Port: port, MgrID: m[3], ID: m[7]}
		v.Mode, _ = strconv.Atoi(m[1])
		st, _ := strconv.ParseInt(m[2], 0, 32)
		v.Status = int(st)
		v.TypeID, _ = strconv.Atoi(m[4])
		v.Version, _ = strconv.Atoi(m[5])
		v.IDFmt, _ = strconv.Atoi(m[6])
		out = append(out, v)
		port = ""
	}
	return out
}

// WaitVSI waits until lldpad received, after the first skip VSI TLVs, one
// that match accepts, and returns its index; the error lists what it
// received instead.
func (l *LLDPAD) WaitVSI(skip int, timeout time.Duration, match func(VSIRecord) bool) (int, error) {
	deadline := time.Now().Add(timeout)
	for {
		vs := l.ReceivedVSIs()
		for i := skip; i < len(vs); i++ {
			if match(vs[i]) {
				return i, nil
			}
		}
		if time.Now().After(deadline) {
			var b strings.Builder
			for _, v := range vs[min(skip, len(vs)):] {
				fmt.Fprintf(&b, "  %s\n", v)
			}
			return 0, fmt.Errorf("not received within %v; lldpad received:\n%s", timeout, b.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
