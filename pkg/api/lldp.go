package api

import (
	"context"
	"net/http"
)

// LLDP is GET /v1/lldp: what the EVB station (802.1Qbg, the uplink's
// nearest-customer-bridge LLDP agent) knows: the bridge it follows, the
// EVB TLVs both sides send, the timers in use, and the LLDP, ECP and VDP
// counters. Field names are a contract, as everywhere in the API.
type LLDP struct {
	Uplink string `json:"uplink"`
	// Station is false when vswitchd runs no EVB station (--lldp-interval
	// 0) or it has not started yet (it waits for the uplink); the other
	// fields are then omitted.
	Station bool `json:"station"`
	// Relay is the reflective-relay state, as in Status.
	Relay *RelayStatus `json:"relay,omitempty"`
	// Peer is the EVB bridge the station follows; omitted while there is
	// none (none heard, its TTL ran out, or it said goodbye).
	Peer *LLDPPeer `json:"peer,omitempty"`
	// Local is what the station sends.
	Local *LLDPLocal `json:"local,omitempty"`
	// Timers are the ECP and VDP timers in use: negotiated with the
	// bridge, the local ones while there is none.
	Timers *EVBTimers `json:"timers,omitempty"`
	// Counters of the three protocols.
	LLDP *LLDPCounters `json:"lldp,omitempty"`
	ECP  *ECPCounters  `json:"ecp,omitempty"`
	VDP  *VDPCounters  `json:"vdp,omitempty"`
	// CDCP is the S-channel agent (802.1Qbg clause 42, the LLDP agent of
	// the nearest non-TPMR bridge address); omitted with --cdcp off or
	// while it has not started.
	CDCP *LLDPCDCP `json:"cdcp,omitempty"`
	// HoldDown is what the flap dampening did with the bridge's changes,
	// one entry per kind: relay (the reflective relay state, the peer,
	// its BGID), timers (the timers in use), and cdcp (the CDCP grants,
	// while the CDCP agent runs). Each kind applies at most five changes
	// at once, then one a second, the bridge's latest word winning.
	HoldDown []HoldDown `json:"hold_down,omitempty"`
}

// HoldDown counts one kind of the bridge's changes: changes seen,
// suppressed (never applied: overtaken by a later one within the hold, or
// undone), and whether it flaps now (changes are being held).
type HoldDown struct {
	Kind       string `json:"kind"`
	Changes    uint64 `json:"changes"`
	Suppressed uint64 `json:"suppressed"`
	Flapping   bool   `json:"flapping"`
}

// LLDPCDCP is what the CDCP agent counts: its LLDPDUs sent; received
// (every LLDPDU to 01:80:c2:00:00:03); bad (did not parse); and refused:
// tagged, foreign_peer (another bridge's CDCP TLV while the peer's TTL
// runs). The refused ones are also in UplinkStats.ControlRejected
// (cdcp_tagged, cdcp_foreign_peer). Mode is --cdcp (auto or on).
type LLDPCDCP struct {
	Mode        string `json:"mode"`
	Sent        uint64 `json:"sent"`
	Received    uint64 `json:"received"`
	Bad         uint64 `json:"bad"`
	Tagged      uint64 `json:"tagged"`
	ForeignPeer uint64 `json:"foreign_peer"`
	// Bridge is the CDCP bridge the agent follows and its last CDCP TLV
	// (omitted: none heard, its TTL ran out, or it said goodbye).
	Bridge *CDCPPeer `json:"bridge,omitempty"`
	// Local is the CDCP TLV vswitchd sends.
	Local *CDCPTLV `json:"local,omitempty"`
}

// CDCPPeer is the CDCP bridge's last LLDPDU to the nearest non-TPMR
// bridge address.
type CDCPPeer struct {
	// MAC is the source address of its LLDPDUs, ChassisID its chassis ID
	// as text (as LLDPPeer's).
	MAC       string `json:"mac"`
	ChassisID string `json:"chassis_id"`
	// TTL as sent, what is left of it now, and when the last LLDPDU came
	// (RFC 3339, UTC).
	TTL      int     `json:"ttl_seconds"`
	TTLLeft  int     `json:"ttl_left_seconds"`
	LastSeen string  `json:"last_seen"`
	TLV      CDCPTLV `json:"tlv"`
}

