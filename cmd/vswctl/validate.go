package main

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/vswitch/vswitch/pkg/vlan"
)

// parseVID parses a VLAN ID flag. what names it in messages ("VLAN",
// "S-VLAN", ...); allowZero accepts 0 meaning "none".
func parseVID(what, s string, allowZero bool) (int, error) {
	rng := "1-4094"
	if allowZero {
		rng = "1-4094, or 0 for none"
	}
	s = strings.TrimSpace(s)
	v, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("invalid %s %q: must be a number %s", what, s, rng)
	}
	if (v == 0 && !allowZero) || v < 0 || v > vlan.MaxVID {
		return 0, fmt.Errorf("invalid %s %d: must be %s", what, v, rng)
	}
	return v, nil
}

// parseTrunk checks a VID set like "10,20-30" and returns it in canonical form.
func parseTrunk(s string) (string, error) {
	hint := "use VLAN IDs 1-4094 and ranges, e.g. 10,20-30"
	s = strings.TrimSpace(s)
	if s == "" {
		return "", fmt.Errorf("invalid trunk \"\": %s", hint)
	}
	vid := func(x string) (int, error) {
		x = strings.TrimSpace(x)
		v, err := strconv.Atoi(x)
		if err != nil {
			return 0, fmt.Errorf("invalid trunk %q: %q is not a VLAN ID; %s", s, x, hint)
		}
		if v < 1 || v > vlan.MaxVID {
			return 0, fmt.Errorf("invalid trunk %q: VLAN %d is out of range; %s", s, v, hint)
		}
		return v, nil
	}
	var set vlan.VIDSet
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := vid(lo)
		if err != nil {
			return "", err
		}
		b := a
		if isRange {
			if b, err = vid(hi); err != nil {
				return "", err
			}
			if b < a {
				return "", fmt.Errorf("invalid trunk %q: range %d-%d is backwards; write it %d-%d", s, a, b, b, a)
			}
		}
		for v := a; v <= b; v++ {
			set.Add(uint16(v))
		}
	}
	return set.String(), nil
}

func parsePCP(s string) (int, error) {
	s = strings.TrimSpace(s)
	v, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("invalid PCP %q: must be a number 0-7", s)
	}
	if v < 0 || v > 7 {
		return 0, fmt.Errorf("invalid PCP %d: must be 0-7", v)
	}
	return v, nil
}

// parseMACs checks each MAC is a 6-byte unicast address and returns them
// normalized (lower case, colons), without duplicates.
func parseMACs(in []string) ([]string, error) {
	out := make([]string, 0, len(in))
	seen := map[string]bool{}
	for _, s := range in {
		s = strings.TrimSpace(s)
		hw, err := net.ParseMAC(s)
		if err != nil || len(hw) != 6 {
			return nil, fmt.Errorf("invalid MAC %q: use the form 52:54:00:12:34:56", s)
		}
		if hw[0]&1 != 0 {
			return nil, fmt.Errorf("invalid MAC %q: it is a multicast address; a VM's MAC must be unicast, e.g. 52:54:00:12:34:56", s)
		}
		if string(hw) == "\x00\x00\x00\x00\x00\x00" {
			return nil, fmt.Errorf("invalid MAC %q: all zeros; use the VM's address, e.g. 52:54:00:12:34:56", s)
		}
		m := hw.String()
		if !seen[m] {
			seen[m] = true
			out = append(out, m)
		}
	}
	return out, nil
}

// checkIfName accepts what Linux accepts as an interface name.
func checkIfName(name string) error {
	bad := name == "" || len(name) > 15 || name == "." || name == ".." ||
		strings.ContainsAny(name, "/: \t\n")
	if bad {
		return fmt.Errorf("invalid interface name %q: use a Linux interface name of 1-15 characters without '/', ':' or spaces, e.g. vnet1", name)
	}
	return nil
}
