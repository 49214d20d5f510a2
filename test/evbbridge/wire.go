package evbbridge

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
)

// This file is the peer's own reading and writing of the wire formats,
// from the layouts of IEEE 802.1AB (LLDP) and IEEE 802.1Qbg-2012 (EVB TLV
// D.2.12, CDCP TLV D.2.13, ECP clause 43, VDP clause 41). It shares no code
// with pkg/vepa on purpose: a misreading of the standard made once and
// used on both sides would pass every test; made twice, independently, it
// shows as a disagreement.

// Addresses and ethertypes.
var (
	// NearestCustomerBridge (01-80-C2-00-00-00) carries the EVB TLV and
	// ECP: the agents of the station's and the bridge's C-VLAN components
	// (per S-channel).
	NearestCustomerBridge = net.HardwareAddr{0x01, 0x80, 0xc2, 0x00, 0x00, 0x00}
	// NearestNonTPMRBridge (01-80-C2-00-00-03) carries the CDCP TLV: the
	// agents of the two S-VLAN components, on the physical link, untagged.
	NearestNonTPMRBridge = net.HardwareAddr{0x01, 0x80, 0xc2, 0x00, 0x00, 0x03}
)

const (
	etherLLDP = 0x88cc
	etherECP  = 0x8940
	tpidS     = 0x88a8 // S-tag: an S-channel other than the default one
	tpidC     = 0x8100
)

// ---- Ethernet ----

// frameHdr is an Ethernet header with at most one outer tag (an S-tag of
// an S-channel, or a C-tag the peer notes and refuses).
type frameHdr struct {
	dst, src  net.HardwareAddr
	tpid, tci uint16 // 0: untagged
	etype     uint16
	payload   []byte
}

func readFrame(b []byte) (frameHdr, error) {
	if len(b) < 14 {
		return frameHdr{}, fmt.Errorf("frame of %d bytes", len(b))
	}
	h := frameHdr{dst: net.HardwareAddr(b[0:6]), src: net.HardwareAddr(b[6:12])}
	off := 12
	if t := binary.BigEndian.Uint16(b[12:]); t == tpidS || t == tpidC {
		if len(b) < 18 {
			return frameHdr{}, errors.New("tagged frame cut short")
		}
		h.tpid, h.tci = t, binary.BigEndian.Uint16(b[14:])
		off = 16
	}
	h.etype = binary.BigEndian.Uint16(b[off:])
	h.payload = b[off+2:]
	return h, nil
}

// writeFrame builds an Ethernet frame, S-tagged with svid when it is not
// 0, padded to 60 bytes.
func writeFrame(dst, src net.HardwareAddr, svid uint16, etype uint16, payload []byte) []byte {
	b := make([]byte, 0, 18+len(payload)+46)
	b = append(b, dst...)
	b = append(b, src...)
	if svid != 0 {
		b = binary.BigEndian.AppendUint16(b, tpidS)
		b = binary.BigEndian.AppendUint16(b, svid&0xfff)
	}
	b = binary.BigEndian.AppendUint16(b, etype)
	b = append(b, payload...)
	for len(b) < 60 {
		b = append(b, 0)
	}
	return b
}

// ---- LLDP (802.1AB 8.5, 8.6) ----

// tlv is one LLDP TLV: type (7 bits) and length (9 bits) in the first two
// octets, then the information string.
type tlv struct {
	typ  int
	info []byte
}

// lldpdu is the part of an LLDPDU the peer looks at.
type lldpdu struct {
	chassis []byte // chassis ID TLV information (subtype first)
	port    []byte
	ttl     int
	orgs    []tlv // type 127 TLVs
}

func readTLVs(b []byte) ([]tlv, error) {
	var out []tlv
	for {
		if len(b) < 2 {
			return nil, errors.New("LLDPDU without an End TLV")
		}
		typ := int(b[0] >> 1)
		n := int(b[0]&1)<<8 | int(b[1])
		if 2+n > len(b) {
			return nil, fmt.Errorf("TLV type %d: %d octets, %d left", typ, n, len(b)-2)
		}
		if typ == 0 {
			return out, nil
		}
		out = append(out, tlv{typ: typ, info: b[2 : 2+n]})
		b = b[2+n:]
	}
}

func readLLDPDU(b []byte) (lldpdu, error) {
	ts, err := readTLVs(b)
	if err != nil {
		return lldpdu{}, err
	}
	if len(ts) < 3 || ts[0].typ != 1 || ts[1].typ != 2 || ts[2].typ != 3 || len(ts[2].info) < 2 {
		return lldpdu{}, errors.New("LLDPDU does not start with chassis ID, port ID and TTL")
	}
	d := lldpdu{chassis: ts[0].info, port: ts[1].info, ttl: int(ts[2].info[0])<<8 | int(ts[2].info[1])}
	for _, t := range ts[3:] {
		if t.typ == 127 {
			d.orgs = append(d.orgs, t)
		}
	}
	return d, nil
}

