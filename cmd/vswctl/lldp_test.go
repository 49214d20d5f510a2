package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/vswitch/vswitch/pkg/api"
)

func sampleLLDP() api.LLDP {
	bridge := api.EVBTLV{Raw: "0305895211", BridgeStatus: []string{"rrcap", "rrctr"}, StationStatus: []string{"rrreq"}, RRStat: "yes", Mode: "bridge",
		R: 4, RTE: 9, RWD: 18, RKA: 17, ROLRKA: true}
	local := api.EVBTLV{Raw: "0005682014", BridgeStatus: []string{}, StationStatus: []string{"rrreq"}, RRStat: "yes", Mode: "station",
		R: 3, RTE: 8, RWD: 0, ROLRWD: true, RKA: 14}
	return api.LLDP{Uplink: "eth0", Station: true,
		Relay: &api.RelayStatus{State: "granted", Peer: "02:b7:1d:9e:00:01", Updated: "2025-01-02T03:04:05Z"},
		Peer: &api.LLDPPeer{MAC: "02:b7:1d:9e:00:01", ChassisID: "02:b7:1d:9e:00:01", ChassisIDSubtype: "MAC address", PortID: "GE1/0/7",
			PortIDSubtype: "interface name", SystemName: "leaf1", TTL: 120, TTLLeft: 97, LastSeen: "2025-01-02T03:04:05Z", EVB: &bridge},
		Local:  &api.LLDPLocal{ChassisID: "52:54:00:aa:bb:cc", PortID: "52:54:00:aa:bb:cc", TTL: 121, IntervalSeconds: 30, EVB: local, FollowRWD: true},
		Timers: &api.EVBTimers{R: 4, RTE: 9, RWD: 18, RKA: 17, RFrom: "bridge", RTEFrom: "bridge", RWDFrom: "bridge", RKAFrom: "bridge", ECPAckTimeoutUS: 5120, ResourceWaitUS: 2621440, ResponseWaitUS: 4001280, KeepAliveUS: 1310720, BridgeKeepAliveTimeoutUS: 2035200},
		LLDP:   &api.LLDPCounters{Sent: 12, Received: 10, Ignored: 2},
		CDCP: &api.LLDPCDCP{Mode: "auto", Sent: 7, Received: 6, Bad: 1, Tagged: 2, ForeignPeer: 3,
			Bridge: &api.CDCPPeer{MAC: "02:b7:1d:9e:00:01", ChassisID: "02:b7:1d:9e:00:01", TTL: 120, TTLLeft: 90, LastSeen: "2025-01-02T03:04:05Z",
				TLV: api.CDCPTLV{Role: "bridge", SComp: true, ChnCap: 8, Pairs: []api.SChannel{{SCID: 1, SVID: 1}, {SCID: 2, SVID: 20}, {SCID: 3, SVID: 10}}}},
			Local: &api.CDCPTLV{Role: "station", SComp: true, ChnCap: 167, Pairs: []api.SChannel{{SCID: 1, SVID: 1}, {SCID: 2, SVID: 10}, {SCID: 3, SVID: 20}}}},
		HoldDown: []api.HoldDown{{Kind: "relay", Changes: 1000, Suppressed: 992, Flapping: true}, {Kind: "timers", Changes: 2},
			{Kind: "cdcp", Changes: 3, Suppressed: 1}},
		ECP: &api.ECPCounters{Sent: 5, Acked: 5, Retransmitted: 2, TimedOut: 1, Duplicates: 3},
		VDP: &api.VDPCounters{Associations: 1, KeepAlives: 4, Acknowledged: 5, Timeouts: 1, VSIs: map[string]int{"associated": 2, "failed": 1, "waiting": 0}},
	}
}

