package vepa

import (
	"errors"
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
		{"no bridge", local, nil, NegotiatedTimers{Timers{3, 8, 20, 20}, FromLocal, FromLocal, FromLocal, FromLocal}},
		{"no bridge, following it", EVB{R: 1, RTE: 9, ROLRWD: true, ROLRKA: true}, nil, NegotiatedTimers{Timers{1, 9, 20, 20}, FromLocal, FromLocal, FromLocal, FromLocal}},
		{"the same", local, &EVB{R: 3, RTE: 8, RWD: 20, RKA: 20}, NegotiatedTimers{Timers{3, 8, 20, 20}, FromBoth, FromBoth, FromBoth, FromBoth}},
		{"the bridge's larger", local, &EVB{R: 5, RTE: 10, RWD: 22, RKA: 24}, NegotiatedTimers{Timers{5, 10, 22, 24}, FromBridge, FromBridge, FromBridge, FromBridge}},
		{"ours larger", local, &EVB{R: 1, RTE: 4, RWD: 12, RKA: 14}, NegotiatedTimers{Timers{3, 8, 20, 20}, FromLocal, FromLocal, FromLocal, FromLocal}},
		// lldpad sets ROL when it took our value (ties too): ours rules.
		{"bridge took ours", local, &EVB{R: 3, RTE: 8, RWD: 20, ROLRWD: true, RKA: 20, ROLRKA: true}, NegotiatedTimers{Timers{3, 8, 20, 20}, FromBoth, FromBoth, FromBoth, FromBoth}},
		// A stale echo of a larger value we no longer have does not pin it.
		{"stale echo", local, &EVB{R: 3, RTE: 8, RWD: 25, ROLRWD: true, RKA: 26, ROLRKA: true}, NegotiatedTimers{Timers{3, 8, 20, 20}, FromBoth, FromBoth, FromLocal, FromLocal}},
		// R and RTE have no ROL: the larger always.
		{"following the bridge", follow, &EVB{R: 1, RTE: 4, RWD: 12, RKA: 14}, NegotiatedTimers{Timers{3, 8, 12, 14}, FromLocal, FromLocal, FromBridge, FromBridge}},
		{"following the bridge, ROL set", follow, &EVB{R: 3, RTE: 8, RWD: 12, ROLRWD: true, RKA: 30, ROLRKA: true}, NegotiatedTimers{Timers{3, 8, 12, 30}, FromBoth, FromBoth, FromBridge, FromBridge}},
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
	// Following the bridge: the station advertises 0 with ROL set, so
	// lldpad shows its own policy, whatever it is.
	s.cfg.Local.ROLRKA = true
	if e := s.LLDPDU().EVB; e.RKA != 0 || !e.ROLRKA || e.RWD != 20 || e.ROLRWD {
		t.Errorf("advertised %+v, want RKA 0 with ROL, RWD 20 without", e)
	}
	for _, rka := range []uint8{16, 25, 12} {
		if n := exchange(EVB{R: 3, RTE: 8, RWD: 20, RKA: rka}, "following lldpad"); n.RKA != rka {
			t.Errorf("following lldpad's RKA %d: using %d", rka, n.RKA)
		}
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
