// Package integration holds vswitch's end-to-end tests: real vswitchd and
// vswctl binaries, real network namespaces, real veth pairs and tap devices,
// and a Linux bridge playing the adjacent 802.1Qbg bridge.
//
// # Running
//
// The tests need root (network namespaces, AF_PACKET, AF_XDP) and skip with a
// reason otherwise:
//
//	sudo go test ./test/integration/ -v
//	VSWITCH_DATAPATHS=afpacket go test ./test/integration/   # one backend only
//
// TestMain builds cmd/vswitchd and cmd/vswctl once into a temporary directory
// and removes it afterwards. Every test that depends on the datapath runs once
// per backend variant as a subtest: "afpacket", "afxdp" (AF_XDP uplink, VM
// ports on AF_PACKET, the default) and "afxdp-xsk" (--port-datapath afxdp:
// AF_XDP everywhere); the afxdp subtests skip with
// the reason when afxdp.Probe refuses the uplink or vswitchd cannot start
// with it.
//
// # Topology
//
// Each test builds its own topology with test/topo (names carry a random
// prefix, everything is removed in t.Cleanup even when the test fails):
//
//	 VM ns vm1            hypervisor ns hv1                   switch ns sw
//	eth0 10.0.0.1 ==veth== vnet1 --+                      +-- p1 (hairpin on)
//	eth0 10.0.0.2 ==veth== vnet2 --+-- vswitchd -- uplink ==veth== |  br0
//	                                                      +-- p2 (second hypervisor)
//
// vswitchd runs inside the hypervisor namespace as a real process
// (`ip netns exec HV vswitchd --uplink uplink --datapath DP --state
// DIR/state.db --socket DIR/sock --log-level debug`), logging to DIR/vswitchd.log,
// which is printed through t.Log when the test fails. Ports are configured with
// the vswctl binary (`vswctl --socket DIR/sock add-port vnet1 --vlan 100`).
//
// The bridge port facing a hypervisor has hairpin on: it reflects frames back
// out the port they came in on, which is reflective relay. Without it two VMs
// on the same hypervisor cannot talk in VEPA mode, which is what
// TestVEPANeedsReflectiveRelay proves.
//
// # Kernel details the topology takes care of
//
//   - TX checksum offload is off inside the VM namespaces (topo.DisableOffloads):
//     otherwise TCP/UDP frames a VM's kernel sends leave veth with a partial
//     checksum that nobody completes after a packet socket relayed them.
//   - TX VLAN offload is off on the bridge ports (`ethtool -K pN txvlan off`):
//     otherwise the tag of a frame the bridge sends towards a hypervisor
//     travels out of band (skb metadata) across the veth, and XDP on the
//     hypervisor's uplink (AF_XDP backend) would see the frame untagged.
//     AF_PACKET gets the tag back from the ring header either way.
//     TestTagsOutOfBand leaves it on, to check that both backends cope with
//     tags held in metadata (as from a NIC with RX VLAN offload).
//   - Neighbour entries in the VMs stay REACHABLE for 30-90 s
//     (net.ipv4.neigh.eth0.base_reachable_time_ms=60000), so a VM sends no
//     ARP probe of its own in the middle of a test and results do not depend
//     on probe timing.
//   - AF_XDP availability is probed (afxdp.Probe) on a throwaway veth, never
//     on the uplink: the kernel releases an XSK's queue binding in deferred
//     work after close, and a probe of the uplink would make vswitchd's own
//     probe fail with EBUSY right after.
//
// # Environment
//
//	VSWITCH_DATAPATHS=afpacket,afxdp   variants to test (default afpacket,afxdp,afxdp-xsk)
//	VSWITCH_LEAK_CYCLES=N              attach/detach cycles of TestAttachDetachNoLeak (default 1000)
package integration
