package api

import (
	"fmt"
	"net"

	"github.com/vswitch/vswitch/pkg/port"
	"github.com/vswitch/vswitch/pkg/vlan"
)

// specValues are a PortSpec's values checked on their own and parsed.
type specValues struct {
	trunk vlan.VIDSet        // when Trunk is set and not ""
	macs  []net.HardwareAddr // when MACs is set
	// manager, instance and migration in canonical form, when set
	manager, instance, migration string
}

// Check checks each field the spec sets on its own, by the rules of
// port.Config (the interface name, the range of each number, the trunk's
// VID set, each MAC), as a client can before it knows the port's current
// configuration. In a spec, vlan 0 means "no access VLAN" and trunk ""
// "no trunk": both are how a PATCH switches a port between access and
// trunk. Setting both at once leaves a port with neither, so that is
// refused as VLAN 0, unless vlan_from_bridge asks the bridge for the VLAN
// (then vlan may only be 0 and the trunk empty). Errors are *port.Error.
func (s PortSpec) Check() error {
	_, err := s.values()
	return err
}

func (s PortSpec) values() (specValues, error) {
	var v specValues
	if s.Name != "" {
		if err := port.CheckName(s.Name); err != nil {
			return v, err
		}
	}
	if s.VLAN != nil && *s.VLAN != 0 {
		if err := port.CheckNumber(port.FieldVLAN, *s.VLAN); err != nil {
			return v, err
		}
	}
	if s.Trunk != nil && *s.Trunk != "" {
		set, err := port.ParseTrunk(*s.Trunk)
		if err != nil {
			return v, err
		}
		v.trunk = set
	}
	fromBridge := s.VLANFromBridge != nil && *s.VLANFromBridge
	switch {
	case fromBridge && s.VLAN != nil && *s.VLAN != 0:
		return v, &port.Error{Port: s.Name, Field: port.FieldVLAN, Reason: fmt.Sprintf("vlan_from_bridge asks the bridge for the VLAN; drop vlan %d (or vlan_from_bridge)", *s.VLAN)}
	case fromBridge && v.trunk.Len() != 0:
		return v, &port.Error{Port: s.Name, Field: port.FieldVLAN, Reason: "the bridge assigns a VLAN to an access port (vlan_from_bridge), not to a trunk; drop one of them"}
	case !fromBridge && s.VLAN != nil && *s.VLAN == 0 && s.Trunk != nil && *s.Trunk == "":
		return v, vlanZero()
	}
	if s.VSIGroup != nil {
		if err := port.CheckVSIGroup(*s.VSIGroup); err != nil {
			return v, err
		}
	}
	for _, f := range []struct {
		field port.Field
		v     *int
	}{{port.FieldNativeVLAN, s.NativeVLAN}, {port.FieldSVID, s.SVID}, {port.FieldPCP, s.PCP},
		{port.FieldVSIType, s.VSIType}, {port.FieldVSITypeVersion, s.VSITypeVersion}} {
		if f.v != nil {
			if err := port.CheckNumber(f.field, *f.v); err != nil {
				return v, err
			}
		}
	}
	if s.MaxMACs != nil && *s.MaxMACs != MaxMACsDefault {
		if err := port.CheckNumber(port.FieldMaxMACs, *s.MaxMACs); err != nil {
			return v, err
		}
	}
	if s.MACs != nil {
		macs, err := port.ParseMACs(*s.MACs)
		if err != nil {
			return v, err
		}
		v.macs = macs
	}
	if s.Owner != nil {
		if err := checkOwner(*s.Owner); err != nil {
			return v, err
		}
	}
	for _, f := range []struct {
		in    *string
		parse func(string) (string, error)
		out   *string
	}{{s.VSIManager, port.ParseVSIManager, &v.manager}, {s.InstanceID, port.ParseInstanceID, &v.instance}, {s.Migration, port.ParseMigration, &v.migration}} {
		if f.in != nil {
			c, err := f.parse(*f.in)
			if err != nil {
				return v, err
			}
			*f.out = c
		}
	}
	return v, nil
}

