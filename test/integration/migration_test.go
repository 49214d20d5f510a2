package integration

import (
	"bufio"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vswitch/vswitch/internal/uuid"
	"github.com/vswitch/vswitch/pkg/api"
	"github.com/vswitch/vswitch/test/topo"
)

// vdpLLDPAD runs lldpad as the EVB bridge with its VDP bridge role on the
// switch ports of hvs (the test skips when lldpad is not installed). As in
// lldpadBridge, STP goes on so the bridge passes the station's LLDPDUs up,
// and lldpad restarts once configured: it fixes each port's VDP role at
// start.
func vdpLLDPAD(t *testing.T, l *lab, hvs ...*hv) *topo.LLDPAD {
	t.Helper()
	if err := topo.BridgeSTP(l.sw, "br0", true); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	lp, err := topo.StartLLDPAD(l.sw, dir)
	if errors.Is(err, topo.ErrNoLLDPAD) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hvs {
		if err := lp.EVBBridge(h.swPort, true); err != nil {
			t.Fatal(err)
		}
	}
	_ = lp.Stop()
	if lp, err = topo.StartLLDPAD(l.sw, dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			log := lp.Output()
			if len(log) > 12000 {
				log = log[len(log)-12000:]
			}
			t.Logf("lldpad log tail:\n%s", log)
		}
	})
	return lp
}

// bridgeVSI is a VSI TLV that lldpad's VDP bridge role received from a
// station, as its debug log shows it (qbg/vdp22sm.c vdp22_station_info,
// then qbg/vdp22.c vdp22_showvsi).
type bridgeVSI struct {
	port    string // lldpad's interface, our hypervisor's switch port
	mode    int    // 1 PRE-ASSOC, 2 PRE-ASSOC-RR, 3 ASSOC, 4 DE-ASSOC
	status  int    // of the request: 0x10 the M bit, 0x20 the S bit
	mgrid   string // lldpad's rendering: a number for a one-byte ID
	typeID  int
	version int
	idFmt   int
	id      string
}

var showVSI = regexp.MustCompile(`vsi_mode:(\d+),\d+ status:(0x[0-9a-f]+|0) mgrid:(\S+) id:(\d+)\(0x[0-9a-f]+\) version:(\d+) id_fmt:(\d+) (\S+) format:`)

// bridgeVSIs reads, in order, the VSI TLVs lldpad received from stations.
func bridgeVSIs(log string) []bridgeVSI {
	var out []bridgeVSI
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
		v := bridgeVSI{port: port, mgrid: m[3], id: m[7]}
		v.mode, _ = strconv.Atoi(m[1])
		st, _ := strconv.ParseInt(m[2], 0, 32)
		v.status = int(st)
		v.typeID, _ = strconv.Atoi(m[4])
		v.version, _ = strconv.Atoi(m[5])
		v.idFmt, _ = strconv.Atoi(m[6])
		out = append(out, v)
		port = ""
	}
	return out
}

func (v bridgeVSI) String() string {
	return fmt.Sprintf("%s mode %d status %#x mgrid %s type %d version %d fmt %d id %s", v.port, v.mode, v.status, v.mgrid, v.typeID, v.version, v.idFmt, v.id)
}

