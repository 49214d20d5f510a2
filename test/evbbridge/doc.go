// Package evbbridge is the bridge side of IEEE 802.1Qbg-2012 for tests: a
// peer that vswitchd's EVB station talks to where lldpad cannot follow
// (CDCP, VID 0 answers, group IDs, S-tagged VDP, live timer changes). It is
// written from the standard's text and keeps its own encoders and decoders
// (wire.go): it imports nothing of pkg/vepa, so a field both sides misread
// the same way cannot pass unnoticed.
//
// A Bridge is transport-free: Handle takes each frame received on the
// bridge port, Run sends its LLDPDUs and ECP requests through the send
// function New was given. Attach runs one on an interface in a network
// namespace (the switch side of a hypervisor's uplink veth) with an
// AF_PACKET socket:
//
//	p, err := evbbridge.Attach(lab.sw, "p1", evbbridge.Config{EVB: evbbridge.DefaultEVB})
//	t.Cleanup(p.Stop)
//
// What it speaks:
//
//   - LLDP with the EVB TLV (D.2.12) to the nearest customer bridge address,
//     untagged and, for each of EVBChannels, S-tagged: mode bridge, BGID,
//     RRCAP, and RRCTR for a station that sets RRREQ (unless RefuseRelay),
//     the station status it heard echoed, timers R, RTE, RWD, RKA and the
//     ROL bits as configured. SetEVB changes them live (an LLDPDU at once).
//   - ECP (clause 43): every request is acknowledged with its sequence
//     number and the same S-tag; a repeat (same sequence as the last one
//     taken on that channel) is acknowledged but not taken twice. The
//     bridge's own requests (VDP answers) are retransmitted after RTE,
//     doubling, R times. DropAcks(n) loses the next n requests.
//   - VDP (clause 41): each VSI TLV is recorded (Requests, Arrivals: when
//     each keep-alive came) and answered per its Answer (SetAnswer,
//     SetDefaultAnswer): accept; refuse with a reason (hard, keep, or as a
//     DEASSOC); assign a VID to filters asking VID 0, or per group ID for
//     formats 3 and 4; stay silent. VSIs accepted are held (VSIs) until
//     de-associated; Deassociate sends a DEASSOC of the bridge's own.
//     Answers go on the channel the request came on (S-tag included).
//   - CDCP (clause 42, TLV D.2.13) when Config.CDCP is set: the bridge's
//     S-VLAN component sends, to the nearest non-TPMR bridge address,
//     untagged, a CDCP TLV with role B granting the pairs its policy
//     allows (GrantAll, GrantSVIDs, DenyAll; SVIDs for S-VID 0 from Pool)
//     and reads the station's (StationCDCP). SetCDCP changes the policy
//     live.
//
// Wait, WaitRequest and Snapshot let a test wait for what the bridge saw
// instead of sleeping.
package evbbridge