// vlanZero is the error for an access VLAN 0 that asks for no trunk: VDP's
// VID 0 is asked for with vlan_from_bridge.
func vlanZero() error {
	err := port.CheckNumber(port.FieldVLAN, 0).(*port.Error)
	err.Reason += " (vlan_from_bridge asks the bridge to assign one over VDP)"
	return err
}

// maxOwner bounds PortSpec.Owner (a libvirt domain UUID has 36
// characters).
const maxOwner = 128

// checkOwner is the rule for PortSpec.Owner: "" (none), or up to maxOwner
// printable ASCII characters other than space, so it shows in a log line
// and a table cell as it is.
func checkOwner(o string) error {
	if len(o) > maxOwner {
		return NewError(CodeInvalidBody, fmt.Sprintf("invalid owner: %d characters, at most %d", len(o), maxOwner))
	}
	for i := 0; i < len(o); i++ {
		if o[i] <= ' ' || o[i] > '~' {
			return NewError(CodeInvalidBody, fmt.Sprintf("invalid owner %q: only printable ASCII characters other than space", o))
		}
	}
	return nil
}

// Apply returns c changed by the fields the spec sets, validated. It is
// how both POST /v1/ports (c is the zero Config and the spec's Name names
// the port) and PATCH /v1/ports/{name} (c is the port's configuration; a
// Name other than c's is refused: ports are not renamed) turn a request
// into a port.Config, and what vswctl and the libvirt hook check their
// requests with before sending them.
//
// A port switches kind through the same fields: setting vlan to a VID
// makes it an access port (its trunk and native VLAN go), setting a
// non-empty trunk makes it a trunk port (its VLAN goes), and
// vlan_from_bridge true an access port whose VLAN the bridge assigns
// (VLAN 0, trunk and native VLAN gone); either of the first two ends a
// VLAN from the bridge. A port with a VLAN from the bridge or a VSI group
// must also fit VDP (port.CheckVDP): only VDP gives those their meaning. A port becomes
// "incoming" (migration) only when it is added: a VSI once associated is
// not pre-associated again. Errors are the *port.Error of the first rule
// broken (CodeOf maps them to the API's codes), with the zero Config.
func (s PortSpec) Apply(c port.Config) (port.Config, error) {
	adding := c.Name == ""
	switch {
	case adding:
		c.Name = s.Name
	case s.Name != "" && s.Name != c.Name:
		return port.Config{}, NewError(CodeInvalidName, fmt.Sprintf("cannot rename port %s to %s: delete it and add %s", c.Name, s.Name, s.Name))
	}
	v, err := s.values()
	if err != nil {
		return port.Config{}, err
	}
	if s.Migration != nil && v.migration == port.MigrationIncoming && !adding && c.Migration != port.MigrationIncoming {
		return port.Config{}, &port.Error{Port: c.Name, Field: port.FieldMigration,
			Reason: "a port is incoming only when it is added (its VSIs are then pre-associated); delete it and add it with migration incoming"}
	}
	if s.VLAN != nil {
		c.VLAN = uint16(*s.VLAN)
		if *s.VLAN != 0 {
			c.Trunk, c.NativeVLAN, c.BridgeVLAN = vlan.VIDSet{}, 0, false
		}
	}
	if s.Trunk != nil {
		c.Trunk = v.trunk
		if *s.Trunk != "" {
			c.VLAN, c.BridgeVLAN = 0, false
		}
	}
	if s.VLANFromBridge != nil {
		c.BridgeVLAN = *s.VLANFromBridge
		if c.BridgeVLAN {
			c.VLAN, c.Trunk, c.NativeVLAN = 0, vlan.VIDSet{}, 0
		}
	}
	if s.VSIGroup != nil {
		c.VSIGroup = uint32(*s.VSIGroup)
	}
	if s.NativeVLAN != nil {
		c.NativeVLAN = uint16(*s.NativeVLAN)
	}
	if s.SVID != nil {
		c.SVID = uint16(*s.SVID)
	}
	if s.PCP != nil {
		c.PCP = uint8(*s.PCP)
	}
	if s.MACs != nil {
		c.MACs = v.macs
	}
	if s.Flood != nil {
		c.Flood = *s.Flood
	}
	if s.Owner != nil {
		c.Owner = *s.Owner
	}
	if s.MaxMACs != nil {
		c.MaxMACs = nil
		if n := *s.MaxMACs; n != MaxMACsDefault {
			c.MaxMACs = &n
		}
	}
	if s.VSIType != nil {
		c.VSIType = uint32(*s.VSIType)
	}
	if s.VSITypeVersion != nil {
		c.VSITypeVersion = uint8(*s.VSITypeVersion)
	}
	if s.VSIManager != nil {
		c.VSIManager = v.manager
	}
	if s.InstanceID != nil {
		c.InstanceID = v.instance
	}
	if s.Migration != nil {
		c.Migration = v.migration
	}
	if c.VLAN == 0 && c.Trunk.Len() == 0 && !c.BridgeVLAN && s.VLAN != nil && *s.VLAN == 0 {
		// The request asked for VLAN 0 and the port has no trunk to fall
		// back on: say so rather than that a VLAN is missing.
		return port.Config{}, vlanZero()
	}
	if err := c.Validate(); err != nil {
		return port.Config{}, err
	}
	if c.BridgeVLAN || c.VSIGroup != 0 {
		// Only VDP gives these ports their meaning: one whose VSIs do not
		// fit VDP is refused (a plain port registers none and forwards).
		if err := c.CheckVDP(); err != nil {
			return port.Config{}, err
		}
	}
	return c, nil
}

