// Package libvirt reads what vswitch needs from libvirt: the arguments of
// the qemu hook (/etc/libvirt/hooks/qemu DOMAIN OPERATION SUBOP EXTRA) and
// the domain XML it gets on stdin.
//
// A VM's NIC for vswitch is an <interface type='ethernet'> (libvirt creates
// the tap and leaves it alone; it refuses <vlan> there), and its switch
// port is described in the domain's <metadata> in the namespace
// urn:vswitch:libvirt:1, matched to the NIC by MAC address:
//
//	<metadata>
//	  <vsw:ports xmlns:vsw="urn:vswitch:libvirt:1">
//	    <vsw:port mac="52:54:00:12:34:56" vlan="100" pcp="3"
//	              vsi-type="1193047" vsi-type-version="2" vsi-manager="12"/>
//	    <vsw:port mac="52:54:00:12:34:57" trunk="10,20-30" native-vlan="10"/>
//	  </vsw:ports>
//	</metadata>
//
// Attributes: mac (required), vlan | trunk [native-vlan], pcp, svid, and
// the VM's identity to the adjacent bridge (802.1Qbg VDP): vsi-type,
// vsi-type-version, vsi-manager (a number 0-255 is libvirt's managerid)
// and instance-id (a UUID; by default the VSIID is derived from the
// domain's UUID and the MAC, the same on every host), all without a
// prefix (another namespace's attributes are ignored, ours with a prefix
// are an error). The schema is docs/vsw-port.rng; the tests check that it
// and this parser agree. Any element named port in the namespace counts,
// wherever it sits under <metadata>. Desired pairs each such port with its
// NIC's tap (<target dev>), which the live XML carries, and checks the port
// by the same rules as vswitchd (package port, through api.PortSpec.Apply
// on Binding.Spec, the request that adds it, which records the domain's
// UUID as the port's owner): the one rule from a domain to its ports, for
// the hook's "start begin" (Bindings: any error fails the start) and
// vswitchd --libvirt (package events: sets up what it can, UpdateSpec and
// Describes keep an existing port in step). Owned picks the ports to
// remove when the domain stops: owned by it and carrying one of its MACs,
// never by MAC alone (another domain's metadata may list any MAC).
// ParseDomain checks only the XML's shape, so that the ports of a domain
// whose description went bad can still be found and removed; it reads at
// most 4 MiB (ErrTooLarge beyond) and, like Bindings and Owned, takes time
// in proportion to its input.
//
// # Live migration
//
// libvirt runs the hook on both hosts (its hooks documentation, "QEMU
// guest migration"): on the destination "migrate begin" (only there, and
// only for an incoming migration), then "prepare begin", "start begin"
// and "started begin" before the VM's memory is copied; on the source
// "stopped end" and "release end" once the VM runs on the destination.
// A failed migration stops the destination's QEMU instead ("stopped end",
// "release end" there) and the source's VM runs on. The hook calls carry
// no migration flag of their own: Action says Incoming for "migrate
// begin", which IncomingMarks remembers (in a file: each hook call is a
// process of its own) until the domain's "prepare begin" moves it on and
// its "start begin" takes it, each within IncomingTTL (an offline
// migration runs "migrate begin" and no start; a later plain start must
// not take its note). At "started begin" (Confirm) libvirt's status file
// says whether the domain is migrating in (MigratingIn). At
// "stopped end" the source tells a migration from a shutdown by libvirt's
// status file of the domain (MigratedOut: its outgoing migration job is
// in its confirm phase), or by an EXTRA argument "migrated" (HookCall.Migrated).
package libvirt
