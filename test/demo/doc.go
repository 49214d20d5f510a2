// Command demo builds a small data centre in network namespaces and runs
// vswitchd in it: three VMs (vm1, vm2 on VLAN 100, vm3 on VLAN 200) on one
// hypervisor, whose uplink goes to a switch namespace with a Linux bridge in
// reflective-relay (hairpin) mode, with lldpad on its port as the 802.1Qbg
// EVB bridge (when installed) that grants vswitchd reflective relay and
// takes the VMs' registrations (VDP, shown with `vswctl vsis`). It
// pings across the relay, shows that
// VLANs are kept apart and that nothing is switched locally, prints
// `vswctl list-ports` and `vswctl stats`, and removes everything it made.
//
//	go run ./test/demo -bin ./bin      (as root; `make demo` does it)
package main