func appendTLV(b []byte, typ int, info []byte) []byte {
	if len(info) > 511 {
		panic(fmt.Sprintf("evbbridge: TLV type %d of %d octets", typ, len(info)))
	}
	b = append(b, byte(typ<<1)|byte(len(info)>>8), byte(len(info)))
	return append(b, info...)
}

// writeLLDPDU is chassis ID (MAC address, subtype 4), port ID (interface
// name, subtype 5), TTL, the organizationally specific TLVs given (their
// information strings, OUI first) and End.
func writeLLDPDU(mac net.HardwareAddr, port string, ttl int, orgs ...[]byte) []byte {
	var b []byte
	b = appendTLV(b, 1, append([]byte{4}, mac...))
	b = appendTLV(b, 2, append([]byte{5}, port...))
	b = appendTLV(b, 3, []byte{byte(ttl >> 8), byte(ttl)})
	for _, o := range orgs {
		b = appendTLV(b, 127, o)
	}
	return appendTLV(b, 0, nil)
}

var oui8021 = [3]byte{0x00, 0x80, 0xc2}

// orgTLV returns the information after OUI 00-80-C2 and subtype sub, if t
// is that TLV.
func orgTLV(t tlv, sub byte) ([]byte, bool) {
	if len(t.info) < 4 || [3]byte(t.info[:3]) != oui8021 || t.info[3] != sub {
		return nil, false
	}
	return t.info[4:], true
}

// ---- EVB TLV (802.1Qbg-2012 D.2.12), subtype 0x0D ----
//
//	octet 1  EVB bridge status:  reserved(5) BGID RRCAP RRCTR
//	octet 2  EVB station status: reserved(4) SGID RRREQ RRSTAT(2)
//	octet 3  R(3) RTE(5)
//	octet 4  EVB mode(2) ROL(1) RWD(5)
//	octet 5  reserved(2) ROL(1) RKA(5)

const subEVB = 0x0d

// EVBTLV is an EVB TLV's information, field by field.
type EVBTLV struct {
	BGID, RRCAP, RRCTR bool
	SGID, RRREQ        bool
	RRSTAT             uint8 // 0 not enabled, 1 enabled, 3 unknown (2 reserved)
	R, RTE             uint8
	Mode               uint8 // 1 EVB bridge, 2 EVB station
	ROLRWD             bool
	RWD                uint8
	ROLRKA             bool
	RKA                uint8
}

func readEVB(info []byte) (EVBTLV, error) {
	if len(info) != 5 {
		return EVBTLV{}, fmt.Errorf("EVB TLV: %d octets of information after the subtype, want 5", len(info))
	}
	bit := func(o byte, n uint) bool { return o>>n&1 == 1 }
	return EVBTLV{
		BGID: bit(info[0], 2), RRCAP: bit(info[0], 1), RRCTR: bit(info[0], 0),
		SGID: bit(info[1], 3), RRREQ: bit(info[1], 2), RRSTAT: info[1] & 3,
		R: info[2] >> 5, RTE: info[2] & 31,
		Mode: info[3] >> 6, ROLRWD: bit(info[3], 5), RWD: info[3] & 31,
		ROLRKA: bit(info[4], 5), RKA: info[4] & 31,
	}, nil
}

func (e EVBTLV) info() []byte {
	b := func(v bool, n uint) byte {
		if v {
			return 1 << n
		}
		return 0
	}
	return []byte{oui8021[0], oui8021[1], oui8021[2], subEVB,
		b(e.BGID, 2) | b(e.RRCAP, 1) | b(e.RRCTR, 0),
		b(e.SGID, 3) | b(e.RRREQ, 2) | e.RRSTAT&3,
		e.R<<5 | e.RTE&31,
		e.Mode<<6 | b(e.ROLRWD, 5) | e.RWD&31,
		b(e.ROLRKA, 5) | e.RKA&31}
}

// ---- CDCP TLV (802.1Qbg-2012 D.2.13), subtype 0x0E ----
//
//	octets 1-4  Role(1) reserved(3) SComp(1) reserved(15) ChnCap(12)
//	then N pairs of 3 octets: SCID(12) SVID(12)
//
// TLV information string length 8 + 3N (OUI and subtype included).

const subCDCP = 0x0e

// Roles of a CDCP TLV's Role bit: 0 bridge (B), 1 station (S), as the
// standard encodes them (also what Spirent's CDCP TLV model documents:
// role 0 Bridge, 1 Station).
const (
	RoleB = 0 // sent by a bridge's S-VLAN component
	RoleS = 1 // sent by a station's S-VLAN component
)

