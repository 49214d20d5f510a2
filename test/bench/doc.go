// Package bench is the benchmark harness for vswitch: one call builds an
// 802.1Qbg-style topology in network namespaces, runs every contender
// switch through the same generator and sink, and reports packets per
// second, throughput, CPU, loss and round-trip latency in a table and as
// JSON.
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
// Rows whose names end in -tap and macvtap-vepa attach the VMs the way
// QEMU does instead (topology "tap" and "macvtap" in the JSON): there are
// no VM namespaces; each VM is a file descriptor in the harness with a
// 12-byte virtio-net header on every frame (IFF_VNET_HDR, as vhost-net
// uses it), written by the generator and drained by a reader goroutine
// (the guest's receive path), which also answers probes:
//
//	tap:     /dev/net/tun fd ── tap vnet1 ┐ (created in HV, IFF_TAP|IFF_NO_PI|IFF_VNET_HDR,
//	         /dev/net/tun fd ── tap vnet2 ┘  gone when the fd closes) ── switch under test ── uplink ...
//	macvtap: /dev/tapN fd ── macvtap1 ┐ mode vepa on HV's uplink (libvirt's
//	         /dev/tapM fd ── macvtap2 ┘ <interface type='direct'><source mode='vepa'/>) ── uplink ...
//
// The macvtap character device node is made with mknod(2) in the
// contender's temp dir from /sys/class/net/macvtapX/macvtap/tapN/dev (read
// in HV). The taps carry no offloads (no TUNSETOFFLOAD): the frames hold
// full checksums. One write(2) per frame: vhost-net, which batches inside
// the kernel, is not used (it needs a virtqueue in guest memory).
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
//   - latency: after the throughput tests, the round-trip time VM1 -> VM2 ->
//     VM1 of 60-byte UDP probes, one every 10 ms (500 per phase; 100 with
//     -short), first alone ("light"), then with a paced background stream
//     VM1 -> VM2 at half of the row's vm2vm_64 rate ("load"). Reported:
//     p50, p99 (nearest rank), max, min, mean, lost probes, and the CPU the
//     switch burns meanwhile (a busy-polling switch burns a core for its
//     latency; see CPU). Tap rows run vm2vm_64 and latency only.
//
// Each throughput test runs a fixed duration, a number of repetitions, and
// the median is reported. Before measuring, the harness sends learning
// frames both ways and verifies with a packet socket in VM2 (on taps: VM2's
// reader) that generated frames arrive untagged and intact, so a contender
// that "forwards" garbage cannot score.
//
// # Scaling with VMs
//
// After the rows, a scaling phase (-scale, default 2,16,64 ports; a
// separate section of the table, "scaling" in the JSON) runs vswitchd with
// AF_PACKET, vswitchd with the uplink on AF_XDP (-scale-contenders; also
// vswitchd-afxdp-xsk) and macvlan-vepa with N VM ports: N/2 pairs, VM
// 2k-1 sends to VM 2k, every pair at once. Every port is on VID 100: many
// VMs of one network on a hypervisor is the common case (one VLAN per
// pair would be one VLAN per two VMs), it is the harder one for a learning
// switch (one FDB domain with N MACs, floods reach every port), and it
// keeps macvlan-vepa, which tags nothing, the same topology as for the
// rows. Topology: SW and HV as above (no REM) and one namespace VMS with
// every VM's interface vmK, the peer of HV's vnetK (vswitchd's port) or a
// macvlan in mode vepa on the uplink; a VM's own namespace would change
// nothing the switch sees, and one namespace lets one netlink dump read
// every VM's counters (64 namespaces cost seconds to make and delete).
// Each step (one per port count, ascending; a fresh vswitchd per step,
// ports added over its API socket, each add returning once attached):
//
//   - learn (sinks talk first) and verify the first and the last pair as
//     the rows are verified;
//   - flood: one generator thread steps every source's TX ring (or sendmmsg
//     batch) in turn for -scale-duration (1 s, one repetition), so each pair
//     is offered the same load; the received frames of every sink give the
//     aggregate Mpps and per-pair rates: min/max, and Jain's fairness index
//     (sum x)^2 / (n sum x^2), 1 when all pairs get the same;
//   - latency at light load: -scale-probes (200) probes 5 ms apart on
//     pair 1 while every pair sends -scale-load-pps (2,000) frames/s, paced
//     and spread round-robin over the pairs frame by frame (64 kpps for 64
//     ports: a tenth of what vswitchd forwards here), with the switch's CPU;
//   - vswitchd only: VmRSS, VmHWM and Threads from /proc/PID/status and the
//     count of /proc/PID/fd with no port, with N ports attached and after
//     the traffic; RSS per port = (with N - with none) / N. Also how long
//     adding the N ports took, how long the daemon took to exit on SIGTERM
//     (it gets 20 s here, then SIGKILL and the step reports it) and its
//     drop counters by place (uplink/ports) and reason, over the step and
//     over the latency phase alone.
//
// A step in which a pair received nothing fails. The whole phase takes
// about 55 s for 3 rows x 3 steps on the 2-core machine.
//
// # Generator and sink
//
// The generator is in-repo Go: an AF_PACKET socket with PACKET_QDISC_BYPASS
// and a TPACKET_V2 TX ring whose 512 slots all hold the same pre-built frame
// (valid IPv4 and UDP checksums, addresses from the RFC 2544 benchmarking
// range 198.18.0.0/15, never assigned to any interface), flushed with one
// send(2) per ring; `-gen mmsg` uses sendmmsg(2) batches of 64 instead. On
// the 2-core machine both reach about as many frames per second as
// netsniff-ng's trafgen (both noisy there). The "wire" row measures the
// generator against a bare veth pair: the ceiling for every other row. Sent
// frames are the tx_packets of the generator's interface, received frames
// the rx_packets of VM2's, both read over netlink; loss% compares the two.
// On taps the generator is a write(2) loop on VM1's descriptor and the
// counts are the frames written to VM1's and read from VM2's descriptor.
//
// # Prober
//
// The latency prober is in-repo Go too (probe.go, prober_linux.go), never
// ping: a request is a valid UDP/IPv4 frame VM1:40001 -> VM2:7 whose
// payload carries a magic, a session number per phase, a sequence number
// and the CLOCK_MONOTONIC time it was sent. The echo responder in VM2
// swaps addresses and ports in place (both checksums stay valid) and sends
// it back; VM1 subtracts the send time from CLOCK_MONOTONIC at arrival and
// verifies both checksums. Probes go out on a fixed 10 ms schedule, not
// after the previous answer; an answer later than 500 ms after the last
// probe, or never, is lost. On veth and macvlan, prober and responder use
// packet sockets with a classic BPF filter on the UDP port, so the
// background stream costs them nothing; on taps, the VMs' reader
// goroutines echo and collect. The background stream is the throughput
// test's frame, paced in batches every ~100 us (sendmmsg on veth, write(2)
// on taps); load_sent_pps says what it reached (a busy machine can hold it
// back; the table notes when it fell below 90% of the target).
//
// A round trip also contains the VMs' own scheduling: the responder and
// the prober are threads of normal priority that must get a CPU, on a
// 2-core machine shared with the generator, the switch and whatever else
// runs. On packet sockets both ends therefore take the kernel's receive
// timestamp (SO_TIMESTAMPNS): the responder reports how long a request sat
// in VM2 (in the reply's IPv4 Identification field, see probe.go), the
// prober adds its own delay from the kernel's arrival to its read, and
// net_p50_us/net_p99_us/net_max_us in the JSON (and "net" in the progress
// lines) are the round trips less both: the switch's and the links' share.
// Over a bare veth pair (TestSocketProber) that is 2-3 us at p50 and p99,
// where the whole round trip's p99 can be hundreds of microseconds.
//
// Note that with veth every kernel-side step of delivery (including copying
// into a userspace switch's packet socket) runs in softirq on the
// generator's CPU, so kernel contenders are bounded by the generator's core
// and userspace contenders get the other core.
//
// # CPU
//
// For userspace switches (vswitchd, ovs-vswitchd) CPU% is utime+stime of the
// process from /proc/PID/stat over the run (100% = one core). For kernel
// contenders there is no process: the harness reports the system-wide
// softirq time from /proc/stat instead, marked "sirq". The same is measured
// while the light latency phase runs (the "CPU% (RTT light)" column): for
// kernel rows that is mostly other load on the machine, for a userspace
// switch it is what its wake-ups or busy polling cost at 100 probes/s.
//
// # Kernel fact found here
//
// A Linux bridge keeps a frame's 802.1Q tag in skb metadata, and veth hands
// it to its peer that way: XDP (and so AF_XDP) on the receiving veth sees
// the frame untagged. The harness therefore turns TX VLAN offload off on
// SW's uplink port (`ethtool -K up-sw txvlan off`), which makes the kernel
// write the tag into the frame bytes, as on a real wire. Without ethtool the
// AF_XDP contenders lose every uplink frame (OVS drops them, vswitchd counts
// unknown_vlan).
//
// # Running
//
//	go run ./test/bench/cmd/vsbench -json bench-results.json      # full run, < 5 min, root
//	go run ./test/bench/cmd/vsbench -short                          # smoke: 1 x 1 s, 100 probes, 3 contenders
//	go run ./test/bench/cmd/vsbench -contenders macvlan-vepa,ovs-afxdp -duration 5s -reps 3
//	go test ./test/bench -run TestBenchSmoke                        # the smoke test of the default suite
//	go run ./test/bench/cmd/vsbench -contenders none -scale 2,16,64  # only the scaling phase
//	go test ./test/bench -run TestScaling                           # scaling, 2 and 4 ports
//
// Flags: -duration, -reps, -contenders all|none|a,b,c, -short, -json FILE,
// -vswitchd PATH, -vswctl PATH (default: built with go build), -gen ring|mmsg,
// -probes N (per latency phase; 0: no latency), -probe-interval, -timeout;
// for the scaling phase -scale N,N,... (none: skip it; -short skips it
// unless given), -scale-contenders, -scale-duration, -scale-probes,
// -scale-load-pps. The full run is 3 x 1 s per throughput test (it was 3 x
// 2.5 s before the latency phases and the tap rows came) and 2 x 500
// probes per row: 250 s for 12 rows on 2 cores, then about 55 s of
// scaling (make bench: about 5.5 minutes with build and the
// micro-benchmarks). Debian packages: openvswitch-switch (OVS rows), ethtool
// (see above); netsniff-ng only to compare generators by hand.
// Debugging aids: VSBENCH_KEEP_LOGS=DIR copies each contender's temp dir
// (OVS logs, state) there; VSBENCH_HOLD=40s keeps a topology that failed
// verification alive that long for inspection; VSBENCH_PIN=prober=0,reader=0,responder=1
// pins the latency prober's sending and receiving threads and VM2's
// responder to CPUs, to study where wake-ups land (pin_linux.go).
//
// Everything runs bounded: helper commands 20 s, setup waits 10 s, the whole
// run -timeout (6 min 30 s). Teardown (also on Ctrl-C, SIGTERM or a failure)
// stops the processes the harness started, by pid, and deletes its
// namespaces, which removes every interface it created; a later run deletes
// namespaces of an earlier run whose process is gone.
//
// # Contenders
//
// wire, vswitchd-afpacket, vswitchd-afxdp, vswitchd-afxdp-xsk,
// macvlan-vepa, ovs-afpacket, ovs-afxdp, linux-bridge, ebpf-vepa; on taps
// vswitchd-afpacket-tap, vswitchd-afxdp-tap (uplink on AF_XDP, taps on
// AF_PACKET) and macvtap-vepa, their kernel anchor (ratio_macvtap_vepa,
// "mvtap" in the table). A contender that cannot run reports why in its
// row instead of numbers. See contenders.go.
//
// ebpf-vepa is not a product but a ceiling: two tc eBPF programs in HV
// (tag and redirect to the uplink; untag, look up the destination MAC and
// redirect to the VM) and nothing in userspace. VMs attached through a veth
// pair, as vswitchd's and OVS's are here, cross two more veth hops per
// frame than macvlan's VMs, which sit on the uplink itself; ebpf-vepa shows
// what that costs when switching itself is nearly free (see
// ebpfvepa_linux.go).
package bench
