package api

import (
	"context"
	"errors"

	"github.com/vswitch/vswitch/pkg/port"
)

// Port is the JSON port object; field names are a contract (DESIGN.md).
type Port struct {
	Name       string            `json:"name"`
	VLAN       int               `json:"vlan"`
	Trunk      []int             `json:"trunk"`
	NativeVLAN int               `json:"native_vlan"`
	SVID       int               `json:"svid"`
	PCP        int               `json:"pcp"`
	MACs       []string          `json:"macs"`
	Flood      bool              `json:"flood_unknown,omitempty"`
	Owner      string            `json:"owner,omitempty"` // who added it (the libvirt hook: the domain's UUID); omitted: nobody said
	State      string            `json:"state"`           // up|down|absent|waiting (for a VLAN from the bridge)
	RxPackets  uint64            `json:"rx_packets"`
	RxBytes    uint64            `json:"rx_bytes"`
	TxPackets  uint64            `json:"tx_packets"`
	TxBytes    uint64            `json:"tx_bytes"`
	Drops      map[string]uint64 `json:"drops"`
	// MaxMACs is the port's own learned-MAC limit; omitted: the daemon's
	// default (Status.FDB.MaxMACsPerPort) applies. 0: it learns none.
	MaxMACs *int `json:"max_macs,omitempty"`
	// LearnedMACs is how many MACs the port has in the FDB now.
	LearnedMACs int `json:"learned_macs"`
	// MACMoves counts learned MACs the port took over from another port.
	MACMoves uint64 `json:"mac_moves"`
	// The VM's identity to the adjacent bridge (VDP), omitted when unset:
	// VSI type, type version, manager ("": vswitchd's own) and instance ID
	// (the VSIID; "": derived per MAC). See PortSpec.
	VSIType        int    `json:"vsi_type,omitempty"`
	VSITypeVersion int    `json:"vsi_type_version,omitempty"`
	VSIManager     string `json:"vsi_manager,omitempty"`
	InstanceID     string `json:"instance_id,omitempty"`
	// Migration is "incoming" while the VM migrating here has not run yet
	// (its VSIs pre-associated), "outgoing" once it has left (its VSIs
	// de-associated); omitted otherwise.
	Migration string `json:"migration,omitempty"`
	// Backend holds counters only the port's backend keeps (afpacket:
	// gso_frames, gso_segments, gso_dropped, checksums_fixed,
	// checksums_unfixed, ring_freezes; afxdp: xsk_rx_dropped and the
	// other xsk_* counters), summed over the port's queues and kept
	// across detach. Names are stable snake_case; which appear depends on
	// the backend (see pkg/afpacket and pkg/afxdp). Omitted when the
	// port's queues never reported any.
	Backend map[string]uint64 `json:"backend,omitempty"`
	// Problem says what is wrong with the port's stored configuration,
	// which only del-port or add-port/set-port mends: its record in the
	// state file breaks the port rules or does not decode (the other
	// fields are then zero), or the datapath refused it at start. Its
	// meaning is unchanged since it was introduced (scripts may delete
	// ports that have one); StateReason is the wider why.
	Problem string `json:"problem,omitempty"`
	// StateReason is the one reason a port cannot forward now, whatever
	// it is: Problem's; its S-channel is not granted by the adjacent
	// bridge (CDCP: state "down"); its VLAN is the bridge's and VDP has
	// none for it yet (state "waiting") or the bridge's answer was
	// unusable (the bridge assigned no usable VLAN, refused the VSI, ...:
	// "down"). The first of these that applies; empty for every port that
	// can forward. Reason reads it from any daemon.
	StateReason string `json:"state_reason,omitempty"`
	// VLANFromBridge: the access port's VLAN is assigned by the adjacent
	// bridge over VDP ("vlan" stays 0, as configured). AssignedVLAN is the
	// VID it assigned and the port forwards on (omitted while none: the
	// port is "waiting", or "down" when the bridge's answer was unusable,
	// and Problem says why).
	VLANFromBridge bool `json:"vlan_from_bridge,omitempty"`
	AssignedVLAN   int  `json:"assigned_vlan,omitempty"`
	// VSIGroup is the VSIs' group ID (VDP filter formats 3 and 4);
	// omitted: none.
	VSIGroup int64 `json:"vsi_group,omitempty"`
	// VDPError says why VDP registers no VSI for the port although it
	// would (it has MACs, a group or a VLAN from the bridge): its filters
	// do not fit one VSI TLV (a trunk of many VLANs). The port forwards
	// all the same. Omitted otherwise.
	VDPError string `json:"vdp_error,omitempty"`
}

