package vepa

import (
	"bytes"
	"encoding/binary"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/vswitch/vswitch/pkg/vlan"
)

// VDP PDUs built by hand from IEEE 802.1Qbg-2012 clause 41.2 (the VSI
// TLV of figure 41-6 and the filter info formats of 41.2.9): manager ID
// TLV (type 5, 16 bytes) "vswitchd", then one ASSOC VSI TLV (type 3) of
// VSI type 0x123456 version 2, a UUID VSIID, and one filter entry whose
// VID 0 asks the bridge for the VID. The answers differ in the status
// byte (0x40, ack) and the VID the bridge assigned (200 = 0x0c8).
const (
	hexMgr  = "0a10" + "7673776974636864" + "0000000000000000"
	hexVSI  = "123456" + "02" + "05" + "00112233445566778899aabbccddeeff"
	hexMAC  = "525400aabbcc"
	hexGrp  = "00000064" // group ID 100
	vid0PS5 = "d000"     // PS 1, PCP 5, VID 0
)

var formatPDUs = []struct {
	name        string
	format      uint8
	req, answer string
	filter      Filter
}{
	// format 1: the TLV is 25 + 2 bytes: header 3<<9 | 27 = 0x061b
	{"VID", FilterVID, hexMgr + "061b" + "00" + hexVSI + "01" + "0001" + vid0PS5,
		hexMgr + "061b" + "40" + hexVSI + "01" + "0001" + "d0c8", Filter{PS: true, PCP: 5}},
	// format 2: 25 + 8 = 33: 0x0621
	{"MAC+VID", FilterMACVID, hexMgr + "0621" + "00" + hexVSI + "02" + "0001" + hexMAC + "0000",
		hexMgr + "0621" + "40" + hexVSI + "02" + "0001" + hexMAC + "00c8", Filter{MAC: net.HardwareAddr{0x52, 0x54, 0, 0xaa, 0xbb, 0xcc}}},
	// format 3: 25 + 6 = 31: 0x061f; group ID before the VID word
	{"group+VID", FilterGroupVID, hexMgr + "061f" + "00" + hexVSI + "03" + "0001" + hexGrp + "0000",
		hexMgr + "061f" + "40" + hexVSI + "03" + "0001" + hexGrp + "00c8", Filter{GroupID: 100}},
	// format 4: 25 + 12 = 37: 0x0625; group ID, MAC, VID word
	{"group+MAC+VID", FilterGroupMACVID, hexMgr + "0625" + "00" + hexVSI + "04" + "0001" + hexGrp + hexMAC + "0000",
		hexMgr + "0625" + "40" + hexVSI + "04" + "0001" + hexGrp + hexMAC + "00c8", Filter{GroupID: 100, MAC: net.HardwareAddr{0x52, 0x54, 0, 0xaa, 0xbb, 0xcc}}},
}

func formatVSI(format uint8, f Filter) VSI {
	var id [16]byte
	copy(id[:], mustHexF("00112233445566778899aabbccddeeff"))
	return VSI{Mode: VDPAssoc, TypeID: 0x123456, TypeVersion: 2, IDFormat: VSIIDUUID, ID: id, FilterFormat: format, Filters: []Filter{f}}
}

// Each filter format's VID-0 request encodes to the standard's bytes, and
// the bridge's answer parses to the assigned VID, which a station
// registered with the request takes (and refuses when the VID is 0).
func TestVDPFormatBytesAndAssignedVID(t *testing.T) {
	for _, tc := range formatPDUs {
		t.Run(tc.name, func(t *testing.T) {
			req := formatVSI(tc.format, tc.filter)
			b, err := (&VDPPDU{ManagerID: ManagerID("vswitchd"), VSIs: []VSI{req}}).Append(nil)
			if err != nil {
				t.Fatal(err)
			}
			if want := mustHex(t, tc.req); !bytes.Equal(b, want) {
				t.Fatalf("request\n% x\nwant\n% x", b, want)
			}
			ans, err := ParseVDP(append(mustHex(t, tc.answer), make([]byte, 8)...)) // ECP's padding
			if err != nil {
				t.Fatal(err)
			}
			a := ans.VSIs[0]
			if a.Status != VDPStatusAck || a.FilterFormat != tc.format || a.Filters[0].VID != 200 || a.Filters[0].GroupID != tc.filter.GroupID ||
				a.Filters[0].MAC.String() != tc.filter.MAC.String() || a.Filters[0].PCP != tc.filter.PCP || a.Filters[0].PS != tc.filter.PS {
				t.Fatalf("answer %+v", a)
			}
			if !sameFilters(req, a) || badAssignment(req, a) != "" {
				t.Errorf("the answer does not match the request (%q)", badAssignment(req, a))
			}
			// The bridge echoing VID 0 assigned nothing.
			echo, _ := ParseVDP(mustHex(t, strings.Replace(tc.answer, "00c8", "0000", 1)))
			if tc.format == FilterVID {
				echo, _ = ParseVDP(mustHex(t, strings.Replace(tc.answer, "d0c8", "d000", 1)))
			}
			if r := badAssignment(req, echo.VSIs[0]); !strings.Contains(r, "VID 0") {
				t.Errorf("an answer with VID 0: %q", r)
			}
		})
	}
}

