// Package netdev watches network links through rtnetlink, so the daemon can
// attach a port when its tap appears and detach it when the tap goes.
//
//	w, err := netdev.Watch(ctx)                     // or WithNamespace(h)
//	for ev := range w.Events() {                    // closed when ctx ends
//		if ev.Present && ev.Up { attach(ev.Name) } else if !ev.Present { detach(ev.Name) }
//	}
//
// # What a Watcher promises
//
// It subscribes to RTNLGRP_LINK before dumping the link table
// (LinkSubscribeOptions.ListExisting), so the first events describe every
// link that exists and nothing that changes afterwards is missed. Then each
// RTM_NEWLINK (created, up/down, MTU, MAC, rename ...) and RTM_DELLINK
// becomes an Event carrying the link's whole state, not a delta: apply
// events in order and you hold the true state.
//
// Netlink is a datagram protocol. When the consumer is slow the kernel's
// socket buffer fills and further messages are dropped with ENOBUFS; the
// socket then tells us once and carries on as if nothing happened. A watcher
// that ignores that silently believes a deleted tap still exists. This one
// closes the socket, subscribes again, reports every link it knew that has
// since vanished as Present=false, and reports the full current set again.
// The same happens when the initial dump comes back marked NLM_F_DUMP_INTR
// (the table changed while being dumped), and on any other socket error.
// Resyncs counts these.
//
// Two traps handled here: the bridge reports port changes on the same group
// as AF_BRIDGE messages, and an AF_BRIDGE RTM_DELLINK means "left the
// bridge", not "deleted" — those are ignored. A rename is reported as the old
// name going away, then the new name appearing, because ports are named.
//
// Stopping (cancel the context, or Close) closes the socket, which wakes the
// reading goroutine; the watcher drains it and closes Events only after every
// goroutine and fd it owned is gone. The tests run 1000 start/stop cycles and
// 1000 veth create/delete cycles and check goroutine and fd counts.
//
// # Lookups under churn
//
// vishvananda/netlink dump calls fail with EINTR or netlink.ErrDumpInterrupted
// when links change during the dump. LinkByName and the watcher's link dumps
// (and their ...At variants taking a *netlink.Handle for another namespace)
// retry those a few times; Retry does the same for any call.
//
// Namespaces: the daemon runs inside its own; helpers to create and enter
// namespaces for tests live in test/topo, not here.
package netdev
