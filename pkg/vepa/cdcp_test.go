package vepa

import (
	"bytes"
	"context"
	"encoding/hex"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vswitch/vswitch/test/evbbridge"
)

func fromHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// CDCP TLV values laid out by hand from D.2.13: OUI 00-80-C2, subtype
// 0x0E, Role (bit 8 of the first octet; 1 station, 0 bridge), SComp (bit
// 4), 15 reserved bits, ChnCap (12 bits), then 12-bit SCID / 12-bit S-VID
// pairs.
func TestCDCPFromTheStandardsLayout(t *testing.T) {
	cases := []struct {
		name, hex string
		want      CDCP
	}{
		{"station, two channels", "0080c2 0e 88 00 00 a7 001001 00200a",
			CDCP{Role: CDCPRoleStation, SComp: true, ChnCap: 167, Pairs: []SChannel{{1, 1}, {2, 10}}}},
		{"bridge, default only", "0080c2 0e 08 00 00 10 001001",
			CDCP{Role: CDCPRoleBridge, SComp: true, ChnCap: 16, Pairs: []SChannel{{1, 1}}}},
		{"12-bit extremes", "0080c2 0e 08 00 0f ff fff ffe 123 456",
			CDCP{Role: CDCPRoleBridge, SComp: true, ChnCap: 4095, Pairs: []SChannel{{4095, 4094}, {0x123, 0x456}}}},
		{"no pairs, no S-component", "0080c2 0e 80 00 00 01",
			CDCP{Role: CDCPRoleStation, ChnCap: 1}},
	}
	for _, c := range cases {
		v := fromHex(t, c.hex)
		got, err := ParseCDCP(v)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got.Role != c.want.Role || got.SComp != c.want.SComp || got.ChnCap != c.want.ChnCap || len(got.Pairs) != len(c.want.Pairs) {
			t.Fatalf("%s: got %+v, want %+v", c.name, got, c.want)
		}
		for i := range got.Pairs {
			if got.Pairs[i] != c.want.Pairs[i] {
				t.Fatalf("%s: pair %d %+v, want %+v", c.name, i, got.Pairs[i], c.want.Pairs[i])
			}
		}
		enc, err := c.want.Append(nil)
		if err != nil || !bytes.Equal(enc, v) {
			t.Fatalf("%s: encoded % x (%v), want % x", c.name, enc, err, v)
		}
	}
	// Reserved bits set by a sender are ignored.
	if c, err := ParseCDCP(fromHex(t, "0080c2 0e ff ff ff ff")); err != nil || c.Role != 1 || !c.SComp || c.ChnCap != 0xfff {
		t.Fatalf("reserved bits: %+v %v", c, err)
	}
	for name, bad := range map[string]string{
		"too short":         "0080c2 0e 88 00 00",
		"half a pair":       "0080c2 0e 88 00 00 a7 0010",
		"pair and a byte":   "0080c2 0e 88 00 00 a7 001001 00",
		"EVB subtype":       "0080c2 0d 88 00 00 a7",
		"another OUI":       "0080c3 0e 88 00 00 a7",
		"nothing after OUI": "0080c2",
	} {
		if _, err := ParseCDCP(fromHex(t, bad)); err == nil {
			t.Errorf("%s: taken", name)
		}
	}
	// What does not fit is refused, never truncated.
	if _, err := (CDCP{Pairs: make([]SChannel, MaxCDCPPairs+1)}).Append(nil); err == nil {
		t.Error("168 pairs encoded")
	}
	if _, err := (CDCP{Pairs: []SChannel{{4096, 1}}}).Append(nil); err == nil {
		t.Error("SCID 4096 encoded")
	}
	if v, err := (CDCP{Pairs: make([]SChannel, MaxCDCPPairs)}).Append(nil); err != nil || len(v) != maxTLVLen-2 {
		t.Errorf("167 pairs: %d bytes, %v", len(v), err)
	}
}

