package port

import (
	"encoding/json"
	"fmt"
)

// record is a Config's JSON form, the state file's port record (schema
// v2): the field names, the trunk in canonical text and the omitted zero
// values are a contract with state files already written.
type record struct {
	Name       string   `json:"name"`
	VLAN       int      `json:"vlan,omitempty"`
	Trunk      string   `json:"trunk,omitempty"`
	NativeVLAN int      `json:"native_vlan,omitempty"`
	SVID       int      `json:"svid,omitempty"`
	PCP        int      `json:"pcp,omitempty"`
	MACs       []string `json:"macs,omitempty"`
	Flood      bool     `json:"flood_unknown,omitempty"`
	Owner      string   `json:"owner,omitempty"`
	MaxMACs    *int     `json:"max_macs,omitempty"` // omitted: the daemon's default
	// The VSI identity and migration state: omitted when unset, so that
	// records without them stay byte for byte as they were.
	VSIType        int    `json:"vsi_type,omitempty"`
	VSITypeVersion int    `json:"vsi_type_version,omitempty"`
	VSIManager     string `json:"vsi_manager,omitempty"`
	InstanceID     string `json:"instance_id,omitempty"`
	Migration      string `json:"migration,omitempty"`
	// A VLAN the bridge assigns (no "vlan": the assignment is not
	// saved) and the VSIs' group ID; omitted when unset.
	BridgeVLAN bool  `json:"vlan_from_bridge,omitempty"`
	VSIGroup   int64 `json:"vsi_group,omitempty"`
}

// MarshalJSON writes c as
//
//	{"name":"vnet2","trunk":"10,20-30","native_vlan":10,"macs":["52:54:00:12:34:56"]}
//
// with the trunk in canonical form and zero values left out (max_macs is
// written when set, 0 included). A port whose VLAN the bridge assigns is
// written "vlan_from_bridge":true without the VID it may have now. It does
// not validate c.
func (c Config) MarshalJSON() ([]byte, error) {
	r := record{Name: c.Name, VLAN: int(c.VLAN), NativeVLAN: int(c.NativeVLAN), SVID: int(c.SVID), PCP: int(c.PCP), Flood: c.Flood, Owner: c.Owner, MaxMACs: c.MaxMACs,
		VSIType: int(c.VSIType), VSITypeVersion: int(c.VSITypeVersion), VSIManager: c.VSIManager, InstanceID: c.InstanceID, Migration: c.Migration,
		BridgeVLAN: c.BridgeVLAN, VSIGroup: int64(c.VSIGroup)}
	if c.BridgeVLAN {
		r.VLAN = 0 // the bridge's assignment is asked for again at the next start
	}
	if c.Trunk.Len() != 0 {
		r.Trunk = c.Trunk.String()
	}
	for _, m := range c.MACs {
		r.MACs = append(r.MACs, m.String())
	}
	return json.Marshal(r)
}

// UnmarshalJSON reads what MarshalJSON writes and validates it: a Config
// decoded from JSON is valid, with its MACs normalised and listed once.
// Unknown fields are ignored. On error c is left unchanged and the error
// is the *Error of the rule the record breaks (or the JSON error).
func (c *Config) UnmarshalJSON(b []byte) error {
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return fmt.Errorf("decode port: %w", err)
	}
	if err := CheckName(r.Name); err != nil {
		return withPort(err, r.Name)
	}
	n := Config{Name: r.Name, Flood: r.Flood, Owner: r.Owner, MaxMACs: r.MaxMACs, BridgeVLAN: r.BridgeVLAN}
	if r.BridgeVLAN && r.VLAN != 0 {
		return withPort(&Error{Field: FieldVLAN, Reason: fmt.Sprintf("the record asks the bridge for the VLAN (vlan_from_bridge) and names VLAN %d too; keep one", r.VLAN)}, r.Name)
	}
	if err := CheckVSIGroup(r.VSIGroup); err != nil {
		return withPort(err, r.Name)
	}
	n.VSIGroup = uint32(r.VSIGroup)
	for _, f := range []struct {
		field Field
		v     int
		dst   *uint16
	}{{FieldVLAN, r.VLAN, &n.VLAN}, {FieldNativeVLAN, r.NativeVLAN, &n.NativeVLAN}, {FieldSVID, r.SVID, &n.SVID}} {
		if f.v == 0 {
			continue // not set
		}
		if err := CheckNumber(f.field, f.v); err != nil {
			return withPort(err, r.Name)
		}
		*f.dst = uint16(f.v)
	}
	if err := CheckNumber(FieldPCP, r.PCP); err != nil {
		return withPort(err, r.Name)
	}
	n.PCP = uint8(r.PCP)
	for _, f := range []struct {
		field Field
		v     int
	}{{FieldVSIType, r.VSIType}, {FieldVSITypeVersion, r.VSITypeVersion}} {
		if err := CheckNumber(f.field, f.v); err != nil {
			return withPort(err, r.Name)
		}
	}
	n.VSIType, n.VSITypeVersion = uint32(r.VSIType), uint8(r.VSITypeVersion)
	for _, f := range []struct {
		v     string
		parse func(string) (string, error)
		dst   *string
	}{{r.VSIManager, ParseVSIManager, &n.VSIManager}, {r.InstanceID, ParseInstanceID, &n.InstanceID}, {r.Migration, ParseMigration, &n.Migration}} {
		v, err := f.parse(f.v)
		if err != nil {
			return withPort(err, r.Name)
		}
		*f.dst = v
	}
	if r.Trunk != "" {
		set, err := ParseTrunk(r.Trunk)
		if err != nil {
			return withPort(err, r.Name)
		}
		n.Trunk = set
	}
	macs, err := ParseMACs(r.MACs)
	if err != nil {
		return withPort(err, r.Name)
	}
	n.MACs = macs
	if err := n.Validate(); err != nil {
		return err
	}
	*c = n
	return nil
}

// withPort sets the port name of a *Error (err may be nil).
func withPort(err error, name string) error {
	if e, ok := err.(*Error); ok {
		e.Port = name
	}
	return err
}