// PortSpec is the body of POST /v1/ports (Name required) and PATCH
// /v1/ports/{name} (nil fields are left unchanged).
type PortSpec struct {
	Name       string    `json:"name,omitempty"`
	VLAN       *int      `json:"vlan,omitempty"`
	Trunk      *string   `json:"trunk,omitempty"` // VID set "10,20-30"; "" clears
	NativeVLAN *int      `json:"native_vlan,omitempty"`
	SVID       *int      `json:"svid,omitempty"`
	PCP        *int      `json:"pcp,omitempty"`
	MACs       *[]string `json:"macs,omitempty"`
	Flood      *bool     `json:"flood_unknown,omitempty"`
	// Owner records who adds the port ("" clears it): up to 128
	// printable ASCII characters, no spaces. The libvirt hook sets the
	// domain's UUID and at the domain's stop removes only the ports it
	// owns.
	Owner *string `json:"owner,omitempty"`
	// MaxMACs sets the port's learned-MAC limit (0 to
	// port.MaxLearnedMACs; 0: learn none); MaxMACsDefault puts the port
	// back on the daemon's default.
	MaxMACs *int `json:"max_macs,omitempty"`
	// The VM's identity to the adjacent bridge (802.1Qbg VDP): VSI type
	// 0-16777215 and type version 0-255 (the bridge's policy for the VM),
	// VSI manager (a number 0-255, libvirt's managerid, or a name of 2-16
	// characters; "" clears it: vswitchd's own) and instance ID (a UUID,
	// the VSIID; "" clears it: one is derived per MAC, from the owner's
	// UUID and the MAC when the owner is a UUID).
	VSIType        *int    `json:"vsi_type,omitempty"`
	VSITypeVersion *int    `json:"vsi_type_version,omitempty"`
	VSIManager     *string `json:"vsi_manager,omitempty"`
	InstanceID     *string `json:"instance_id,omitempty"`
	// Migration is the port's part in a live migration: "incoming" (only
	// when the port is added: its VSIs are pre-associated, and associated
	// with the M bit when the VM sends its first frame), "outgoing" (the
	// VM has left: its VSIs are de-associated with the S bit) or ""
	// (none: an incoming port's VSIs are associated at once).
	Migration *string `json:"migration,omitempty"`
	// VLANFromBridge true makes the port an access port whose VLAN the
	// adjacent bridge assigns over VDP (its VSIs ask with VID 0; it
	// forwards nothing until the bridge answered): "vlan", if given with
	// it, must be 0, and a trunk goes. false goes back to needing a vlan
	// or a trunk, which setting either does too. A plain "vlan":0 keeps
	// meaning "no access VLAN" (with a trunk), as it always did.
	VLANFromBridge *bool `json:"vlan_from_bridge,omitempty"`
	// VSIGroup sets the VSIs' group ID (1-4294967295; 0 clears it): their
	// filters carry it (formats 3 and 4) and the bridge maps it to the
	// VID; the bridge must support group IDs (BGID).
	VSIGroup *int64 `json:"vsi_group,omitempty"`
}

// MaxMACsDefault as PortSpec.MaxMACs: the port follows the daemon's
// default learned-MAC limit again.
const MaxMACsDefault = -1