// A VSI TLV's value is at most 511 bytes: MaxFilters entries of each
// format fit, one more does not, and ParseVDP reads the largest back.
func TestVDPMaxFilters(t *testing.T) {
	mac := net.HardwareAddr{0x52, 0x54, 0, 0, 0, 1}
	for format, want := range map[uint8]int{FilterVID: 243, FilterMACVID: 60, FilterGroupVID: 81, FilterGroupMACVID: 40} {
		if got := MaxFilters(format); got != want {
			t.Errorf("MaxFilters(%d) = %d, want %d", format, got, want)
		}
		v := VSI{Mode: VDPAssoc, IDFormat: VSIIDMAC, ID: MACVSIID(mac), FilterFormat: format}
		for i := 0; i < want; i++ {
			v.Filters = append(v.Filters, Filter{VID: uint16(i + 1), MAC: mac, GroupID: 7})
		}
		b, err := (&VDPPDU{VSIs: []VSI{v}}).Append(nil)
		if err != nil {
			t.Fatalf("format %d, %d entries: %v", format, want, err)
		}
		p, err := ParseVDP(b)
		if err != nil || len(p.VSIs[0].Filters) != want || p.VSIs[0].Filters[want-1].VID != uint16(want) {
			t.Fatalf("format %d: read back %v, %+v", format, err, p)
		}
		v.Filters = append(v.Filters, Filter{VID: 1, MAC: mac})
		if _, err := (&VDPPDU{VSIs: []VSI{v}}).Append(nil); err == nil {
			t.Errorf("format %d: %d entries encoded", format, want+1)
		}
	}
	if MaxFilters(9) != 0 || GroupFormat(FilterMACVID) || !GroupFormat(FilterGroupVID) || !GroupFormat(FilterGroupMACVID) {
		t.Error("MaxFilters or GroupFormat of the wrong formats")
	}
}

