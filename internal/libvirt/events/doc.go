// Package events keeps vswitchd's ports in step with libvirtd while VMs
// run (vswitchd --libvirt URI), for what libvirt's qemu hook never sees:
// a NIC hot-plugged with `virsh attach-device --live` or unplugged with
// `virsh detach-device --live`, the vswitch metadata changed with `virsh
// metadata --live`, and VMs that started or stopped while vswitchd was not
// running. The hook (vswctl libvirt-hook) stays the primary path: it sets
// a VM's ports up before QEMU starts and refuses a start it cannot serve;
// this package follows along and works without it.
//
// A Follower talks to libvirtd through a Conn (Dialer: go-libvirt, the
// pure-Go client of libvirt's RPC protocol; tests: a fake) and to vswitchd
// through Ports (the daemon's api.Service, so its changes go through the
// same port rules, state file and log as the API's). The rule from a
// domain's XML to its ports is internal/libvirt's (Domain.Desired), the
// same the hook applies at "start begin".
//
// What it does:
//
//   - On every connection (vswitchd's start, and each reconnection after
//     libvirtd restarted: tried again after 1 s, doubling up to 30 s) it
//     subscribes to the domain events and then reconciles: every running
//     domain's described ports are added or updated (SyncDomain), and a
//     port whose owner is the UUID of a domain that no longer runs is
//     removed.
//   - A device added or removed, a change of the metadata in vswitch's
//     namespace (urn:vswitch:libvirt:1), a domain started or stopped: the
//     domain is read afresh and synced. Events are only a cue; the domain's
//     current live XML is the truth, so a late, repeated or reordered event
//     does no harm.
//   - Live migration follows 802.1Qbg as the hook makes it, so that
//     --libvirt alone is migration-aware. On the destination libvirt
//     reports the start (started/migrated) at the end of its Prepare,
//     before the memory is copied: the ports then added are added
//     incoming, their VSIs pre-associated while the VM still runs on the
//     source. When libvirt resumes the VM here (resumed/migrated, or
//     resumed/post-copy) the domain's incoming ports are promoted (the
//     VSIs associated with the M bit), sooner than the VM's first frame
//     or vswitchd's --preassociate-timeout would. On the source, a stop by
//     migration makes each of the domain's ports outgoing (the VSIs
//     de-associated with the S bit) and then removes it. Unlike the hook,
//     the follower comes after the fact and cannot make libvirt cancel a
//     migration the bridge refuses.
//
// What it never does: touch a port whose owner is not a UUID (added with
// vswctl, no owner; or another tool's), or change a port that a running
// domain other than the one synced owns. A description that cannot be set
// up (a bad VLAN in the metadata) leaves the existing port as it is. Every
// failure is logged and shown in `vswctl status` (Status), never fatal:
// vswitchd keeps forwarding whatever libvirtd does.
package events
