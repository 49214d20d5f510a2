// Package bench is the benchmark harness for vswitch: one call builds an
// 802.1Qbg-style topology in network namespaces, runs every contender
// switch through the same generator and sink, and reports packets per
// second, throughput, CPU and loss in a table and as JSON.
//
// # Topology
//
// Per contender the harness creates, with a unique name prefix
// ("vsb<pid><rand>-"), these namespaces and nothing outside them:
//
//	VM1 (generator) eth0 ──veth── vnet1 ┐
//	                                    ├─ HV: switch under test ── uplink ──veth── up-sw ┐
//	VM2 (sink)      eth0 ──veth── vnet2 ┘                                                 ├─ SW: br0 (hairpin on up-sw)
//	                                                           REM (remote) rem0 ──veth── rem-sw ┘
//
// SW is the adjacent "physical" switch: a Linux bridge whose port towards
// the hypervisor has hairpin on, which is exactly a reflective relay. The
// bridge-nf-call-* sysctls are set to 0 there so the bridge neither drops
// nor slows the generated IP frames.
//
// # Tests
//
//   - vm2vm_64: 64-byte frames (60 + FCS) VM1 -> VM2. For VEPA contenders the
//     path is VM1 -> switch (tag VID 100) -> uplink -> br0 hairpin -> uplink ->
//     switch (pop) -> VM2, so every frame crosses the switch twice.
//   - up2vm_64: 64-byte frames sent by REM into br0, destined to VM2's MAC, so
//     they enter the hypervisor on the uplink (tagged VID 100 where the
//     contender tags; untagged for the kernel contenders, which tag nothing).
//   - vm2vm_1500: 1514-byte frames (a 1500-byte IP packet) VM1 -> VM2, in Gbit/s
//     of L2 bytes (FCS excluded).
//
// Each test runs a fixed duration, a number of repetitions, and the median is
// reported. Before measuring, the harness sends learning frames both ways
// and verifies with a packet socket in VM2 that generated frames arrive
// untagged and intact, so a contender that "forwards" garbage cannot score.
//
// # Generator and sink
//
// The generator is in-repo Go: an AF_PACKET socket with PACKET_QDISC_BYPASS
// that sends a pre-built frame (valid IPv4 and UDP checksums, addresses from
// the RFC 2544 benchmarking range 198.18.0.0/15, never assigned to any
// interface) in batches with sendmmsg(2). The "wire" row measures the
// generator against a bare veth pair: the ceiling for every other row. The
// sink counts rx_packets of VM2's interface over netlink.
//
// # CPU
//
// For userspace switches (vswitchd, ovs-vswitchd) CPU% is utime+stime of the
// process from /proc/PID/stat over the run (100% = one core). For kernel
// contenders there is no process: the harness reports the system-wide
// softirq time from /proc/stat instead, marked "sirq".
//
// # Contenders
//
// wire, vswitchd-afpacket, vswitchd-afxdp, macvlan-vepa, ovs-afpacket,
// ovs-afxdp, linux-bridge. A contender that cannot run reports why in its row
// instead of numbers. See contenders.go.
package bench