// vswctl lldp (and its alias neighbors) shows the bridge, both TLVs, the
// timers with their sources and meaning, and the counters; -o json is the
// API's answer unchanged.
func TestLLDPCommand(t *testing.T) {
	fake, sock := daemon(t)
	fake.LLDPV = sampleLLDP()
	for _, cmd := range []string{"lldp", "neighbors"} {
		r := vswctl(t, sock, cmd)
		r.expect(t, 0, "")
		for _, want := range []string{
			"reflective relay:", "granted by 02:b7:1d:9e:00:01",
			"chassis 02:b7:1d:9e:00:01 (MAC address), port GE1/0/7 (interface name), from 02:b7:1d:9e:00:01",
			"system name:", "leaf1", "120s, 97s left, last seen 2025-01-02T03:04:05Z",
			"EVB TLV  BRIDGE STATUS", "bridge   rrcap,rrctr    rrreq           yes     bridge   4  9    18       17 (rol)  0305895211",
			"local    -              rrreq           yes     station  3  8    0 (rol)  14        0005682014",
			"TIMER  IN USE  FROM    LOCAL   BRIDGE  MEANS",
			"R      4       bridge  3       4       5 tries at most",
			"RTE    9       bridge  8       9       ECP ack timeout 5.12ms",
			"RWD    18      bridge  remote  18      resource wait 2.621s, response wait 4.001s",
			"RKA    17      bridge  14      17      keep-alive 1.311s (the bridge drops a VSI after 2.035s)",
			"sent 12, received 10, bad 0", "foreign shutdown 0, ignored 2",
			"cdcp:", "sent 7, received 6, bad 1, tagged 2, foreign peer 3",
			"cdcp bridge:  chassis 02:b7:1d:9e:00:01, from 02:b7:1d:9e:00:01, ttl 120s, 90s left, last seen 2025-01-02T03:04:05Z",
			"CDCP TLV  ROLE     SCOMP  CHNCAP  PAIRS (SCID/S-VID)",
			"bridge    bridge   yes    8       1/1 2/20 3/10",
			"local     station  yes    167     1/1 2/10 3/20",
			"hold-down:", "relay 1000 changes, 992 suppressed (flapping: at most one a second); timers 2 changes, 0 suppressed; cdcp 3 changes, 1 suppressed",
			"sent 5, acked 5, retransmitted 2, timed out 1, received 0, duplicates 3",
			"associations 1, preassociations 0, keep-alives 4", "timeouts 1",
			"vsis:", "associated 2, failed 1",
		} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("vswctl %s lacks %q:\n%s", cmd, want, r.stdout)
			}
		}
	}
	r := vswctl(t, sock, "-o", "json", "lldp")
	r.expect(t, 0, "")
	var got api.LLDP
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || got.Timers == nil || got.Timers.RKA != 17 || got.Peer.SystemName != "leaf1" {
		t.Errorf("-o json: %v %+v\n%s", err, got, r.stdout)
	}
	for _, k := range []string{`"ttl_left_seconds": 97`, `"rka_from": "bridge"`, `"timed_out": 1`, `"follow_bridge_rwd": true`, `"ignored": 2`, `"cdcp": {`, `"hold_down": [`, `"suppressed": 992`, `"role": "bridge"`, `"scomp": true`} {
		if !strings.Contains(r.stdout, k) {
			t.Errorf("-o json lacks %s", k)
		}
	}
	vswctl(t, sock, "lldp", "eth0").expect(t, 2, "lldp takes no arguments")

	// No peer, then no station.
	l := sampleLLDP()
	l.Peer, l.CDCP.Bridge = nil, nil
	fake.LLDPV = l
	r = vswctl(t, sock, "lldp")
	if !strings.Contains(r.stdout, "cdcp bridge:  none heard (or its TTL ran out; cdcp auto)") {
		t.Errorf("without a CDCP bridge:\n%s", r.stdout)
	}
	if !strings.Contains(r.stdout, "none heard") || strings.Contains(r.stdout, "\nbridge   ") {
		t.Errorf("without a peer:\n%s", r.stdout)
	}
	// Timers held to vswitchd's sanity bounds say so.
	l = sampleLLDP()
	l.Timers.RTE, l.Timers.ECPAckTimeoutUS = 18, 2621440
	l.Timers.Clamped = []api.EVBTimerClamp{{Param: "rte", Negotiated: 31, InUse: 18}}
	fake.LLDPV = l
	r = vswctl(t, sock, "lldp")
	if !strings.Contains(r.stdout, "ECP ack timeout 2.621s; clamped: 31 negotiated, out of vswitchd's bounds") ||
		strings.Contains(r.stdout, "drops a VSI after 2.035s; clamped") {
		t.Errorf("a clamped RTE:\n%s", r.stdout)
	}
	r = vswctl(t, sock, "-o", "json", "lldp")
	if !strings.Contains(r.stdout, `"clamped": [`) || !strings.Contains(r.stdout, `"negotiated": 31`) {
		t.Errorf("-o json lacks the clamp:\n%s", r.stdout)
	}
	fake.LLDPV = api.LLDP{Uplink: "eth0"}
	r = vswctl(t, sock, "lldp")
	r.expect(t, 0, "")
	if !strings.Contains(r.stdout, "EVB station:  off") || strings.Contains(r.stdout, "TIMER") {
		t.Errorf("with the station off:\n%s", r.stdout)
	}
}
