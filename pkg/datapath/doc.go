// Package datapath is the switch: ports, the forwarding database, the two
// forwarding pipelines and their counters, over a batch-first Backend.
//
// Each port has its own goroutine that receives from the port's tap queue,
// applies the VM -> uplink rules (size, tag, source checks, learning), pushes
// the port's 802.1Q tag (and S-tag for an S-channel) in place in the receive
// buffer, and sends the batch on the port's own uplink TX queue. Uplink
// receive is spread over workers (fanout members or AF_XDP queues); each pops
// the tags in place, finds the destination ports through a [4096] VID table
// and the FDB, applies the VEPA reflection filter (a VM never gets its own
// broadcast back from the reflective relay) and sends one batch per port.
// In VEB mode a port's worker also switches to the other local ports. Both
// collect what goes to local ports in a fanout (deliver.go) whose size is
// fixed by the batch: a frame flooded to many ports is held once and
// shared, so no worker's memory grows with the number of ports.
//
// The uplink workers own all uplink I/O, control frames included, under
// every backend: a frame to an IEEE 802.1 link-local group address
// (01:80:c2:00:00:0x), or LLDP or ECP by its ethertype, never reaches a VM;
// it is counted (CounterSnapshot.Control) and handed to Config.Control by
// the worker itself, so that hook must not block (vswitchd copies the
// frame into a bounded queue and returns). The control plane transmits with
// SendControl, on a TX queue of its own that RestartUplink reopens with the
// rest of the uplink. (An AF_XDP backend sees only the link-local frames
// that are LLDP or ECP: its XDP program passes the others, STP, LACP,
// 802.1X, to the host's stack, as AF_PACKET leaves the kernel its copy.)
//
// Workers are plain goroutines, not locked to threads; Config.Priority
// goes to every thread of the process but the Go runtime's monitor, and
// Config.Workers tells the embedder how many workers run, so it can give
// the runtime a P for each (thread_linux.go says why both).
//
// With Config.CPUPoll a worker's goroutine runs only while its queue
// streams: at light load the CPU pollers (internal/cpupoll: one per CPU,
// sleeping on that CPU) receive the queue and run the worker's pipeline
// themselves, so a VM's frame wakes the poller of the CPU the VM sent it
// from instead of a thread on another, halted CPU (polled.go). The uplink
// queues are a fanout group that spreads frames by the CPU that received
// them while none streams (a frame the switch sent and the bridge
// reflected comes back to the poller that sent it); a port follows the CPU
// its VM sends from.
//
// Captures (capture.go) copy frames at the points where the switch sees
// them, port in and out, uplink in and out, into a bounded buffer per
// session that a reader drains (vswitchd's GET /v1/capture); a full buffer
// drops and counts, so a slow reader never holds a worker up, and with no
// capture running a point costs one atomic pointer load per batch.
//
// Configuration is an immutable snapshot swapped atomically; the pipelines
// load it once per batch and never lock per frame. A change copies the
// snapshot and rewrites only what the changed port touches: its VIDs' port
// lists, its registered MACs' shards of the per-MAC index (static.go) and
// its S-channel's row of learning domains, so a change costs in proportion
// to the port, not to the switch. Registered MACs are indexed once per MAC
// whatever the port's VLANs; the lookup checks that the port carries the
// frame's S-VID and VID.
//
// The FDB is a lock-free open-addressing table of atomic words, keyed by
// learning domain and MAC: the domain is the C-VID, or for S-channel ports
// a number standing for the (S-VID, C-VID) pair (domain.go), so tenants on
// different S-channels may use the same MAC and C-VID. It counts its
// entries per port, per domain and in all, and bounds each (FDBLimits,
// port.Config.MaxMACs): a new MAC over a limit is dropped (mac_limit,
// fdb_full), nothing is evicted. learn.go has the rules that keep one VM
// from taking what others rely on (registered MACs, MAC moves and their
// rate). Drops are counted per port and per Reason; DropTotals sums them
// over the switch, keeping those of deleted ports, so totals never go down.
// Backends live
// elsewhere (pkg/afpacket, pkg/afxdp); queuetest is an in-memory backend
// for unit tests.
package datapath