// Status is GET /v1/status.
type Status struct {
	Version string `json:"version"`
	// Commit and BuildDate identify vswitchd's build (internal/version:
	// the full commit hash, and the build's date in RFC 3339, UTC);
	// GoVersion is its toolchain. Empty when unknown.
	Commit         string `json:"commit,omitempty"`
	BuildDate      string `json:"build_date,omitempty"`
	GoVersion      string `json:"go_version,omitempty"`
	Uplink         string `json:"uplink"`
	UplinkState    string `json:"uplink_state"`
	Mode           string `json:"mode"`            // vepa|veb (effective)
	ConfiguredMode string `json:"configured_mode"` // what the operator asked for
	Datapath       string `json:"datapath"`        // afpacket|afxdp (the uplink's backend)
	DatapathReason string `json:"datapath_reason,omitempty"`
	// PortDatapath is the VM ports' backend (afpacket|afxdp).
	PortDatapath string `json:"port_datapath,omitempty"`
	// DatapathPriority is the scheduling of the datapath threads.
	DatapathPriority string `json:"datapath_priority,omitempty"`
	Ports            int    `json:"ports"`
	PortsUp          int    `json:"ports_up"`
	UptimeSeconds    int64  `json:"uptime_seconds"`
	StatePath        string `json:"state_path"`
	// PortsUnusable counts the port records in the state file the daemon
	// cannot use (not in Ports; list-ports shows each with its problem).
	PortsUnusable int `json:"ports_unusable,omitempty"`
	// StateNotes are what loading the state file found and coped with
	// (a rewritten meta page, a file without data), one line each.
	StateNotes []string `json:"state_notes,omitempty"`
	// Relay is the reflective-relay negotiation state (filled by pkg/vepa).
	Relay *RelayStatus `json:"relay,omitempty"`
	// FDB is the forwarding database's occupancy and limits.
	FDB *FDBStatus `json:"fdb,omitempty"`
	// Libvirt is the connection to libvirtd (vswitchd --libvirt; omitted
	// without it).
	Libvirt *LibvirtStatus `json:"libvirt,omitempty"`
	// CDCP is the S-channel negotiation with the adjacent bridge
	// (vswitchd --cdcp; omitted when off).
	CDCP *CDCPStatus `json:"cdcp,omitempty"`

	// DatapathPriorityEffective is the scheduling the datapath threads
	// got: DatapathPriority, or "normal" when it could not be set
	// (DatapathPriorityError says why, e.g. no CAP_SYS_NICE).
	DatapathPriorityEffective string `json:"datapath_priority_effective,omitempty"`
	DatapathPriorityError     string `json:"datapath_priority_error,omitempty"`
	// BusyPoll is the receiving queues' busy poll (vswitchd --busy-poll;
	// omitted when off, and with CPU pollers, where no queue waits in the
	// netpoller).
	BusyPoll *BusyPollStatus `json:"busy_poll,omitempty"`
	// CPUPoll is the CPU pollers' work (vswitchd --cpu-poll; omitted when
	// off).
	CPUPoll *CPUPollStatus `json:"cpu_poll,omitempty"`
}

// CPUPollStatus counts the work of the CPU pollers: one per CPU, which
// sleeps on that CPU and receives the queues whose frames arrive there
// while they come far apart. The counters are read one by one.
type CPUPollStatus struct {
	Pollers int `json:"pollers"`
	// Wakeups counts the times a poller woke because a queue had frames
	// (not its periodic timeout); Runs the batches it received (a run may
	// find nothing).
	Wakeups uint64 `json:"wakeups"`
	Runs    uint64 `json:"runs"`
	// Moves counts ports whose queue moved to another CPU's poller,
	// following the VM's thread.
	Moves uint64 `json:"moves"`
	// Handoffs counts queues handed to a thread of their own (a stream
	// began, or the queue reported an error).
	Handoffs uint64 `json:"handoffs"`
	// Parks counts the times a poller that saw nothing for 100 ms
	// parked in the Go netpoller (it then holds no thread, and the next
	// frame wakes it from wherever), and again at each 500 ms sweep while
	// parked.
	Parks uint64 `json:"parks"`
	// PinError says why a poller could not be moved to its CPU.
	PinError string `json:"pin_error,omitempty"`
}

// BusyPollStatus counts the busy poll's spins: after a queue found no more
// frames, every queue is polled for up to BudgetMicros before the queue
// sleeps; a spin that saw frames come (Hits) spared a thread's wake-up.
// The counters are read one by one, not at one instant.
type BusyPollStatus struct {
	BudgetMicros int64 `json:"budget_us"`
	// Spins = Hits + Misses: spins made. Hits ended because a queue got
	// frames meanwhile, Misses ran out.
	Spins  uint64 `json:"spins"`
	Hits   uint64 `json:"hits"`
	Misses uint64 `json:"misses"`
	// Ready counts the times no spin was needed: a queue had frames
	// already (a frame the switch's own transmit reflected, say).
	Ready uint64 `json:"ready"`
	// Skipped counts the spins not made because the busy poll had used
	// its share of a CPU (a tenth).
	Skipped uint64 `json:"skipped"`
	// BackedOff counts the spins not made because a spin had just missed
	// what came right after it (it did not pay, and may have held up a VM
	// thread on the spinning CPU).
	BackedOff uint64 `json:"backed_off"`
	// SpunSeconds is the wall time spent spinning.
	SpunSeconds float64 `json:"spun_seconds"`
}

