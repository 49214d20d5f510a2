package evbbridge

import (
	"bytes"
	"encoding/hex"
	"net"
	"strings"
	"testing"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The EVB TLV of a station asking for reflective relay, laid out by hand
// from D.2.12: bridge status 0, station status SGID|RRREQ|RRSTAT 3,
// R 3 / RTE 8, mode station (2) with ROL 0 and RWD 20, RKA 20 with ROL 1.
func TestReadEVBFromTheLayout(t *testing.T) {
	info := unhex(t, "0080c2 0d  00  0f  68  94  34")[4:]
	e, err := readEVB(info)
	if err != nil {
		t.Fatal(err)
	}
	want := EVBTLV{SGID: true, RRREQ: true, RRSTAT: 3, R: 3, RTE: 8, Mode: 2, RWD: 20, ROLRKA: true, RKA: 20}
	if e != want {
		t.Fatalf("got %+v\nwant %+v", e, want)
	}
	// A bridge's: BGID RRCAP RRCTR, mode 1, ROL set on RWD.
	b := EVBTLV{BGID: true, RRCAP: true, RRCTR: true, R: 7, RTE: 31, Mode: 1, ROLRWD: true, RWD: 1, RKA: 31}
	if got, want := b.info(), unhex(t, "0080c2 0d 07 00 ff 61 1f"); !bytes.Equal(got, want) {
		t.Fatalf("bridge EVB TLV % x, want % x", got, want)
	}
	if _, err := readEVB(info[:4]); err == nil {
		t.Fatal("a 4-octet EVB TLV was taken")
	}
}

// The CDCP TLV from D.2.13: Role bit 8 of the first octet, SComp bit 4,
// ChnCap the low 12 bits of octets 3-4, pairs of 12-bit SCID and S-VID.
func TestReadCDCPFromTheLayout(t *testing.T) {
	// Role S (1), SComp, ChnCap 167 (0x0a7); pairs (1,1), (2,10), (4095,4094).
	info := unhex(t, "0080c2 0e  88 00 00 a7  001 001  002 00a  fff ffe")
	c, err := readCDCP(info[4:])
	if err != nil {
		t.Fatal(err)
	}
	if c.Role != RoleS || !c.SComp || c.ChnCap != 167 || len(c.Pairs) != 3 ||
		c.Pairs[0] != (Pair{1, 1}) || c.Pairs[1] != (Pair{2, 10}) || c.Pairs[2] != (Pair{4095, 4094}) {
		t.Fatalf("got %+v", c)
	}
	if got := c.info(); !bytes.Equal(got, info) {
		t.Fatalf("re-encoded % x\nwant        % x", got, info)
	}
	b := CDCPTLV{Role: RoleB, SComp: true, ChnCap: 0xfff, Pairs: []Pair{{1, 1}, {0x123, 0x456}}}
	if got, want := b.info(), unhex(t, "0080c2 0e 08 00 0f ff 001 001 123 456"); !bytes.Equal(got, want) {
		t.Fatalf("bridge CDCP TLV % x, want % x", got, want)
	}
	for _, bad := range []string{"08 00 00", "08 00 00 01 00 10", "08 00 00 01 00 10 01 00"} {
		if _, err := readCDCP(unhex(t, bad)); err == nil {
			t.Errorf("CDCP information %q taken", bad)
		}
	}
}

// An ECPDU header (43.3.1): version 1, operation, subtype VDP, sequence.
func TestECPHeaderFromTheLayout(t *testing.T) {
	p, err := readECP(unhex(t, "1001 beef 0a0b"))
	if err != nil {
		t.Fatal(err)
	}
	if p.version != 1 || p.op != ecpReq || p.subtype != 1 || p.seq != 0xbeef || !bytes.Equal(p.body, []byte{0x0a, 0x0b}) {
		t.Fatalf("got %+v", p)
	}
	if got := writeECP(ecpAck, 0x1234, nil); !bytes.Equal(got, unhex(t, "1401 1234")) {
		t.Fatalf("ack header % x", got)
	}
}

// A VDPDU as clause 41 draws it: the manager ID TLV (type 5, 16 octets),
// then an ASSOC (type 3) VSI TLV with one filter of each format in turn.
func TestReadVDPFromTheLayout(t *testing.T) {
	id := "00112233445566778899aabbccddeeff"
	mgr := "7673776974636864 0000000000000000" // "vswitchd"
	cases := []struct {
		format  uint8
		entries string
		want    Filter
	}{
		{1, "a064", Filter{PS: true, PCP: 2, VID: 100}},
		{2, "525400000001 0064", Filter{MAC: net.HardwareAddr{0x52, 0x54, 0, 0, 0, 1}, VID: 100}},
		{3, "00000abc 7000", Filter{GroupID: 0xabc, PCP: 7, VID: 0}},
		{4, "deadbeef 525400000002 0fff", Filter{GroupID: 0xdeadbeef, MAC: net.HardwareAddr{0x52, 0x54, 0, 0, 0, 2}, VID: 4095}},
	}
	for _, c := range cases {
		entries := unhex(t, c.entries)
		vsi := append(unhex(t, "10 012345 02 05"+id), c.format, 0, 1)
		vsi = append(vsi, entries...)
		pdu := append(unhex(t, "0a10"+mgr), byte(Assoc<<1), byte(len(vsi)))
		pdu = append(append(pdu, vsi...), 0, 0, 0, 0) // ECPDU padding
		p, err := readVDP(pdu)
		if err != nil {
			t.Fatalf("format %d: %v", c.format, err)
		}
		if string(p.Manager[:8]) != "vswitchd" || len(p.VSIs) != 1 {
			t.Fatalf("format %d: %+v", c.format, p)
		}
		v := p.VSIs[0]
		if v.Mode != Assoc || v.Status != StatusM || v.TypeID != 0x012345 || v.TypeVersion != 2 || v.IDFormat != 5 ||
			hex.EncodeToString(v.ID[:]) != id || v.FilterFormat != c.format || len(v.Filters) != 1 {
			t.Fatalf("format %d: %+v", c.format, v)
		}
		f := v.Filters[0]
		if f.GroupID != c.want.GroupID || f.MAC.String() != c.want.MAC.String() || f.PS != c.want.PS || f.PCP != c.want.PCP || f.VID != c.want.VID {
			t.Errorf("format %d: filter %+v, want %+v", c.format, f, c.want)
		}
		if got := (VDPDU{Manager: p.Manager, VSIs: p.VSIs}).bytes(); !bytes.Equal(got, pdu[:len(pdu)-4]) {
			t.Errorf("format %d: re-encoded\n% x\nwant\n% x", c.format, got, pdu[:len(pdu)-4])
		}
	}
	for name, bad := range map[string]string{
		"no manager":        "0619 00 000000 00 05" + id + "02 0001 525400000001 0064",
		"count too large":   "0a10" + mgr + "0621 00 000000 00 05" + id + "02 0002 525400000001 0064",
		"unknown format":    "0a10" + mgr + "0621 00 000000 00 05" + id + "09 0001 525400000001 0064",
		"TLV past the end":  "0a10" + mgr + "06ff 00",
		"manager too short": "0a08 7673776974636864",
	} {
		if _, err := readVDP(unhex(t, bad)); err == nil {
			t.Errorf("%s: taken", name)
		}
	}
}
