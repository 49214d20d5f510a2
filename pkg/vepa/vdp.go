package vepa

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
)

// VDP (VSI Discovery and Configuration Protocol, IEEE 802.1Qbg-2012
// clause 41) PDUs ride in ECP requests. A PDU is a list of TLVs with the
// LLDP-style header (7-bit type, 9-bit length of the value); the manager ID
// TLV comes first, then VSI TLVs (lldpad: qbg/vdp22sm.c):
//
//	status(1) VSI type ID(3) type version(1) VSIID format(1) VSIID(16)
//	filter format(1) entry count(2) entries
//
// Filter entries (big endian): format 1 VID word; 2 MAC(6) + VID word;
// 3 group ID(4) + VID word; 4 group ID(4) + MAC(6) + VID word. The VID word
// is PS (bit 15), PCP (14-12), VID (11-0); VID 0 asks the bridge to pick.
// A bridge answers a request with the same TLV and the status byte set:
// ACK 0x40, KEEP 0x20, HARD 0x10 (an error), reason in the low nibble.
const (
	VDPPreAssoc   = 1
	VDPPreAssocRR = 2
	VDPAssoc      = 3
	VDPDeassoc    = 4
	vdpManagerID  = 5

	vdpVSIFixedLen = 25

	// VSIID formats.
	VSIIDIPv4  = 1
	VSIIDIPv6  = 2
	VSIIDMAC   = 3
	VSIIDLocal = 4
	VSIIDUUID  = 5

	// Filter formats.
	FilterVID         = 1
	FilterMACVID      = 2
	FilterGroupVID    = 3
	FilterGroupMACVID = 4

	// Status bits of a response.
	VDPStatusAck  = 0x40
	VDPStatusKeep = 0x20
	VDPStatusHard = 0x10
)

// VDPReasons name the reason codes of a response's low nibble.
var VDPReasons = map[uint8]string{0: "success", 1: "invalid format", 2: "insufficient resources",
	3: "unable to contact VSI manager", 4: "other failure", 5: "invalid VID, group ID or MAC address"}

// Filter is one filter info entry.
type Filter struct {
	PS      bool
	PCP     uint8
	VID     uint16
	MAC     net.HardwareAddr // formats 2 and 4
	GroupID uint32           // formats 3 and 4
}

// VSI is a VSI TLV.
type VSI struct {
	Mode         uint8 // VDPPreAssoc .. VDPDeassoc
	Status       uint8
	TypeID       uint32 // 24 bits
	TypeVersion  uint8
	IDFormat     uint8
	ID           [16]byte
	FilterFormat uint8
	Filters      []Filter
}

// VDPPDU is a parsed VDP PDU.
type VDPPDU struct {
	ManagerID [16]byte
	VSIs      []VSI
}

// MACVSIID is the 16-byte VSIID of format VSIIDMAC: the MAC in the last six
// bytes.
func MACVSIID(mac net.HardwareAddr) (id [16]byte) {
	copy(id[10:], mac)
	return id
}

// ManagerID pads a name to the 16-byte manager ID (lldpad compares it as a
// zero-padded string).
func ManagerID(name string) (id [16]byte) {
	copy(id[:], name)
	return id
}

// ManagerText shows a manager ID as lldpad does (qbg/vdp22.c, mgrid2str):
// an ID whose bytes after the first are all zero is the number in its
// first byte (libvirt's one-byte managerid: "12"); one of printable
// characters up to its zero padding is that text ("vswitchd"); any other
// is its 16 bytes in hex.
func ManagerText(id [16]byte) string {
	last := len(id) - 1
	for last > 0 && id[last] == 0 {
		last--
	}
	if last == 0 {
		return fmt.Sprint(id[0])
	}
	for _, b := range id[:last+1] {
		if b < ' ' || b > '~' {
			return fmt.Sprintf("%x", id)
		}
	}
	return string(id[:last+1])
}

// MaxFilters is how many filter entries of format one VSI TLV holds: its
// value is at most 511 bytes (the 9-bit length of the TLV header), 25 of
// them before the entries. That is 243 entries of format VID, 60 of
// MAC+VID, 81 of group+VID and 40 of group+MAC+VID; 0 for an unknown
// format.
func MaxFilters(format uint8) int {
	n, err := entryLen(format)
	if err != nil {
		return 0
	}
	return (maxTLVLen - vdpVSIFixedLen) / n
}

// GroupFormat reports whether filter format carries a group ID (formats 3
// and 4): a station may use those only when the bridge's EVB TLV set BGID
// and its own set SGID (the EVB TLV, 802.1Qbg-2012 D.2.12; lldpad's evb22 computes
// the same "gpid" from both bits).
func GroupFormat(format uint8) bool {
	return format == FilterGroupVID || format == FilterGroupMACVID
}

// FilterFormatName names a filter format as messages and the API show
// it: "VID", "MAC+VID", "group+VID", "group+MAC+VID".
func FilterFormatName(format uint8) string {
	switch format {
	case FilterVID:
		return "VID"
	case FilterMACVID:
		return "MAC+VID"
	case FilterGroupVID:
		return "group+VID"
	case FilterGroupMACVID:
		return "group+MAC+VID"
	}
	return fmt.Sprintf("format %d", format)
}

