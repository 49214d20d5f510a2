package integration

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vswitch/vswitch/test/topo"
)

// groState returns what `ethtool -k IF` says about generic-receive-offload.
func groState(t *testing.T, ns *topo.NS, ifname string) string {
	t.Helper()
	out, err := ns.Run(context.Background(), "ethtool", "-k", ifname)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(l, "generic-receive-offload: "); ok {
			return v
		}
	}
	t.Fatalf("ethtool -k %s shows no generic-receive-offload line:\n%s", ifname, out)
	return ""
}

// GRO on the uplink merges a flow's frames into super-frames before any
// packet socket sees them; the uplink queues would drop those as oversize
// and TCP towards the VMs would stall. vswitchd switches receive
// coalescing off on the uplink while it runs and back on when it stops.
// The bridge hands tags over in metadata here (txvlan on) and has TSO off
// on its port, so veth's GRO merges the tagged TCP segments as a NIC's
// would.
func TestUplinkGROSwitchedOff(t *testing.T) {
	needBinaries(t)
	t.Parallel()
	l, hvs := newLabWith(t, "afpacket", 1, labConfig{keepTxVLAN: true})
	h := hvs[0]
	// veth turns NAPI (and so GRO) on when the feature changes to on.
	for _, v := range []string{"off", "on"} {
		if _, err := h.ns.Run(context.Background(), "ethtool", "-K", "uplink", "gro", v); err != nil {
			t.Fatal(err)
		}
	}
	// veth merges only what its peer could not have segmented itself:
	// no TSO on the bridge's side, as with a NIC receiving from a wire.
	if _, err := l.sw.Run(context.Background(), "ethtool", "-K", h.swPort, "tso", "off"); err != nil {
		t.Fatal(err)
	}
	if s := groState(t, h.ns, "uplink"); s != "on" {
		t.Fatalf("GRO on the uplink is %q before vswitchd, want on", s)
	}
	vm1, vm2 := h.addVM(1), h.addVM(2)
	h.start()
	if s := groState(t, h.ns, "uplink"); s != "off" {
		t.Errorf("GRO on the uplink is %q while vswitchd runs, want off", s)
	}
	h.addPort(vm1.port, "--vlan", "100")
	h.addPort(vm2.port, "--vlan", "100")
	vm1.mustPing(vm2)
	tcpEcho(t, vm1, vm2, 1<<20, 20*time.Second)
	if st := h.stats(); st.Uplink.Drops["malformed"] != 0 {
		t.Errorf("%d uplink frames dropped as malformed (merged super-frames?)", st.Uplink.Drops["malformed"])
	}
	if err := h.d.kill(syscall.SIGTERM, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if s := groState(t, h.ns, "uplink"); s != "on" {
		t.Errorf("GRO on the uplink is %q after vswitchd stopped, want on again", s)
	}
}
