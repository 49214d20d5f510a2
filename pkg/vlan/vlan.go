package vlan

import (
	"encoding/binary"
	"errors"
)

// Tag protocol identifiers.
const (
	TPIDCTag    uint16 = 0x8100 // IEEE 802.1Q customer tag
	TPIDSTag    uint16 = 0x88a8 // IEEE 802.1ad service tag
	TPIDQinQ    uint16 = 0x9100 // pre-standard QinQ tag
	TagLen             = 4
	MACsLen            = 12
	HeaderLen          = 14
	MaxVID             = 4094
	MaxTags            = 2
	vidMask            = 0x0fff
	pcpShift           = 13
	deiBit             = 0x1000
	MinFrameLen        = HeaderLen
)

// Errors returned by Parse.
var (
	ErrShort    = errors.New("frame too short")
	ErrTooMany  = errors.New("more than two VLAN tags")
	ErrTruncTag = errors.New("truncated VLAN tag")
)

// IsTPID reports whether t is one of the recognised tag protocol identifiers.
func IsTPID(t uint16) bool { return t == TPIDCTag || t == TPIDSTag || t == TPIDQinQ }

// Tag is one VLAN tag.
type Tag struct {
	TPID uint16
	TCI  uint16
}

// VID returns the tag's VLAN identifier.
func (t Tag) VID() uint16 { return t.TCI & vidMask }

// PCP returns the priority code point.
func (t Tag) PCP() uint8 { return uint8(t.TCI >> pcpShift) }

// DEI returns the drop eligible indicator.
func (t Tag) DEI() bool { return t.TCI&deiBit != 0 }

// MakeTCI packs pcp, dei and vid into a TCI.
func MakeTCI(pcp uint8, dei bool, vid uint16) uint16 {
	tci := uint16(pcp&7)<<pcpShift | vid&vidMask
	if dei {
		tci |= deiBit
	}
	return tci
}

// Header is the parsed tag stack of a frame. It is a value type so parsing
// allocates nothing.
type Header struct {
	NTags     int
	Tags      [MaxTags]Tag // outermost first
	EtherType uint16       // the ethertype behind the tags
	// PayloadOff is the offset of the first byte after the ethertype.
	PayloadOff int
}

// Outer returns the outermost tag (ok=false for an untagged frame).
func (h *Header) Outer() (Tag, bool) {
	if h.NTags == 0 {
		return Tag{}, false
	}
	return h.Tags[0], true
}

// CTag returns the customer tag: the innermost tag when it is 0x8100 (a frame
// with only an S-tag has none).
func (h *Header) CTag() (Tag, bool) {
	if h.NTags == 0 {
		return Tag{}, false
	}
	t := h.Tags[h.NTags-1]
	if t.TPID != TPIDCTag {
		return Tag{}, false
	}
	return t, true
}

// Parse reads the tag stack of frame into h. Frames with more than MaxTags
// tags or a tag cut short are errors.
func Parse(frame []byte, h *Header) error {
	if len(frame) < HeaderLen {
		return ErrShort
	}
	h.NTags = 0
	off := MACsLen
	for {
		if len(frame) < off+2 {
			return ErrTruncTag
		}
		et := binary.BigEndian.Uint16(frame[off:])
		if !IsTPID(et) {
			h.EtherType = et
			h.PayloadOff = off + 2
			return nil
		}
		if h.NTags == MaxTags {
			return ErrTooMany
		}
		if len(frame) < off+TagLen+2 {
			return ErrTruncTag
		}
		h.Tags[h.NTags] = Tag{TPID: et, TCI: binary.BigEndian.Uint16(frame[off+2:])}
		h.NTags++
		off += TagLen
	}
}

// IsTagged reports whether the frame's outer ethertype is a VLAN TPID.
func IsTagged(frame []byte) bool {
	return len(frame) >= HeaderLen && IsTPID(binary.BigEndian.Uint16(frame[MACsLen:]))
}

// PushInPlace inserts a tag right after the MAC addresses of the frame that
// occupies buf[off:off+n]. It needs off >= TagLen and returns the new offset
// and length (off-4, n+4). Only the 12 address bytes move.
func PushInPlace(buf []byte, off, n int, t Tag) (int, int) {
	no := off - TagLen
	copy(buf[no:no+MACsLen], buf[off:off+MACsLen])
	binary.BigEndian.PutUint16(buf[no+MACsLen:], t.TPID)
	binary.BigEndian.PutUint16(buf[no+MACsLen+2:], t.TCI)
	return no, n + TagLen
}

// PopInPlace removes the outermost tag of the frame in buf[off:off+n] and
// returns the new offset and length (off+4, n-4). The caller has checked the
// frame carries a tag.
func PopInPlace(buf []byte, off, n int) (int, int) {
	no := off + TagLen
	copy(buf[no:no+MACsLen], buf[off:off+MACsLen]) // copy handles overlap
	return no, n - TagLen
}

// PushTo writes frame with tag t inserted after the MAC addresses into dst
// and returns the number of bytes written (0 if dst is too small).
func PushTo(dst, frame []byte, t Tag) int {
	n := len(frame) + TagLen
	if len(frame) < MACsLen || len(dst) < n {
		return 0
	}
	copy(dst, frame[:MACsLen])
	binary.BigEndian.PutUint16(dst[MACsLen:], t.TPID)
	binary.BigEndian.PutUint16(dst[MACsLen+2:], t.TCI)
	copy(dst[MACsLen+TagLen:], frame[MACsLen:])
	return n
}

// PopTo writes frame without its outermost tag into dst and returns the
// number of bytes written (0 if the frame is untagged or dst too small).
func PopTo(dst, frame []byte) int {
	if !IsTagged(frame) || len(frame) < HeaderLen+TagLen {
		return 0
	}
	n := len(frame) - TagLen
	if len(dst) < n {
		return 0
	}
	copy(dst, frame[:MACsLen])
	copy(dst[MACsLen:], frame[MACsLen+TagLen:])
	return n
}
