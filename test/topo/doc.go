// Package topo builds the network-namespace topologies that vswitch's
// integration tests and benchmark harness run on, and removes them again.
//
// Everything hangs off a *Topo. In a test, topo.New(t) skips unless root,
// picks a random prefix ("vs" + 4 hex digits) and registers Cleanup with
// t.Cleanup, so namespaces, host links, taps, sockets and processes are gone
// even after a failed test. Outside tests (test/bench, demos) use NewTopo and
// call Cleanup yourself.
//
//	tp := topo.New(t)
//	hv, _ := tp.NewNS("hv")   // named "vsXXXX-hv": `ip netns exec vsXXXX-hv ...` works
//	sw, _ := tp.NewNS("sw")
//	_ = topo.VethPair(hv, "uplink", sw, "p0")
//	_ = topo.Bridge(sw, "br0", topo.Port{Name: "p0", Hairpin: true}) // reflective relay
//	vm, _ := topo.Tap(hv, "vnet1")          // *os.File: the VM's side of the tap
//	d, _ := hv.Start("vswitchd", "--uplink", "uplink")
//	capt, _ := sw.Capture("p0")             // frames on the switch side, tags intact
//
// # Namespaces
//
// A named namespace is a bind mount under /var/run/netns, exactly what
// `ip netns add` makes. NewNS brings lo up and disables IPv6 so captures hold
// only what the test sent (no router solicitations, no DAD). Interface names
// inside a private namespace need no prefix; in the host namespace use
// (*Topo).Ifname. Names are at most 15 bytes (IFNAMSIZ-1).
//
// Go schedules goroutines on many threads, and a network namespace belongs to
// a thread. (*NS).Do locks the goroutine to its thread, switches, runs fn and
// switches back; a socket opened inside fn stays in the namespace forever
// after. That is how PacketConn, Tap and NewPinger work, and how code under
// test should open its own sockets. Processes run through `ip netns exec`.
//
// # Frames
//
// On receive the kernel moves an 802.1Q/802.1ad tag out of the frame into
// metadata before a packet socket sees it. PacketConn and Capture ask for
// PACKET_AUXDATA and put the outer tag back, so a test can assert "the frame
// on the switch side carries VID 100". BuildEth, BuildUDPv4 and PushTag make
// frames with valid checksums (a bridge with br_netfilter drops bad ones).
//
// # Bridge
//
// Bridge sets net.bridge.bridge-nf-call-{iptables,ip6tables,arptables}=0 in
// its namespace, leaves STP off so ports forward at once, turns multicast
// snooping off, and sets hairpin per port: a hairpin port sends frames back
// out the port they came in on, floods included, which is what an 802.1Qbg
// bridge doing reflective relay does.
//
// # Ping
//
// Ping and Pinger speak ICMP echo over a raw IPv4 socket opened inside the
// namespace and bound to the source address; no ping binary needed.
// Pinger.RTTs collects round-trip times and Summarize reduces them (min,
// nearest-rank p50/p99, max, mean, stdev). Percentile is the one
// percentile rule of the repository: the benchmark harness (test/bench)
// reports its prober's round trips through Summarize too.
package topo
