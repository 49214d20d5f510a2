package events

import (
	"context"
	"fmt"
	"strings"

	"github.com/vswitch/vswitch/pkg/api"
)

// Kind is what happened to a domain.
type Kind int

const (
	// DeviceAdded: a device was hot-plugged (virsh attach-device --live).
	DeviceAdded Kind = iota + 1
	// DeviceRemoved: a device was unplugged (virsh detach-device --live).
	DeviceRemoved
	// MetadataChanged: an element of the domain's <metadata> changed
	// (virsh metadata --live); Event.Namespace says whose.
	MetadataChanged
	// Started: the domain started (Event.Migrated: migrated here).
	Started
	// Stopped: the domain stopped (Event.Migrated: migrated away).
	Stopped
	// Resumed: the domain was resumed (Event.Migrated: it runs here now
	// that its migration here has ended, or has turned post-copy).
	Resumed
)

func (k Kind) String() string {
	switch k {
	case DeviceAdded:
		return "device-added"
	case DeviceRemoved:
		return "device-removed"
	case MetadataChanged:
		return "metadata-changed"
	case Started:
		return "started"
	case Stopped:
		return "stopped"
	case Resumed:
		return "resumed"
	}
	return fmt.Sprintf("kind-%d", int(k))
}

// Event is a domain event of libvirtd, reduced to what the follower needs:
// which domain, and what happened to it. The follower reads the domain's
// state afresh for each, so events may come late, twice or out of order.
type Event struct {
	Kind Kind
	UUID string // the domain's, canonical lower case (FormatUUID)
	Name string // the domain's, for the log
	// Migrated marks a Started, Stopped or Resumed caused by a live
	// migration.
	Migrated bool
	// Device is the alias of the device added or removed ("net1").
	Device string
	// Namespace is the URI of the metadata element that changed.
	Namespace string
}

// Domain is one domain as the follower reads it.
type Domain struct {
	UUID   string // canonical lower case
	Name   string
	Active bool   // running (or paused): it has a QEMU process
	XML    []byte // the live domain XML when Active
}

// Conn is a connection to libvirtd: the domain events and what the
// follower asks about domains. Methods may be called while Events is being
// read. The libvirtd implementation is Dial's; tests use a fake.
type Conn interface {
	// Events delivers the domain events from the moment the connection
	// was made; it is closed when the connection is lost or closed.
	Events() <-chan Event
	// Running returns the running domains, with their live XML.
	Running(ctx context.Context) ([]Domain, error)
	// Domain returns the domain with that UUID: Active false, and no
	// error, when it is not running or does not exist.
	Domain(ctx context.Context, uuid string) (Domain, error)
	// Close ends the connection (Events is closed).
	Close() error
}

// Ports is what the follower changes: vswitchd's ports, through the same
// service the API serves (api.Service), so every change is judged by the
// port rules, stored and logged as the API's are.
type Ports interface {
	ListPorts(ctx context.Context) ([]api.Port, error)
	AddPort(ctx context.Context, spec api.PortSpec) (api.Port, error)
	UpdatePort(ctx context.Context, name string, spec api.PortSpec) (api.Port, error)
	DeletePort(ctx context.Context, name string) error
}

// FormatUUID writes a domain UUID as libvirt prints it and the hook
// records it as a port's owner: 8-4-4-4-12 lower-case hex digits.
func FormatUUID(u [16]byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// ParseUUID reads a UUID in FormatUUID's form (either case).
func ParseUUID(s string) ([16]byte, error) {
	var u [16]byte
	if !IsUUID(strings.ToLower(s)) {
		return u, fmt.Errorf("%q is not a UUID (8-4-4-4-12 hex digits)", s)
	}
	h := strings.ReplaceAll(s, "-", "")
	for i := range u {
		hi, lo := unhex(h[2*i]), unhex(h[2*i+1])
		u[i] = hi<<4 | lo
	}
	return u, nil
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	default: // 'A'-'F': ParseUUID has checked
		return c - 'A' + 10
	}
}

// IsUUID reports whether s is a UUID in FormatUUID's form (lower case):
// the owners the follower takes for libvirt domains. A port whose owner is
// anything else (none: added with vswctl; another tool's name) is never
// touched.
func IsUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
				return false
			}
		}
	}
	return true
}
