package port

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/vswitch/vswitch/pkg/vlan"
)

// Field names the part of a port configuration a rule is about.
type Field int

// The fields of a port. A rule between fields (access or trunk, native
// VLAN only on trunks) is reported on the field that has to change.
const (
	FieldName           Field = iota + 1 // the interface name
	FieldVLAN                            // the access VLAN, and whether the port is access or trunk
	FieldTrunk                           // the trunk's VID set
	FieldNativeVLAN                      // the trunk's native VLAN
	FieldSVID                            // the S-channel's S-VLAN
	FieldPCP                             // the 802.1p priority
	FieldMAC                             // one of the registered MACs, or how many
	FieldMaxMACs                         // the learned-MAC limit
	FieldVSIType                         // the VSI type ID (802.1Qbg VDP)
	FieldVSITypeVersion                  // the VSI type version
	FieldVSIManager                      // the VSI manager ID
	FieldInstanceID                      // the VSI instance ID (the VSIID)
	FieldMigration                       // the port's part in a live migration
	FieldVSIGroup                        // the VSIs' group ID (VDP filter formats 3 and 4)
	FieldVSIFilters                      // the VSIs' filters, as VDP carries them
)

// String is the field's name in messages ("native VLAN").
func (f Field) String() string {
	switch f {
	case FieldName:
		return "interface name"
	case FieldVLAN:
		return "VLAN"
	case FieldTrunk:
		return "trunk"
	case FieldNativeVLAN:
		return "native VLAN"
	case FieldSVID:
		return "S-VLAN"
	case FieldPCP:
		return "PCP"
	case FieldMAC:
		return "MAC"
	case FieldMaxMACs:
		return "MAC limit"
	case FieldVSIType:
		return "VSI type"
	case FieldVSITypeVersion:
		return "VSI type version"
	case FieldVSIManager:
		return "VSI manager"
	case FieldInstanceID:
		return "instance ID"
	case FieldMigration:
		return "migration"
	case FieldVSIGroup:
		return "VSI group"
	case FieldVSIFilters:
		return "VSI filters"
	}
	return fmt.Sprintf("Field(%d)", int(f))
}

// Error is a port configuration that breaks a rule. Its message is meant
// for the operator and says what to do:
//
//	invalid VLAN 4095: must be 1-4094
//	invalid trunk "30-20": range 30-20 is backwards; write it 20-30
//	port vnet1: a native VLAN needs a trunk port
//
// The first form is a value that is wrong on its own (Value set), the last
// a rule between fields (Value empty).
type Error struct {
	// Port is the port's name when a whole Config was validated; empty
	// when a single value was parsed or checked.
	Port string
	// Field is the part of the configuration at fault.
	Field Field
	// Value is the offending value as the message shows it: a number
	// bare, text quoted. Empty for a rule between fields.
	Value string
	// Reason says what is wrong and, where it helps, what to write instead.
	Reason string
	// Err is the underlying error (a *vlan.SetError for a trunk), or nil.
	Err error
}

func (e *Error) Error() string {
	if e.Value == "" {
		if e.Port == "" {
			return e.Reason
		}
		return "port " + e.Port + ": " + e.Reason
	}
	return "invalid " + e.Field.String() + " " + e.Value + ": " + e.Reason
}

func (e *Error) Unwrap() error { return e.Err }

func quote(s string) string { return strconv.Quote(s) }

// numberRange is the range of the numeric field f in a Config and how
// messages state it; ok is false for other fields.
func numberRange(f Field) (lo, hi int, text string, ok bool) {
	switch f {
	case FieldVLAN:
		return 1, vlan.MaxVID, "1-4094", true
	case FieldNativeVLAN, FieldSVID:
		return 0, vlan.MaxVID, "1-4094, or 0 for none", true
	case FieldPCP:
		return 0, 7, "0-7", true
	case FieldMaxMACs:
		return 0, MaxLearnedMACs, "0-" + strconv.Itoa(MaxLearnedMACs) + " (0: learn no MACs)", true
	case FieldVSIType:
		return 0, MaxVSIType, "0-16777215", true
	case FieldVSITypeVersion:
		return 0, 255, "0-255", true
	}
	return 0, 0, "", false
}

// CheckNumber checks v against the range of the numeric field f: VLAN
// 1-4094, native VLAN and S-VLAN 1-4094 or 0 for none, PCP 0-7, MAC limit
// 0-MaxLearnedMACs, VSI type 0-16777215 (24 bits), VSI type version 0-255.
func CheckNumber(f Field, v int) error {
	lo, hi, text, ok := numberRange(f)
	if !ok {
		return fmt.Errorf("port: %v is not a numeric field", f)
	}
	if v < lo || v > hi {
		return &Error{Field: f, Value: strconv.Itoa(v), Reason: "must be " + text}
	}
	return nil
}

// ParseNumber parses the text of the numeric field f (a command-line flag,
// an XML attribute), spaces around it allowed, and checks it as
// CheckNumber does: "ten" for a VLAN is refused with
//
//	invalid VLAN "ten": must be a number 1-4094
func ParseNumber(f Field, s string) (int, error) {
	_, _, text, ok := numberRange(f)
	if !ok {
		return 0, fmt.Errorf("port: %v is not a numeric field", f)
	}
	s = strings.TrimSpace(s)
	v, err := strconv.Atoi(s)
	if err != nil {
		return 0, &Error{Field: f, Value: quote(s), Reason: "must be a number " + text, Err: err}
	}
	if err := CheckNumber(f, v); err != nil {
		return 0, err
	}
	return v, nil
}