// CDCPStatus is what the station's CDCP agent (802.1Qbg clause 42) knows:
// the S-channels it asks for and the ones the bridge granted.
type CDCPStatus struct {
	Mode string `json:"mode"` // auto|on
	// Bridge is the chassis ID of the bridge whose CDCP answer counts
	// ("": none heard, or its TTL ran out).
	Bridge string `json:"bridge,omitempty"`
	// ChnCap is the number of S-channels the bridge supports.
	ChnCap int `json:"chncap,omitempty"`
	// Wanted are the SCID/S-VID pairs the station asks for (SCID 1, S-VID
	// 1 is the default S-channel), Granted the bridge's answer.
	Wanted  []SChannel `json:"wanted"`
	Granted []SChannel `json:"granted"`
	// Channels is each S-channel the ports use, by S-VID (omitted: none).
	Channels []CDCPChannel `json:"channels,omitempty"`
}

// CDCPChannel is one S-channel the ports use, as CDCP left it. The
// bridge's answer decides (802.1Qbg clause 42): the S-channel is granted
// when the answer holds its S-VID, under the SCID asked for or another
// one (a bridge with static S-channels numbers them its own way); SCID is
// then the bridge's.
type CDCPChannel struct {
	SVID int `json:"svid"`
	// SCID is the bridge's SCID for the S-VID once it granted it, else
	// AskedSCID, the one the station asks for (0: not asked, the TLV is
	// full).
	SCID      int `json:"scid"`
	AskedSCID int `json:"asked_scid"`
	// Granted: the bridge's answer holds the S-VID.
	Granted bool `json:"granted"`
	// Reason is why the S-channel carries nothing ("": it may carry
	// traffic: granted, or static while no CDCP bridge answers with
	// --cdcp auto); its ports are down with it, this as their
	// state_reason.
	Reason string `json:"reason,omitempty"`
}

// SChannel is one SCID/S-VID pair of CDCP.
type SChannel struct {
	SCID int `json:"scid"`
	SVID int `json:"svid"`
}

// LibvirtStatus reports vswitchd's connection to libvirtd, whose domain
// events it follows with --libvirt (internal/libvirt/events).
type LibvirtStatus struct {
	URI   string `json:"uri"`
	State string `json:"state"` // connecting|connected|disconnected (retried with back-off)
	// Since is when State last changed (RFC 3339, UTC).
	Since string `json:"since,omitempty"`
	// Error is why it is disconnected, or the last sync that failed
	// while connected (cleared at each connection).
	Error string `json:"error,omitempty"`
	// Events counts the domain events handled since vswitchd started.
	Events uint64 `json:"events"`
	// Reconciled is when the ports were last reconciled with the running
	// domains (at each connection; RFC 3339, UTC), and Domains how many
	// domains ran then.
	Reconciled string `json:"reconciled,omitempty"`
	Domains    int    `json:"domains"`
	// Reconciles counts the reconciles since vswitchd started, one per
	// connection: more than one means libvirtd restarted or the
	// connection was lost and made again.
	Reconciles uint64 `json:"reconciles"`
}

// FDBStatus is the learned part of the forwarding database and its
// limits (vswitchd --max-macs-per-port, --max-macs-per-vlan, --fdb-max).
type FDBStatus struct {
	Learned        int `json:"learned"`
	MaxMACsPerPort int `json:"max_macs_per_port"` // for ports without max_macs
	MaxMACsPerVLAN int `json:"max_macs_per_vlan"`
	Max            int `json:"max"`
}

// RelayStatus reports the EVB TLV negotiation.
type RelayStatus struct {
	State   string `json:"state"` // unknown|granted|refused
	Peer    string `json:"peer,omitempty"`
	Updated string `json:"updated,omitempty"`
}

