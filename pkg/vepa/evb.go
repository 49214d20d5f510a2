package vepa

import (
	"bytes"
	"fmt"
	"time"
)

// The EVB TLV of IEEE 802.1Qbg-2012 (clause D.2.12): an organizationally
// specific LLDP TLV, OUI 00-80-C2, subtype 0x0D, five bytes of information
// (lldpad: lldp_evb22.c, include/lldp_evb22.h):
//
//	byte 0  bridge status:  BGID 0x04, RRCAP 0x02, RRCTR 0x01
//	byte 1  station status: SGID 0x08, RRREQ 0x04, RRSTAT bits 1-0
//	byte 2  R (retries) bits 7-5, RTE (retransmission exponent) bits 4-0
//	byte 3  EVB mode bits 7-6 (1 bridge, 2 station), ROL bit 5, RWD bits 4-0
//	byte 4  ROL bit 5, RKA bits 4-0
//
// Timer values are exponents: 10 µs × 2^exp. The station asks for
// reflective relay with RRREQ; a bridge that can (RRCAP) grants it with
// RRCTR, and the station reports the outcome in RRSTAT.
var evbOUI = [3]byte{0x00, 0x80, 0xc2}

const (
	evbSubtype = 0x0d
	evbInfoLen = 5

	BridgeBGID  = 0x04
	BridgeRRCAP = 0x02
	BridgeRRCTR = 0x01

	StationSGID  = 0x08
	StationRRREQ = 0x04

	RRStatNo      = 0
	RRStatYes     = 1
	RRStatUnknown = 3

	ModeBridge  = 1
	ModeStation = 2
)

// EVB is the information of an EVB TLV.
type EVB struct {
	BridgeStatus  uint8 // BGID, RRCAP, RRCTR bits
	StationStatus uint8 // SGID, RRREQ bits and RRSTAT (bits 1-0)
	R             uint8 // ECP retries, 0-7
	RTE           uint8 // ECP retransmission exponent, 0-31
	Mode          uint8 // ModeBridge or ModeStation
	ROLRWD        bool  // RWD is the remote value
	RWD           uint8 // VDP resource wait delay exponent, 0-31
	ROLRKA        bool  // RKA is the remote value
	RKA           uint8 // VDP reinit keep-alive exponent, 0-31
}

// IsEVBTLV reports whether the value of an organizationally specific TLV
// (type 127) is an EVB TLV.
func IsEVBTLV(v []byte) bool {
	return len(v) >= 4 && bytes.Equal(v[:3], evbOUI[:]) && v[3] == evbSubtype
}

// ParseEVB decodes the value of an EVB TLV (OUI and subtype included).
func ParseEVB(v []byte) (EVB, error) {
	if !IsEVBTLV(v) {
		return EVB{}, fmt.Errorf("evb: not an EVB TLV")
	}
	if len(v) != 4+evbInfoLen {
		return EVB{}, fmt.Errorf("evb: TLV of %d bytes, want %d", len(v), 4+evbInfoLen)
	}
	i := v[4:]
	return EVB{
		BridgeStatus:  i[0] & 0x07,
		StationStatus: i[1] & 0x0f,
		R:             i[2] >> 5,
		RTE:           i[2] & 0x1f,
		Mode:          i[3] >> 6,
		ROLRWD:        i[3]&0x20 != 0,
		RWD:           i[3] & 0x1f,
		ROLRKA:        i[4]&0x20 != 0,
		RKA:           i[4] & 0x1f,
	}, nil
}

// Append encodes e as a TLV value (OUI, subtype, information).
func (e EVB) Append(b []byte) []byte {
	b = append(b, evbOUI[:]...)
	b = append(b, evbSubtype,
		e.BridgeStatus&0x07,
		e.StationStatus&0x0f,
		e.R<<5|e.RTE&0x1f,
		e.Mode<<6|boolBit(e.ROLRWD, 0x20)|e.RWD&0x1f,
		boolBit(e.ROLRKA, 0x20)|e.RKA&0x1f)
	return b
}

func boolBit(on bool, bit uint8) uint8 {
	if on {
		return bit
	}
	return 0
}

// RRStat is the station's reflective relay status (bits 1-0).
func (e EVB) RRStat() uint8 { return e.StationStatus & 0x03 }

// Granted reports whether a bridge's TLV grants reflective relay.
func (e EVB) Granted() bool { return e.BridgeStatus&BridgeRRCTR != 0 }

// Timer turns a timer exponent into a duration: 10 µs × 2^exp.
func Timer(exp uint8) time.Duration {
	if exp > 31 {
		exp = 31
	}
	return 10 * time.Microsecond << exp
}
