package port

import (
	"strconv"
	"strings"

	"github.com/vswitch/vswitch/internal/uuid"
)

// MaxVSIType is the largest VSI type ID: VDP carries it in three bytes.
const MaxVSIType = 1<<24 - 1

// Migration states of a port (Config.Migration): its part in a live
// migration of its VM between two hypervisors.
const (
	// MigrationNone: no migration; the port's VSIs are associated.
	MigrationNone = ""
	// MigrationIncoming: the VM is migrating here and has not run yet; its
	// VSIs are pre-associated until it sends its first frame.
	MigrationIncoming = "incoming"
	// MigrationOutgoing: the VM has moved to another host; its VSIs are
	// de-associated (with the S bit) and the port waits to be deleted.
	MigrationOutgoing = "outgoing"
)

// maxManagerName is the longest VSI manager name: the manager ID is 16
// bytes.
const maxManagerName = 16

// ParseVSIManager reads a VSI manager ID as operators write it and
// returns its canonical text:
//
//   - a number 0-255 is libvirt's managerid for 802.1Qbg (and lldpad's
//     "mgrid"): the manager ID has it in its first byte and zeros after,
//     which is how libvirt and lldpad encode it, so a bridge configured
//     for those keeps working ("012" is written "12");
//   - any other text of 2-16 printable ASCII characters without spaces is
//     a name, sent as its bytes padded with zeros (vswitchd's default
//     manager is the name "vswitchd"). One character would be the same
//     16 bytes as a number ("a" is 97), hence two at least.
//
// Spaces around it are allowed; "" stays "" (the default manager).
func ParseVSIManager(s string) (string, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return "", nil
	}
	digits := true
	for i := 0; i < len(t); i++ {
		b := t[i]
		if b <= ' ' || b > '~' {
			return "", &Error{Field: FieldVSIManager, Value: quote(s), Reason: "use a number 0-255 (libvirt's managerid) or a name of 2-16 printable characters without spaces"}
		}
		digits = digits && b >= '0' && b <= '9'
	}
	if digits {
		n, err := strconv.Atoi(t)
		if err != nil || n > 255 {
			return "", &Error{Field: FieldVSIManager, Value: quote(s), Reason: "a numeric manager ID is one byte: use 0-255", Err: err}
		}
		return strconv.Itoa(n), nil
	}
	if len(t) > maxManagerName || len(t) < 2 {
		return "", &Error{Field: FieldVSIManager, Value: quote(s), Reason: "a manager name has 2-16 characters (or use a number 0-255)"}
	}
	return t, nil
}

// VSIManagerID is the 16-byte manager ID VDP sends for a manager in
// canonical text (ParseVSIManager): a number's byte first and zeros
// after, or a name's bytes padded with zeros. "" gives the zero ID (the
// caller's default).
func VSIManagerID(canonical string) (id [16]byte) {
	if n, err := strconv.Atoi(canonical); err == nil && n >= 0 && n <= 255 {
		id[0] = byte(n)
		return id
	}
	copy(id[:], canonical)
	return id
}

// ParseInstanceID reads a VSI instance ID: a UUID (8-4-4-4-12 hex digits,
// or 32 without dashes, either case), returned in canonical lower-case
// 8-4-4-4-12 form. The nil UUID names nothing and is refused. "" stays ""
// (the VSIID is then derived: see the daemon's VDP documentation).
func ParseInstanceID(s string) (string, error) {
	if strings.TrimSpace(s) == "" {
		return "", nil
	}
	u, err := uuid.Parse(s)
	if err != nil {
		return "", &Error{Field: FieldInstanceID, Value: quote(s), Reason: "use a UUID such as 4dea22b3-1d52-d8f3-2516-782e98ab3fa0", Err: err}
	}
	if u == uuid.Nil {
		return "", &Error{Field: FieldInstanceID, Value: quote(s), Reason: "the nil UUID names no VSI; use the VM's own UUID"}
	}
	return u.String(), nil
}

// ParseMigration reads a migration state: "incoming", "outgoing", or
// "none" (or "") for none.
func ParseMigration(s string) (string, error) {
	switch t := strings.TrimSpace(s); t {
	case "", "none":
		return MigrationNone, nil
	case MigrationIncoming, MigrationOutgoing:
		return t, nil
	}
	return "", &Error{Field: FieldMigration, Value: quote(s), Reason: "use incoming, outgoing or none"}
}

// MaxVSIGroup is the largest VSI group ID: VDP carries it in four bytes.
const MaxVSIGroup = 1<<32 - 1

// CheckVSIGroup checks a VSI group ID: 1-4294967295, or 0 for none.
func CheckVSIGroup(g int64) error {
	if g < 0 || g > MaxVSIGroup {
		return &Error{Field: FieldVSIGroup, Value: strconv.FormatInt(g, 10), Reason: "must be 1-4294967295, or 0 for none"}
	}
	return nil
}

// ParseVSIGroup reads a VSI group ID (spaces around it allowed) and checks
// it as CheckVSIGroup does.
func ParseVSIGroup(s string) (uint32, error) {
	t := strings.TrimSpace(s)
	g, err := strconv.ParseInt(t, 10, 64)
	if err != nil {
		return 0, &Error{Field: FieldVSIGroup, Value: quote(t), Reason: "must be a number 1-4294967295, or 0 for none", Err: err}
	}
	if err := CheckVSIGroup(g); err != nil {
		return 0, err
	}
	return uint32(g), nil
}

// validateVSI checks the VSI identity and migration fields of c: each in
// its canonical form, so that what the state file and the API hold reads
// back the same.
func (c *Config) validateVSI() error {
	if err := CheckNumber(FieldVSIType, int(c.VSIType)); err != nil {
		return err
	}
	for _, f := range []struct {
		field Field
		v     string
		parse func(string) (string, error)
	}{{FieldVSIManager, c.VSIManager, ParseVSIManager}, {FieldInstanceID, c.InstanceID, ParseInstanceID}, {FieldMigration, c.Migration, ParseMigration}} {
		canon, err := f.parse(f.v)
		if err != nil {
			return err
		}
		if canon != f.v {
			return &Error{Field: f.field, Value: quote(f.v), Reason: "not in canonical form; write " + quote(canon)}
		}
	}
	return nil
}
