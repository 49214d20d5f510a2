package vepa

import (
	"log/slog"
	"testing"
	"time"
)

// A station configured for group IDs sets SGID in its EVB TLV (byte 1,
// 0x08), and tells its owner when the bridge's BGID changes, even when
// the relay state does not: VDP may use group IDs only while both are set.
func TestStationGroupIDs(t *testing.T) {
	changes := make(chan Relay, 16)
	s, err := NewStation(StationConfig{MAC: stationMAC, Send: (&sink{}).send, RequestRelay: true, GroupIDs: true, Local: DefaultLocal,
		Interval: time.Hour, OnChange: func(r Relay) { changes <- r }, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if e := s.LLDPDU().EVB; e.StationStatus != StationSGID|StationRRREQ|RRStatUnknown {
		t.Fatalf("station status %#x, want SGID, RRREQ and RRSTAT unknown (0x0f)", e.StationStatus)
	}
	if b := s.LLDPDU().EVB.Append(nil); b[len(b)-4] != 0x0f {
		t.Errorf("EVB TLV % x: byte 1 is not 0x0f", b)
	}
	s.Handle(bridgeFrame(t, BridgeRRCAP|BridgeRRCTR, 120))
	if r := <-changes; r.State != RelayGranted || r.Bridge.BridgeStatus&BridgeBGID != 0 {
		t.Fatalf("first change %+v", r)
	}
	s.Handle(bridgeFrame(t, BridgeBGID|BridgeRRCAP|BridgeRRCTR, 120))
	select {
	case r := <-changes:
		if r.State != RelayGranted || r.Bridge.BridgeStatus&BridgeBGID == 0 {
			t.Errorf("change %+v, want granted with BGID", r)
		}
	case <-time.After(time.Second):
		t.Fatal("BGID set: no change reported")
	}
	s.Handle(bridgeFrame(t, BridgeBGID|BridgeRRCAP|BridgeRRCTR, 120))
	select {
	case r := <-changes:
		t.Fatalf("the same TLV again reported %+v", r)
	default:
	}
}
