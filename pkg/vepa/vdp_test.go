package vepa

import (
	"bytes"
	"encoding/hex"
	"net"
	"strings"
	"testing"
)

// The ASSOC request lldpad's station sent in a live capture (manager ID
// "blabla", type 5 version 4, UUID VSIID, MAC 52:00:00:11:22:33 on VID 100),
// and the bridge's answer, which differs only in the status byte (0x40).
const (
	lldpadAssoc = "0a10626c61626c6100000000000000000000" +
		"0621" + "00" + "000005" + "04" + "05" + "a0b1c2d3e4f5061728394a5b6c7d8e9f" + "02" + "0001" + "520000112233" + "0064"
	lldpadAssocAck = "0a10626c61626c6100000000000000000000" +
		"0621" + "40" + "000005" + "04" + "05" + "a0b1c2d3e4f5061728394a5b6c7d8e9f" + "02" + "0001" + "520000112233" + "0064"
)

func TestVDPMatchesLLDPAD(t *testing.T) {
	uuid, _ := hex.DecodeString("a0b1c2d3e4f5061728394a5b6c7d8e9f")
	var id [16]byte
	copy(id[:], uuid)
	p := &VDPPDU{ManagerID: ManagerID("blabla"), VSIs: []VSI{{Mode: VDPAssoc, TypeID: 5, TypeVersion: 4, IDFormat: VSIIDUUID, ID: id,
		FilterFormat: FilterMACVID, Filters: []Filter{{VID: 100, MAC: net.HardwareAddr{0x52, 0, 0, 0x11, 0x22, 0x33}}}}}}
	b, err := p.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := mustHex(t, lldpadAssoc); !bytes.Equal(b, want) {
		t.Fatalf("ASSOC\n% x\nwant (lldpad)\n% x", b, want)
	}
	// The bridge's answer, with ECP's zero padding after it.
	ack, err := ParseVDP(append(mustHex(t, lldpadAssocAck), make([]byte, 12)...))
	if err != nil {
		t.Fatal(err)
	}
	if len(ack.VSIs) != 1 || ack.VSIs[0].Status != VDPStatusAck || ack.VSIs[0].ID != id || ack.VSIs[0].Filters[0].VID != 100 ||
		ack.ManagerID != ManagerID("blabla") || ack.VSIs[0].Mode != VDPAssoc {
		t.Fatalf("parsed %+v", ack)
	}
}

func TestVDPFilterFormats(t *testing.T) {
	mac := net.HardwareAddr{0x52, 0x54, 0, 1, 2, 3}
	for _, tc := range []struct {
		format uint8
		f      Filter
		entry  string
	}{
		{FilterVID, Filter{VID: 7, PCP: 5, PS: true}, "d007"},
		{FilterMACVID, Filter{VID: 4094, MAC: mac}, "525400010203" + "0ffe"},
		{FilterGroupVID, Filter{VID: 1, GroupID: 0x01020304}, "01020304" + "0001"},
		{FilterGroupMACVID, Filter{VID: 2, GroupID: 9, MAC: mac}, "00000009" + "525400010203" + "0002"},
	} {
		p := &VDPPDU{ManagerID: ManagerID("m"), VSIs: []VSI{{Mode: VDPDeassoc, IDFormat: VSIIDMAC, ID: MACVSIID(mac), FilterFormat: tc.format, Filters: []Filter{tc.f}}}}
		b, err := p.Append(nil)
		if err != nil {
			t.Fatal(err)
		}
		if e := hex.EncodeToString(b[len(b)-len(tc.entry)/2:]); e != tc.entry {
			t.Errorf("format %d entry %s, want %s", tc.format, e, tc.entry)
		}
		back, err := ParseVDP(b)
		if err != nil {
			t.Fatalf("format %d: %v", tc.format, err)
		}
		g := back.VSIs[0].Filters[0]
		if g.VID != tc.f.VID || g.PCP != tc.f.PCP || g.PS != tc.f.PS || g.GroupID != tc.f.GroupID || g.MAC.String() != tc.f.MAC.String() {
			t.Errorf("format %d round trip %+v, want %+v", tc.format, g, tc.f)
		}
		if back.VSIs[0].ID != MACVSIID(mac) || !strings.HasSuffix(hex.EncodeToString(back.VSIs[0].ID[:]), "525400010203") {
			t.Errorf("MAC VSIID % x", back.VSIs[0].ID)
		}
	}
}

func TestVDPRejects(t *testing.T) {
	for name, s := range map[string]string{
		"no manager first": "0621" + strings.Repeat("00", 33),
		"manager twice":    "0a10" + strings.Repeat("00", 16) + "0a10" + strings.Repeat("00", 16),
		"short VSI":        "0a10" + strings.Repeat("61", 16) + "0610" + strings.Repeat("00", 16),
		"count mismatch":   "0a10" + strings.Repeat("61", 16) + "0621" + strings.Repeat("00", 22) + "02" + "0002" + strings.Repeat("00", 8),
		"bad format":       "0a10" + strings.Repeat("61", 16) + "0621" + strings.Repeat("00", 22) + "09" + "0001" + strings.Repeat("00", 8),
		"past end":         "0a10" + strings.Repeat("61", 8),
		"empty":            "0000",
	} {
		if _, err := ParseVDP(mustHex(t, s)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := (&VDPPDU{VSIs: []VSI{{Mode: VDPAssoc, FilterFormat: FilterVID}}}).Append(nil); err == nil {
		t.Error("encoded a VSI without filter entries")
	}
}

func FuzzParseVDP(f *testing.F) {
	f.Add(mustHexF(lldpadAssoc))
	for _, tc := range formatPDUs { // formats 1-4, VID-0 requests and assigned answers
		f.Add(mustHexF(tc.req))
		f.Add(mustHexF(tc.answer))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseVDP(b)
		if err != nil {
			return
		}
		enc, err := p.Append(nil)
		if err != nil {
			return
		}
		q, err := ParseVDP(enc)
		if err != nil || len(q.VSIs) != len(p.VSIs) || q.ManagerID != p.ManagerID {
			t.Fatalf("round trip: %v %+v vs %+v", err, q, p)
		}
	})
}

func TestManagerText(t *testing.T) {
	for _, c := range []struct {
		id   [16]byte
		want string
	}{
		{[16]byte{12}, "12"}, {[16]byte{}, "0"}, {[16]byte{255}, "255"}, {ManagerID("vswitchd"), "vswitchd"},
		{ManagerID("0123456789abcdef"), "0123456789abcdef"}, {[16]byte{1, 2}, "01020000000000000000000000000000"},
	} {
		if got := ManagerText(c.id); got != c.want {
			t.Errorf("ManagerText(% x) = %q, want %q", c.id, got, c.want)
		}
	}
}
