package port

import (
	"fmt"
	"net"

	"github.com/vswitch/vswitch/pkg/vlan"
)

// Bounds of what one port may ask of the switch. They keep a single
// request (or state-file record) from growing the daemon without limit.
const (
	// MaxRegisteredMACs is how many MACs one port may register (MACs).
	// A registered MAC costs the same on a trunk of 4094 VLANs as on an
	// access port: the switch indexes it once, not once per VLAN.
	MaxRegisteredMACs = 256
	// MaxLearnedMACs is the largest learned-MAC limit a port (MaxMACs) or
	// the daemon (--max-macs-per-port, --max-macs-per-vlan, --fdb-max)
	// may set.
	MaxLearnedMACs = 1 << 20
)

// Config is one switch port: the VM tap it stands for, how its frames are
// tagged and which source MACs it may use. A port is an access port when
// VLAN != 0 or BridgeVLAN is set, and a trunk port otherwise (Trunk then
// holds the VIDs it carries). Validate says whether a Config is usable;
// the zero Config is not (it has no name).
type Config struct {
	// Name is the interface (tap) name, as Linux accepts it.
	Name string
	// VLAN is the access port's VID (1-4094); 0 on a trunk port. With
	// BridgeVLAN it is the VID the bridge assigned, 0 while there is none.
	VLAN uint16
	// BridgeVLAN makes an access port whose VLAN the adjacent bridge
	// assigns over 802.1Qbg VDP (vswctl --vlan 0): its VSIs ask with VID
	// 0, and until the bridge's answer carries a VID (then in VLAN) the
	// port forwards nothing (Waiting). The assignment is not
	// configuration: the JSON record keeps no VLAN, so the port asks again
	// after every restart.
	BridgeVLAN bool
	// Trunk is the trunk port's set of allowed VIDs; empty on an access port.
	Trunk vlan.VIDSet
	// NativeVLAN is the VID of a trunk port's untagged frames (0: they are
	// dropped); 0 on an access port.
	NativeVLAN uint16
	// SVID is the outer 802.1ad S-tag of the port's S-channel; 0 = none.
	SVID uint16
	// PCP is the 802.1p priority (0-7) of the tags pushed for the port.
	PCP uint8
	// MACs are the source addresses the VM may use (none: any); each is a
	// 6-byte unicast address other than 00:00:00:00:00:00, listed once.
	MACs []net.HardwareAddr
	// Flood makes the port receive unknown unicast of its VLAN(s).
	Flood bool
	// Owner names who added the port ("" when nobody said): the libvirt
	// hook records the domain's UUID, and removes at the domain's stop
	// only ports that carry it. The switch does not use it and Validate
	// does not judge it (the API's request rules do: api.PortSpec).
	Owner string

	// MaxMACs is how many source MACs the port may learn (0 to
	// MaxLearnedMACs); nil: the daemon's default (vswitchd
	// --max-macs-per-port). 0 makes the port learn nothing: only its
	// registered MACs reach it by unicast. A frame from a new MAC beyond
	// the limit is dropped (reason mac_limit); learned entries are never
	// evicted for it.
	MaxMACs *int
	// The VM's identity to the adjacent bridge (802.1Qbg VDP): each VSI
	// the port registers carries VSIType (0-16777215) and VSITypeVersion,
	// the bridge's policy for the VM, under the manager VSIManager ("":
	// vswitchd's own, "vswitchd"; see ParseVSIManager). InstanceID is the
	// VSIID (a UUID in canonical form); "" derives one per MAC. The switch
	// does not use them.
	VSIType        uint32
	VSITypeVersion uint8
	VSIManager     string
	InstanceID     string
	// VSIGroup is the VSIs' group ID (0: none): their filters then carry
	// it (802.1Qbg filter formats 3 and 4), and the bridge answers with the
	// VID it maps the group to (see VDPFilterFormat).
	VSIGroup uint32
	// Migration is the port's part in a live migration of its VM:
	// MigrationNone, MigrationIncoming or MigrationOutgoing.
	Migration string
}

