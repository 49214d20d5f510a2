package vepa

import (
	"bytes"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseTimer(t *testing.T) {
	for _, tc := range []struct {
		param, in string
		v         uint8
		remote    bool
		err       string
	}{
		{"R", "0", 0, false, ""},
		{"R", "7", 7, false, ""},
		{"r", "3", 3, false, ""},
		{"R", "8", 0, false, `invalid EVB R "8": the ECP retry count is 0-7`},
		{"R", "remote", 0, false, `invalid EVB R "remote": the ECP retry count is 0-7`},
		{"RTE", "31", 31, false, ""},
		{"RTE", "32", 0, false, `invalid EVB RTE "32": an exponent 0-31 (10 µs × 2^RTE)`},
		{"RTE", "-1", 0, false, `invalid EVB RTE "-1": an exponent 0-31 (10 µs × 2^RTE)`},
		{"RTE", "remote", 0, false, `invalid EVB RTE "remote": an exponent 0-31 (10 µs × 2^RTE)`},
		{"RWD", "remote", 0, true, ""},
		{"RKA", "remote", 0, true, ""},
		{"RKA", "0x10", 0, false, `invalid EVB RKA "0x10": an exponent 0-31 (10 µs × 2^RKA), or remote to use the bridge's`},
		{"RKA", "", 0, false, `invalid EVB RKA "": an exponent 0-31 (10 µs × 2^RKA), or remote to use the bridge's`},
		{"RKA", "20", 20, false, ""},
		{"XYZ", "1", 0, false, `EVB timer parameter "XYZ": use R, RTE, RWD or RKA`},
	} {
		v, remote, err := ParseTimer(tc.param, tc.in)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("ParseTimer(%s, %q) error %v, want %q", tc.param, tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || v != tc.v || remote != tc.remote {
			t.Errorf("ParseTimer(%s, %q) = %d %v %v, want %d %v", tc.param, tc.in, v, remote, err, tc.v, tc.remote)
		}
	}
	var e EVB
	for _, p := range [][2]string{{"r", "5"}, {"rte", "9"}, {"rwd", "remote"}, {"rka", "17"}} {
		if err := e.SetTimer(p[0], p[1]); err != nil {
			t.Fatal(err)
		}
	}
	if want := (EVB{R: 5, RTE: 9, ROLRWD: true, RKA: 17}); e != want {
		t.Errorf("SetTimer made %+v, want %+v", e, want)
	}
	var te *TimerError
	if err := e.SetTimer("RKA", "99"); !errors.As(err, &te) || te.Param != "RKA" || e.RKA != 17 {
		t.Errorf("SetTimer(RKA, 99): %v, RKA now %d", err, e.RKA)
	}
}

func TestTimersCheck(t *testing.T) {
	if err := (Timers{R: 7, RTE: 31, RWD: 31, RKA: 31}).Check(); err != nil {
		t.Errorf("the largest values refused: %v", err)
	}
	for _, bad := range []Timers{{R: 8}, {RTE: 32}, {RWD: 32}, {RKA: 255}} {
		if err := bad.Check(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	if _, err := NewStation(StationConfig{MAC: stationMAC, Send: (&sink{}).send, Local: EVB{RKA: 32}}); err == nil {
		t.Error("NewStation took RKA 32")
	}
}

// The timers 41.5.5.9 derives, for lldpad's defaults (R 3, RTE 8, RWD 20,
// RKA 20), worked out by hand: the ECP timer is 10 µs × 256 = 2.56 ms, a
// request takes at most (1 + 2×3) of them = 17.92 ms; RWD and RKA are
// 10 µs × 2^20 = 10.48576 s; each wait is 1.5 × (17.92 ms + 10.48576 s).
func TestTimerDurations(t *testing.T) {
	d := DefaultLocal.Timers()
	if got := d.ECPAckTimeout(); got != 2560*time.Microsecond {
		t.Errorf("ECP ack timeout %v", got)
	}
	if got := d.KeepAlive(); got != 10485760*time.Microsecond {
		t.Errorf("keep-alive %v", got)
	}
	want := 15755520 * time.Microsecond // 1.5 × 10.50368 s
	if got := d.ResponseWait(); got != want {
		t.Errorf("response wait %v, want %v", got, want)
	}
	if got := d.BridgeKeepAliveTimeout(); got != want {
		t.Errorf("bridge keep-alive timeout %v, want %v", got, want)
	}
	if got := (Timers{R: 0, RTE: 0, RWD: 0}).ResponseWait(); got != 30*time.Microsecond {
		t.Errorf("response wait of all zeros %v, want 1.5 × 20 µs", got)
	}
}

func TestNegotiate(t *testing.T) {
	local := EVB{R: 3, RTE: 8, RWD: 20, RKA: 20}
	follow := local
	follow.ROLRWD, follow.ROLRKA = true, true
	for _, tc := range []struct {
		name   string
		local  EVB
		bridge *EVB
		want   NegotiatedTimers
	}{
		{"no bridge", local, nil, NegotiatedTimers{Timers{3, 8, 20, 20}, FromLocal, FromLocal, FromLocal, FromLocal, Timers{3, 8, 20, 20}}},
		{"no bridge, following it", EVB{R: 1, RTE: 9, ROLRWD: true, ROLRKA: true}, nil, NegotiatedTimers{Timers{1, 9, 20, 20}, FromLocal, FromLocal, FromLocal, FromLocal, Timers{1, 9, 20, 20}}},
		{"the same", local, &EVB{R: 3, RTE: 8, RWD: 20, RKA: 20}, NegotiatedTimers{Timers{3, 8, 20, 20}, FromBoth, FromBoth, FromBoth, FromBoth, Timers{3, 8, 20, 20}}},
		{"the bridge's larger", local, &EVB{R: 5, RTE: 10, RWD: 22, RKA: 24}, NegotiatedTimers{Timers{5, 10, 22, 24}, FromBridge, FromBridge, FromBridge, FromBridge, Timers{5, 10, 22, 24}}},
		{"ours larger", local, &EVB{R: 1, RTE: 4, RWD: 12, RKA: 14}, NegotiatedTimers{Timers{3, 8, 20, 20}, FromLocal, FromLocal, FromLocal, FromLocal, Timers{3, 8, 20, 20}}},
		// lldpad sets ROL when it took our value (ties too): ours rules.
		{"bridge took ours", local, &EVB{R: 3, RTE: 8, RWD: 20, ROLRWD: true, RKA: 20, ROLRKA: true}, NegotiatedTimers{Timers{3, 8, 20, 20}, FromBoth, FromBoth, FromBoth, FromBoth, Timers{3, 8, 20, 20}}},
		// A stale echo of a larger value we no longer have does not pin it.
		{"stale echo", local, &EVB{R: 3, RTE: 8, RWD: 25, ROLRWD: true, RKA: 26, ROLRKA: true}, NegotiatedTimers{Timers{3, 8, 20, 20}, FromBoth, FromBoth, FromLocal, FromLocal, Timers{3, 8, 20, 20}}},
		// R and RTE have no ROL: the larger always.
		{"following the bridge", follow, &EVB{R: 1, RTE: 4, RWD: 12, RKA: 14}, NegotiatedTimers{Timers{3, 8, 12, 14}, FromLocal, FromLocal, FromBridge, FromBridge, Timers{3, 8, 12, 14}}},
		{"following the bridge, ROL set", follow, &EVB{R: 3, RTE: 8, RWD: 12, ROLRWD: true, RKA: 30, ROLRKA: true}, NegotiatedTimers{Timers{3, 8, 12, 30}, FromBoth, FromBoth, FromBridge, FromBridge, Timers{3, 8, 12, 30}}},
	} {
		if got := Negotiate(tc.local, tc.bridge); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

// lldpadBridge is lldpad's bridge side of the exchange as
// lldp_evb22.c's common_tlv behaves (read, not copied): for each
// parameter it sends the larger of its policy and what it last received,
// R and RTE without a flag, RWD and RKA with ROL set when it took the
// received value (ties included).
func lldpadBridge(policy, last EVB) EVB {
	out := EVB{Mode: ModeBridge, R: max(policy.R, last.R), RTE: max(policy.RTE, last.RTE)}
	out.RWD, out.ROLRWD = policy.RWD, false
	if last.RWD >= policy.RWD {
		out.RWD, out.ROLRWD = last.RWD, true
	}
	out.RKA, out.ROLRKA = policy.RKA, false
	if last.RKA >= policy.RKA {
		out.RKA, out.ROLRKA = last.RKA, true
	}
	return out
}

// Against lldpad's rule the station settles at once on what lldpad uses,
// stays there (no oscillation), and follows the bridge's policy when it
// changes, down as well as up: the station advertises its own values, so
// nothing it once echoed can pin a larger one.
func TestNegotiationConvergesWithLLDPAD(t *testing.T) {
	s, _, _ := newTestStation(t, true)
	var bridge *EVB
	exchange := func(policy EVB, what string) NegotiatedTimers {
		t.Helper()
		var seen []Timers
		for i := 0; i < 6; i++ {
			out := lldpadBridge(policy, *s.LLDPDU().EVB)
			bridge = &out
			seen = append(seen, Negotiate(s.cfg.Local, bridge).Timers)
		}
		last := seen[len(seen)-1]
		for i, x := range seen[1:] {
			if x != last {
				t.Fatalf("%s: exchange %d used %+v, then %+v: not settled", what, i+1, x, last)
			}
		}
		bt := bridge.Timers()
		if last != bt {
			t.Fatalf("%s: the station uses %+v, lldpad %+v", what, last, bt)
		}
		return Negotiate(s.cfg.Local, bridge)
	}
	if n := exchange(EVB{R: 3, RTE: 8, RWD: 20, RKA: 22}, "lldpad's RKA larger"); n.RKA != 22 || n.RKAFrom != FromBridge {
		t.Errorf("RKA %d from %s, want 22 from the bridge", n.RKA, n.RKAFrom)
	}
	if n := exchange(EVB{R: 3, RTE: 8, RWD: 20, RKA: 16}, "lldpad's RKA lowered"); n.RKA != 20 || n.RKAFrom != FromBoth {
		t.Errorf("RKA %d from %s, want ours (20), lldpad having taken it", n.RKA, n.RKAFrom)
	}
	if n := exchange(EVB{R: 5, RTE: 12, RWD: 24, RKA: 21}, "lldpad's all larger"); n.Timers != (Timers{5, 12, 24, 21}) {
		t.Errorf("timers %+v", n.Timers)
	}
	// Following the bridge: the station advertises the least RKA it uses
	// (MinRKAInUse) with ROL set, so lldpad shows its own policy, whatever
	// it is, down to that bound, and both use the same.
	s.cfg.Local.ROLRKA = true
	if e := s.LLDPDU().EVB; e.RKA != MinRKAInUse || !e.ROLRKA || e.RWD != 20 || e.ROLRWD {
		t.Errorf("advertised %+v, want RKA %d with ROL, RWD 20 without", e, MinRKAInUse)
	}
	for _, rka := range []uint8{16, 25, 12, 0} {
		if n := exchange(EVB{R: 3, RTE: 8, RWD: 20, RKA: rka}, "following lldpad"); n.RKA != max(rka, MinRKAInUse) || len(n.Clamps()) != 0 {
			t.Errorf("following lldpad's RKA %d: using %d (clamps %+v)", rka, n.RKA, n.Clamps())
		}
	}
}

// The sanity bounds: whoever proposes them, an ECP timer over 2.62 s (RTE
// 18) and a keep-alive under 163.84 ms (RKA 14) are not used; the bound is,
// and Clamps says what was negotiated. A bridge that keeps to the bounds
// is unaffected.
func TestNegotiateClamps(t *testing.T) {
	local := EVB{R: 3, RTE: 8, RWD: 20, RKA: 20}
	follow := local
	follow.ROLRKA = true
	for _, tc := range []struct {
		name   string
		local  EVB
		bridge *EVB
		want   Timers
		clamps []Clamp
	}{
		{"the bridge's RTE 31 (6 h a try)", local, &EVB{R: 7, RTE: 31, RWD: 20, RKA: 20}, Timers{7, 18, 20, 20}, []Clamp{{"RTE", 31, 18}}},
		{"the bridge's RTE 19", local, &EVB{R: 3, RTE: 19, RWD: 20, RKA: 20}, Timers{3, 18, 20, 20}, []Clamp{{"RTE", 19, 18}}},
		{"the bridge's RTE 18, the bound", local, &EVB{R: 3, RTE: 18, RWD: 20, RKA: 20}, Timers{3, 18, 20, 20}, nil},
		{"HPE's fixed R 3, RTE 16, its least RKA 14", local, &EVB{R: 3, RTE: 16, RWD: 20, RKA: 14}, Timers{3, 16, 20, 20}, nil},
		{"following the bridge's RKA 0", follow, &EVB{R: 3, RTE: 8, RWD: 20, RKA: 0}, Timers{3, 8, 20, 14}, []Clamp{{"RKA", 0, 14}}},
		{"following the bridge's RKA 13", follow, &EVB{R: 3, RTE: 8, RWD: 20, RKA: 13}, Timers{3, 8, 20, 14}, []Clamp{{"RKA", 13, 14}}},
		{"following the bridge's RKA 31", follow, &EVB{R: 3, RTE: 8, RWD: 20, RKA: 31}, Timers{3, 8, 20, 31}, nil},
		{"configured out of bounds, no bridge", EVB{R: 3, RTE: 25, RWD: 20, RKA: 5}, nil, Timers{3, 18, 20, 14}, []Clamp{{"RTE", 25, 18}, {"RKA", 5, 14}}},
	} {
		n := Negotiate(tc.local, tc.bridge)
		if n.Timers != tc.want || !slices.Equal(n.Clamps(), tc.clamps) {
			t.Errorf("%s: in use %+v, clamps %+v; want %+v, %+v", tc.name, n.Timers, n.Clamps(), tc.want, tc.clamps)
		}
		if n.ECPAckTimeout() > 2621440*time.Microsecond || n.KeepAlive() < 163840*time.Microsecond {
			t.Errorf("%s: ECP timer %v, keep-alive %v out of bounds", tc.name, n.ECPAckTimeout(), n.KeepAlive())
		}
	}
	// What the station advertises keeps to the bounds too.
	if e := advertised(EVB{R: 3, RTE: 25, RWD: 20, RKA: 5}); e.RTE != 18 || e.RKA != 14 || e.ROLRKA {
		t.Errorf("advertised %+v, want RTE 18, RKA 14", e)
	}
}

// A station told RTE 31 by the bridge warns once (not at every LLDPDU),
// uses 18, and says so in its timers; the bridge lowering it ends the
// clamp, raising it again warns again.
func TestStationWarnsOnceWhenClamping(t *testing.T) {
	var logs bytes.Buffer
	var got []NegotiatedTimers
	s, err := NewStation(StationConfig{MAC: stationMAC, Send: (&sink{}).send, RequestRelay: true, Local: DefaultLocal, Interval: time.Hour,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)), OnTimers: func(n NegotiatedTimers) { got = append(got, n) }})
	if err != nil {
		t.Fatal(err)
	}
	send := func(rte uint8) {
		d := &LLDPDU{ChassisSubtype: ChassisIDMAC, ChassisID: bridgeMAC[:], PortSubtype: PortIDIfName, PortID: []byte("swp1"), TTL: 120,
			EVB: &EVB{BridgeStatus: BridgeRRCAP | BridgeRRCTR, Mode: ModeBridge, R: 7, RTE: rte, RWD: 20, RKA: 20}}
		f, err := d.Frame(NearestCustomerBridge, bridgeMAC)
		if err != nil {
			t.Fatal(err)
		}
		s.Handle(f)
	}
	for range 5 {
		send(31)
	}
	if n := strings.Count(logs.String(), "sanity bounds"); n != 1 {
		t.Fatalf("%d warnings for 5 LLDPDUs with RTE 31, want 1:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "param=RTE negotiated=31 from=bridge in_use=18") {
		t.Errorf("warning:\n%s", logs.String())
	}
	if tm := s.Timers(); tm.RTE != 18 || tm.Unclamped.RTE != 31 || len(got) != 1 || got[0].RTE != 18 {
		t.Errorf("timers %+v, told %+v", tm, got)
	}
	send(12)
	send(31)
	if n := strings.Count(logs.String(), "sanity bounds"); n != 2 {
		t.Errorf("%d warnings after RTE 31, 12, 31, want 2", n)
	}
}

// The station tells whoever listens (the VDP station, through the daemon)
// when the timers change: at the bridge's first TLV that changes them,
// when the bridge changes them, and when the bridge goes; the advertised
// TLV keeps the local values.
func TestStationTimers(t *testing.T) {
	var got []NegotiatedTimers
	s, err := NewStation(StationConfig{MAC: stationMAC, Send: (&sink{}).send, RequestRelay: true, Local: EVB{R: 3, RTE: 8, RWD: 20, RKA: 14},
		Interval: time.Hour, OnTimers: func(n NegotiatedTimers) { got = append(got, n) }})
	if err != nil {
		t.Fatal(err)
	}
	if n := s.Timers(); n.RKA != 14 || n.RKAFrom != FromLocal {
		t.Fatalf("timers before any bridge %+v", n)
	}
	send := func(rka uint8, ttl uint16) {
		d := &LLDPDU{ChassisSubtype: ChassisIDMAC, ChassisID: bridgeMAC[:], PortSubtype: PortIDIfName, PortID: []byte("swp1"), TTL: ttl,
			EVB: &EVB{BridgeStatus: BridgeRRCAP | BridgeRRCTR, Mode: ModeBridge, R: 3, RTE: 8, RWD: 20, RKA: rka}}
		if ttl == 0 {
			d.EVB = nil
		}
		f, err := d.Frame(NearestCustomerBridge, bridgeMAC)
		if err != nil {
			t.Fatal(err)
		}
		s.Handle(f)
	}
	send(17, 120)
	send(17, 120) // the same: no news
	send(18, 120)
	send(0, 0) // the bridge leaves
	if len(got) != 3 || got[0].RKA != 17 || got[0].RKAFrom != FromBridge || got[1].RKA != 18 || got[2].RKA != 14 || got[2].RKAFrom != FromLocal {
		t.Fatalf("timer changes %+v, want RKA 17, 18 (the bridge's), then 14 (ours)", got)
	}
	if e := s.LLDPDU().EVB; e.RKA != 14 || e.ROLRKA || e.R != 3 || e.RTE != 8 || e.RWD != 20 {
		t.Errorf("advertised %+v, want the local values", e)
	}
	if r := s.Relay(); r.Timers != got[2] || r.Neighbor != nil {
		t.Errorf("relay %+v", r)
	}
}
