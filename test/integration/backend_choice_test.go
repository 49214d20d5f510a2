package integration

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/vswitch/vswitch/test/topo"
)

// --datapath auto must fall back to AF_PACKET when AF_XDP passes its probe
// (an XSK binds the uplink's queue) but the switch cannot start on it:
// here another process's XDP program holds the uplink through a live
// bpf_link (an XDP tool, another switch), which vswitchd must not replace.
// The switch must then forward.
func TestAutoFallsBackWhenAFXDPCannotStart(t *testing.T) {
	needBinaries(t)
	t.Parallel()
	_, hvs := newLab(t, "afxdp", 1) // skips where AF_XDP is unavailable
	h := hvs[0]
	vm1, vm2 := h.addVM(1), h.addVM(2)
	holdXDP(t, h.ns, "uplink")
	h.wantDP = [2]string{"afpacket", "afpacket"}
	// tryStart, not start: start skips an afxdp lab whose daemon fails.
	if err := h.tryStart("--datapath", "auto"); err != nil {
		t.Fatal(err)
	}
	h.lab.started = true
	var st map[string]any
	if err := json.Unmarshal([]byte(h.mustCtl("-o", "json", "status")), &st); err != nil {
		t.Fatal(err)
	}
	reason, _ := st["datapath_reason"].(string)
	if !strings.Contains(reason, "AF_XDP failed to start on the uplink") {
		t.Errorf("datapath_reason %q does not say why AF_XDP was dropped", reason)
	}
	if log, _ := os.ReadFile(h.logf); !strings.Contains(string(log), "held by a live bpf_link") {
		t.Errorf("the log does not say AF_XDP failed for the other program's bpf_link")
	}
	h.addPort(vm1.port, "--vlan", "100")
	h.addPort(vm2.port, "--vlan", "100")
	vm1.mustPing(vm2)
}

// VM ports on AF_XDP cannot carry frames above MTU 3818: the daemon must
// refuse to start, even with no port present yet and the uplink on
// AF_PACKET, instead of leaving every port down later.
func TestPortDatapathAFXDPRefusesJumboMTU(t *testing.T) {
	needBinaries(t)
	t.Parallel()
	_, hvs := newLab(t, "afpacket", 1)
	h := hvs[0]
	err := h.tryStart("--port-datapath", "afxdp", "--mtu", "9000")
	if !errors.Is(err, errStartFailed) {
		t.Fatalf("vswitchd started with --port-datapath afxdp --mtu 9000 (err %v)", err)
	}
	if !strings.Contains(err.Error(), "MTU 9000 is above the 3818 AF_XDP supports") {
		t.Errorf("error does not name the limit: %v", err)
	}
}

// holdXDP attaches an XDP_PASS program to ifname in ns through a bpf_link
// this test holds until it ends, as a running XDP tool would.
func holdXDP(t *testing.T, ns *topo.NS, ifname string) {
	t.Helper()
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         ebpf.XDP,
		License:      "MIT",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 2), asm.Return()}, // XDP_PASS
	})
	if err != nil {
		t.Fatalf("load an XDP program: %v", err)
	}
	t.Cleanup(func() { prog.Close() })
	var l link.Link
	err = ns.Do(func() error {
		idx, err := ns.Index(ifname)
		if err != nil {
			return err
		}
		l, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: idx})
		return err
	})
	if err != nil {
		t.Fatalf("attach an XDP program to %s: %v", ifname, err)
	}
	t.Cleanup(func() { l.Close() })
}
