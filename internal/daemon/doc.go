// Package daemon is vswitchd's wiring. It owns no forwarding, protocol or
// storage logic of its own; it connects the packages that do, one file per
// job:
//
//   - daemon.go: Start and Close. Open the state store, start the switch,
//     restore every configured port; every configuration change is written
//     to the store before the API answers, so a daemon killed at any point
//     restarts with everything it acknowledged. A damaged state file stops
//     the start with the store's one-line error; a port record that cannot
//     be used is logged and listed as a down port with its problem
//     (service.go), never a reason not to start.
//   - plan.go and datapath.go: which backends run (planBackends, a pure
//     function of --datapath, --port-datapath, the MTU and an AF_XDP probe)
//     and starting the switch on them, falling back from AF_XDP to
//     AF_PACKET under auto.
//   - links.go: link following. Ports attach when their taps appear and
//     detach when they go; a failed attach is retried with back-off; the
//     uplink's return reopens its queues and reattaches every present port.
//   - uplinkwait.go: Run's wait, before Start, for an uplink that does not
//     exist yet (--uplink-wait), the API socket answering "starting" and
//     systemd told what vswitchd waits for; the socket and the uplink's
//     lock are then handed to Start and Serve.
//   - uplinklock_linux.go: one vswitchd per uplink (an flock taken before
//     the uplink, the state file or the socket is touched).
//   - service.go: the control API (api.Service) on top of the store and
//     the switch; serve.go: the HTTP servers (API socket, --metrics) and
//     the background loops, and under systemd (Options.Notify) READY=1
//     once the API listens, STOPPING=1, and the watchdog's pings.
//   - control.go: the bounded hand-off of control frames (LLDP, ECP) from
//     the datapath's workers, which must never block, to the stations.
//   - evb.go, vdp.go: the 802.1Qbg EVB station (reflective relay; a refusal
//     switches the datapath to VEB while the configured mode stays VEPA)
//     and VSI registration (each MAC registered on an access port is a VSI
//     associated with the bridge over ECP/VDP).
//   - offload.go: receive coalescing (GRO/LRO) off on the uplink while
//     running; metrics.go: Prometheus; fdbsave.go: the periodic FDB save.
//   - With --libvirt, serve.go also runs the libvirt event follower
//     (internal/libvirt/events), which changes ports through the daemon's
//     own api.Service methods (the same rules, state file and log as the
//     API); Status shows its connection.
//
// Everything the daemon asks of the host (netlink links and events, AF_XDP
// probes, backends, ethtool) goes through system (system.go), so the
// daemon's logic is unit-tested without root on in-memory backends
// (pkg/backend/queuetest), a fake LinkSource and a temporary state file.
package daemon
