package vepa

import (
	"encoding/hex"
	"net"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"
)

// Neighbor is what the station shows of the bridge it follows, from the
// bridge's last LLDPDU (802.1AB clause 8.5): its chassis and port IDs as
// text (RenderID), the optional text TLVs it sent, and its TTL. Text from
// the wire is shown as it came when it is printable UTF-8, escaped
// otherwise (Printable), so a table or a log line stays one line.
type Neighbor struct {
	ChassisSubtype uint8
	ChassisID      string
	PortSubtype    uint8
	PortID         string
	// Optional TLVs (802.1AB 8.5.5-8.5.7): "" when not sent.
	PortDescription, SystemName, SystemDescription string
	TTL                                            uint16 // seconds, as sent
	LastSeen                                       time.Time
}

// Expires is when the neighbor's information runs out (LastSeen + TTL).
func (n Neighbor) Expires() time.Time { return n.LastSeen.Add(time.Duration(n.TTL) * time.Second) }

// Optional LLDP TLV types the station shows.
const (
	tlvPortDescription   = 4
	tlvSystemName        = 5
	tlvSystemDescription = 6
)

// neighborOf takes what Neighbor shows from an LLDPDU received at now.
func neighborOf(d *LLDPDU, now time.Time) *Neighbor {
	n := &Neighbor{
		ChassisSubtype: d.ChassisSubtype, ChassisID: RenderID(d.ChassisID, d.ChassisSubtype == ChassisIDMAC, d.ChassisSubtype == chassisIDAddr),
		PortSubtype: d.PortSubtype, PortID: RenderID(d.PortID, d.PortSubtype == PortIDMAC, d.PortSubtype == portIDAddr),
		TTL: d.TTL, LastSeen: now,
	}
	for _, t := range d.Other {
		switch t.Type {
		case tlvPortDescription:
			n.PortDescription = Printable(t.Value)
		case tlvSystemName:
			n.SystemName = Printable(t.Value)
		case tlvSystemDescription:
			n.SystemDescription = Printable(t.Value)
		}
	}
	return n
}

// ID subtypes (802.1AB 8.5.2.2 and 8.5.3.2) holding a network address.
const (
	chassisIDAddr = 5
	portIDAddr    = 4
)

var chassisSubtypes = [...]string{1: "chassis component", 2: "interface alias", 3: "port component", 4: "MAC address", 5: "network address", 6: "interface name", 7: "locally assigned"}
var portSubtypes = [...]string{1: "interface alias", 2: "port component", 3: "MAC address", 4: "network address", 5: "interface name", 6: "agent circuit ID", 7: "locally assigned"}

// ChassisSubtypeName names a chassis ID subtype ("reserved N" for others).
func ChassisSubtypeName(s uint8) string { return subtypeName(chassisSubtypes[:], s) }

// PortSubtypeName names a port ID subtype ("reserved N" for others).
func PortSubtypeName(s uint8) string { return subtypeName(portSubtypes[:], s) }

func subtypeName(names []string, s uint8) string {
	if int(s) < len(names) && names[s] != "" {
		return names[s]
	}
	return "reserved " + strconv.Itoa(int(s))
}

// RenderID shows a chassis or port ID: a MAC address (mac, 6 bytes) as
// such; a network address (addr: an IANA address family byte, 1 IPv4 or
// 2 IPv6, then the address) as an IP address; printable ASCII as text;
// anything else in hex.
func RenderID(id []byte, mac, addr bool) string {
	switch {
	case mac && len(id) == 6:
		return net.HardwareAddr(id).String()
	case addr && len(id) == 5 && id[0] == 1, addr && len(id) == 17 && id[0] == 2:
		return net.IP(id[1:]).String()
	}
	for _, c := range id {
		if c < 0x20 || c > 0x7e {
			return hex.EncodeToString(id)
		}
	}
	return string(id)
}

// Printable returns text from the wire as it is when it is valid UTF-8
// made of printable characters, else quoted with Go's escapes (without
// the quotes): never a control character, never invalid UTF-8.
func Printable(b []byte) string {
	if utf8.Valid(b) {
		ok := true
		for _, r := range string(b) {
			if !unicode.IsPrint(r) {
				ok = false
				break
			}
		}
		if ok {
			return string(b)
		}
	}
	q := strconv.QuoteToASCII(string(b))
	return q[1 : len(q)-1]
}