// The CDCP TLV rides in an LLDPDU next to others and comes back out.
func TestLLDPDUCarriesCDCP(t *testing.T) {
	d := &LLDPDU{ChassisSubtype: ChassisIDMAC, ChassisID: stationMAC[:], PortSubtype: PortIDMAC, PortID: stationMAC[:], TTL: 121,
		CDCP: &CDCP{Role: CDCPRoleStation, SComp: true, ChnCap: 167, Pairs: []SChannel{{1, 1}, {2, 20}}}}
	f, err := d.Frame(NearestNonTPMRBridge, [6]byte(stationMAC))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(f, fromHex(t, "fe0e 0080c2 0e 88 00 00 a7 001001 002014")) {
		t.Fatalf("frame does not hold the TLV as laid out:\n% x", f)
	}
	got, err := ParseFrame(f)
	if err != nil || got.CDCP == nil || got.EVB != nil || len(got.CDCP.Pairs) != 2 || got.CDCP.Pairs[1] != (SChannel{2, 20}) {
		t.Fatalf("parsed %+v (%v)", got, err)
	}
	// A damaged CDCP TLV makes the LLDPDU bad, as a damaged EVB TLV does.
	bad := bytes.Replace(f, fromHex(t, "fe0e"), fromHex(t, "fe0d"), 1)
	if _, err := ParseFrame(bad); err == nil {
		t.Fatal("an LLDPDU with a 13-byte CDCP TLV was taken")
	}
}

func FuzzParseCDCP(f *testing.F) {
	f.Add(fromHex(f, "0080c2 0e 88 00 00 a7 001001 00200a"))
	f.Add(fromHex(f, "0080c2 0e 08 00 0f ff fff ffe"))
	f.Add(fromHex(f, "0080c2 0e 88"))
	f.Fuzz(func(t *testing.T, v []byte) {
		c, err := ParseCDCP(v)
		if err != nil {
			return
		}
		if len(c.Pairs) != (len(v)-8)/3 || c.ChnCap > 0xfff || c.Role > 1 {
			t.Fatalf("%d bytes gave %+v", len(v), c)
		}
		enc, err := c.Append(nil)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", c, err)
		}
		again, err := ParseCDCP(enc)
		if err != nil || again.Role != c.Role || again.SComp != c.SComp || again.ChnCap != c.ChnCap || len(again.Pairs) != len(c.Pairs) {
			t.Fatalf("round trip %+v -> %+v (%v)", c, again, err)
		}
		for i := range c.Pairs {
			if again.Pairs[i] != c.Pairs[i] {
				t.Fatalf("pair %d: %+v -> %+v", i, c.Pairs[i], again.Pairs[i])
			}
		}
	})
}

// lossyLink carries frames one way, dropping the first few and then a
// share of them.
type lossyLink struct {
	mu        sync.Mutex
	rng       *rand.Rand
	loss      float64
	dropFirst int
	to        func([]byte)
	sent      int
	lost      int
}

func (l *lossyLink) send(f []byte) error {
	l.mu.Lock()
	l.sent++
	drop := l.sent <= l.dropFirst || l.rng.Float64() < l.loss
	if drop {
		l.lost++
	}
	l.mu.Unlock()
	if !drop {
		l.to(append([]byte(nil), f...))
	}
	return nil
}

