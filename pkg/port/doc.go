// Package port is the model of a vswitch port: one typed configuration,
// Config, and the one set of rules that says which configurations are
// valid. Every way into the switch ends here: vswctl's flags, the libvirt
// hook's metadata, the HTTP API's request bodies (api.PortSpec.Apply), the
// records of the state file (Config's JSON form) and the datapath, which
// refuses a Config that does not validate.
//
// # Access and trunk ports
//
// An access port has a VLAN: the switch tags every frame the VM sends with
// it and accepts only untagged frames from the VM. A trunk port has a set
// of VLANs instead (Trunk, "10,20-30"): the VM sends and receives tagged
// frames of those VLANs, and untagged ones go to the native VLAN if the
// port has one. Either kind may sit on an S-channel (SVID: an outer
// 802.1ad tag), push a priority (PCP) and register the MACs the VM may send
// from.
//
// # Rules
//
// Config.Validate checks, and reports the first rule broken:
//
//   - Name is an interface name Linux accepts: 1-15 bytes, not "." or "..",
//     no '/', ':' or white space (CheckName).
//   - A port is an access port (VLAN 1-4094, no trunk) or a trunk port
//     (VLAN 0, at least one VID in Trunk), never both and never neither.
//     An access port may have its VLAN assigned by the adjacent bridge
//     over 802.1Qbg VDP instead (BridgeVLAN, vswctl --vlan 0): VLAN is
//     then 0 until the bridge assigned one (the port forwards nothing
//     meanwhile: Waiting), and it has no trunk.
//   - A native VLAN (1-4094) only on a trunk port; 0 means none.
//   - SVID is 1-4094, or 0 for none; PCP is 0-7.
//   - Each MAC is a 6-byte unicast address other than all zeros, listed
//     once; a port registers at most MaxRegisteredMACs (256) of them.
//   - MaxMACs, the port's learned-MAC limit, is 0-MaxLearnedMACs when set
//     (nil: the daemon's default).
//   - The VSI identity (what 802.1Qbg VDP tells the adjacent bridge about
//     the VM): VSI type 0-16777215 (three bytes on the wire), type version
//     0-255, VSI manager a number 0-255 or a name of 2-16 printable
//     characters (ParseVSIManager), instance ID a UUID other than the nil
//     one (ParseInstanceID), each in canonical form.
//   - Migration is none, incoming or outgoing (ParseMigration).
//   - VSIGroup, the VSIs' group ID, is 1-4294967295 or 0 for none
//     (CheckVSIGroup, ParseVSIGroup).
//
// What a port registers over VDP follows from these fields (vdp.go): it
// registers VSIs when it has MACs, a group or a VLAN from the bridge; the
// filter format is VID, MAC+VID, group+VID or group+MAC+VID
// (VDPFilterFormat), one entry per VID (VDPVIDs: the access VLAN, 0 to
// ask the bridge, or every VID of a trunk). CheckVDP says whether the
// VSIs fit one VSI TLV each; a port whose VSIs do not is still valid, but
// registers none.
//
// A broken rule is an *Error. Its Field says which part of the
// configuration is at fault (the API maps it to its error codes:
// invalid_name, invalid_vlan, invalid_pcp, invalid_mac, invalid_max_macs,
// invalid_vsi, invalid_request), and its message says what to do:
//
//	invalid trunk "30-20": range 30-20 is backwards; write it 20-30
//	invalid MAC "zz": use the form 52:54:00:12:34:56
//	port vnet1: a native VLAN needs a trunk port
//
// # Text
//
// Operators write ports as text: flags, XML attributes, JSON. ParseNumber,
// ParseTrunk, ParseMAC, ParseMACs, ParseVSIManager, ParseInstanceID, ParseVSIGroup and
// ParseMigration read one field's text and check it
// with the same rules and messages, so a command line can refuse a bad
// value before it sends anything:
//
//	vid, err := port.ParseNumber(port.FieldVLAN, "4095")
//	// err: invalid VLAN 4095: must be 1-4094
//
// # JSON
//
// A Config marshals to the state file's port record,
//
//	{"name":"vnet2","trunk":"10,20-30","native_vlan":10,"macs":["52:54:00:12:34:56"]}
//
// with the trunk in canonical form and zero values left out (a MaxMACs
// that is set is written, "max_macs":0 included); unmarshalling validates,
// so a Config read from JSON is always usable.
//
// # Lookups
//
// ErrNotFound and ErrExists are the sentinels of "no such port" and "that
// name is taken"; NotFound and Exists build errors matching them with the
// message vswctl shows ("port vnet1 not found (see vswctl list-ports)").
// The datapath, the state store, the daemon and the API's test double all
// return these, and the API maps them to not_found and already_exists.
package port
