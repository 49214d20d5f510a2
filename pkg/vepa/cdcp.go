package vepa

import (
	"bytes"
	"fmt"
)

// The CDCP TLV of IEEE 802.1Qbg-2012 (clause D.2.13; the protocol is
// clause 42, S-channel discovery and configuration): an organizationally
// specific LLDP TLV, OUI 00-80-C2, subtype 0x0E, that the S-VLAN
// components at the two ends of the link exchange, untagged, addressed to
// the nearest non-TPMR bridge (01-80-C2-00-00-03):
//
//	octet 0      Role bit 7 (0 bridge "B", 1 station "S"), reserved 6-4,
//	             SComp bit 3 (the sender has an S-VLAN component), reserved
//	octet 1      reserved
//	octets 2-3   reserved bits 15-12, ChnCap bits 11-0 (S-channels the
//	             sender supports, the default one included)
//	then N × 3   SCID bits 23-12, S-VID bits 11-0
//
// The TLV's information string is 8 + 3N octets (OUI and subtype
// included), so at most 167 pairs fit. SCID 1 is the default S-channel,
// S-VID 1, untagged on the link. A station lists the S-channels it wants
// (an S-VID of 0 lets the bridge choose); the bridge answers with the
// pairs it set up, each with the S-VID it assigned.
const (
	cdcpSubtype = 0x0e

	// CDCPRoleBridge and CDCPRoleStation are the Role bit's values.
	CDCPRoleBridge  = 0
	CDCPRoleStation = 1

	// MaxCDCPPairs is the most SCID/SVID pairs a CDCP TLV holds.
	MaxCDCPPairs = (maxTLVLen - 8) / 3

	// DefaultSCID and DefaultSVID name the default S-channel.
	DefaultSCID = 1
	DefaultSVID = 1
)

// NearestNonTPMRBridge is the LLDP destination of the agent that carries
// the CDCP TLV (the S-VLAN components' agent).
var NearestNonTPMRBridge = [6]byte{0x01, 0x80, 0xc2, 0x00, 0x00, 0x03}

// SChannel is one SCID/SVID pair of a CDCP TLV.
type SChannel struct {
	SCID, SVID uint16
}

// CDCP is the information of a CDCP TLV.
type CDCP struct {
	Role   uint8 // CDCPRoleBridge or CDCPRoleStation
	SComp  bool
	ChnCap uint16 // 0-4095
	Pairs  []SChannel
}

// IsCDCPTLV reports whether the value of an organizationally specific TLV
// (type 127) is a CDCP TLV.
func IsCDCPTLV(v []byte) bool {
	return len(v) >= 4 && bytes.Equal(v[:3], evbOUI[:]) && v[3] == cdcpSubtype
}

// ParseCDCP decodes the value of a CDCP TLV (OUI and subtype included).
// Reserved bits are ignored; a length that is not 8 + 3N is an error.
func ParseCDCP(v []byte) (CDCP, error) {
	if !IsCDCPTLV(v) {
		return CDCP{}, fmt.Errorf("cdcp: not a CDCP TLV")
	}
	if len(v) > maxTLVLen {
		return CDCP{}, fmt.Errorf("cdcp: TLV of %d bytes, over the %d an LLDP TLV holds", len(v), maxTLVLen)
	}
	if len(v) < 8 || (len(v)-8)%3 != 0 {
		return CDCP{}, fmt.Errorf("cdcp: TLV of %d bytes, want 8 + 3 per SCID/SVID pair", len(v))
	}
	c := CDCP{Role: v[4] >> 7, SComp: v[4]&0x08 != 0, ChnCap: uint16(v[6]&0x0f)<<8 | uint16(v[7])}
	if n := (len(v) - 8) / 3; n > 0 {
		c.Pairs = make([]SChannel, 0, n)
	}
	for p := v[8:]; len(p) >= 3; p = p[3:] {
		w := uint32(p[0])<<16 | uint32(p[1])<<8 | uint32(p[2])
		c.Pairs = append(c.Pairs, SChannel{SCID: uint16(w >> 12), SVID: uint16(w & 0xfff)})
	}
	return c, nil
}

// Append encodes c as a TLV value (OUI, subtype, information); more than
// MaxCDCPPairs pairs, or an SCID, S-VID or ChnCap over 12 bits, is an
// error.
func (c CDCP) Append(b []byte) ([]byte, error) {
	if len(c.Pairs) > MaxCDCPPairs {
		return b, fmt.Errorf("cdcp: %d SCID/SVID pairs, at most %d fit", len(c.Pairs), MaxCDCPPairs)
	}
	if c.ChnCap > 0xfff {
		return b, fmt.Errorf("cdcp: ChnCap %d over 4095", c.ChnCap)
	}
	b = append(b, evbOUI[:]...)
	b = append(b, cdcpSubtype, (c.Role&1)<<7|boolBit(c.SComp, 0x08), 0, byte(c.ChnCap>>8), byte(c.ChnCap))
	for _, p := range c.Pairs {
		if p.SCID > 0xfff || p.SVID > 0xfff {
			return b, fmt.Errorf("cdcp: pair %d/%d over 12 bits", p.SCID, p.SVID)
		}
		w := uint32(p.SCID)<<12 | uint32(p.SVID)
		b = append(b, byte(w>>16), byte(w>>8), byte(w))
	}
	return b, nil
}
