package vepa

import (
	"bytes"
	"testing"
	"time"
)

// Bit positions of the five information bytes, from the layout in
// 802.1Qbg-2012 D.2.12 (as lldpad encodes it), written out by hand.
func TestEVBLayout(t *testing.T) {
	for _, tc := range []struct {
		e    EVB
		info [5]byte
	}{
		{EVB{BridgeStatus: BridgeBGID | BridgeRRCAP | BridgeRRCTR, Mode: ModeBridge}, [5]byte{0x07, 0x00, 0x00, 0x40, 0x00}},
		{EVB{StationStatus: StationSGID | StationRRREQ | RRStatUnknown, Mode: ModeStation}, [5]byte{0x00, 0x0f, 0x00, 0x80, 0x00}},
		{EVB{R: 7, RTE: 31, RWD: 31, RKA: 31, ROLRWD: true, ROLRKA: true, Mode: 3}, [5]byte{0x00, 0x00, 0xff, 0xff, 0x3f}},
		{EVB{R: 3, RTE: 8, RWD: 20, RKA: 20, Mode: ModeStation, StationStatus: StationRRREQ | RRStatYes}, [5]byte{0x00, 0x05, 0x68, 0x94, 0x14}},
	} {
		v := tc.e.Append(nil)
		want := append([]byte{0x00, 0x80, 0xc2, 0x0d}, tc.info[:]...)
		if !bytes.Equal(v, want) {
			t.Errorf("%+v encodes as % x, want % x", tc.e, v, want)
		}
		back, err := ParseEVB(v)
		if err != nil || back != tc.e {
			t.Errorf("% x decodes as %+v (%v), want %+v", v, back, err, tc.e)
		}
	}
}

func TestEVBRejects(t *testing.T) {
	for _, v := range [][]byte{
		nil,
		{0x00, 0x80, 0xc2},
		{0x00, 0x80, 0xc2, 0x0e, 0, 0, 0, 0, 0}, // CDCP subtype
		{0x00, 0x80, 0xc2, 0x0d, 0, 0, 0, 0},    // short
		{0x00, 0x80, 0xc2, 0x0d, 0, 0, 0, 0, 0, 0}, // long
		{0x00, 0x1b, 0x3f, 0x0d, 0, 0, 0, 0, 0},    // another OUI
	} {
		if _, err := ParseEVB(v); err == nil {
			t.Errorf("ParseEVB(% x) accepted", v)
		}
	}
}

func TestTimer(t *testing.T) {
	if got := Timer(0); got != 10*time.Microsecond {
		t.Errorf("Timer(0) = %v", got)
	}
	if got := Timer(20); got != 10*time.Microsecond*(1<<20) {
		t.Errorf("Timer(20) = %v", got)
	}
	if Timer(40) != Timer(31) {
		t.Error("Timer does not clamp exponents above 31")
	}
}