// FDBEntry is one row of GET /v1/fdb.
type FDBEntry struct {
	VLAN int `json:"vlan"`
	// SVID is the S-channel of the entry's port (omitted: none): the same
	// MAC and C-VID may be learned once per S-channel.
	SVID   int    `json:"svid,omitempty"`
	MAC    string `json:"mac"`
	Port   string `json:"port"`
	Static bool   `json:"static"`
	AgeSec int    `json:"age_seconds"`
}

// Stats is GET /v1/stats.
type Stats struct {
	Ports  []Port            `json:"ports"`
	Uplink UplinkStats       `json:"uplink"`
	Drops  map[string]uint64 `json:"drops"` // totals per reason
}

// UplinkStats are counters of the uplink.
type UplinkStats struct {
	Name      string            `json:"name"`
	RxPackets uint64            `json:"rx_packets"`
	RxBytes   uint64            `json:"rx_bytes"`
	TxPackets uint64            `json:"tx_packets"`
	TxBytes   uint64            `json:"tx_bytes"`
	Drops     map[string]uint64 `json:"drops"`
	Control   uint64            `json:"control_frames"`
	// ControlRejected counts the LLDP and ECP frames the control plane
	// refused, by protocol and reason: lldp_tagged, lldp_foreign_peer,
	// lldp_foreign_shutdown, ecp_tagged, ecp_foreign_peer (see README,
	// "Reflective relay"). Omitted when the EVB station is off.
	ControlRejected map[string]uint64 `json:"control_rejected,omitempty"`
	// Backend holds counters only the uplink's backend keeps, summed
	// over the uplink's own queues (receive workers and the control
	// plane's; what the ports' transmit queues count is in each Port's
	// Backend). As Port.Backend.
	Backend map[string]uint64 `json:"backend,omitempty"`
}

// VSI is one row of GET /v1/vsis (VDP); filled by pkg/vepa.
type VSI struct {
	Port string `json:"port"`
	UUID string `json:"uuid"`
	// State: waiting (no EVB bridge), preassociating, preassociated (a VM
	// migrating in), associating, associated, failed (the bridge refused:
	// Reason says why).
	State string `json:"state"`
	// MgrID is the VSI manager as the port names it: a number 0-255
	// (libvirt's managerid) or a name ("vswitchd" by default).
	MgrID   string `json:"mgr_id,omitempty"`
	TypeID  int    `json:"type_id"`
	TypeVer int    `json:"type_version"`
	VLAN    int    `json:"vlan"`
	MAC     string `json:"mac,omitempty"`
	// Reason is why the VSI is not associated as asked: the bridge's
	// reason for a refusal ("insufficient resources", ...), or what made
	// the station ask again ("no answer to the keep-alive", ...).
	Reason string `json:"reason,omitempty"`
	// Migrated: the VSI's VM migrated here (its associations carry the
	// M bit).
	Migrated bool `json:"migrated,omitempty"`
	// SVID is the S-channel the VSI is registered on (its VDP frames
	// carry that S-tag); omitted: the untagged link.
	SVID int `json:"svid,omitempty"`
	// FilterFormat is the VSI's filter format: VID, MAC+VID, group+VID or
	// group+MAC+VID.
	FilterFormat string `json:"filter_format,omitempty"`
	// Group is the filters' group ID (omitted: none).
	Group int64 `json:"group,omitempty"`
	// VLANs lists the VID of every filter entry when there are several
	// (a trunk port: one per allowed VID); VLAN is the first.
	VLANs []int `json:"vlans,omitempty"`
	// AssignedVLAN is the VID the bridge answered with where the request
	// asked for one (VLAN 0) or named a group; omitted until then.
	AssignedVLAN int `json:"assigned_vlan,omitempty"`
}

// Error is the JSON error body of every 4xx/5xx answer.
type Error struct {
	Message string `json:"error"`
	Code    string `json:"code"`
}

