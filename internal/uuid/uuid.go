package uuid

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"strings"
)

// UUID is a 16-byte RFC 4122 UUID.
type UUID [16]byte

// Nil is the all-zero UUID; it names nothing.
var Nil UUID

// Parse reads a UUID written as 8-4-4-4-12 hex digits or as 32 hex digits,
// in either case, with spaces around it allowed. The error says which form
// to use.
func Parse(s string) (UUID, error) {
	var u UUID
	t := strings.TrimSpace(s)
	switch len(t) {
	case 36:
		if t[8] != '-' || t[13] != '-' || t[18] != '-' || t[23] != '-' {
			return u, fmt.Errorf("invalid UUID %q: use the form 4dea22b3-1d52-d8f3-2516-782e98ab3fa0", s)
		}
		t = t[0:8] + t[9:13] + t[14:18] + t[19:23] + t[24:]
	case 32:
	default:
		return u, fmt.Errorf("invalid UUID %q: use the form 4dea22b3-1d52-d8f3-2516-782e98ab3fa0", s)
	}
	if _, err := hex.Decode(u[:], []byte(t)); err != nil {
		return UUID{}, fmt.Errorf("invalid UUID %q: use the form 4dea22b3-1d52-d8f3-2516-782e98ab3fa0", s)
	}
	return u, nil
}

// String writes u as 8-4-4-4-12 lower-case hex digits.
func (u UUID) String() string {
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:], u[10:])
	return string(b[:])
}

// NameBased is the version 5 UUID of name in namespace ns (RFC 4122
// section 4.3): SHA-1 of the namespace's 16 bytes followed by the name,
// its first 16 bytes with the version (5) and the RFC 4122 variant set.
func NameBased(ns UUID, name string) UUID {
	h := sha1.New()
	h.Write(ns[:])
	h.Write([]byte(name))
	var u UUID
	copy(u[:], h.Sum(nil))
	u[6] = u[6]&0x0f | 0x50
	u[8] = u[8]&0x3f | 0x80
	return u
}