// IsTrunk reports whether c is a trunk port (it has no access VLAN, nor
// waits for one from the bridge).
func (c *Config) IsTrunk() bool { return c.VLAN == 0 && !c.BridgeVLAN }

// Waiting reports whether c is an access port still waiting for the
// bridge to assign its VLAN: it forwards nothing.
func (c *Config) Waiting() bool { return c.VLAN == 0 && c.BridgeVLAN }

// HasVID reports whether frames of VLAN vid belong to the port: its access
// VLAN, or one of its trunk VIDs or its native VLAN (none while it is
// Waiting). It is on the frame path: no allocation, no lock.
func (c *Config) HasVID(vid uint16) bool {
	if c.VLAN != 0 || c.BridgeVLAN {
		return c.VLAN == vid && vid != 0
	}
	return c.Trunk.Has(vid) || (c.NativeVLAN != 0 && c.NativeVLAN == vid)
}

// Validate checks c against the port rules (see the package
// documentation) and returns the first one it breaks as an *Error, with
// Port set to c.Name.
func (c *Config) Validate() error { return withPort(c.validate(), c.Name) }

func (c *Config) validate() error {
	if err := CheckName(c.Name); err != nil {
		return err
	}
	trunk := c.Trunk.Len() != 0
	switch {
	case c.BridgeVLAN && trunk:
		return &Error{Field: FieldVLAN, Reason: "the bridge assigns a VLAN to an access port (--vlan 0), not to a trunk; drop one of them"}
	case c.BridgeVLAN:
		if c.VLAN != 0 {
			if err := CheckNumber(FieldVLAN, int(c.VLAN)); err != nil {
				return err
			}
		}
		if c.NativeVLAN != 0 {
			return &Error{Field: FieldNativeVLAN, Reason: "a native VLAN needs a trunk port"}
		}
	case c.VLAN != 0 && trunk:
		return &Error{Field: FieldVLAN, Reason: "use either a VLAN (access port) or a trunk, not both"}
	case c.VLAN != 0:
		if err := CheckNumber(FieldVLAN, int(c.VLAN)); err != nil {
			return err
		}
		if c.NativeVLAN != 0 {
			return &Error{Field: FieldNativeVLAN, Reason: "a native VLAN needs a trunk port"}
		}
	case !trunk:
		return &Error{Field: FieldVLAN, Reason: "needs a VLAN (--vlan VID) or a trunk (--trunk 10,20-30)"}
	case c.Trunk.Has(0) || c.Trunk.Has(vlan.MaxVID+1):
		// VIDSet.Add takes any VID below 4096; only 1-4094 name VLANs.
		return &Error{Field: FieldTrunk, Reason: "the trunk holds VLAN 0 or 4095, which are reserved; " + vlan.VIDSetHint}
	}
	if err := CheckNumber(FieldNativeVLAN, int(c.NativeVLAN)); err != nil {
		return err
	}
	if err := CheckNumber(FieldSVID, int(c.SVID)); err != nil {
		return err
	}
	if err := CheckNumber(FieldPCP, int(c.PCP)); err != nil {
		return err
	}
	if c.MaxMACs != nil {
		if err := CheckNumber(FieldMaxMACs, *c.MaxMACs); err != nil {
			return err
		}
	}
	if err := c.validateVSI(); err != nil {
		return err
	}
	if n := len(c.MACs); n > MaxRegisteredMACs {
		// Before the per-MAC checks, which compare every pair.
		return &Error{Field: FieldMAC, Reason: fmt.Sprintf("too many MACs (%d): a port registers at most %d", n, MaxRegisteredMACs)}
	}
	for i, m := range c.MACs {
		if err := checkMAC(m, m.String()); err != nil {
			return err
		}
		for _, o := range c.MACs[:i] {
			if string(o) == string(m) {
				return &Error{Field: FieldMAC, Value: quote(m.String()), Reason: "listed twice; give each MAC once"}
			}
		}
	}
	return nil
}