// ParseAccessVLAN parses an access port's VLAN as operators write it on
// the command line and in libvirt's metadata: a VID 1-4094, or 0 for a
// VLAN the adjacent bridge assigns over VDP (fromBridge; Config.BridgeVLAN).
// Other text is refused as ParseNumber refuses it, with 0 in the range:
//
//	invalid VLAN 4095: must be 1-4094, or 0 for the bridge to assign it
func ParseAccessVLAN(s string) (vid uint16, fromBridge bool, err error) {
	t := strings.TrimSpace(s)
	v, err := strconv.Atoi(t)
	switch {
	case err != nil:
		return 0, false, &Error{Field: FieldVLAN, Value: quote(t), Reason: "must be a number 1-4094, or 0 for the bridge to assign it", Err: err}
	case v == 0:
		return 0, true, nil
	case v < 0 || v > vlan.MaxVID:
		return 0, false, &Error{Field: FieldVLAN, Value: strconv.Itoa(v), Reason: "must be 1-4094, or 0 for the bridge to assign it"}
	}
	return uint16(v), false, nil
}

// ParseTrunk parses a trunk's VID set ("10,20-30", see vlan.ParseVIDSet).
// A trunk carries at least one VLAN, so empty or blank text is an error
// here.
func ParseTrunk(s string) (vlan.VIDSet, error) {
	set, err := vlan.ParseVIDSet(s)
	if err != nil {
		e := &Error{Field: FieldTrunk, Value: quote(s), Reason: err.Error(), Err: err}
		var se *vlan.SetError
		if errors.As(err, &se) {
			e.Reason = se.Reason
		}
		return vlan.VIDSet{}, e
	}
	if set.Len() == 0 {
		return set, &Error{Field: FieldTrunk, Value: quote(s), Reason: vlan.VIDSetHint}
	}
	return set, nil
}

// ParseMAC parses one registered MAC (spaces around it allowed): a 6-byte
// unicast address other than all zeros, in any form net.ParseMAC reads.
func ParseMAC(s string) (net.HardwareAddr, error) {
	s = strings.TrimSpace(s)
	m, err := net.ParseMAC(s)
	if err != nil {
		return nil, &Error{Field: FieldMAC, Value: quote(s), Reason: "use the form 52:54:00:12:34:56", Err: err}
	}
	if err := checkMAC(m, s); err != nil {
		return nil, err
	}
	return m, nil
}

// ParseMACs parses a list of registered MACs with ParseMAC, in order,
// dropping repeats (52:54:00:AB:CD:EF and 52:54:00:ab:cd:ef are one). An
// empty list gives nil.
func ParseMACs(list []string) ([]net.HardwareAddr, error) {
	var out []net.HardwareAddr
	seen := make(map[string]bool, len(list))
	for _, s := range list {
		m, err := ParseMAC(s)
		if err != nil {
			return nil, err
		}
		if !seen[string(m)] {
			seen[string(m)] = true
			out = append(out, m)
		}
	}
	return out, nil
}

// checkMAC checks a registered MAC; text is how the user wrote it.
func checkMAC(m net.HardwareAddr, text string) error {
	switch {
	case len(m) != 6:
		return &Error{Field: FieldMAC, Value: quote(text), Reason: "use the form 52:54:00:12:34:56"}
	case m[0]&1 != 0:
		return &Error{Field: FieldMAC, Value: quote(text), Reason: "it is a multicast address; a VM's MAC must be unicast, e.g. 52:54:00:12:34:56"}
	case m[0]|m[1]|m[2]|m[3]|m[4]|m[5] == 0:
		return &Error{Field: FieldMAC, Value: quote(text), Reason: "all zeros; use the VM's address, e.g. 52:54:00:12:34:56"}
	}
	return nil
}

// maxNameLen is the longest interface name Linux takes (IFNAMSIZ less the
// terminating NUL).
const maxNameLen = 15

// CheckName checks an interface name the way Linux does (dev_valid_name):
// 1-15 bytes, not "." or "..", and no '/', ':' or white space (the
// kernel's: tab, newline, vertical tab, form feed, carriage return, space
// and the byte 0xa0); a NUL byte cannot be in a name either.
func CheckName(name string) error {
	bad := name == "" || len(name) > maxNameLen || name == "." || name == ".."
	for i := 0; i < len(name) && !bad; i++ {
		switch b := name[i]; {
		case b == '/', b == ':', b == 0, b == ' ', b >= '\t' && b <= '\r', b == 0xa0:
			bad = true
		}
	}
	if bad {
		return &Error{Field: FieldName, Value: quote(name),
			Reason: "use a Linux interface name of 1-15 characters without '/', ':' or spaces, e.g. vnet1"}
	}
	// Linux takes any other byte, but the API carries names as JSON text,
	// where bytes that are not UTF-8 become U+FFFD: the port would name
	// another interface than the one asked for.
	if !utf8.ValidString(name) {
		return &Error{Field: FieldName, Value: quote(name),
			Reason: "the name is not valid UTF-8, which the API (JSON) cannot carry; rename the interface"}
	}
	return nil
}
