package libvirt

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/vswitch/vswitch/pkg/api"
	"github.com/vswitch/vswitch/pkg/port"
)

// Namespace is the XML namespace of vswitch's domain metadata.
const Namespace = "urn:vswitch:libvirt:1"

// maxXML bounds the domain XML read from stdin; ErrTooLarge is the
// error for a longer one.
const maxXML = 4 << 20

// ErrTooLarge is returned (wrapped) for a domain XML over 4 MiB.
var ErrTooLarge = errors.New("domain XML larger than 4 MiB")

// Interface is a NIC of the domain.
type Interface struct {
	Type   string // ethernet, bridge, network, ...
	MAC    net.HardwareAddr
	Target string // the tap, in the live XML
}

// Port is a <vsw:port> element: the switch port of one NIC. Nil fields
// were not given.
type Port struct {
	MAC net.HardwareAddr
	// VLAN is the access VLAN; 0 asks the adjacent bridge to assign it
	// over VDP (port.ParseAccessVLAN).
	VLAN       *int
	Trunk      *string
	NativeVLAN *int
	PCP        *int
	SVID       *int
	// The VM's identity to the adjacent bridge (802.1Qbg VDP), as the
	// attributes vsi-type, vsi-type-version, vsi-manager and instance-id
	// give it (libvirt's <virtualport type='802.1Qbg'> parameters typeid,
	// typeidversion, managerid and instanceid).
	VSIType        *int
	VSITypeVersion *int
	VSIManager     *string
	InstanceID     *string
	// VSIGroup is the VSIs' group ID (attribute vsi-group; VDP filter
	// formats 3 and 4).
	VSIGroup *int64
}

// Domain is what vswitch reads from a domain XML.
type Domain struct {
	Name       string
	UUID       string
	Interfaces []Interface
	Ports      []Port
}

// Binding is a vswitch port to configure on a tap.
type Binding struct {
	Tap  string
	Port Port
	// Owner is the domain's (Domain.Owner), recorded in the port.
	Owner string
}

// Spec is the request that adds the binding's port: named after the tap,
// with the described VLAN(s) (vlan="0": the bridge assigns it,
// vlan_from_bridge), priority, S-channel and VSI identity, the NIC's MAC
// registered and the domain as its owner.
func (b Binding) Spec() api.PortSpec {
	owner := b.Owner
	s := api.PortSpec{Name: b.Tap, VLAN: b.Port.VLAN, Trunk: b.Port.Trunk, NativeVLAN: b.Port.NativeVLAN,
		PCP: b.Port.PCP, SVID: b.Port.SVID, MACs: &[]string{b.Port.MAC.String()}, Owner: &owner,
		VSIType: b.Port.VSIType, VSITypeVersion: b.Port.VSITypeVersion, VSIManager: b.Port.VSIManager, InstanceID: b.Port.InstanceID,
		VSIGroup: b.Port.VSIGroup}
	if b.Port.VLAN != nil {
		if _, fromBridge, err := port.ParseAccessVLAN(strconv.Itoa(*b.Port.VLAN)); err == nil && fromBridge {
			s.VLANFromBridge = &fromBridge
		}
	}
	return s
}

// UpdateSpec is the change (api.Service.UpdatePort) that makes an existing
// port what the binding describes: Spec with every setting the description
// covers given a value, its default where the description leaves it out
// (no priority, no S-channel, no native VLAN), so that an attribute taken
// out of the metadata is taken off the port too (the VSI identity back to
// its defaults). What the description does not cover (flood_unknown, the
// port's migration state) is left as it is.
func (b Binding) UpdateSpec() api.PortSpec {
	s := b.Spec()
	zero := func(p *int) *int {
		if p != nil {
			return p
		}
		return new(int)
	}
	empty := func(p *string) *string {
		if p != nil {
			return p
		}
		return new(string)
	}
	s.PCP, s.SVID = zero(s.PCP), zero(s.SVID)
	s.VSIType, s.VSITypeVersion = zero(s.VSIType), zero(s.VSITypeVersion)
	s.VSIManager, s.InstanceID = empty(s.VSIManager), empty(s.InstanceID)
	if s.VSIGroup == nil {
		s.VSIGroup = new(int64)
	}
	if s.Trunk != nil {
		s.NativeVLAN = zero(s.NativeVLAN) // an access VLAN clears it by itself
	}
	return s
}