// FuzzVDPChannels feeds a station with VSIs on the untagged link and on
// S-channels 10 and 20 (asking for VIDs, fixed VIDs, a group) frames from
// the fuzzer: ECP requests carrying answers with fuzzed VIDs, statuses and
// filters, untagged, with an S-tag (of a channel that has VSIs or not) or
// a C-tag, from the bridge or not; and time. It checks after each frame:
//
//   - a frame that is not from the bridge, or carries a tag other than
//     one S-tag of a channel with VSIs, or speaks of a VSI of another
//     channel, changes nothing;
//   - an answer is only ever a VID 1-4094 where the request asked for
//     one, and the request's own VID where it named one without a group;
//   - what is due encodes and goes on the VSI's channel.
func FuzzVDPChannels(f *testing.F) {
	// frame: who (0 bridge, 1 other), tag (0 none, 1 S-tag 10, 2 S-tag
	// 20, 3 S-tag 30, 4 C-tag 10), VSI (0-3), mode, status, VID u16, group
	// u32 (low byte), seq u16; or op 0xff: time passes.
	f.Add([]byte{0, 1, 0, VDPAssoc, VDPStatusAck, 0, 200, 0, 0, 1})
	f.Add([]byte{0, 2, 1, VDPAssoc, VDPStatusAck, 0, 0, 0, 0, 2, 0xff, 30})
	f.Add([]byte{0, 0, 2, VDPAssoc, VDPStatusAck, 0x0f, 0xff, 9, 0, 3})
	f.Add([]byte{0, 0, 3, VDPDeassoc, 0, 0, 5, 0, 0, 4, 1, 3, 0, VDPAssoc, VDPStatusAck, 0, 7, 0, 0, 5})
	f.Fuzz(func(t *testing.T, data []byte) {
		own := [6]byte(stationMAC)
		s, err := NewVDPStation(VDPConfig{MAC: own, ManagerID: ManagerID("vswitchd"), Send: func([]byte) error { return nil },
			Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		s.SetGroups(true)
		s.SetBridge(bridgeMAC[:])
		mac := func(i byte) net.HardwareAddr { return net.HardwareAddr{0x52, 0x54, 0, 0, 9, i} }
		regs := []struct {
			svid uint16
			v    VSI
		}{
			{10, testVSI(mac(0), 0)},
			{20, testVSI(mac(1), 100)},
			{0, VSI{IDFormat: VSIIDMAC, ID: MACVSIID(mac(2)), FilterFormat: FilterGroupVID, Filters: []Filter{{GroupID: 9}}}},
			{0, testVSI(mac(3), 0)},
		}
		for i, r := range regs {
			s.RegisterOn(r.svid, string(rune('a'+i)), ManagerID("vswitchd"), r.v)
		}
		now := time.Now()
		for _, p := range s.due(now) {
			if _, err := p.pdu.Append(nil); err != nil {
				t.Fatal(err)
			}
		}
		o := &ops{b: data}
		for step := 0; o.more() && step < 200; step++ {
			who := o.byte()
			if who == 0xff {
				now = now.Add(time.Duration(o.byte()) * 100 * time.Millisecond)
				for _, p := range s.due(now) {
					if _, err := p.pdu.Append(nil); err != nil {
						t.Fatalf("step %d: due PDU does not encode: %v", step, err)
					}
					if vs := p.pdu.VSIs; len(vs) == 1 {
						for _, r := range regs {
							if r.v.ID == vs[0].ID && r.svid != p.svid {
								t.Fatalf("step %d: VSI of channel %d due on %d", step, r.svid, p.svid)
							}
						}
					}
				}
				continue
			}
			tag, which, mode, status := o.byte()%5, o.byte()%4, o.byte(), o.byte()
			vid, group, seq := o.u16(), uint32(o.byte()), o.u16()
			v := regs[which].v
			v.Mode, v.Status = VDPPreAssoc+mode%4, status
			v.Filters = append([]Filter(nil), v.Filters...)
			v.Filters[0].VID = vid & 0xfff
			if v.FilterFormat == FilterGroupVID {
				v.Filters[0].GroupID = group
			}
			payload, err := (&VDPPDU{ManagerID: ManagerID("vswitchd"), VSIs: []VSI{v}}).Append(nil)
			if err != nil {
				t.Fatal(err)
			}
			src := bridgeMAC
			if who&1 != 0 {
				src = thirdMAC
			}
			frame := ECPFrame(src, ECPRequest, ECPSubtypeVDP, seq, payload)
			switch tag {
			case 1, 2, 3:
				frame = withTag(frame, vlan.TPIDSTag, uint16(tag)*10)
			case 4:
				frame = withTag(frame, vlan.TPIDCTag, 10)
			}
			before := vdpView(s)
			s.Handle(frame)
			after := vdpView(s)
			if (who&1 != 0 || tag >= 3 || uint16(tag)*10 != regs[which].svid) && after != before {
				t.Fatalf("step %d: frame % x changed the VSIs:\n%s->\n%s", step, frame, before, after)
			}
			for _, st := range s.VSIs() {
				if st.Answer == nil {
					continue
				}
				for i, f := range st.VSI.Filters {
					a := st.Answer[i].VID
					if (f.VID == 0 || GroupFormat(st.VSI.FilterFormat)) && (a == 0 || a > vlan.MaxVID) || f.VID != 0 && a != f.VID {
						t.Fatalf("step %d: VSI %v asked for VID %d, has answer %d", step, st, f.VID, a)
					}
				}
			}
		}
	})
}

// The S-tag the station's frames carry for a channel is 0x88a8 with the
// S-VID and priority 0, right after the addresses.
func TestVDPSTagBytes(t *testing.T) {
	var sent [][]byte
	s, err := NewVDPStation(VDPConfig{MAC: [6]byte{0x52, 0x54, 0, 0, 0, 0x5e}, R: 1,
		Send: func(f []byte) error { sent = append(sent, append([]byte(nil), f...)); return nil }})
	if err != nil {
		t.Fatal(err)
	}
	s.SetBridge(bridgeMAC[:])
	s.RegisterOn(0xabc, "p", ManagerID("vswitchd"), testVSI(net.HardwareAddr{0x52, 0x54, 0, 0, 0, 9}, 0))
	p := s.due(time.Now())
	if len(p) != 1 {
		t.Fatalf("due %+v", p)
	}
	pl, _ := p[0].pdu.Append(nil)
	_ = p[0].ch.ecp.Request(t.Context(), pl) // not answered: retried once, then given up
	if len(sent) == 0 {
		t.Fatal("nothing sent")
	}
	f := sent[0]
	if !bytes.Equal(f[:6], NearestCustomerBridge[:]) || binary.BigEndian.Uint16(f[12:]) != vlan.TPIDSTag ||
		binary.BigEndian.Uint16(f[14:]) != 0x0abc || binary.BigEndian.Uint16(f[16:]) != EtherTypeECP {
		t.Fatalf("frame % x: want dst 01:80:c2:00:00:00, S-tag 88a8 0abc, then ethertype 8940", f[:18])
	}
	if h, _, err := ParseECP(append(append([]byte(nil), f[:12]...), f[16:]...)); err != nil || h.Op != ECPRequest {
		t.Errorf("untagged, the frame is no ECP request: %+v %v", h, err)
	}
}
