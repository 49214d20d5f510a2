package integration

import (
	"encoding/binary"
	"net"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vswitch/vswitch/internal/uuid"
	"github.com/vswitch/vswitch/pkg/api"
	"github.com/vswitch/vswitch/test/evbbridge"
	"github.com/vswitch/vswitch/test/topo"
)

// port returns the port's object from `vswctl -o json list-ports`.
func (h *hv) port(name string) api.Port {
	h.lab.t.Helper()
	for _, p := range h.ports() {
		if p.Name == name {
			return p
		}
	}
	h.lab.t.Fatalf("no port %s in list-ports", name)
	return api.Port{}
}

// vsiOf is the VSIID vswitchd registers for port (the first of its VSIs).
func (h *hv) vsiOf(port string) (id [16]byte) {
	t := h.lab.t
	t.Helper()
	vs := h.waitVSIs("a VSI of "+port, 10*time.Second, func(vs []api.VSI) bool {
		return slices.ContainsFunc(vs, func(v api.VSI) bool { return v.Port == port })
	})
	for _, v := range vs {
		if v.Port == port {
			u, err := uuid.Parse(v.UUID)
			if err != nil {
				t.Fatal(err)
			}
			return u
		}
	}
	return id
}

// waitRequestAfter waits for a VSI TLV the peer received after the first
// skip that match accepts.
func waitRequestAfter(t *testing.T, peer *evbbridge.Port, skip int, what string, match func(evbbridge.Request) bool) evbbridge.Request {
	t.Helper()
	var got evbbridge.Request
	err := peer.Wait(10*time.Second, what, func(s evbbridge.Snapshot) bool {
		for _, r := range s.Requests[min(skip, len(s.Requests)):] {
			if match(r) {
				got = r
				return true
			}
		}
		return false
	})
	if err != nil {
		t.Fatalf("%v; the peer received %+v", err, peer.Requests()[min(skip, len(peer.Requests())):])
	}
	return got
}

