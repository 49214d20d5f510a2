package daemon

import (
	"fmt"
	"net"
	"strings"

	"github.com/vswitch/vswitch/internal/store"
	"github.com/vswitch/vswitch/pkg/api"
	"github.com/vswitch/vswitch/pkg/datapath"
	"github.com/vswitch/vswitch/pkg/vlan"
)

// toDatapath validates a stored port configuration and converts it.
func toDatapath(c store.PortConfig) (datapath.PortConfig, error) {
	d := datapath.PortConfig{Name: c.Name, Flood: c.Flood}
	if c.Name == "" || len(c.Name) > 15 || strings.ContainsAny(c.Name, "/ \t\n") {
		return d, api.NewError(api.CodeInvalidName, fmt.Sprintf("invalid port name %q: must be an interface name of 1-15 characters", c.Name))
	}
	switch {
	case c.VLAN != 0 && c.Trunk != "":
		return d, api.NewError(api.CodeInvalidVLAN, fmt.Sprintf("port %s: use either a VLAN (access port) or a trunk, not both", c.Name))
	case c.VLAN != 0:
		if err := vlan.CheckVID(c.VLAN); err != nil {
			return d, api.NewError(api.CodeInvalidVLAN, err.Error())
		}
		d.VLAN = uint16(c.VLAN)
		if c.NativeVLAN != 0 {
			return d, api.NewError(api.CodeInvalidVLAN, fmt.Sprintf("port %s: a native VLAN needs a trunk port", c.Name))
		}
	case c.Trunk != "":
		set, err := vlan.ParseVIDSet(c.Trunk)
		if err != nil {
			return d, api.NewError(api.CodeInvalidVLAN, err.Error())
		}
		d.Trunk = set
	default:
		return d, api.NewError(api.CodeInvalidVLAN, fmt.Sprintf("port %s: needs a VLAN (--vlan VID) or a trunk (--trunk 10,20-30)", c.Name))
	}
	for _, f := range []struct {
		v    int
		what string
	}{{c.NativeVLAN, "native VLAN"}, {c.SVID, "S-VLAN"}} {
		if f.v != 0 {
			if err := vlan.CheckVID(f.v); err != nil {
				return d, api.NewError(api.CodeInvalidVLAN, f.what+": "+err.Error())
			}
		}
	}
	d.NativeVLAN, d.SVID = uint16(c.NativeVLAN), uint16(c.SVID)
	if c.PCP < 0 || c.PCP > 7 {
		return d, api.NewError(api.CodeInvalidPCP, fmt.Sprintf("invalid PCP %d: must be 0-7", c.PCP))
	}
	d.PCP = uint8(c.PCP)
	for _, s := range c.MACs {
		m, err := net.ParseMAC(s)
		if err != nil || len(m) != 6 || m[0]&1 != 0 || m.String() == "00:00:00:00:00:00" {
			return d, api.NewError(api.CodeInvalidMAC, fmt.Sprintf("invalid MAC %q: use a unicast address like 52:54:00:12:34:56", s))
		}
		d.MACs = append(d.MACs, m)
	}
	// Last word: the datapath's own checks (e.g. a trunk set that is empty
	// after trimming).
	if err := d.Validate(); err != nil {
		return d, api.NewError(api.CodeInvalidVLAN, err.Error())
	}
	return d, nil
}

// normalise puts a stored config in canonical form (trunk set, MAC case).
func normalise(c store.PortConfig, d datapath.PortConfig) store.PortConfig {
	if d.IsTrunk() {
		c.Trunk = d.Trunk.String()
	}
	c.MACs = nil
	for _, m := range d.MACs {
		c.MACs = append(c.MACs, m.String())
	}
	return c
}

// applySpec applies the non-nil fields of spec to c.
func applySpec(c *store.PortConfig, spec api.PortSpec) {
	if spec.VLAN != nil {
		c.VLAN = *spec.VLAN
		if *spec.VLAN != 0 {
			c.Trunk, c.NativeVLAN = "", 0
		}
	}
	if spec.Trunk != nil {
		c.Trunk = *spec.Trunk
		if *spec.Trunk != "" {
			c.VLAN = 0
		}
	}
	if spec.NativeVLAN != nil {
		c.NativeVLAN = *spec.NativeVLAN
	}
	if spec.SVID != nil {
		c.SVID = *spec.SVID
	}
	if spec.PCP != nil {
		c.PCP = *spec.PCP
	}
	if spec.MACs != nil {
		c.MACs = append([]string(nil), (*spec.MACs)...)
	}
	if spec.Flood != nil {
		c.Flood = *spec.Flood
	}
}

func toAPI(c store.PortConfig, state string, ctr datapath.CounterSnapshot) api.Port {
	p := api.Port{
		Name: c.Name, VLAN: c.VLAN, Trunk: []int{}, NativeVLAN: c.NativeVLAN, SVID: c.SVID, PCP: c.PCP,
		MACs: []string{}, Flood: c.Flood, State: state,
		RxPackets: ctr.RxPackets, RxBytes: ctr.RxBytes, TxPackets: ctr.TxPackets, TxBytes: ctr.TxBytes,
		Drops: ctr.Drops, Backend: ctr.Backend,
	}
	if c.Trunk != "" {
		if set, err := vlan.ParseVIDSet(c.Trunk); err == nil {
			p.Trunk = set.List()
		}
	}
	if c.MACs != nil {
		p.MACs = c.MACs
	}
	if p.Drops == nil {
		p.Drops = map[string]uint64{}
	}
	return p
}