// The station against the independent test bridge (test/evbbridge) over a
// link that loses the first two frames and then 30 % each way: the station's wants reach
// the bridge, the bridge's grants come back, a new policy is followed, and
// when the bridge falls silent its answer expires.
func TestCDCPStationAgainstBridgeOnLossyLink(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	var st *CDCPStation
	toStation := &lossyLink{rng: rand.New(rand.NewPCG(seed, 1)), loss: 0.3, dropFirst: 2, to: func(f []byte) { st.Handle(f) }}
	br, err := evbbridge.New(evbbridge.Config{MAC: bridgeMAC[:], Interval: 100 * time.Millisecond, EVB: evbbridge.EVBConfig{Off: true},
		CDCP: &evbbridge.CDCPConfig{ChnCap: 8, Grant: evbbridge.GrantSVIDs(10, 20)}}, toStation.send)
	if err != nil {
		t.Fatal(err)
	}
	toBridge := &lossyLink{rng: rand.New(rand.NewPCG(seed, 2)), loss: 0.3, dropFirst: 2, to: br.Handle}
	changes := make(chan CDCPState, 64)
	st, err = NewCDCPStation(CDCPConfig{MAC: stationMAC[:], Send: toBridge.send, Interval: 100 * time.Millisecond,
		OnChange: func(s CDCPState) { changes <- s }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	bctx, stopBridge := context.WithCancel(ctx)
	wg.Add(2)
	go func() { defer wg.Done(); br.Run(bctx) }()
	go func() { defer wg.Done(); st.Run(ctx) }()

	st.SetChannels([]uint16{10, 20, 30, 20, 0})
	waitCDCP := func(what string, cond func(CDCPState) bool) CDCPState {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			if s := st.State(); cond(s) {
				return s
			}
			select {
			case <-changes:
			case <-time.After(50 * time.Millisecond):
			case <-deadline:
				t.Fatalf("%s: not reached; state %+v", what, st.State())
			}
		}
	}
	s := waitCDCP("10 and 20 granted", func(s CDCPState) bool {
		ok10, _ := s.Channel(10)
		ok20, _ := s.Channel(20)
		return s.Bridge && ok10 && ok20
	})
	if ok, why := s.Channel(30); ok || !strings.Contains(why, "not granted by the bridge") {
		t.Fatalf("S-VID 30: %v %q", ok, why)
	}
	if ok, _ := s.Channel(0); !ok {
		t.Fatal("the default S-channel is not granted")
	}
	if len(s.Wanted) != 4 || s.Wanted[0] != (SChannel{1, 1}) || s.Wanted[1] != (SChannel{2, 10}) || s.Wanted[3] != (SChannel{4, 30}) {
		t.Fatalf("wanted %+v", s.Wanted)
	}
	if sc, ok := br.StationCDCP(); !ok || sc.Role != evbbridge.RoleS || len(sc.Pairs) != 4 || sc.ChnCap != MaxCDCPPairs {
		t.Fatalf("the bridge heard %+v (%v)", sc, ok)
	}
	// Grant later: 30 too.
	br.SetCDCP(&evbbridge.CDCPConfig{ChnCap: 8})
	waitCDCP("30 granted later", func(s CDCPState) bool { ok, _ := s.Channel(30); return ok })
	// An SCID given another S-VID is not the S-channel asked for.
	br.SetCDCP(&evbbridge.CDCPConfig{ChnCap: 8, Grant: func(p evbbridge.Pair) (uint16, bool) {
		if p.SVID == 10 {
			return 11, true
		}
		return p.SVID, true
	}})
	s = waitCDCP("10 reassigned", func(s CDCPState) bool { ok, _ := s.Channel(10); return !ok })
	if _, why := s.Channel(10); !strings.Contains(why, "S-VID 11 instead") {
		t.Fatalf("reassigned: %q", why)
	}
	// Dropping a port's S-VID frees its SCID; the others keep theirs.
	st.SetChannels([]uint16{20, 30})
	if w := st.State().Wanted; len(w) != 3 || w[1] != (SChannel{3, 20}) || w[2] != (SChannel{4, 30}) {
		t.Fatalf("wanted after dropping 10: %+v", w)
	}
	// The bridge goes (its shutdown LLDPDU, or, when the link lost that,
	// its TTL of 1 s): S-channels are static again (auto).
	stopBridge()
	s = waitCDCP("the bridge's answer expired", func(s CDCPState) bool { return !s.Bridge })
	if ok, _ := s.Channel(10); !ok || s.Granted != nil {
		t.Fatalf("after expiry (auto): %+v", s)
	}
	cancel()
	wg.Wait()
	t.Logf("lost %d of %d frames to the bridge, %d of %d to the station", toBridge.lost, toBridge.sent, toStation.lost, toStation.sent)
}

// With CDCP required, an S-channel is down until a bridge grants it; the
// peer rules are those of the EVB station.
func TestCDCPStationRequiredAndPeerRules(t *testing.T) {
	var sent [][]byte
	st, err := NewCDCPStation(CDCPConfig{MAC: stationMAC[:], Required: true, Send: func(f []byte) error { sent = append(sent, f); return nil }})
	if err != nil {
		t.Fatal(err)
	}
	st.SetChannels([]uint16{1, 10})
	s := st.State()
	if ok, why := s.Channel(10); ok || !strings.Contains(why, "no CDCP answer") {
		t.Fatalf("required, no bridge: %v %q", ok, why)
	}
	if ok, why := s.Channel(1); ok || !strings.Contains(why, "no CDCP answer") {
		t.Fatalf("S-VID 1, no bridge: %v %q", ok, why)
	}
	answer := func(src [6]byte, chassis byte, ttl uint16, c *CDCP) []byte {
		d := &LLDPDU{ChassisSubtype: ChassisIDMAC, ChassisID: []byte{2, 0, 0, 0, 0, chassis}, PortSubtype: PortIDIfName, PortID: []byte("p1"), TTL: ttl, CDCP: c}
		f, err := d.Frame(NearestNonTPMRBridge, src)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	grant := &CDCP{Role: CDCPRoleBridge, SComp: true, ChnCap: 4, Pairs: []SChannel{{1, 1}, {2, 10}}}
	// Tagged, to another address, from ourselves, or role S: nothing.
	st.Handle(withTag(answer(bridgeMAC, 1, 120, grant), 0x88a8, 10))
	evbDst := answer(bridgeMAC, 1, 120, grant)
	copy(evbDst, NearestCustomerBridge[:])
	st.Handle(evbDst)
	st.Handle(answer([6]byte(stationMAC), 1, 120, grant))
	st.Handle(answer(bridgeMAC, 1, 120, &CDCP{Role: CDCPRoleStation, SComp: true, Pairs: grant.Pairs}))
	if s := st.State(); s.Bridge || s.Tagged != 1 {
		t.Fatalf("followed a frame it must not: %+v", s)
	}
	st.Handle(answer(bridgeMAC, 1, 120, grant))
	s = st.State()
	if ok, _ := s.Channel(10); !ok || !s.Bridge || s.Peer != "02:00:00:00:00:01" {
		t.Fatalf("granted: %+v", s)
	}
	if ok, why := s.Channel(1); ok || !strings.Contains(why, "default S-channel") {
		t.Fatalf("S-VID 1 with a bridge: %v %q", ok, why)
	}
	// Another bridge denying everything while the peer's TTL runs: ignored.
	st.Handle(answer(thirdMAC, 9, 120, &CDCP{Role: CDCPRoleBridge, SComp: true, Pairs: []SChannel{{1, 1}}}))
	if s := st.State(); s.Foreign != 1 || len(s.Granted) != 2 {
		t.Fatalf("a foreign bridge changed the grants: %+v", s)
	}
	// The peer's goodbye: back to no bridge, required: down again.
	st.Handle(answer(bridgeMAC, 1, 0, nil))
	if ok, _ := st.State().Channel(10); ok {
		t.Fatal("still granted after the bridge's shutdown LLDPDU")
	}
	if n := st.State().Neighbor; n != nil {
		t.Errorf("the bridge's last word kept after its goodbye: %+v", n)
	}
	// What the station sends: role S, SComp, ChnCap 167, its pairs, to the
	// nearest non-TPMR bridge; the shutdown has no CDCP TLV.
	if err := st.sendPDU(st.LLDPDU()); err != nil {
		t.Fatal(err)
	}
	if err := st.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if len(sent) != 2 {
		t.Fatalf("%d frames sent", len(sent))
	}
	d, err := ParseFrame(sent[0])
	if err != nil || [6]byte(sent[0][:6]) != NearestNonTPMRBridge || d.CDCP == nil || d.CDCP.Role != CDCPRoleStation || !d.CDCP.SComp ||
		d.CDCP.ChnCap != MaxCDCPPairs || len(d.CDCP.Pairs) != 2 || d.CDCP.Pairs[1] != (SChannel{2, 10}) || d.EVB != nil {
		t.Fatalf("sent %+v (%v)", d, err)
	}
	if d, err := ParseFrame(sent[1]); err != nil || d.TTL != 0 || d.CDCP != nil {
		t.Fatalf("shutdown %+v (%v)", d, err)
	}
}

// More S-VIDs than a CDCP TLV carries: the rest are not asked for, and
// say so while a bridge answers.
func TestCDCPStationOverflow(t *testing.T) {
	st, err := NewCDCPStation(CDCPConfig{MAC: stationMAC[:], ChnCap: 3, Send: func([]byte) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	st.SetChannels([]uint16{10, 20, 30})
	s := st.State()
	if len(s.Wanted) != 3 || s.Wanted[2] != (SChannel{3, 20}) {
		t.Fatalf("wanted %+v", s.Wanted)
	}
	d := &LLDPDU{ChassisSubtype: ChassisIDMAC, ChassisID: bridgeMAC[:], PortSubtype: PortIDIfName, PortID: []byte("p1"), TTL: 120,
		CDCP: &CDCP{Role: CDCPRoleBridge, SComp: true, ChnCap: 8, Pairs: []SChannel{{1, 1}, {2, 10}, {3, 20}}}}
	f, err := d.Frame(NearestNonTPMRBridge, bridgeMAC)
	if err != nil {
		t.Fatal(err)
	}
	st.Handle(f)
	if ok, why := st.State().Channel(30); ok || !strings.Contains(why, "not asked for") {
		t.Fatalf("S-VID 30: %v %q", ok, why)
	}
	st.SetChannels([]uint16{10, 30}) // 20 gone: 30 takes its place
	if w := st.State().Wanted; len(w) != 3 || w[2] != (SChannel{3, 30}) {
		t.Fatalf("wanted after 20 left: %+v", w)
	}
}

// FuzzCDCPStation feeds the agent arbitrary frames, each cut from the fuzz
// input by a length byte, against a set of wanted S-VIDs: it never panics,
// and what it grants is always what the last answer it followed says.
func FuzzCDCPStation(f *testing.F) {
	grant := &LLDPDU{ChassisSubtype: ChassisIDMAC, ChassisID: bridgeMAC[:], PortSubtype: PortIDIfName, PortID: []byte("p1"), TTL: 120,
		CDCP: &CDCP{Role: CDCPRoleBridge, SComp: true, ChnCap: 4, Pairs: []SChannel{{1, 1}, {2, 10}}}}
	fr, err := grant.Frame(NearestNonTPMRBridge, bridgeMAC)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(append([]byte{byte(len(fr))}, fr...))
	f.Add([]byte{3, 1, 2, 3})
	f.Fuzz(func(t *testing.T, in []byte) {
		st, err := NewCDCPStation(CDCPConfig{MAC: stationMAC, Send: func([]byte) error { return nil }, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		st.SetChannels([]uint16{10, 20})
		for len(in) > 0 {
			n := min(int(in[0]), len(in)-1)
			frame := in[1 : 1+n]
			in = in[1+n:]
			if len(frame) >= 6 {
				copy(frame, NearestNonTPMRBridge[:]) // reach the parser more often
			}
			st.Handle(frame)
			s := st.State()
			if !s.Bridge && len(s.Granted) != 0 {
				t.Fatalf("grants without a bridge: %+v", s)
			}
			for _, svid := range []uint16{10, 20} {
				ok, why := s.Channel(svid)
				if ok == (why != "") {
					t.Fatalf("S-VID %d: %v with reason %q", svid, ok, why)
				}
				if s.Bridge && ok && !slices.ContainsFunc(s.Granted, func(g SChannel) bool { return g.SVID == svid && g.SCID > DefaultSCID }) {
					t.Fatalf("S-VID %d granted without a pair holding it in %+v", svid, s.Granted)
				}
			}
		}
	})
}

// The bridge's answer counts until its TTL runs out, not until the
// station's next transmission (an hour here, after the fast start): with
// --cdcp on, a granted S-channel stops being granted when the bridge went
// quiet TTL seconds ago.
func TestCDCPStationExpiresOnTime(t *testing.T) {
	var mu sync.Mutex
	sent := 0
	changes := make(chan CDCPState, 64)
	st, err := NewCDCPStation(CDCPConfig{MAC: stationMAC[:], Required: true, Interval: time.Hour, Logger: slog.New(slog.DiscardHandler),
		Send:     func([]byte) error { mu.Lock(); sent++; mu.Unlock(); return nil },
		OnChange: func(s CDCPState) { changes <- s }})
	if err != nil {
		t.Fatal(err)
	}
	st.SetChannels([]uint16{10})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { st.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	for deadline := time.Now().Add(6 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		mu.Lock()
		n := sent
		mu.Unlock()
		if n >= fastCount+1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("fast start: %d LLDPDUs", n)
		}
	}
	time.Sleep(100 * time.Millisecond) // the fast start is over: next one in an hour
	d := &LLDPDU{ChassisSubtype: ChassisIDMAC, ChassisID: bridgeMAC[:], PortSubtype: PortIDIfName, PortID: []byte("p1"), TTL: 1,
		CDCP: &CDCP{Role: CDCPRoleBridge, SComp: true, ChnCap: 4, Pairs: []SChannel{{1, 1}, {2, 10}}}}
	f, err := d.Frame(NearestNonTPMRBridge, bridgeMAC)
	if err != nil {
		t.Fatal(err)
	}
	st.Handle(f)
	if s := <-changes; !s.Bridge {
		t.Fatalf("the answer: %+v", s)
	} else if ok, why := s.Channel(10); !ok {
		t.Fatalf("S-VID 10 not granted: %s", why)
	}
	select {
	case s := <-changes:
		if ok, _ := s.Channel(10); s.Bridge || ok {
			t.Fatalf("after the TTL: %+v", s)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the bridge's TTL of 1 s ran out 2 s ago, and its grant still counts")
	}
}

// A bridge with static S-channels numbers them its own way: the station
// asks for S-VID 100 as SCID 2 and 300 as SCID 3, the bridge answers SCID
// 2 with S-VID 200 and SCID 3 with S-VID 100. Clause 42's station follows
// the bridge's pairs: S-VID 100 is granted (as the bridge's SCID 3); 300,
// in no pair, is not, and says what the bridge did with its SCID. The
// station keeps asking for its own SCIDs (nothing to oscillate on).
func TestCDCPStationFollowsTheBridgesSCIDs(t *testing.T) {
	var sent [][]byte
	st, err := NewCDCPStation(CDCPConfig{MAC: stationMAC[:], Required: true, Logger: slog.New(slog.DiscardHandler),
		Send: func(f []byte) error { sent = append(sent, f); return nil }})
	if err != nil {
		t.Fatal(err)
	}
	st.SetChannels([]uint16{100, 300})
	answer := func(pairs ...SChannel) {
		t.Helper()
		d := &LLDPDU{ChassisSubtype: ChassisIDMAC, ChassisID: bridgeMAC[:], PortSubtype: PortIDIfName, PortID: []byte("p1"), TTL: 120,
			CDCP: &CDCP{Role: CDCPRoleBridge, SComp: true, ChnCap: 8, Pairs: pairs}}
		f, err := d.Frame(NearestNonTPMRBridge, bridgeMAC)
		if err != nil {
			t.Fatal(err)
		}
		st.Handle(f)
	}
	answer(SChannel{1, 1}, SChannel{2, 200}, SChannel{3, 100})
	s := st.State()
	if ok, why := s.Channel(100); !ok {
		t.Fatalf("S-VID 100, in the bridge's answer as SCID 3: held: %s", why)
	}
	if scid, ok := s.SCID(100); !ok || scid != 3 {
		t.Errorf("S-VID 100's SCID %d (%v), want the bridge's 3", scid, ok)
	}
	if n := s.Neighbor; n == nil || n.ChassisID != "02:00:00:00:00:01" || n.MAC.String() != "02:00:00:00:00:01" || n.TTL != 120 ||
		n.TLV.Role != CDCPRoleBridge || !n.TLV.SComp || n.TLV.ChnCap != 8 || len(n.TLV.Pairs) != 3 || time.Since(n.LastSeen) > time.Minute {
		t.Errorf("the bridge's last word %+v", n)
	}
	if ok, why := s.Channel(300); ok || !strings.Contains(why, "SCID 3 S-VID 100 instead") {
		t.Errorf("S-VID 300, in no pair: %v %q", ok, why)
	}
	if _, ok := s.SCID(300); ok {
		t.Error("S-VID 300 has an SCID without being in the answer")
	}
	if err := st.sendPDU(st.LLDPDU()); err != nil {
		t.Fatal(err)
	}
	if d, err := ParseFrame(sent[len(sent)-1]); err != nil || !slices.Equal(d.CDCP.Pairs, []SChannel{{1, 1}, {2, 100}, {3, 300}}) {
		t.Errorf("the station asks for %+v (%v), want its own SCIDs as before", d.CDCP, err)
	}
	// The default S-channel's SCID carries S-VID 1 only; a pair (1, 300)
	// grants nothing. Listed twice, the lower SCID names it.
	answer(SChannel{1, 300}, SChannel{5, 100}, SChannel{4, 100})
	s = st.State()
	if ok, _ := s.Channel(300); ok {
		t.Error("S-VID 300 granted by the pair (1, 300)")
	}
	if scid, ok := s.SCID(100); !ok || scid != 4 {
		t.Errorf("S-VID 100 under SCIDs 5 and 4: SCID %d (%v), want 4", scid, ok)
	}
}

// The same against the independent test bridge, configured the way a
// static S-channel table behaves: its SCID 2 is S-VID 200 and its SCID 3
// S-VID 100, whatever the station asks. The station asks 100 as SCID 2
// and 200 as SCID 3; both are granted, each under the bridge's SCID.
func TestCDCPStationWithStaticBridgeNumbering(t *testing.T) {
	var st *CDCPStation
	toStation := &lossyLink{rng: rand.New(rand.NewPCG(1, 1)), to: func(f []byte) { st.Handle(f) }}
	static := map[uint16]uint16{2: 200, 3: 100}
	br, err := evbbridge.New(evbbridge.Config{MAC: bridgeMAC[:], Interval: 100 * time.Millisecond, EVB: evbbridge.EVBConfig{Off: true},
		CDCP: &evbbridge.CDCPConfig{ChnCap: 8, Grant: func(want evbbridge.Pair) (uint16, bool) {
			svid, ok := static[want.SCID]
			return svid, ok
		}}}, toStation.send)
	if err != nil {
		t.Fatal(err)
	}
	toBridge := &lossyLink{rng: rand.New(rand.NewPCG(1, 2)), to: br.Handle}
	st, err = NewCDCPStation(CDCPConfig{MAC: stationMAC[:], Send: toBridge.send, Interval: 100 * time.Millisecond, Required: true,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	wg.Add(2)
	go func() { defer wg.Done(); br.Run(ctx) }()
	go func() { defer wg.Done(); st.Run(ctx) }()
	st.SetChannels([]uint16{100, 200})
	deadline := time.Now().Add(10 * time.Second)
	for {
		s := st.State()
		ok100, why100 := s.Channel(100)
		ok200, why200 := s.Channel(200)
		if s.Bridge && ok100 && ok200 {
			c100, _ := s.SCID(100)
			c200, _ := s.SCID(200)
			if c100 != 3 || c200 != 2 || !slices.Equal(s.Wanted, []SChannel{{1, 1}, {2, 100}, {3, 200}}) {
				t.Fatalf("SCIDs in use 100: %d, 200: %d (want the bridge's 3 and 2); wanted %+v", c100, c200, s.Wanted)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not both granted: 100 %q, 200 %q; state %+v", why100, why200, s)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