// waitBridgeVSI waits until lldpad received, after the first skip VSI
// TLVs, one that match accepts, and returns its index.
func waitBridgeVSI(t *testing.T, lp *topo.LLDPAD, skip int, timeout time.Duration, what string, match func(bridgeVSI) bool) int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		vs := bridgeVSIs(lp.Output())
		for i := skip; i < len(vs); i++ {
			if match(vs[i]) {
				return i
			}
		}
		if time.Now().After(deadline) {
			var b strings.Builder
			for _, v := range vs[min(skip, len(vs)):] {
				fmt.Fprintf(&b, "  %s\n", v)
			}
			t.Fatalf("lldpad never received %s; it received:\n%s", what, b.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// libvirtState is h's libvirt state directory of QEMU domains, as the hook
// reads it (status files of running domains).
func (h *hv) libvirtState() string { return filepath.Join(h.dir, "libvirt-qemu") }

// hookAs runs the libvirt hook against h's daemon with h's libvirt state
// directory, as h's libvirtd would.
func (h *hv) hookAs(xml string, args ...string) ctlResult {
	h.lab.t.Helper()
	return runCtlEnv(h.lab.t, []string{"VSWCTL_LIBVIRT_STATE_DIR=" + h.libvirtState()}, strings.NewReader(xml),
		append([]string{"--socket", h.sock, "libvirt-hook"}, args...)...)
}

const testDomain = "4dea22b3-1d52-d8f3-2516-782e98ab3fa0" // domainXML's UUID

// VDP against lldpad's bridge role: the VSI of a domain's NIC carries the
// domain's VSI type, version and manager (libvirt's one-byte managerid,
// which lldpad shows as a number), and its VSIID is the version 5 UUID of
// the MAC in the domain's namespace; an instance ID replaces it (the old
// VSI is de-associated).
func TestVSIIdentityWithLLDPAD(t *testing.T) {
	needBinaries(t)
	t.Parallel()
	l, hvs := newLab(t, "afpacket", 1)
	h := hvs[0]
	lp := vdpLLDPAD(t, l, h)
	vm1 := h.addVM(1)
	h.start("--lldp-interval", "1s")
	h.waitRelay("granted by lldpad", 15*time.Second, func(st api.Status) bool { return st.Relay.State == "granted" })
	xml := domainXML(vm1.port, vm1.mac.String(), `vlan="100" pcp="3" vsi-type="1193047" vsi-type-version="2" vsi-manager="12"`)
	if r := h.hookAs(xml, "web1", "start", "begin", "-"); r.code != 0 {
		t.Fatalf("start begin: %+v", r)
	}
	dom, _ := uuid.Parse(testDomain)
	want := uuid.NameBased(dom, vm1.mac.String()).String()
	vs := h.waitVSIs("VSI associated by lldpad", 15*time.Second, func(vs []api.VSI) bool { return len(vs) == 1 && vs[0].State == "associated" })
	if v := vs[0]; v.UUID != want || v.TypeID != 1193047 || v.TypeVer != 2 || v.MgrID != "12" || v.VLAN != 100 || v.Reason != "" {
		t.Errorf("VSI %+v, want VSIID %s, type 1193047 version 2, manager 12", v, want)
	}
	waitBridgeVSI(t, lp, 0, 5*time.Second, "the domain's ASSOC", func(v bridgeVSI) bool {
		return v.port == h.swPort && v.mode == 3 && v.mgrid == "12" && v.typeID == 1193047 && v.version == 2 && v.idFmt == 5 && v.id == want
	})
	if out := h.mustCtl("vsis"); !containsAll(out, "1193047", want, "associated") {
		t.Errorf("vswctl vsis:\n%s", out)
	}
	// An instance ID of the operator's: the VSI under the old VSIID goes.
	const inst = "0b6d9a3c-5e55-4f4e-9f11-2f0d5a6b7c8d"
	n := len(bridgeVSIs(lp.Output()))
	h.mustCtl("set-port", vm1.port, "--instance-id", inst)
	h.waitVSIs("the instance ID associated", 15*time.Second, func(vs []api.VSI) bool {
		return len(vs) == 1 && vs[0].UUID == inst && vs[0].State == "associated"
	})
	waitBridgeVSI(t, lp, n, 5*time.Second, "the old VSIID de-associated", func(v bridgeVSI) bool { return v.mode == 4 && v.id == want })
	waitBridgeVSI(t, lp, n, 5*time.Second, "the instance ID associated", func(v bridgeVSI) bool { return v.mode == 3 && v.id == inst && v.typeID == 1193047 })
}
