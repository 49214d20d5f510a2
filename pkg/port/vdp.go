package port

import (
	"fmt"

	"github.com/vswitch/vswitch/pkg/vepa"
)

// This file says what a port registers with the adjacent bridge over
// 802.1Qbg VDP (the daemon builds the VSIs from it): which ports do, the
// filter format of their VSIs and the VIDs the filters carry, and the
// rule that they fit a VSI TLV.

// RegistersVSIs reports whether the port registers VSIs with the bridge:
// it does when it has registered MACs or a VSI group, or when it asks the
// bridge for its VLAN. (A port with none of them has nothing VDP could
// name: it registers nothing, as before VDP knew group IDs.)
func (c *Config) RegistersVSIs() bool {
	return len(c.MACs) != 0 || c.VSIGroup != 0 || c.BridgeVLAN
}

// VDPFilterFormat is the filter format of the port's VSIs (802.1Qbg-2012
// clause 41.2.9): with a VSI group, group+MAC+VID (4) when the port
// registers MACs and group+VID (3) when not; without, MAC+VID (2) with
// MACs and VID (1) without (a port asking the bridge for its VLAN and
// naming nothing else).
func (c *Config) VDPFilterFormat() uint8 {
	switch {
	case c.VSIGroup != 0 && len(c.MACs) != 0:
		return vepa.FilterGroupMACVID
	case c.VSIGroup != 0:
		return vepa.FilterGroupVID
	case len(c.MACs) != 0:
		return vepa.FilterMACVID
	}
	return vepa.FilterVID
}

// VDPVIDs are the VIDs the port's filters carry, ascending: an access
// port's VLAN (0 when the bridge assigns it: the request asks with VID
// 0, whatever it was assigned before), or a trunk's allowed VIDs and its
// native VLAN, one filter entry each.
func (c *Config) VDPVIDs() []uint16 {
	switch {
	case c.BridgeVLAN:
		return []uint16{0}
	case !c.IsTrunk():
		return []uint16{c.VLAN}
	}
	out := make([]uint16, 0, c.Trunk.Len()+1)
	for vid := uint16(1); vid <= 4094; vid++ {
		if c.Trunk.Has(vid) || vid == c.NativeVLAN {
			out = append(out, vid)
		}
	}
	return out
}

// vdpVIDCount is len(VDPVIDs()), counted without listing them.
func (c *Config) vdpVIDCount() int {
	if !c.IsTrunk() {
		return 1
	}
	n := c.Trunk.Len()
	if c.NativeVLAN != 0 && !c.Trunk.Has(c.NativeVLAN) {
		n++
	}
	return n
}

// VDPFiltersPerVSI is how many filter entries each of the port's VSIs
// carries: one per VID (VDPVIDs), for each MAC when an instance ID makes
// the MACs one VSI (without one, each MAC is a VSI of its own).
func (c *Config) VDPFiltersPerVSI() int {
	n := c.vdpVIDCount()
	if c.InstanceID != "" && len(c.MACs) > 1 {
		n *= len(c.MACs)
	}
	return n
}

// CheckVDP checks that the port's VSIs fit VDP: a VSI TLV holds at most
// vepa.MaxFilters entries of its format (60 of MAC+VID, 243 of VID, 81 of
// group+VID, 40 of group+MAC+VID), and VDP does not split a VSI. A port
// that breaks it is refused with what to change:
//
//	port vnet1: VDP would register 70 filter entries per VSI (70 VIDs), more than the 60 of format MAC+VID one VSI TLV holds: allow fewer VLANs
//
// It is not part of Validate: such a port is a valid port (a trunk of
// every VLAN with registered MACs always was); the daemon registers no
// VSI for it and says why (the API's vdp_error).
func (c *Config) CheckVDP() error {
	if !c.RegistersVSIs() {
		return nil
	}
	format := c.VDPFilterFormat()
	n, max := c.VDPFiltersPerVSI(), vepa.MaxFilters(format)
	if n <= max {
		return nil
	}
	vids := c.vdpVIDCount()
	what, fix := fmt.Sprintf("%d VIDs", vids), "allow fewer VLANs"
	if n != vids {
		what = fmt.Sprintf("%d VIDs × %d MACs under one instance ID", vids, len(c.MACs))
		fix = "allow fewer VLANs, register fewer MACs, or drop the instance ID (each MAC is then a VSI of its own)"
	}
	return &Error{Port: c.Name, Field: FieldVSIFilters, Reason: fmt.Sprintf("VDP would register %d filter entries per VSI (%s), more than the %d of format %s one VSI TLV holds: %s",
		n, what, max, vepa.FilterFormatName(format), fix)}
}