// PortCounters are a port's traffic counters as the API reports them.
type PortCounters struct {
	RxPackets, RxBytes, TxPackets, TxBytes uint64
	Drops                                  map[string]uint64 // per reason
	// LearnedMACs is the port's share of the FDB now; MACMoves counts
	// the MACs it took over from other ports.
	LearnedMACs int
	MACMoves    uint64
	// Backend are the counters only the port's backend keeps (GSO,
	// checksums, ring and XSK events), by name; nil when none.
	Backend map[string]uint64
}

// NewPort builds the API's port object from a port's configuration, its
// state (up, down, absent or waiting) and its counters. Lists are never
// null in the JSON: an access port has "trunk":[], a port without
// registered MACs "macs":[], and "drops" is always an object. For a port
// whose VLAN the bridge assigns, c.VLAN (the datapath's configuration
// holds the assigned VID there) is shown as assigned_vlan, and vlan is 0.
func NewPort(c port.Config, state string, ctr PortCounters) Port {
	p := Port{
		Name: c.Name, VLAN: int(c.VLAN), Trunk: c.Trunk.List(), NativeVLAN: int(c.NativeVLAN), SVID: int(c.SVID),
		PCP: int(c.PCP), MACs: make([]string, 0, len(c.MACs)), Flood: c.Flood, Owner: c.Owner, State: state,
		VSIType: int(c.VSIType), VSITypeVersion: int(c.VSITypeVersion), VSIManager: c.VSIManager, InstanceID: c.InstanceID, Migration: c.Migration,
		VLANFromBridge: c.BridgeVLAN, VSIGroup: int64(c.VSIGroup),
		RxPackets: ctr.RxPackets, RxBytes: ctr.RxBytes, TxPackets: ctr.TxPackets, TxBytes: ctr.TxBytes,
		Drops: ctr.Drops, Backend: ctr.Backend, LearnedMACs: ctr.LearnedMACs, MACMoves: ctr.MACMoves,
	}
	if c.BridgeVLAN {
		// "vlan" is what was configured (0: the bridge's); the bridge's
		// VID, when the datapath's configuration has it, is assigned_vlan.
		p.VLAN, p.AssignedVLAN = 0, int(c.VLAN)
	}
	if c.MaxMACs != nil {
		n := *c.MaxMACs
		p.MaxMACs = &n
	}
	for _, m := range c.MACs {
		p.MACs = append(p.MACs, m.String())
	}
	if p.Drops == nil {
		p.Drops = map[string]uint64{}
	}
	return p
}