// Describes reports whether port p is already what the binding describes:
// the settings UpdateSpec gives, the owner included. A field added to Spec
// must be compared here too.
func (b Binding) Describes(p api.Port) bool {
	want, err := b.UpdateSpec().Apply(port.Config{})
	if err != nil {
		return false
	}
	w := api.NewPort(want, "", api.PortCounters{})
	return p.Name == w.Name && p.VLAN == w.VLAN && slices.Equal(p.Trunk, w.Trunk) && p.NativeVLAN == w.NativeVLAN &&
		p.SVID == w.SVID && p.PCP == w.PCP && slices.EqualFunc(p.MACs, w.MACs, strings.EqualFold) && p.Owner == w.Owner &&
		p.VSIType == w.VSIType && p.VSITypeVersion == w.VSITypeVersion && p.VSIManager == w.VSIManager && p.InstanceID == w.InstanceID &&
		p.VLANFromBridge == w.VLANFromBridge && p.VSIGroup == w.VSIGroup
}

// Owner is what the hook records as the owner of the domain's ports
// (api.PortSpec.Owner): its UUID, in lower case ("" when the XML has
// none). A domain's name can change while it is shut off; its UUID
// cannot, and no two domains share one.
func (d *Domain) Owner() string { return strings.ToLower(strings.TrimSpace(d.UUID)) }

// Owned picks the domain's ports out of ports: those its hook added
// (Owner is the domain's) that carry one of its <vsw:port> MACs. Both
// must hold: a MAC alone is whatever another domain's metadata claims, and
// an owner alone may name a port that the domain no longer describes.
// Linear in the number of ports and MACs.
func (d *Domain) Owned(ports []api.Port) []api.Port {
	owner := d.Owner()
	if owner == "" || len(d.Ports) == 0 {
		return nil
	}
	macs := make(map[[6]byte]bool, len(d.Ports))
	for _, q := range d.Ports {
		macs[[6]byte(q.MAC)] = true
	}
	var out []api.Port
	for _, p := range ports {
		if p.Owner != owner {
			continue
		}
		for _, m := range p.MACs {
			if mac, err := net.ParseMAC(m); err == nil && len(mac) == 6 && macs[[6]byte(mac)] {
				out = append(out, p)
				break
			}
		}
	}
	return out
}

type xmlDomain struct {
	Name     string `xml:"name"`
	UUID     string `xml:"uuid"`
	Metadata struct {
		Inner []byte `xml:",innerxml"`
	} `xml:"metadata"`
	Devices struct {
		Interfaces []struct {
			Type string `xml:"type,attr"`
			MAC  struct {
				Address string `xml:"address,attr"`
			} `xml:"mac"`
			Target struct {
				Dev string `xml:"dev,attr"`
			} `xml:"target"`
		} `xml:"interface"`
	} `xml:"devices"`
}

// ParseDomain reads a domain XML (at most 4 MiB: a longer one is
// ErrTooLarge, not cut short). It takes time in proportion to the XML.
func ParseDomain(r io.Reader) (*Domain, error) {
	raw, err := io.ReadAll(io.LimitReader(r, maxXML+1))
	if err != nil {
		return nil, fmt.Errorf("libvirt: read domain XML: %w", err)
	}
	if len(raw) > maxXML {
		// Read the rest, so that libvirt never blocks on a full pipe,
		// but keep none of it.
		_, _ = io.Copy(io.Discard, r)
		return nil, fmt.Errorf("libvirt: %w", ErrTooLarge)
	}
	var x xmlDomain
	if err := xml.Unmarshal(raw, &x); err != nil {
		if len(strings.TrimSpace(string(raw))) == 0 {
			return nil, errors.New("libvirt: no domain XML on stdin")
		}
		return nil, fmt.Errorf("libvirt: domain XML: %w", err)
	}
	d := &Domain{Name: x.Name, UUID: x.UUID}
	for _, i := range x.Devices.Interfaces {
		nic := Interface{Type: i.Type, Target: i.Target.Dev}
		if i.MAC.Address != "" {
			mac, err := net.ParseMAC(i.MAC.Address)
			if err != nil || len(mac) != 6 {
				return nil, fmt.Errorf("libvirt: interface MAC %q is not an Ethernet address", i.MAC.Address)
			}
			nic.MAC = mac
		}
		d.Interfaces = append(d.Interfaces, nic)
	}
	ports, err := parsePorts(raw)
	if err != nil {
		return nil, err
	}
	d.Ports = ports
	return d, nil
}