// Pair is one SCID/SVID pair of a CDCP TLV. SCID 1 is the default
// S-channel (S-VID 1, untagged on the link).
type Pair struct{ SCID, SVID uint16 }

// CDCPTLV is a CDCP TLV's information.
type CDCPTLV struct {
	Role   uint8
	SComp  bool
	ChnCap uint16
	Pairs  []Pair
}

func readCDCP(info []byte) (CDCPTLV, error) {
	if len(info) < 4 || (len(info)-4)%3 != 0 {
		return CDCPTLV{}, fmt.Errorf("CDCP TLV: %d octets after the subtype, want 4 + 3N", len(info))
	}
	c := CDCPTLV{Role: info[0] >> 7, SComp: info[0]>>3&1 == 1, ChnCap: uint16(info[2]&0x0f)<<8 | uint16(info[3])}
	for p := info[4:]; len(p) > 0; p = p[3:] {
		c.Pairs = append(c.Pairs, Pair{SCID: uint16(p[0])<<4 | uint16(p[1]>>4), SVID: uint16(p[1]&0x0f)<<8 | uint16(p[2])})
	}
	return c, nil
}

func (c CDCPTLV) info() []byte {
	b := []byte{oui8021[0], oui8021[1], oui8021[2], subCDCP, c.Role << 7, 0, byte(c.ChnCap>>8) & 0x0f, byte(c.ChnCap)}
	if c.SComp {
		b[4] |= 1 << 3
	}
	for _, p := range c.Pairs {
		b = append(b, byte(p.SCID>>4), byte(p.SCID<<4)|byte(p.SVID>>8)&0x0f, byte(p.SVID))
	}
	return b
}

// ---- ECP (802.1Qbg-2012 43.3) ----
//
//	octets 1-2  version(4) = 1, operation type(2): 0 request, 1 ack,
//	            subtype(10): 1 VDP
//	octets 3-4  sequence number

const (
	ecpReq = 0
	ecpAck = 1
	ecpVDP = 1
)

type ecpdu struct {
	version, op int
	subtype     int
	seq         uint16
	body        []byte
}

func readECP(b []byte) (ecpdu, error) {
	if len(b) < 4 {
		return ecpdu{}, fmt.Errorf("ECPDU of %d octets", len(b))
	}
	return ecpdu{version: int(b[0] >> 4), op: int(b[0] >> 2 & 3), subtype: int(b[0]&3)<<8 | int(b[1]),
		seq: uint16(b[2])<<8 | uint16(b[3]), body: b[4:]}, nil
}

func writeECP(op int, seq uint16, body []byte) []byte {
	return append([]byte{1<<4 | byte(op)<<2 | byte(ecpVDP>>8), byte(ecpVDP & 0xff), byte(seq >> 8), byte(seq)}, body...)
}

// ---- VDP (802.1Qbg-2012 41.2) ----
//
// A VDPDU is a list of TLVs with the LLDP TLV header; the VSI Manager ID
// TLV (type 5, 16 octets) comes first, then VSI TLVs (types 1-4):
//
//	status(1) VSI type ID(3) VSI type version(1) VSIID format(1) VSIID(16)
//	filter info format(1) number of entries(2) entries
//
// Filter info entries: format 1 PS/PCP/VID(2); 2 MAC(6) PS/PCP/VID(2);
// 3 GroupID(4) PS/PCP/VID(2); 4 GroupID(4) MAC(6) PS/PCP/VID(2). The
// PS/PCP/VID word: PS bit 16, PCP bits 15-13, VID bits 12-1.
//
// Status, in a request: M (migrated to) bit 5, S (suspended, migrated
// from) bit 6. In a response: error/reason bits 1-4, hard error bit 5,
// keep bit 6, request/ack bit 7 (bits numbered 8..1, most significant
// first, as the standard draws them).

// VSI TLV types (modes).
const (
	PreAssoc   = 1
	PreAssocRR = 2
	Assoc      = 3
	Deassoc    = 4
	mgrIDType  = 5
)

// Status bits.
const (
	StatusAck  = 1 << 6 // response
	StatusKeep = 1 << 5 // response: the bridge keeps what it had
	StatusHard = 1 << 4 // response: hard error
	StatusM    = 1 << 4 // request: the VSI migrated to this station
	StatusS    = 1 << 5 // request (DEASSOC): the VSI left this station
)

// Reasons (the error field of a response).
const (
	ReasonSuccess       = 0
	ReasonInvalidFormat = 1
	ReasonResources     = 2
	ReasonNoManager     = 3
	ReasonOther         = 4
	ReasonInvalidFilter = 5 // invalid VID, GroupID or MAC address
)