// Error codes (the "code" field).
const (
	CodeInvalidVLAN = "invalid_vlan"
	CodeInvalidMAC  = "invalid_mac"
	CodeInvalidPCP  = "invalid_pcp"
	CodeInvalidName = "invalid_name"
	// CodeInvalidMaxMACs: the learned-MAC limit (max_macs) is out of range.
	CodeInvalidMaxMACs = "invalid_max_macs"
	// CodeTooManyEntries: the list asked for is longer than the API
	// answers with (MaxFDBEntries); ask for one VLAN's.
	CodeTooManyEntries = "too_many_entries"
	CodeInvalidBody    = "invalid_request"
	CodeNotFound       = "not_found"
	CodeAlreadyExists  = "already_exists"
	CodeInternal       = "internal"
	// CodeBadRecord: the port's record in the state file is unusable (the
	// message says how to repair it); a server-side error.
	CodeBadRecord = "bad_record"
	// CodeInvalidVSI: a VSI type, type version, manager or instance ID
	// that VDP cannot carry.
	CodeInvalidVSI = "invalid_vsi"
	// CodeStarting: vswitchd is starting and serves no request yet: it
	// waits for its uplink to appear (vswitchd --uplink-wait); the message
	// says which and for how long. HTTP 503: try again once it runs.
	CodeStarting = "starting"
)

// ServiceError carries an API error code; services return it (wrapped or
// not) so handlers can map it to a status and a code.
type ServiceError struct {
	Code string
	Msg  string
}

func (e *ServiceError) Error() string { return e.Msg }

// Errorf-like constructor.
func NewError(code, msg string) error { return &ServiceError{Code: code, Msg: msg} }

// CodeOf returns the code of err: a *ServiceError's own code; for a
// *port.Error the code of its field (invalid_name, invalid_vlan for the
// VLAN, trunk, native VLAN and S-VLAN, invalid_pcp, invalid_mac for a MAC
// or too many of them, invalid_max_macs, invalid_vsi for the VSI identity,
// invalid_request for the migration); for
// port.ErrNotFound and port.ErrExists not_found and already_exists (all
// found through wrapping); CodeInternal for anything else.
func CodeOf(err error) string {
	var se *ServiceError
	if errors.As(err, &se) {
		return se.Code
	}
	var pe *port.Error
	switch {
	case errors.As(err, &pe):
		return fieldCode(pe.Field)
	case errors.Is(err, port.ErrNotFound):
		return CodeNotFound
	case errors.Is(err, port.ErrExists):
		return CodeAlreadyExists
	}
	return CodeInternal
}

// fieldCode is the error code of a rule about field f.
func fieldCode(f port.Field) string {
	switch f {
	case port.FieldName:
		return CodeInvalidName
	case port.FieldPCP:
		return CodeInvalidPCP
	case port.FieldMAC:
		return CodeInvalidMAC
	case port.FieldMaxMACs:
		return CodeInvalidMaxMACs
	case port.FieldVSIType, port.FieldVSITypeVersion, port.FieldVSIManager, port.FieldInstanceID, port.FieldVSIGroup, port.FieldVSIFilters:
		return CodeInvalidVSI
	case port.FieldMigration:
		return CodeInvalidBody
	}
	return CodeInvalidVLAN // VLAN, trunk, native VLAN, S-VLAN
}

// Service is what the daemon implements behind the HTTP API.
type Service interface {
	Status(ctx context.Context) (Status, error)
	ListPorts(ctx context.Context) ([]Port, error)
	GetPort(ctx context.Context, name string) (Port, error)
	AddPort(ctx context.Context, spec PortSpec) (Port, error)
	UpdatePort(ctx context.Context, name string, spec PortSpec) (Port, error)
	DeletePort(ctx context.Context, name string) error
	FDB(ctx context.Context, vlan int) ([]FDBEntry, error) // vlan 0 = all
	Stats(ctx context.Context) (Stats, error)
	VSIs(ctx context.Context) ([]VSI, error)
	LLDP(ctx context.Context) (LLDP, error)
}

// Error codes of GET /v1/capture.
const (
	// CodeTooManyCaptures: vswitchd runs as many captures as it allows
	// (HTTP 429); the message names them.
	CodeTooManyCaptures = "too_many_captures"
	// CodeNotSupported: the server cannot do what was asked (HTTP 501).
	CodeNotSupported = "not_supported"
	// CodeForbidden: the client may not do this (HTTP 403): capturing
	// needs root or CAP_NET_RAW.
	CodeForbidden = "forbidden"
)

// Reason is why the port cannot forward: StateReason, or Problem from a
// daemon older than StateReason.
func (p Port) Reason() string {
	if p.StateReason != "" {
		return p.StateReason
	}
	return p.Problem
}