// CDCPTLV is a CDCP TLV (802.1Qbg-2012 D.2.13) decoded: the sender's role
// (bridge or station), whether it has an S-VLAN component (scomp), the
// S-channels it supports (chncap, the default one included) and its
// SCID/S-VID pairs (a bridge's: the S-channels it set up). Pairs is never
// null.
type CDCPTLV struct {
	Role   string     `json:"role"`
	SComp  bool       `json:"scomp"`
	ChnCap int        `json:"chncap"`
	Pairs  []SChannel `json:"pairs"`
}

// LLDPPeer is the bridge's last LLDPDU.
type LLDPPeer struct {
	// MAC is the source address of its LLDPDUs (the only address ECP
	// takes frames from).
	MAC string `json:"mac"`
	// ChassisID and PortID as text: a MAC address, an IP address, text,
	// or hex when not printable; their subtypes by name ("MAC address",
	// "interface name", ..., "reserved N").
	ChassisID        string `json:"chassis_id"`
	ChassisIDSubtype string `json:"chassis_id_subtype"`
	PortID           string `json:"port_id"`
	PortIDSubtype    string `json:"port_id_subtype"`
	// The optional text TLVs, when sent (escaped when not printable).
	SystemName        string `json:"system_name,omitempty"`
	SystemDescription string `json:"system_description,omitempty"`
	PortDescription   string `json:"port_description,omitempty"`
	// TTL as sent, what is left of it now, and when the last LLDPDU came
	// (RFC 3339, UTC).
	TTL      int    `json:"ttl_seconds"`
	TTLLeft  int    `json:"ttl_left_seconds"`
	LastSeen string `json:"last_seen"`
	// EVB is the bridge's EVB TLV.
	EVB *EVBTLV `json:"evb,omitempty"`
}

// EVBTLV is an EVB TLV (802.1Qbg-2012 D.2.12) decoded field by field.
type EVBTLV struct {
	// Raw is the five information bytes in hex.
	Raw string `json:"raw"`
	// BridgeStatus and StationStatus list the bits set: bgid, rrcap,
	// rrctr; sgid, rrreq. Never null.
	BridgeStatus  []string `json:"bridge_status"`
	StationStatus []string `json:"station_status"`
	// RRStat is the station's reflective relay status: no, yes, unknown
	// (3) or reserved (2).
	RRStat string `json:"rrstat"`
	// Mode: bridge, station, or "not supported" (0) / "reserved" (3).
	Mode string `json:"mode"`
	R    int    `json:"r"`
	RTE  int    `json:"rte"`
	RWD  int    `json:"rwd"`
	RKA  int    `json:"rka"`
	// ROLRWD and ROLRKA: the value is the one the sender took from the
	// other side (remote), not its own (local).
	ROLRWD bool `json:"rol_rwd"`
	ROLRKA bool `json:"rol_rka"`
}

// LLDPLocal is what the station sends.
type LLDPLocal struct {
	ChassisID       string `json:"chassis_id"`
	PortID          string `json:"port_id"`
	TTL             int    `json:"ttl_seconds"`
	IntervalSeconds int    `json:"interval_seconds"`
	EVB             EVBTLV `json:"evb"`
	// FollowRWD and FollowRKA: configured to use the bridge's value
	// (vswitchd --evb-rwd remote, --evb-rka remote).
	FollowRWD bool `json:"follow_bridge_rwd,omitempty"`
	FollowRKA bool `json:"follow_bridge_rka,omitempty"`
}

// EVBTimers are the timers in use, the exponents with the side each comes
// from (local, bridge, both) and what they amount to in microseconds.
type EVBTimers struct {
	R       int    `json:"r"`
	RTE     int    `json:"rte"`
	RWD     int    `json:"rwd"`
	RKA     int    `json:"rka"`
	RFrom   string `json:"r_from"`
	RTEFrom string `json:"rte_from"`
	RWDFrom string `json:"rwd_from"`
	RKAFrom string `json:"rka_from"`
	// ECPAckTimeout: ECP sends a request again after this (10 µs ×
	// 2^RTE), R times.
	ECPAckTimeoutUS int64 `json:"ecp_ack_timeout_us"`
	// ResourceWait is the bridge's resource wait delay (10 µs × 2^RWD);
	// ResponseWait how long the station waits for the bridge's answer
	// before the VSI fails (1.5 × ((1+2R) × ECPAckTimeout + ResourceWait)).
	ResourceWaitUS int64 `json:"resource_wait_us"`
	ResponseWaitUS int64 `json:"response_wait_us"`
	// KeepAlive: each VSI is refreshed this often (10 µs × 2^RKA);
	// BridgeKeepAliveTimeout: a bridge drops a VSI not refreshed for
	// this long (1.5 × ((1+2R) × ECPAckTimeout + KeepAlive)).
	KeepAliveUS              int64 `json:"keepalive_us"`
	BridgeKeepAliveTimeoutUS int64 `json:"bridge_keepalive_timeout_us"`
	// Clamped lists the parameters whose negotiated value lay outside
	// vswitchd's sanity bounds (RTE at most 18, an ECP timer of 2.62 s;
	// RKA at least 14, a keep-alive of 163.84 ms): the bound is in use
	// (in the fields above) instead. Omitted when none.
	Clamped []EVBTimerClamp `json:"clamped,omitempty"`
}

