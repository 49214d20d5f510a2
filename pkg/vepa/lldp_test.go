package vepa

import (
	"bytes"
	"encoding/hex"
	"testing"
)

// A station LLDPDU built by hand from 802.1AB: chassis ID (MAC), port ID
// (MAC), TTL 121, EVB TLV, End.
const stationHex = "0180c2000000" + "525400aabbcc" + "88cc" +
	"0207" + "04525400aabbcc" + // chassis ID, subtype 4
	"0407" + "03525400aabbcc" + // port ID, subtype 3
	"0602" + "0079" + // TTL 121
	"fe09" + "0080c20d" + "00076894" + "14" + // EVB: RRREQ, RRSTAT unknown, R3 RTE8, station RWD20, RKA20
	"0000"

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestStationLLDPDUBytes(t *testing.T) {
	mac := []byte{0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc}
	d := &LLDPDU{ChassisSubtype: ChassisIDMAC, ChassisID: mac, PortSubtype: PortIDMAC, PortID: mac, TTL: 121,
		EVB: &EVB{StationStatus: StationRRREQ | RRStatUnknown, R: 3, RTE: 8, Mode: ModeStation, RWD: 20, RKA: 20}}
	var src [6]byte
	copy(src[:], mac)
	f, err := d.Frame(NearestCustomerBridge, src)
	if err != nil {
		t.Fatal(err)
	}
	want := mustHex(t, stationHex)
	if len(f) != 60 || !bytes.Equal(f[:len(want)], want) || !bytes.Equal(f[len(want):], make([]byte, 60-len(want))) {
		t.Fatalf("frame\n% x\nwant\n% x (padded to 60)", f, want)
	}
	back, err := ParseFrame(f)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back.ChassisID, mac) || back.TTL != 121 || back.EVB == nil || *back.EVB != *d.EVB {
		t.Errorf("round trip: %+v", back)
	}
}

func TestParseKeepsOtherTLVs(t *testing.T) {
	b := mustHex(t, "0207"+"04525400aabbcc"+"0405"+"0565746830"+"0602"+"0078"+
		"0a03"+"737731"+ // system name "sw1"
		"fe06"+"0080c2010064"+ // 802.1 port VLAN ID 100
		"0000")
	d, err := ParseLLDPDU(b)
	if err != nil {
		t.Fatal(err)
	}
	if string(d.PortID) != "eth0" || d.PortSubtype != PortIDIfName || d.EVB != nil || len(d.Other) != 2 || string(d.Other[0].Value) != "sw1" {
		t.Errorf("parsed %+v", d)
	}
	again, err := d.Append(nil)
	if err != nil || !bytes.Equal(again, b) {
		t.Errorf("re-encoded\n% x\nwant\n% x (%v)", again, b, err)
	}
}

func TestParseRejects(t *testing.T) {
	for name, s := range map[string]string{
		"empty":         "",
		"no end":        "020704525400aabbcc040703525400aabbcc06020079",
		"port first":    "040703525400aabbcc020704525400aabbcc060200790000",
		"length past":   "02ff04525400aabbcc",
		"short ttl":     "020704525400aabbcc040703525400aabbcc0601000000",
		"bad evb":       "020704525400aabbcc040703525400aabbcc06020079fe080080c20d000768940000",
		"id too short":  "020104040703525400aabbcc060200790000",
		"odd header":    "02",
		"end too early": "0000",
	} {
		b, err := hex.DecodeString(s)
		if err != nil {
			t.Fatalf("%s: bad test hex: %v", name, err)
		}
		if _, err := ParseLLDPDU(b); err == nil {
			t.Errorf("%s: accepted % x", name, b)
		}
	}
	if _, err := ParseFrame(mustHex(t, "0180c2000000525400aabbcc0800")); err != ErrNotLLDP {
		t.Errorf("IPv4 frame: %v, want ErrNotLLDP", err)
	}
}

func TestAppendRejects(t *testing.T) {
	if _, err := (&LLDPDU{}).Append(nil); err == nil {
		t.Error("encoded an LLDPDU without chassis and port IDs")
	}
	if _, err := AppendTLV(nil, 10, make([]byte, 512)); err == nil {
		t.Error("encoded a 512-byte TLV")
	}
}

func FuzzParseFrame(f *testing.F) {
	f.Add(mustHexF(stationHex))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, frame []byte) {
		d, err := ParseFrame(frame)
		if err != nil {
			return
		}
		// What parses re-encodes and parses the same.
		b, err := d.Append(nil)
		if err != nil {
			return // e.g. IDs over 255 bytes cannot come from a valid TLV; fine to refuse
		}
		d2, err := ParseLLDPDU(b)
		if err != nil {
			t.Fatalf("re-encoded LLDPDU does not parse: %v\n% x", err, b)
		}
		if !bytes.Equal(d.ChassisID, d2.ChassisID) || d.TTL != d2.TTL || (d.EVB == nil) != (d2.EVB == nil) || len(d.Other) != len(d2.Other) {
			t.Fatalf("round trip differs: %+v vs %+v", d, d2)
		}
	})
}

func mustHexF(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}
