package daemon

import (
	"fmt"

	"github.com/vswitch/vswitch/pkg/afxdp"
)

// Backend names, as --datapath and --port-datapath take them.
const (
	backendAuto     = "auto"
	backendAFPacket = "afpacket"
	backendAFXDP    = "afxdp"
)

// CheckDatapaths validates the --datapath (auto|afpacket|afxdp) and
// --port-datapath (afpacket|afxdp) values; "" means the default. vswitchd's
// flag parsing and Start share it. Its error is a *DatapathError, which
// names the flag.
func CheckDatapaths(datapath, portDatapath string) error {
	switch datapath {
	case "", backendAuto, backendAFPacket, backendAFXDP:
	default:
		return &DatapathError{Flag: "datapath", Value: datapath, Use: "auto, afpacket or afxdp"}
	}
	switch portDatapath {
	case "", backendAFPacket, backendAFXDP:
	default:
		return &DatapathError{Flag: "port-datapath", Value: portDatapath, Use: "afpacket or afxdp"}
	}
	return nil
}

// DatapathError is a --datapath or --port-datapath value CheckDatapaths
// refused.
type DatapathError struct {
	Flag  string // the flag's name: datapath or port-datapath
	Value string // the value refused
	Use   string // the values it takes, in words
}

func (e *DatapathError) Error() string {
	return fmt.Sprintf("invalid --%s %q: use %s", e.Flag, e.Value, e.Use)
}

// planInput is what the backend choice depends on.
type planInput struct {
	datapath     string // --datapath: auto|afpacket|afxdp ("": auto)
	portDatapath string // --port-datapath: afpacket|afxdp ("": afpacket)
	uplink       string
	mtu          int
	// presentPorts are the configured ports whose interfaces exist now:
	// --port-datapath afxdp probes them (absent ones are opened on AF_XDP
	// when their taps appear; a failure then leaves that port down).
	presentPorts []string
}

// backendPlan is the backend choice: which backend the uplink and the VM
// ports use, and why.
type backendPlan struct {
	uplink, port string // afpacket|afxdp
	reason       string // for the log and vswctl status
	// fallback: auto chose AF_XDP for the uplink; if the switch then fails
	// to start on it (the probe binds one queue, the switch all of them),
	// start again with the uplink on AF_PACKET.
	fallback bool
}

// afpacketFallback is the plan after AF_XDP failed to start on the uplink
// under auto.
func (p backendPlan) afpacketFallback(err error) backendPlan {
	p.uplink, p.fallback = backendAFPacket, false
	p.reason = fmt.Sprintf("auto: AF_XDP failed to start on the uplink (%v); using AF_PACKET", err)
	return p
}

// planBackends chooses the backends. probe reports whether AF_XDP works on
// an interface (afxdp.Probe in production); it is the only thing consulted
// besides the input, so the choice is a pure function of both.
func planBackends(in planInput, probe func(ifname string) error) (backendPlan, error) {
	if err := CheckDatapaths(in.datapath, in.portDatapath); err != nil {
		return backendPlan{}, err
	}
	p := backendPlan{uplink: backendAFPacket, port: backendAFPacket}
	if in.portDatapath != "" {
		p.port = in.portDatapath
	}
	probeXDP := func(what, ifname string) error {
		if in.mtu > afxdp.MaxMTU {
			return fmt.Errorf("MTU %d is above the %d AF_XDP supports without multi-buffer", in.mtu, afxdp.MaxMTU)
		}
		if err := probe(ifname); err != nil {
			return fmt.Errorf("%s %s: %w", what, ifname, err)
		}
		return nil
	}
	switch in.datapath {
	case backendAFXDP:
		if err := probeXDP("uplink", in.uplink); err != nil {
			return backendPlan{}, err
		}
		p.uplink = backendAFXDP
		p.reason = "requested with --datapath afxdp"
	case backendAFPacket:
		p.reason = "requested with --datapath afpacket"
	default: // auto
		if err := probeXDP("uplink", in.uplink); err != nil {
			p.reason = fmt.Sprintf("auto: AF_XDP unavailable (%v); using AF_PACKET", err)
		} else {
			p.uplink, p.fallback = backendAFXDP, true
			p.reason = "auto: AF_XDP program loaded and bound on the uplink"
		}
	}
	if p.port == backendAFXDP {
		if in.mtu > afxdp.MaxMTU {
			return backendPlan{}, fmt.Errorf("--port-datapath afxdp: MTU %d is above the %d AF_XDP supports without multi-buffer", in.mtu, afxdp.MaxMTU)
		}
		for _, name := range in.presentPorts {
			if err := probeXDP("port", name); err != nil {
				return backendPlan{}, fmt.Errorf("--port-datapath afxdp: %w", err)
			}
		}
	}
	return p, nil
}

// describe is the reason shown to users, with the VM ports' backend named
// when it differs.
func (p backendPlan) describe() string {
	if p.port == backendAFXDP && p.uplink != backendAFXDP {
		return p.reason + "; VM ports on AF_XDP as --port-datapath asks"
	}
	return p.reason
}