// parsePorts finds the port elements of our namespace under the domain's
// <metadata>, walking the whole document so that a namespace prefix
// declared on <domain> or <metadata> resolves too. Two ports for one MAC
// are an error (found through a set: linear in the number of ports).
func parsePorts(doc []byte) ([]Port, error) {
	var out []Port
	seen := map[[6]byte]bool{}
	dec := xml.NewDecoder(bytes.NewReader(doc))
	depth, metaDepth := 0, -1
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("libvirt: domain XML: %w", err)
		}
		switch e := tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 1 && e.Name.Local != "domain" {
				return nil, fmt.Errorf("libvirt: <%s> is not a domain XML", e.Name.Local)
			}
			if depth == 2 && e.Name.Local == "metadata" {
				metaDepth = depth
			}
			if metaDepth < 0 || e.Name.Space != Namespace || e.Name.Local != "port" {
				continue
			}
			p, err := parsePort(e.Attr)
			if err != nil {
				return nil, err
			}
			if seen[[6]byte(p.MAC)] {
				return nil, fmt.Errorf("libvirt: two <vsw:port mac=%q> elements", p.MAC)
			}
			seen[[6]byte(p.MAC)] = true
			out = append(out, p)
		case xml.EndElement:
			if depth == metaDepth {
				metaDepth = -1
			}
			depth--
		}
	}
}

// portAttributes are the attributes of <vsw:port>, for messages.
const portAttributes = "mac, vlan, trunk, native-vlan, pcp, svid, vsi-type, vsi-type-version, vsi-manager, instance-id, vsi-group"

func parsePort(attrs []xml.Attr) (Port, error) {
	var p Port
	num := func(name, v string) (*int, error) {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("libvirt: <vsw:port %s=%q>: not a number", name, v)
		}
		return &n, nil
	}
	var err error
	for _, a := range attrs {
		switch {
		case a.Name.Space == "xmlns" || a.Name.Space == "" && a.Name.Local == "xmlns":
			continue // a namespace declaration
		case a.Name.Space == Namespace:
			return p, fmt.Errorf("libvirt: <vsw:port vsw:%s=...>: write the attribute without a prefix", a.Name.Local)
		case a.Name.Space != "":
			continue // another application's attribute, even if named like ours
		}
		v := a.Value
		switch a.Name.Local {
		case "mac":
			mac, perr := net.ParseMAC(strings.TrimSpace(v))
			if perr != nil || len(mac) != 6 {
				return p, fmt.Errorf("libvirt: <vsw:port mac=%q>: not an Ethernet address", v)
			}
			p.MAC = mac
		case "vlan":
			p.VLAN, err = num("vlan", v)
		case "native-vlan":
			p.NativeVLAN, err = num("native-vlan", v)
		case "pcp":
			p.PCP, err = num("pcp", v)
		case "svid":
			p.SVID, err = num("svid", v)
		case "trunk":
			t := strings.TrimSpace(v)
			p.Trunk = &t
		case "vsi-type":
			p.VSIType, err = num("vsi-type", v)
		case "vsi-type-version":
			p.VSITypeVersion, err = num("vsi-type-version", v)
		case "vsi-manager":
			t := v
			p.VSIManager = &t
		case "instance-id":
			t := v
			p.InstanceID = &t
		case "vsi-group":
			g, perr := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if perr != nil {
				return p, fmt.Errorf("libvirt: <vsw:port vsi-group=%q>: not a number", v)
			}
			p.VSIGroup = &g
		default:
			return p, fmt.Errorf("libvirt: <vsw:port %s=...>: unknown attribute (%s)", a.Name.Local, portAttributes)
		}
		if err != nil {
			return p, err
		}
	}
	if p.MAC == nil {
		return p, errors.New("libvirt: <vsw:port> without a mac attribute (it names the NIC it configures)")
	}
	if (p.VLAN == nil) == (p.Trunk == nil) {
		return p, fmt.Errorf("libvirt: <vsw:port mac=%q> needs exactly one of vlan and trunk", p.MAC)
	}
	return p, nil
}