// Filter is one filter info entry, whichever the format.
type Filter struct {
	GroupID uint32
	MAC     net.HardwareAddr
	PS      bool
	PCP     uint8
	VID     uint16
}

// VSITLV is one VSI TLV.
type VSITLV struct {
	Mode         uint8
	Status       uint8
	TypeID       uint32
	TypeVersion  uint8
	IDFormat     uint8
	ID           [16]byte
	FilterFormat uint8
	Filters      []Filter
}

// VDPDU is a VDP PDU.
type VDPDU struct {
	Manager [16]byte
	VSIs    []VSITLV
}

// entrySize is the octets of one filter info entry of a format.
var entrySize = map[uint8]int{1: 2, 2: 8, 3: 6, 4: 12}

func readVDP(b []byte) (VDPDU, error) {
	var p VDPDU
	seenMgr := false
	for len(b) >= 2 {
		typ := int(b[0] >> 1)
		n := int(b[0]&1)<<8 | int(b[1])
		if typ == 0 { // End, or the ECPDU's padding
			break
		}
		if 2+n > len(b) {
			return p, fmt.Errorf("VDP TLV type %d: %d octets, %d left", typ, n, len(b)-2)
		}
		v := b[2 : 2+n]
		b = b[2+n:]
		switch {
		case typ == mgrIDType:
			if n != 16 || seenMgr || len(p.VSIs) > 0 {
				return p, errors.New("VSI manager ID TLV: not 16 octets, repeated or after a VSI TLV")
			}
			copy(p.Manager[:], v)
			seenMgr = true
		case typ >= PreAssoc && typ <= Deassoc:
			if !seenMgr {
				return p, errors.New("VSI TLV before the VSI manager ID TLV")
			}
			s, err := readVSI(uint8(typ), v)
			if err != nil {
				return p, err
			}
			p.VSIs = append(p.VSIs, s)
		}
	}
	if !seenMgr {
		return p, errors.New("VDPDU without a VSI manager ID TLV")
	}
	return p, nil
}

func readVSI(mode uint8, v []byte) (VSITLV, error) {
	if len(v) < 25 {
		return VSITLV{}, fmt.Errorf("VSI TLV of %d octets", len(v))
	}
	s := VSITLV{Mode: mode, Status: v[0], TypeID: uint32(v[1])<<16 | uint32(v[2])<<8 | uint32(v[3]),
		TypeVersion: v[4], IDFormat: v[5], FilterFormat: v[22]}
	copy(s.ID[:], v[6:22])
	size, ok := entrySize[s.FilterFormat]
	if !ok {
		return s, fmt.Errorf("filter info format %d", s.FilterFormat)
	}
	count := int(v[23])<<8 | int(v[24])
	e := v[25:]
	if len(e) != count*size {
		return s, fmt.Errorf("%d filter entries of format %d in %d octets", count, s.FilterFormat, len(e))
	}
	for ; len(e) > 0; e = e[size:] {
		var f Filter
		x := e
		if s.FilterFormat >= 3 {
			f.GroupID = binary.BigEndian.Uint32(x)
			x = x[4:]
		}
		if s.FilterFormat == 2 || s.FilterFormat == 4 {
			f.MAC = append(net.HardwareAddr(nil), x[:6]...)
			x = x[6:]
		}
		f.PS, f.PCP, f.VID = x[0]&0x80 != 0, x[0]>>4&7, uint16(x[0]&0x0f)<<8|uint16(x[1])
		s.Filters = append(s.Filters, f)
	}
	return s, nil
}

func (p VDPDU) bytes() []byte {
	b := appendTLV(nil, mgrIDType, p.Manager[:])
	for _, s := range p.VSIs {
		v := []byte{s.Status, byte(s.TypeID >> 16), byte(s.TypeID >> 8), byte(s.TypeID), s.TypeVersion, s.IDFormat}
		v = append(v, s.ID[:]...)
		v = append(v, s.FilterFormat, byte(len(s.Filters)>>8), byte(len(s.Filters)))
		for _, f := range s.Filters {
			if s.FilterFormat >= 3 {
				v = binary.BigEndian.AppendUint32(v, f.GroupID)
			}
			if s.FilterFormat == 2 || s.FilterFormat == 4 {
				mac := make([]byte, 6)
				copy(mac, f.MAC)
				v = append(v, mac...)
			}
			w := f.VID & 0xfff
			w |= uint16(f.PCP&7) << 12
			if f.PS {
				w |= 0x8000
			}
			v = binary.BigEndian.AppendUint16(v, w)
		}
		b = appendTLV(b, int(s.Mode), v)
	}
	return b
}
