package vepa

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// LLDP (IEEE 802.1AB) framing: an LLDPDU is a list of TLVs, each with a
// 7-bit type and a 9-bit length in one big-endian word, ending with the End
// TLV (type 0, length 0). Chassis ID, Port ID and TTL come first, in that
// order.
const (
	EtherTypeLLDP = 0x88cc

	tlvEnd       = 0
	tlvChassisID = 1
	tlvPortID    = 2
	tlvTTL       = 3
	tlvOrg       = 127

	maxTLVLen = 511
)

// Chassis and port ID subtypes this package sends.
const (
	ChassisIDMAC = 4 // chassis ID subtype: MAC address
	PortIDMAC    = 3 // port ID subtype: MAC address
	PortIDIfName = 5 // port ID subtype: interface name
)

// NearestCustomerBridge is the LLDP destination of the agent that carries
// the EVB TLV (and the group address a bridge never forwards).
var NearestCustomerBridge = [6]byte{0x01, 0x80, 0xc2, 0x00, 0x00, 0x00}

// TLV is an LLDP TLV kept as it came.
type TLV struct {
	Type  uint8
	Value []byte
}

// LLDPDU is a parsed LLDP data unit. EVB is set when it carries an
// 802.1Qbg-2012 EVB TLV; other TLVs are kept in Other.
type LLDPDU struct {
	ChassisSubtype uint8
	ChassisID      []byte
	PortSubtype    uint8
	PortID         []byte
	TTL            uint16
	EVB            *EVB
	CDCP           *CDCP // the CDCP TLV (S-VLAN components' agent), if any
	Other          []TLV
}

// ErrNotLLDP is returned for frames that are not LLDP.
var ErrNotLLDP = errors.New("not an LLDP frame")

// ParseFrame parses an untagged Ethernet frame carrying an LLDPDU.
func ParseFrame(frame []byte) (*LLDPDU, error) {
	if len(frame) < 14 || binary.BigEndian.Uint16(frame[12:14]) != EtherTypeLLDP {
		return nil, ErrNotLLDP
	}
	return ParseLLDPDU(frame[14:])
}

// ParseLLDPDU parses the TLVs of an LLDPDU (the Ethernet payload). It
// checks the mandatory TLVs and their order and never reads past b.
func ParseLLDPDU(b []byte) (*LLDPDU, error) {
	d := &LLDPDU{}
	for i := 0; ; i++ {
		if len(b) < 2 {
			return nil, fmt.Errorf("lldp: TLV %d: truncated header", i)
		}
		h := binary.BigEndian.Uint16(b)
		typ, n := uint8(h>>9), int(h&0x1ff)
		if len(b) < 2+n {
			return nil, fmt.Errorf("lldp: TLV %d (type %d): length %d past the end", i, typ, n)
		}
		v := b[2 : 2+n]
		b = b[2+n:]
		want := [...]uint8{tlvChassisID, tlvPortID, tlvTTL}
		if i < len(want) && typ != want[i] {
			return nil, fmt.Errorf("lldp: TLV %d is type %d, want %d (chassis ID, port ID, TTL first)", i, typ, want[i])
		}
		switch typ {
		case tlvEnd:
			return d, nil
		case tlvChassisID, tlvPortID:
			if n < 2 || n > 256 {
				return nil, fmt.Errorf("lldp: ID TLV type %d: bad length %d", typ, n)
			}
			if typ == tlvChassisID {
				d.ChassisSubtype, d.ChassisID = v[0], clone(v[1:])
			} else {
				d.PortSubtype, d.PortID = v[0], clone(v[1:])
			}
		case tlvTTL:
			if n < 2 {
				return nil, fmt.Errorf("lldp: TTL TLV: bad length %d", n)
			}
			d.TTL = binary.BigEndian.Uint16(v)
		case tlvOrg:
			if IsEVBTLV(v) {
				e, err := ParseEVB(v)
				if err != nil {
					return nil, err
				}
				d.EVB = &e
				continue
			}
			if IsCDCPTLV(v) {
				c, err := ParseCDCP(v)
				if err != nil {
					return nil, err
				}
				d.CDCP = &c
				continue
			}
			d.Other = append(d.Other, TLV{Type: typ, Value: clone(v)})
		default:
			d.Other = append(d.Other, TLV{Type: typ, Value: clone(v)})
		}
	}
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }

// AppendTLV appends one TLV; values longer than 511 bytes are an error.
func AppendTLV(b []byte, typ uint8, value []byte) ([]byte, error) {
	if len(value) > maxTLVLen {
		return b, fmt.Errorf("lldp: TLV type %d: value of %d bytes is over %d", typ, len(value), maxTLVLen)
	}
	b = binary.BigEndian.AppendUint16(b, uint16(typ)<<9|uint16(len(value)))
	return append(b, value...), nil
}

// Append encodes d (mandatory TLVs, EVB, CDCP, Other, End) after b.
func (d *LLDPDU) Append(b []byte) ([]byte, error) {
	var err error
	if len(d.ChassisID) == 0 || len(d.ChassisID) > 255 || len(d.PortID) == 0 || len(d.PortID) > 255 {
		return b, errors.New("lldp: chassis and port IDs must be 1-255 bytes")
	}
	if b, err = AppendTLV(b, tlvChassisID, append([]byte{d.ChassisSubtype}, d.ChassisID...)); err != nil {
		return b, err
	}
	if b, err = AppendTLV(b, tlvPortID, append([]byte{d.PortSubtype}, d.PortID...)); err != nil {
		return b, err
	}
	if b, err = AppendTLV(b, tlvTTL, binary.BigEndian.AppendUint16(nil, d.TTL)); err != nil {
		return b, err
	}
	if d.EVB != nil {
		if b, err = AppendTLV(b, tlvOrg, d.EVB.Append(nil)); err != nil {
			return b, err
		}
	}
	if d.CDCP != nil {
		v, err := d.CDCP.Append(nil)
		if err != nil {
			return b, err
		}
		if b, err = AppendTLV(b, tlvOrg, v); err != nil {
			return b, err
		}
	}
	for _, t := range d.Other {
		if b, err = AppendTLV(b, t.Type, t.Value); err != nil {
			return b, err
		}
	}
	return AppendTLV(b, tlvEnd, nil)
}

// Frame builds the Ethernet frame carrying d from src to dst, padded to the
// 60-byte minimum.
func (d *LLDPDU) Frame(dst, src [6]byte) ([]byte, error) {
	b := make([]byte, 0, 128)
	b = append(b, dst[:]...)
	b = append(b, src[:]...)
	b = binary.BigEndian.AppendUint16(b, EtherTypeLLDP)
	b, err := d.Append(b)
	if err != nil {
		return nil, err
	}
	for len(b) < 60 {
		b = append(b, 0)
	}
	return b, nil
}
