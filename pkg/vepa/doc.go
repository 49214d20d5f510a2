// Package vepa is the IEEE 802.1Qbg control plane of the station: the EVB
// TLV of the nearest-customer-bridge LLDP agent, with which vswitchd asks
// the adjacent bridge for reflective relay (RRREQ) and learns whether it
// was granted (RRCTR), and VSI registration: VDP (vdp.go, vdpstation.go)
// over ECP (ecp.go), the acknowledged transport of clause 43.
//
// LLDP framing (lldp.go) and the EVB TLV (evb.go) are pure functions of
// bytes, fuzzed. Station (station.go) is the state machine: it sends an
// LLDPDU at start (four times a second apart, as 802.1AB's fast start) and
// every Interval after, never more than 802.1AB's transmit credit allows
// (five at once, then one a second; lldptx.go, shared with CDCPStation),
// with RRREQ when the configured mode is VEPA and
// RRSTAT telling the bridge what it understood; it reads the bridge's EVB
// TLV from frames handed to Handle:
//
//	RRCTR set                  -> granted
//	no RRCAP                   -> refused (the bridge cannot reflect)
//	RRCAP without RRCTR        -> unknown (it has not seen our request yet)
//	TTL ran out, TTL 0, none   -> unknown
//
// The station follows one peer, the first EVB bridge it hears, named by
// its chassis ID, port ID and source address, and hands that address to
// VDP: ECP takes acknowledgements and requests only from it. Whatever
// reaches the uplink from elsewhere changes nothing but counters:
//
//	tagged LLDPDU or ECPDU (VLAN, S-, priority tag)  -> refused (Tagged)
//	another bridge's EVB TLV while the peer's TTL runs -> ignored (Foreign)
//	TTL 0 from anyone but the peer                     -> ignored (ForeignShutdown)
//	ECP from another address than the peer's           -> ignored (ECPStats.Foreign)
//
// A new bridge is followed once the old one's TTL has run out or after its
// own shutdown LLDPDU. Without LLDP (ECP used on its own) an ECP endpoint
// can take the first sender as its peer (ECPConfig.Latch); vswitchd never
// runs VDP without the EVB station, so its peer is always LLDP's.
//
// The daemon turns "refused" into VEB forwarding (local switching) while the
// configured mode is VEPA, as DESIGN's forwarding rules say, and back when
// the bridge grants or goes away.
//
// What the bridge's word makes the caller do is held down (holddown.go):
// per kind (the relay state and peer, the timers, CDCP's grants) at most
// five changes apply at once, then one a second, the bridge's latest word
// winning; so a bridge that flips its answer with every frame, or anyone
// imitating it, cannot make vswitchd switch VEPA/VEB or attach S-channel
// ports per frame. Relay.RelayHold, Relay.TimersHold and CDCPState.Hold
// count the changes and the suppressed ones; the flapping is logged once.
//
// The package does no I/O of its own: the stations send through the Send
// function they are given and are fed received frames with Handle. In
// vswitchd both come from the datapath, which owns all uplink I/O under
// either backend (pkg/datapath Config.Control and Switch.SendControl).
//
// VDPStation associates each VSI once an EVB bridge is present, refreshes
// it every RKA, re-sends an unanswered one every second and fails it once
// the response wait delay (from RWD, R and RTE) has passed, associates
// again when the bridge drops it, and de-associates removed ones; frames
// it sent that a reflective relay floods back are ignored by source
// address.
//
// The timers (timers.go): the EVB TLV carries R, RTE, RWD and RKA, each
// side's proposal; Negotiate picks the values in use (the larger of the
// station's and the bridge's, the ROL bits saying otherwise for RWD and
// RKA; then held to sanity bounds, RTE at most 18 and RKA at least 14,
// whoever proposed them: NegotiatedTimers.Clamps), the station reports them (StationConfig.OnTimers, Relay.Timers)
// and the daemon hands them to VDPStation.SetTimers, which applies them
// live: ECP's retries and acknowledgement timer (on every channel's
// endpoint, those of S-channels included), the keep-alive period
// (a new one announced with a keep-alive at once), the response wait.
// Relay.Neighbor is what an operator sees of the bridge (neighbor.go).
//
// A filter may ask the bridge for its VID (VID 0) or name a group ID
// (formats 3 and 4, sent only while the bridge's EVB TLV sets BGID:
// SetGroups; the station sets SGID, StationConfig.GroupIDs): the VID of
// the bridge's acknowledgement is then the assignment (VSIStatus.Answer),
// which keep-alives carry; an answer without a usable VID fails the VSI,
// and a DEASSOC from the bridge or its going away asks again with VID 0.
// OnChange tells the caller. A VSI of an S-channel (RegisterOn) talks over
// an ECP endpoint of that channel: its frames carry the S-tag, and the
// bridge's S-tagged frames reach only that channel's VSIs. While CDCP has
// not granted an S-channel (SetHeldChannels, with CDCPState.Channel's
// reason) its VSIs wait and nothing is sent there; granted, they are
// registered at once.
//
// Live migration follows 802.1Qbg's flow, as libvirt and lldpad do it for
// macvtap: the destination registers the VSI with VDPPreAssoc (the bridge
// readies the VM's profile while the source still runs it), then with
// VDPAssoc and the M bit (VDPHintM) once the VM runs there; the source
// de-associates it with the S bit (VDPHintS, DeassociateWith). Each VSI
// has its own manager ID (Register): a one-byte libvirt managerid is that
// byte followed by zeros, a name its bytes (ManagerText shows either as
// lldpad's log does). A bridge refuses with an error in the answer's
// status, in the request's mode or, as lldpad does, in a DEASSOC: the VSI
// is then failed with the bridge's reason, and asked again after RKA.
//
// CDCPStation (cdcpstation.go) is the station's S-VLAN component in CDCP
// (clause 42, the CDCP TLV of cdcp.go): a second LLDP agent, untagged to the
// nearest non-TPMR bridge address, that asks the bridge for the default
// S-channel and one SCID per S-VID the ports use, and follows the bridge's
// answer with the same peer rules as Station. CDCPState.Channel is the rule
// that says whether an S-channel may carry traffic, and why not:
//
//	no S-channel (S-VID 0)                 -> yes
//	no CDCP bridge heard (or its TTL ran)  -> yes, unless Required (then no)
//	the answer holds our S-VID, any SCID   -> yes (the bridge's SCID
//	                                          is the channel's: SCID)
//	our S-VID absent from the answer       -> no, saying which
//
// lldpad has no CDCP; test/evbbridge, written from the standard, is the
// bridge the tests use.
//
// Facts checked against lldpad (intel/openlldp lldp_evb22.c,
// include/lldp_evb22.h) and tested against it: see test/integration.
package vepa
