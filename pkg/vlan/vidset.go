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

// VIDSetHint is what a valid VID set looks like: it ends the messages of
// ParseVIDSet's errors, and pkg/port says it for an empty trunk.
const VIDSetHint = "use VLAN IDs 1-4094 and ranges, e.g. 10,20-30"

// SetError is what ParseVIDSet returns for a malformed set: the input and
// what is wrong with it, with a hint at the fix.
type SetError struct {
	Set    string // the input, as given
	Reason string // e.g. "range 30-20 is backwards; write it 20-30"
}

func (e *SetError) Error() string { return fmt.Sprintf("invalid VLAN set %q: %s", e.Set, e.Reason) }

// ParseVIDSet parses a list like "10,20-30,40": VLAN IDs 1-4094 and
// inclusive ranges, separated by commas, spaces around each allowed. Empty
// (or blank) input is the empty set. Errors are *SetError; their reasons
// name the element at fault and say what to write instead (VLAN 5000 is
// out of range, range 30-20 is backwards: write it 20-30, "a" is not a
// VLAN ID, an empty element).
func ParseVIDSet(s string) (VIDSet, error) {
	var set VIDSet
	if strings.TrimSpace(s) == "" {
		return set, nil
	}
	fail := func(format string, args ...any) (VIDSet, error) {
		return VIDSet{}, &SetError{Set: s, Reason: fmt.Sprintf(format, args...) + "; " + VIDSetHint}
	}
	for _, part := range strings.Split(s, ",") {
		if strings.TrimSpace(part) == "" {
			return fail("empty element (two commas, or one at an end)")
		}
		lo, hi, isRange := strings.Cut(part, "-")
		a, problem := setVID(lo)
		if problem != "" {
			return fail("%s", problem)
		}
		b := a
		if isRange {
			if b, problem = setVID(hi); problem != "" {
				return fail("%s", problem)
			}
			if b < a {
				return VIDSet{}, &SetError{Set: s, Reason: fmt.Sprintf("range %d-%d is backwards; write it %d-%d", a, b, b, a)}
			}
		}
		for v := a; v <= b; v++ {
			set.Add(v)
		}
	}
	return set, nil
}

// setVID parses one end of an element of a VID set; problem says what is
// wrong with it ("" when nothing is).
func setVID(s string) (vid uint16, problem string) {
	s = strings.TrimSpace(s)
	v, err := strconv.Atoi(s)
	switch {
	case err != nil:
		return 0, fmt.Sprintf("%q is not a VLAN ID", s)
	case v < 1 || v > MaxVID:
		return 0, fmt.Sprintf("VLAN %d is out of range", v)
	}
	return uint16(v), ""
}
