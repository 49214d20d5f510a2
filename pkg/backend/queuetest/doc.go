// Package queuetest is an in-memory backend.Backend for unit tests of the
// forwarding pipeline, in the spirit of wireguard-go's tun/tuntest: frames
// injected with Inject come out of the queue's Recv, frames the pipeline
// Sends are collected and can be read with Sent or waited for with Wait.
// Its queues implement backend.CustomStatser (rx_batches, tx_batches), so
// the way custom counters travel through the datapath is testable without
// root.
package queuetest