// MACs lists the MACs of the domain's <vsw:port> elements.
func (d *Domain) MACs() []string {
	var out []string
	for _, p := range d.Ports {
		out = append(out, p.MAC.String())
	}
	return out
}

// ErrNoNIC marks (wrapped in a *PortError) a <vsw:port> whose MAC matches
// no <interface> of the domain. At the domain's start that is a mistake;
// while it runs it is what the live XML shows between `virsh metadata
// --live` and `virsh attach-device --live`, and after a detach.
var ErrNoNIC = errors.New("matches no <interface>")

// PortError is a <vsw:port> that cannot be set up (Desired, Bindings).
type PortError struct {
	MAC net.HardwareAddr
	// Tap is the NIC's tap when the XML names one ("" otherwise): a port
	// of that name stays as it is rather than follow a broken description.
	Tap string
	Err error // says which domain and port; wraps ErrNoNIC when no NIC has the MAC
}

func (e *PortError) Error() string { return e.Err.Error() }
func (e *PortError) Unwrap() error { return e.Err }

// Bindings pairs each <vsw:port> with its NIC (same MAC): the NIC must be
// an <interface type='ethernet'> whose tap the XML names. A port whose NIC
// is missing, of another type or without a tap is an error that says so,
// and so is one that vswitchd would refuse: each binding's Spec is checked
// by the port rules (api.PortSpec.Apply), so a bad VLAN fails here, with
// the domain and tap named, before anything is sent. It is Desired with
// the first error, if any, failing the whole: how the hook's "start begin"
// judges a domain about to start.
func (d *Domain) Bindings() ([]Binding, error) {
	bs, errs := d.Desired()
	if len(errs) > 0 {
		return nil, errs[0]
	}
	return bs, nil
}

// Desired is the one rule from a domain's live XML to the ports vswitchd
// should have for it: the binding of each <vsw:port> that can be set up
// (see Bindings for what that takes), in the metadata's order, and an
// error for each that cannot (a *PortError, except for a domain without a
// <uuid>, whose ports have no owner to record). The hook's "start begin"
// refuses a domain with any error (Bindings); vswitchd's libvirt event
// follower (package events) sets up what it can and leaves the rest.
func (d *Domain) Desired() ([]Binding, []error) {
	if len(d.Ports) > 0 && d.Owner() == "" {
		return nil, []error{fmt.Errorf("domain %s: no <uuid> in the domain XML: it names the owner of the domain's ports", d.Name)}
	}
	nics := make(map[[6]byte]*Interface, len(d.Interfaces)) // the first NIC of each MAC
	for i := range d.Interfaces {
		if m := d.Interfaces[i].MAC; len(m) == 6 && nics[[6]byte(m)] == nil {
			nics[[6]byte(m)] = &d.Interfaces[i]
		}
	}
	var out []Binding
	var errs []error
	for _, p := range d.Ports {
		nic := nics[[6]byte(p.MAC)]
		fail := func(err error) {
			e := &PortError{MAC: p.MAC, Err: err}
			if nic != nil {
				e.Tap = nic.Target
			}
			errs = append(errs, e)
		}
		switch {
		case nic == nil:
			fail(fmt.Errorf("domain %s: <vsw:port mac=%q> %w", d.Name, p.MAC, ErrNoNIC))
			continue
		case nic.Type != "ethernet":
			fail(fmt.Errorf("domain %s: the NIC with MAC %s is <interface type=%q>; vswitch ports need type='ethernet'", d.Name, p.MAC, nic.Type))
			continue
		case nic.Target == "":
			fail(fmt.Errorf("domain %s: the NIC with MAC %s has no <target dev> (not the live XML?)", d.Name, p.MAC))
			continue
		}
		b := Binding{Tap: nic.Target, Port: p, Owner: d.Owner()}
		if _, err := b.Spec().Apply(port.Config{}); err != nil {
			fail(fmt.Errorf("domain %s: port %s: %w", d.Name, b.Tap, err))
			continue
		}
		out = append(out, b)
	}
	return out, errs
}