// A port added with --vlan 0 asks the bridge for its VLAN over VDP (VID 0
// in its filter) and forwards nothing, counting vid_unassigned, until the
// bridge's answer carries a VID; then it forwards on it. With a VSI group
// the bridge's answer maps the group to the VID (format group+MAC+VID). A
// bridge answering VID 0 leaves the port down with the reason. De-
// associated by the bridge, and after a restart, the port asks again with
// VID 0 (its record keeps vlan 0).
func TestVLANFromBridgeWithEVBBridge(t *testing.T) {
	forEachDatapath(t, func(t *testing.T, dp string) {
		l, hvs := newLab(t, dp, 1)
		h := hvs[0]
		peer := evbPeer(t, l, h, evbbridge.Config{VDP: evbbridge.Answer{Silent: true}})
		vm1, vm2, vm3, vm4 := h.addVM(1), h.addVM(2), h.addVM(3), h.addVM(4)
		h.start("--lldp-interval", "1s")
		h.waitRelay("granted by the peer", 15*time.Second, func(st api.Status) bool { return st.Relay.State == "granted" })
		h.addPort(vm2.port, "--vlan", "300", "--mac", vm2.mac.String())

		h.mustCtl("add-port", vm1.port, "--vlan", "0", "--mac", vm1.mac.String())
		h.waitState(vm1.port, "waiting", 10*time.Second)
		r := waitRequestAfter(t, peer, 0, "vm1's ASSOC with VID 0", func(r evbbridge.Request) bool {
			return r.VSI.Mode == evbbridge.Assoc && len(r.VSI.Filters) == 1 && r.VSI.Filters[0].MAC.String() == vm1.mac.String()
		})
		if r.VSI.Filters[0].VID != 0 || r.VSI.FilterFormat != 2 || r.SVID != 0 {
			t.Fatalf("vm1's request %+v: want MAC+VID with VID 0, untagged", r.VSI)
		}
		vm1.mustNotPing(vm2, "vm1's port waits for the bridge's VLAN")
		if n := h.drops(vm1.port, "vid_unassigned"); n == 0 {
			t.Error("the waiting port counted no vid_unassigned drops")
		}
		if p := h.port(vm1.port); !p.VLANFromBridge || p.VLAN != 0 || p.AssignedVLAN != 0 || !strings.Contains(p.StateReason, "no answer yet") {
			t.Errorf("waiting port %+v", p)
		}

		// The bridge assigns VLAN 300: vm1 reaches vm2 (VLAN 300) through
		// the reflective relay.
		peer.SetDefaultAnswer(evbbridge.Answer{VID: 300, GroupVIDs: map[uint32]uint16{77: 300}})
		h.waitState(vm1.port, "up", 10*time.Second)
		if p := h.port(vm1.port); p.AssignedVLAN != 300 || p.VLAN != 0 || p.StateReason != "" {
			t.Errorf("assigned port %+v", p)
		}
		vm1.mustPing(vm2)
		if table := h.mustCtl("list-ports"); !strings.Contains(table, "300 (bridge)") {
			t.Errorf("list-ports does not show the VLAN from the bridge:\n%s", table)
		}
		if out := h.mustCtl("vsis"); !strings.Contains(out, "0 -> 300") {
			t.Errorf("vswctl vsis does not show the assignment:\n%s", out)
		}

		// A VSI group: the bridge maps group 77 to VLAN 300.
		h.mustCtl("add-port", vm3.port, "--vlan", "0", "--vsi-group", "77", "--mac", vm3.mac.String())
		h.waitState(vm3.port, "up", 10*time.Second)
		err := peer.Wait(5*time.Second, "vm3's VSI held with its group", func(s evbbridge.Snapshot) bool {
			return slices.ContainsFunc(s.VSIs, func(v evbbridge.VSIState) bool {
				f := v.VSI.Filters
				return v.VSI.FilterFormat == 4 && len(f) == 1 && f[0].GroupID == 77 && f[0].VID == 300 && f[0].MAC.String() == vm3.mac.String()
			})
		})
		if err != nil {
			t.Fatalf("%v: %+v", err, peer.VSIs())
		}
		if st, ok := peer.Station(0); !ok || !st.SGID {
			t.Errorf("the station's EVB TLV %+v: want SGID (group IDs)", st)
		}
		vm3.mustPing(vm2)

		// A bridge that assigns nothing: down, with the reason.
		const noVID = "0b6d9a3c-5e55-4f4e-9f11-2f0d5a6b7c8d"
		id4, _ := uuid.Parse(noVID)
		peer.SetAnswer(id4, evbbridge.Answer{}) // accepts, VID 0 stays 0
		h.mustCtl("add-port", vm4.port, "--vlan", "0", "--mac", vm4.mac.String(), "--instance-id", noVID)
		h.waitState(vm4.port, "down", 10*time.Second)
		if p := h.port(vm4.port); !strings.Contains(p.StateReason, "assigned no VLAN") {
			t.Errorf("port answered with VID 0: %+v", p)
		}
		vm4.mustNotPing(vm2, "the bridge assigned vm4 no VLAN")

		// The bridge de-associates vm1's VSI: vm1 asks again with VID 0
		// and gets VLAN 300 back.
		id1 := h.vsiOf(vm1.port)
		n := len(peer.Requests())
		if !peer.Deassociate(0, id1) {
			t.Fatalf("the peer holds no VSI %x", id1)
		}
		waitRequestAfter(t, peer, n, "vm1's ASSOC with VID 0 after the bridge's DEASSOC", func(r evbbridge.Request) bool {
			return r.VSI.ID == id1 && r.VSI.Mode == evbbridge.Assoc && r.VSI.Filters[0].VID == 0
		})
		h.waitState(vm1.port, "up", 10*time.Second)
		vm1.mustPing(vm2)

		// Restarted, vswitchd asks again: the record keeps vlan 0.
		if err := h.d.kill(syscall.SIGTERM, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		n = len(peer.Requests())
		h.start("--lldp-interval", "1s")
		waitRequestAfter(t, peer, n, "vm1's ASSOC with VID 0 after the restart", func(r evbbridge.Request) bool {
			return r.VSI.ID == id1 && r.VSI.Mode == evbbridge.Assoc && r.VSI.Filters[0].VID == 0
		})
		h.waitState(vm1.port, "up", 15*time.Second)
		if p := h.port(vm1.port); p.AssignedVLAN != 300 || p.VLAN != 0 || !p.VLANFromBridge {
			t.Errorf("after the restart: %+v", p)
		}
		vm1.mustPing(vm2)
	})
}

// VDP on an S-channel goes on the S-channel: the ECP frames of a port
// with --svid 20 carry S-tag 20 on the wire, the bridge answers on it,
// and a VLAN it assigns there is used inside the S-channel. A trunk port
// registers one filter entry per allowed VID, its native VLAN included.
func TestVDPOnSChannelAndTrunkWithEVBBridge(t *testing.T) {
	forEachDatapath(t, func(t *testing.T, dp string) {
		l, hvs := newLab(t, dp, 1)
		h := hvs[0]
		peer := evbPeer(t, l, h, evbbridge.Config{VDP: evbbridge.Answer{VID: 400}})
		vm1, vm2, vm3 := h.addVM(1), h.addVM(2), h.addVM(3)
		capt, err := l.sw.Capture(h.swPort, topo.WithOutgoing(false))
		if err != nil {
			t.Fatal(err)
		}
		h.start("--lldp-interval", "1s")
		h.waitRelay("granted by the peer", 15*time.Second, func(st api.Status) bool { return st.Relay.State == "granted" })
		h.addPort(vm1.port, "--vlan", "100", "--svid", "20", "--mac", vm1.mac.String())
		h.addPort(vm2.port, "--trunk", "10,20-22", "--native-vlan", "5", "--mac", vm2.mac.String())
		h.mustCtl("add-port", vm3.port, "--vlan", "0", "--svid", "20", "--mac", vm3.mac.String())
		h.waitState(vm3.port, "up", 10*time.Second)

		vs := h.waitVSIs("three VSIs associated", 10*time.Second, func(vs []api.VSI) bool {
			return len(vs) == 3 && vs[0].State == "associated" && vs[1].State == "associated" && vs[2].State == "associated"
		})
		if v := vs[0]; v.Port != vm1.port || v.SVID != 20 || v.VLAN != 100 {
			t.Errorf("S-channel VSI %+v", v)
		}
		if v := vs[1]; v.Port != vm2.port || v.SVID != 0 || !slices.Equal(v.VLANs, []int{5, 10, 20, 21, 22}) || v.FilterFormat != "MAC+VID" {
			t.Errorf("trunk VSI %+v", v)
		}
		if v := vs[2]; v.Port != vm3.port || v.SVID != 20 || v.AssignedVLAN != 400 {
			t.Errorf("S-channel VSI with a VLAN from the bridge %+v", v)
		}
		err = peer.Wait(5*time.Second, "the VSIs held on their channels", func(s evbbridge.Snapshot) bool { return len(s.VSIs) == 3 })
		if err != nil {
			t.Fatalf("%v: %+v", err, peer.VSIs())
		}
		for _, v := range peer.VSIs() {
			switch mac := v.VSI.Filters[0].MAC.String(); mac {
			case vm1.mac.String(), vm3.mac.String():
				if v.SVID != 20 || len(v.VSI.Filters) != 1 {
					t.Errorf("the peer holds %s's VSI on S-VID %d with %d filters, want S-VID 20", mac, v.SVID, len(v.VSI.Filters))
				}
			case vm2.mac.String():
				var vids []uint16
				for _, f := range v.VSI.Filters {
					vids = append(vids, f.VID)
					if f.MAC.String() != mac {
						t.Errorf("trunk filter %+v", f)
					}
				}
				if v.SVID != 0 || !slices.Equal(vids, []uint16{5, 10, 20, 21, 22}) {
					t.Errorf("the peer holds the trunk's VSI on S-VID %d with VIDs %v, want untagged, 5,10,20,21,22", v.SVID, vids)
				}
			}
		}
		for _, r := range peer.Requests() {
			if mac := r.VSI.Filters[0].MAC.String(); (mac == vm1.mac.String() || mac == vm3.mac.String()) && r.SVID != 20 {
				t.Errorf("a request of an S-channel VSI came with S-VID %d", r.SVID)
			}
		}

		// On the wire: the station's ECP frames for the S-channel carry
		// S-tag 20 (0x88a8), then ethertype 0x8940; vm3's frames S-tag 20
		// and the C-tag of the VLAN the bridge assigned there.
		uplinkMAC, err := h.ns.MAC("uplink")
		if err != nil {
			t.Fatal(err)
		}
		vm3.mustNotPing(vm1, "vm3 is on VLAN 400, vm1 on 100") // sends ARP
		ecpTagged, vm3Frames := 0, 0
		for _, f := range capt.Stop() {
			d := f.Data
			if len(d) < 22 || binary.BigEndian.Uint16(d[12:]) != 0x88a8 || binary.BigEndian.Uint16(d[14:])&0xfff != 20 {
				continue
			}
			src := net.HardwareAddr(d[6:12]).String()
			switch {
			case src == uplinkMAC.String() && binary.BigEndian.Uint16(d[16:]) == 0x8940:
				ecpTagged++
			case src == vm3.mac.String():
				if binary.BigEndian.Uint16(d[16:]) != 0x8100 || binary.BigEndian.Uint16(d[18:])&0xfff != 400 {
					t.Errorf("vm3's frame on S-VID 20 with inner tag % x, want 8100/400", d[16:20])
				}
				vm3Frames++
			}
		}
		if ecpTagged == 0 || vm3Frames == 0 {
			t.Errorf("seen on the switch side: %d ECP frames with S-tag 20 from the station, %d of vm3's frames on S-VID 20", ecpTagged, vm3Frames)
		}
	})
}

// Against lldpad as the bridge (it has no VLAN to assign and no
// S-channels, but takes multi-entry filters and, with evbgpid, group IDs):
//
//   - a trunk port's VSI with one MAC+VID entry per allowed VID is
//     associated (lldpad refuses VID 1, so the trunk avoids it);
//   - a group port's VSI is not sent while lldpad's EVB TLV has no BGID
//     (the VSI fails with that reason), and is associated, format
//     group+MAC+VID, once lldpad advertises BGID (evbgpid=yes; vswitchd
//     sets SGID);
//   - a port asking for its VLAN gets lldpad's echo of VID 0: down, with
//     the reason, forwarding nothing.
func TestVDPTrunkGroupAndVID0WithLLDPAD(t *testing.T) {
	forEachDatapath(t, func(t *testing.T, dp string) {
		l, hvs := newLab(t, dp, 1)
		h := hvs[0]
		lp := lldpadBridge(t, l, true, h)
		vm1, vm2, vm3 := h.addVM(1), h.addVM(2), h.addVM(3)
		h.start("--lldp-interval", "1s")
		h.waitRelay("granted by lldpad", 15*time.Second, func(st api.Status) bool { return st.Relay.State == "granted" })

		h.addPort(vm1.port, "--trunk", "10,20-22", "--native-vlan", "5", "--mac", vm1.mac.String())
		vs := h.waitVSIs("the trunk's VSI associated by lldpad", 15*time.Second, func(vs []api.VSI) bool {
			return len(vs) == 1 && vs[0].State == "associated"
		})
		if !slices.Equal(vs[0].VLANs, []int{5, 10, 20, 21, 22}) {
			t.Errorf("trunk VSI %+v", vs[0])
		}
		id := strings.ReplaceAll(vs[0].UUID, "-", "")
		if _, err := lp.WaitVSI(0, 5*time.Second, func(r topo.VSIRecord) bool {
			return r.Mode == 3 && strings.ReplaceAll(r.ID, "-", "") == id
		}); err != nil {
			t.Fatal(err)
		}

		h.addPort(vm2.port, "--vlan", "100", "--vsi-group", "77", "--mac", vm2.mac.String())
		h.waitVSIs("the group VSI refused for want of BGID", 10*time.Second, func(vs []api.VSI) bool {
			return len(vs) == 2 && vs[1].Port == vm2.port && vs[1].State == "failed" && strings.Contains(vs[1].Reason, "no BGID")
		})
		if _, err := lp.Tool("-T", "-i", h.swPort, "-g", "ncb", "-V", "evb", "-c", "evbgpid=yes"); err != nil {
			t.Fatal(err)
		}
		vs = h.waitVSIs("the group VSI associated by lldpad", 20*time.Second, func(vs []api.VSI) bool {
			return len(vs) == 2 && vs[1].State == "associated"
		})
		if v := vs[1]; v.FilterFormat != "group+MAC+VID" || v.Group != 77 || v.VLAN != 100 || v.AssignedVLAN != 100 {
			t.Errorf("group VSI %+v", v)
		}
		// lldpad's debug log prints the filter it took (qbg/vdp22.c, showvsifid).
		if log := lp.Output(); !strings.Contains(log, "grpid:77") {
			t.Errorf("lldpad's log shows no filter with group ID 77")
		}

		h.mustCtl("add-port", vm3.port, "--vlan", "0", "--mac", vm3.mac.String())
		h.waitState(vm3.port, "down", 15*time.Second)
		if p := h.port(vm3.port); !strings.Contains(p.StateReason, "assigned no VLAN") || p.AssignedVLAN != 0 {
			t.Errorf("port lldpad answered VID 0: %+v", p)
		}
		vm3.mustNotPing(vm2, "lldpad assigned vm3 no VLAN")
		if n := h.drops(vm3.port, "vid_unassigned"); n == 0 {
			t.Error("the port without a VLAN counted no vid_unassigned drops")
		}
	})
}
