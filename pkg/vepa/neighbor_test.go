package vepa

import (
	"encoding/hex"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
)

// An LLDPDU as a switch sends it, written out by hand from 802.1AB's TLV
// layout (type << 9 | length): chassis ID subtype 4 (MAC), port ID
// subtype 5 (interface name "Ten-GigabitEthernet1/0/1"), TTL 120, port
// description, system name, system description with a newline (escaped
// when shown), the bridge's EVB TLV, End.
func TestNeighborFromLLDPDU(t *testing.T) {
	b, _ := hex.DecodeString("" +
		"0207" + "04" + "02b71d9e0001" + // chassis ID
		"0419" + "05" + hex.EncodeToString([]byte("Ten-GigabitEthernet1/0/1")) +
		"0602" + "0078" + // TTL 120
		"0806" + hex.EncodeToString([]byte("to hv1")) + // port description
		"0a05" + hex.EncodeToString([]byte("leaf1")) + // system name
		"0c0c" + hex.EncodeToString([]byte("Comware\nv7.1")) + // system description
		"fe09" + "0080c20d" + "03" + "05" + "68" + "54" + "34" + // EVB: RRCAP|RRCTR, RRREQ|yes, R3 RTE8, bridge RWD20, ROL RKA20
		"0000")
	d, err := ParseLLDPDU(b)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	n := neighborOf(d, now)
	want := Neighbor{ChassisSubtype: 4, ChassisID: "02:b7:1d:9e:00:01", PortSubtype: 5, PortID: "Ten-GigabitEthernet1/0/1",
		PortDescription: "to hv1", SystemName: "leaf1", SystemDescription: `Comware\nv7.1`, TTL: 120, LastSeen: now}
	if *n != want {
		t.Errorf("neighbor\n%+v\nwant\n%+v", *n, want)
	}
	if n.Expires() != now.Add(120*time.Second) {
		t.Errorf("expires %v", n.Expires())
	}
	e := *d.EVB
	if e.BridgeStatus != BridgeRRCAP|BridgeRRCTR || e.RRStat() != RRStatYes || e.R != 3 || e.RTE != 8 || e.Mode != ModeBridge ||
		e.ROLRWD || e.RWD != 20 || !e.ROLRKA || e.RKA != 20 {
		t.Errorf("EVB %+v", e)
	}
	if ChassisSubtypeName(4) != "MAC address" || PortSubtypeName(5) != "interface name" || PortSubtypeName(0) != "reserved 0" || ChassisSubtypeName(9) != "reserved 9" {
		t.Error("subtype names")
	}
}

func TestRenderID(t *testing.T) {
	for _, tc := range []struct {
		id        []byte
		mac, addr bool
		want      string
	}{
		{[]byte{2, 0xb7, 0x1d, 0x9e, 0, 1}, true, false, "02:b7:1d:9e:00:01"},
		{[]byte{2, 0xb7, 0x1d, 0x9e, 0, 1}, false, false, "02b71d9e0001"},
		{[]byte{2, 0xb7, 0x1d}, true, false, "02b71d"}, // a short "MAC"
		{[]byte{1, 192, 0, 2, 1}, false, true, "192.0.2.1"},
		{append([]byte{2}, 0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1), false, true, "2001:db8::1"},
		{[]byte{1, 192, 0, 2}, false, true, "01c00002"}, // short IPv4
		{[]byte("swp1"), false, false, "swp1"},
		{[]byte("sw\tp1"), false, false, "7377097031"},
	} {
		if got := RenderID(tc.id, tc.mac, tc.addr); got != tc.want {
			t.Errorf("RenderID(% x, %v, %v) = %q, want %q", tc.id, tc.mac, tc.addr, got, tc.want)
		}
	}
	for in, want := range map[string]string{"leaf1": "leaf1", "Größe": "Größe", "a\nb": `a\nb`, "\xff": `\xff`, "\x1b[31m": `\x1b[31m`, "": ""} {
		if got := Printable([]byte(in)); got != want {
			t.Errorf("Printable(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzNeighbor feeds LLDPDUs to what the API shows of the bridge: any
// that parses gives text with nothing unprintable and of bounded length.
func FuzzNeighbor(f *testing.F) {
	d := &LLDPDU{ChassisSubtype: chassisIDAddr, ChassisID: []byte{1, 192, 0, 2, 1}, PortSubtype: PortIDIfName, PortID: []byte("swp1"), TTL: 120,
		EVB: grantTLV(), Other: []TLV{{Type: tlvSystemName, Value: []byte("leaf\x001")}, {Type: tlvPortDescription, Value: []byte("\xff\xfe")}}}
	seed, err := d.Append(nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte{0x02, 0x07, 0x04, 2, 0, 0, 0, 0, 1, 0x04, 0x03, 0x03, 'a', 'b', 0x06, 0x02, 0, 0, 0x0a, 0x01, 0x80, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ParseLLDPDU(b)
		if err != nil {
			return
		}
		n := neighborOf(d, time.Now())
		for _, s := range []string{n.ChassisID, n.PortID, n.PortDescription, n.SystemName, n.SystemDescription,
			ChassisSubtypeName(n.ChassisSubtype), PortSubtypeName(n.PortSubtype)} {
			if !utf8.ValidString(s) || strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
				t.Fatalf("unprintable %q from % x", s, b)
			}
			if len(s) > 4*maxTLVLen {
				t.Fatalf("%d bytes shown from a TLV of at most %d", len(s), maxTLVLen)
			}
		}
	})
}

// FuzzNegotiate: whatever the bridge sends and whatever the station is
// configured with, the timers in use are in range, come from one side or
// the other as their source says, and are never smaller than the local
// value unless the station follows the bridge.
func FuzzNegotiate(f *testing.F) {
	f.Add(DefaultLocal.Append(nil), grantTLV().Append(nil)[4:], false)
	f.Add(EVB{R: 7, RTE: 31, RWD: 0, ROLRWD: true, RKA: 5}.Append(nil), []byte{0xff, 0xff, 0xff, 0xff, 0xff}, true)
	f.Fuzz(func(t *testing.T, local, info []byte, noBridge bool) {
		l, err := ParseEVB(local)
		if err != nil {
			return
		}
		var bridge *EVB
		if !noBridge {
			e, err := ParseEVB(append([]byte{0x00, 0x80, 0xc2, 0x0d}, info...))
			if err != nil {
				return
			}
			bridge = &e
		}
		n := Negotiate(l, bridge)
		if err := n.Timers.Check(); err != nil {
			t.Fatalf("%+v with %+v: %v", l, bridge, err)
		}
		if bridge == nil {
			return
		}
		check := func(name string, got, lv, bv uint8, from string, follow bool) {
			ok := map[string]bool{FromLocal: got == lv, FromBridge: got == bv, FromBoth: got == lv && got == bv}[from]
			if !ok || (!follow && got < lv && from != FromLocal) {
				t.Fatalf("%s: %d from %q with local %d, bridge %d", name, got, from, lv, bv)
			}
		}
		check("R", n.R, l.R, bridge.R, n.RFrom, false)
		check("RTE", n.RTE, l.RTE, bridge.RTE, n.RTEFrom, false)
		check("RWD", n.RWD, l.RWD, bridge.RWD, n.RWDFrom, l.ROLRWD)
		check("RKA", n.RKA, l.RKA, bridge.RKA, n.RKAFrom, l.ROLRKA)
		if !l.ROLRKA && n.RKA < l.RKA {
			t.Fatalf("RKA %d below the local %d without following the bridge", n.RKA, l.RKA)
		}
	})
}
