package api_test

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/vswitch/vswitch/pkg/api"
)

// GET /v1/lldp round-trips every field through the client, under the
// contract's JSON names; other methods are refused.
func TestClientLLDP(t *testing.T) {
	fake, c, sock := setup(t)
	tlv := api.EVBTLV{Raw: "0305685434", BridgeStatus: []string{"rrcap", "rrctr"}, StationStatus: []string{"rrreq"}, RRStat: "yes", Mode: "bridge",
		R: 3, RTE: 8, RWD: 20, RKA: 20, ROLRKA: true}
	fake.LLDPV = api.LLDP{
		Uplink: "eth0", Station: true, Relay: &api.RelayStatus{State: "granted", Peer: "02:b7:1d:9e:00:01", Updated: "2025-01-02T03:04:05Z"},
		Peer: &api.LLDPPeer{MAC: "02:b7:1d:9e:00:01", ChassisID: "02:b7:1d:9e:00:01", ChassisIDSubtype: "MAC address", PortID: "swp1",
			PortIDSubtype: "interface name", SystemName: "leaf1", SystemDescription: "Comware", PortDescription: "to hv1",
			TTL: 120, TTLLeft: 97, LastSeen: "2025-01-02T03:04:05Z", EVB: &tlv},
		Local: &api.LLDPLocal{ChassisID: "52:54:00:aa:bb:cc", PortID: "52:54:00:aa:bb:cc", TTL: 121, IntervalSeconds: 30, EVB: tlv, FollowRKA: true},
		Timers: &api.EVBTimers{R: 3, RTE: 8, RWD: 20, RKA: 22, RFrom: "both", RTEFrom: "both", RWDFrom: "local", RKAFrom: "bridge",
			ECPAckTimeoutUS: 2560, ResourceWaitUS: 10485760, ResponseWaitUS: 15755520, KeepAliveUS: 41943040, BridgeKeepAliveTimeoutUS: 62941440},
		LLDP: &api.LLDPCounters{Sent: 1, Received: 2, Bad: 3, Tagged: 4, ForeignPeer: 5, ForeignShutdown: 6},
		ECP:  &api.ECPCounters{Sent: 1, Retransmitted: 2, Acked: 3, TimedOut: 4, Received: 5, Duplicates: 6, Bad: 7, Tagged: 8, ForeignPeer: 9},
		VDP: &api.VDPCounters{Associations: 1, PreAssociations: 2, KeepAlives: 3, Deassociations: 4, Acknowledged: 5, Refused: 6, Timeouts: 7,
			BridgeDeassociations: 8, Unacknowledged: 9, VSIs: map[string]int{"associated": 1, "failed": 0}, Unsolicited: 10},
	}
	got, err := c.LLDP(context.Background())
	if err != nil || !reflect.DeepEqual(got, fake.LLDPV) {
		t.Fatalf("LLDP = %+v, %v\nwant %+v", got, err, fake.LLDPV)
	}
	status, _, body := raw(t, sock, "GET", "/v1/lldp", "", nil)
	var m map[string]map[string]any
	if status != 200 {
		t.Fatalf("GET /v1/lldp: %d %s", status, body)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		t.Fatal(err)
	}
	delete(top, "uplink")
	delete(top, "station")
	b, _ := json.Marshal(top)
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for obj, keys := range map[string][]string{
		"peer":   {"mac", "chassis_id", "chassis_id_subtype", "port_id", "port_id_subtype", "system_name", "ttl_seconds", "ttl_left_seconds", "last_seen", "evb"},
		"local":  {"chassis_id", "port_id", "ttl_seconds", "interval_seconds", "evb", "follow_bridge_rka"},
		"timers": {"r", "rte", "rwd", "rka", "rka_from", "ecp_ack_timeout_us", "response_wait_us", "keepalive_us", "bridge_keepalive_timeout_us"},
		"ecp":    {"sent", "retransmitted", "acked", "timed_out", "received", "duplicates"},
		"vdp":    {"associations", "keepalives", "timeouts", "vsis", "unsolicited"},
		"lldp":   {"sent", "received", "bad", "tagged", "foreign_peer", "foreign_shutdown"},
	} {
		for _, k := range keys {
			if _, ok := m[obj][k]; !ok {
				t.Errorf("%s JSON lacks %q: %s", obj, k, body)
			}
		}
	}
	evb, _ := m["peer"]["evb"].(map[string]any)
	for _, k := range []string{"raw", "bridge_status", "station_status", "rrstat", "mode", "r", "rte", "rwd", "rka", "rol_rwd", "rol_rka"} {
		if _, ok := evb[k]; !ok {
			t.Errorf("EVB TLV JSON lacks %q: %v", k, evb)
		}
	}
	status, _, body = raw(t, sock, "POST", "/v1/lldp", "application/json", nil)
	wantAPIError(t, status, body, 405, api.CodeMethodNotAllowed, "use GET")
	if fake.Calls["LLDP"] != 2 {
		t.Errorf("Service.LLDP called %d times, want 2", fake.Calls["LLDP"])
	}
}
