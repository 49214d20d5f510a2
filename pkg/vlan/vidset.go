package vlan

import (
	"fmt"
	"strconv"
	"strings"
)

// VIDSet is a set of VLAN IDs 1-4094 as a bitmap: membership tests are a
// shift and a mask, with no allocation.
type VIDSet [4096 / 64]uint64

// Add puts vid in the set.
func (s *VIDSet) Add(vid uint16) { s[vid>>6] |= 1 << (vid & 63) }

// Has reports whether vid is in the set.
func (s *VIDSet) Has(vid uint16) bool { return vid < 4096 && s[vid>>6]&(1<<(vid&63)) != 0 }

// Len is the number of VIDs in the set.
func (s *VIDSet) Len() int {
	n := 0
	for _, w := range s {
		for ; w != 0; w &= w - 1 {
			n++
		}
	}
	return n
}

// List returns the VIDs in ascending order.
func (s *VIDSet) List() []int {
	out := make([]int, 0, s.Len())
	for v := 1; v <= MaxVID; v++ {
		if s.Has(uint16(v)) {
			out = append(out, v)
		}
	}
	return out
}

// String formats the set compactly, e.g. "10,20-30".
func (s *VIDSet) String() string {
	var b strings.Builder
	for v := 1; v <= MaxVID; v++ {
		if !s.Has(uint16(v)) {
			continue
		}
		end := v
		for end+1 <= MaxVID && s.Has(uint16(end+1)) {
			end++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		if end == v {
			fmt.Fprintf(&b, "%d", v)
		} else {
			fmt.Fprintf(&b, "%d-%d", v, end)
		}
		v = end
	}
	return b.String()
}

// ParseVID parses one VLAN ID and checks it is 1-4094.
func ParseVID(s string) (uint16, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("invalid VLAN %q: not a number", s)
	}
	if err := CheckVID(n); err != nil {
		return 0, err
	}
	return uint16(n), nil
}

// CheckVID returns an error unless 1 <= vid <= 4094.
func CheckVID(vid int) error {
	if vid < 1 || vid > MaxVID {
		return fmt.Errorf("invalid VLAN %d: must be 1-4094", vid)
	}
	return nil
}

// ParseVIDSet parses a list like "10,20-30,40". Empty input is an empty set.
func ParseVIDSet(s string) (VIDSet, error) {
	var set VIDSet
	s = strings.TrimSpace(s)
	if s == "" {
		return set, nil
	}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			return set, fmt.Errorf("invalid VLAN set %q: empty element", s)
		}
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := ParseVID(lo)
		if err != nil {
			return set, fmt.Errorf("invalid VLAN set %q: %w", s, err)
		}
		b := a
		if isRange {
			if b, err = ParseVID(hi); err != nil {
				return set, fmt.Errorf("invalid VLAN set %q: %w", s, err)
			}
			if b < a {
				return set, fmt.Errorf("invalid VLAN set %q: range %d-%d is backwards", s, a, b)
			}
		}
		for v := a; v <= b; v++ {
			set.Add(v)
		}
	}
	return set, nil
}