// EVBTimerClamp is one timer parameter held to a sanity bound.
type EVBTimerClamp struct {
	Param      string `json:"param"` // rte or rka
	Negotiated int    `json:"negotiated"`
	InUse      int    `json:"in_use"`
}

// LLDPCounters count the EVB station's LLDPDUs: sent; received (to the
// agent's address, and those of ignored); bad (did not parse); and
// refused: tagged, foreign_peer (another bridge's EVB TLV while the
// peer's TTL runs), foreign_shutdown (a shutdown LLDPDU not from the
// peer). The refused ones are also in UplinkStats.ControlRejected.
// Ignored counts the LLDPDUs to another agent's address that no agent of
// vswitchd takes: the nearest bridge's (01:80:c2:00:00:0e), and the
// nearest non-TPMR bridge's (01:80:c2:00:00:03) with --cdcp off (with
// CDCP on they are the CDCP agent's: LLDP.CDCP).
type LLDPCounters struct {
	Sent            uint64 `json:"sent"`
	Received        uint64 `json:"received"`
	Bad             uint64 `json:"bad"`
	Tagged          uint64 `json:"tagged"`
	ForeignPeer     uint64 `json:"foreign_peer"`
	ForeignShutdown uint64 `json:"foreign_shutdown"`
	Ignored         uint64 `json:"ignored"`
}

// ECPCounters count ECP (802.1Qbg clause 43) traffic. Our requests: sent
// (first transmissions), retransmitted, acked, timed_out (not acknowledged
// after R retries). The bridge's requests: received, duplicates (a
// retransmission: acknowledged again, not passed up). Refused: bad (did
// not parse, or not VDP), tagged, foreign_peer (not from the bridge).
type ECPCounters struct {
	Sent          uint64 `json:"sent"`
	Retransmitted uint64 `json:"retransmitted"`
	Acked         uint64 `json:"acked"`
	TimedOut      uint64 `json:"timed_out"`
	Received      uint64 `json:"received"`
	Duplicates    uint64 `json:"duplicates"`
	Bad           uint64 `json:"bad"`
	Tagged        uint64 `json:"tagged"`
	ForeignPeer   uint64 `json:"foreign_peer"`
}

// VDPCounters count VDP (802.1Qbg clause 41) requests and answers.
// Requests: associations and preassociations (first requests and re-sends
// of unanswered ones), keepalives (refreshes of answered ones),
// deassociations. Answers: acknowledged, refused (an error status),
// timeouts (no answer within the response wait: the VSI failed),
// bridge_deassociations (the bridge dropped a VSI), unacknowledged (ECP
// could not deliver the PDU), unsolicited (an answer while the VSI had no
// request out: ignored). VSIs counts the registered VSIs per state,
// every state present.
type VDPCounters struct {
	Associations         uint64         `json:"associations"`
	PreAssociations      uint64         `json:"preassociations"`
	KeepAlives           uint64         `json:"keepalives"`
	Deassociations       uint64         `json:"deassociations"`
	Acknowledged         uint64         `json:"acknowledged"`
	Refused              uint64         `json:"refused"`
	Timeouts             uint64         `json:"timeouts"`
	BridgeDeassociations uint64         `json:"bridge_deassociations"`
	Unacknowledged       uint64         `json:"unacknowledged"`
	VSIs                 map[string]int `json:"vsis"`
	Unsolicited          uint64         `json:"unsolicited"`
}

// LLDP is GET /v1/lldp.
func (c *Client) LLDP(ctx context.Context) (LLDP, error) {
	var v LLDP
	err := c.Do(ctx, http.MethodGet, "/v1/lldp", nil, &v)
	return v, err
}

func (s *Server) lldp(w http.ResponseWriter, r *http.Request) {
	v, err := s.svc.LLDP(r.Context())
	s.reply(w, r, http.StatusOK, v, err)
}