func entryLen(format uint8) (int, error) {
	switch format {
	case FilterVID:
		return 2, nil
	case FilterMACVID:
		return 8, nil
	case FilterGroupVID:
		return 6, nil
	case FilterGroupMACVID:
		return 12, nil
	}
	return 0, fmt.Errorf("vdp: filter format %d", format)
}

// Append encodes the PDU: manager ID first, then the VSI TLVs.
func (p *VDPPDU) Append(b []byte) ([]byte, error) {
	b = binary.BigEndian.AppendUint16(b, vdpManagerID<<9|16)
	b = append(b, p.ManagerID[:]...)
	for i := range p.VSIs {
		v := &p.VSIs[i]
		if v.Mode < VDPPreAssoc || v.Mode > VDPDeassoc {
			return b, fmt.Errorf("vdp: VSI TLV type %d", v.Mode)
		}
		n, err := entryLen(v.FilterFormat)
		if err != nil {
			return b, err
		}
		if len(v.Filters) == 0 || vdpVSIFixedLen+n*len(v.Filters) > maxTLVLen {
			return b, fmt.Errorf("vdp: %d filter entries", len(v.Filters))
		}
		b = binary.BigEndian.AppendUint16(b, uint16(v.Mode)<<9|uint16(vdpVSIFixedLen+n*len(v.Filters)))
		b = append(b, v.Status, byte(v.TypeID>>16), byte(v.TypeID>>8), byte(v.TypeID), v.TypeVersion, v.IDFormat)
		b = append(b, v.ID[:]...)
		b = append(b, v.FilterFormat)
		b = binary.BigEndian.AppendUint16(b, uint16(len(v.Filters)))
		for _, f := range v.Filters {
			if v.FilterFormat == FilterGroupVID || v.FilterFormat == FilterGroupMACVID {
				b = binary.BigEndian.AppendUint32(b, f.GroupID)
			}
			if v.FilterFormat == FilterMACVID || v.FilterFormat == FilterGroupMACVID {
				if len(f.MAC) != 6 {
					return b, fmt.Errorf("vdp: filter MAC %q", f.MAC)
				}
				b = append(b, f.MAC...)
			}
			w := f.VID&0xfff | uint16(f.PCP&7)<<12
			if f.PS {
				w |= 0x8000
			}
			b = binary.BigEndian.AppendUint16(b, w)
		}
	}
	return b, nil
}

// ParseVDP decodes a VDP PDU (an ECP payload; trailing zero padding ends
// it like an End TLV).
func ParseVDP(b []byte) (*VDPPDU, error) {
	p := &VDPPDU{}
	for i := 0; len(b) >= 2; i++ {
		h := binary.BigEndian.Uint16(b)
		typ, n := uint8(h>>9), int(h&0x1ff)
		if typ == 0 {
			break
		}
		if len(b) < 2+n {
			return nil, fmt.Errorf("vdp: TLV %d (type %d): length %d past the end", i, typ, n)
		}
		v := b[2 : 2+n]
		b = b[2+n:]
		if i == 0 && typ != vdpManagerID {
			return nil, fmt.Errorf("vdp: first TLV is type %d, want the manager ID", typ)
		}
		switch {
		case typ == vdpManagerID:
			if i != 0 || n != 16 {
				return nil, errors.New("vdp: manager ID TLV repeated or not 16 bytes")
			}
			copy(p.ManagerID[:], v)
		case typ >= VDPPreAssoc && typ <= VDPDeassoc:
			vsi, err := parseVSI(typ, v)
			if err != nil {
				return nil, err
			}
			p.VSIs = append(p.VSIs, vsi)
		default:
			// vendor (0x7f) and unknown TLVs are skipped
		}
	}
	if len(p.VSIs) == 0 && p.ManagerID == ([16]byte{}) {
		return nil, errors.New("vdp: empty PDU")
	}
	return p, nil
}

func parseVSI(typ uint8, v []byte) (VSI, error) {
	if len(v) < vdpVSIFixedLen {
		return VSI{}, fmt.Errorf("vdp: VSI TLV of %d bytes", len(v))
	}
	s := VSI{Mode: typ, Status: v[0], TypeID: uint32(v[1])<<16 | uint32(v[2])<<8 | uint32(v[3]), TypeVersion: v[4], IDFormat: v[5]}
	copy(s.ID[:], v[6:22])
	s.FilterFormat = v[22]
	count := int(binary.BigEndian.Uint16(v[23:25]))
	n, err := entryLen(s.FilterFormat)
	if err != nil {
		return VSI{}, err
	}
	if count == 0 || len(v) != vdpVSIFixedLen+n*count {
		return VSI{}, fmt.Errorf("vdp: VSI TLV of %d bytes for %d entries of format %d", len(v), count, s.FilterFormat)
	}
	e := v[vdpVSIFixedLen:]
	for k := 0; k < count; k++ {
		var f Filter
		if s.FilterFormat == FilterGroupVID || s.FilterFormat == FilterGroupMACVID {
			f.GroupID = binary.BigEndian.Uint32(e)
			e = e[4:]
		}
		if s.FilterFormat == FilterMACVID || s.FilterFormat == FilterGroupMACVID {
			f.MAC = net.HardwareAddr(clone(e[:6]))
			e = e[6:]
		}
		w := binary.BigEndian.Uint16(e)
		e = e[2:]
		f.PS, f.PCP, f.VID = w&0x8000 != 0, uint8(w>>12)&7, w&0xfff
		s.Filters = append(s.Filters, f)
	}
	return s, nil
}
