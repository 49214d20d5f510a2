//go:build linux

package afpacket

import "github.com/vswitch/vswitch/pkg/backend"

// The backend.Polled side of a queue opened with QueueConfig.Polled.
var _ backend.Polled = (*Queue)(nil)

// PollFD implements backend.Polled: the packet socket, which signals
// (sk_data_ready) every frame the kernel writes to the ring.
func (q *Queue) PollFD() int { return q.fd }

// TryRecv implements backend.Polled: Recv's read of the ring without its
// wait. With nothing to read it still does what Recv does before it
// sleeps, at most as often: the jam watchdog's check and, after a
// socket error (EPOLLERR wakes the poll loop too), the error.
func (q *Queue) TryRecv(b *backend.Batch) (int, error) {
	if !q.enter() {
		return 0, backend.ErrClosed
	}
	defer q.exit()
	if err := q.canRecv(b); err != nil {
		return 0, err
	}
	r := q.rx
	if r.dead != nil {
		return 0, &OpError{Op: "recv", Iface: q.ifname, Err: r.dead}
	}
	if n := q.take(b); n > 0 {
		return n, nil
	}
	if err := r.takeSockErr(); err != nil {
		return 0, &OpError{Op: "recv", Iface: q.ifname, Err: err}
	}
	if r.pending() || r.wrapped() {
		return 0, nil // only the caller's Release frees slots
	}
	if err := q.watch(); err != nil {
		return 0, err
	}
	if err := q.sockError(); err != nil {
		return 0, err
	}
	return q.take(b), nil
}

// Streaming implements backend.Polled: the waiter moved the queue to its
// own thread (rxwait's spread).
func (q *Queue) Streaming() bool { return q.waiter != nil && q.waiter.Spread() }

// IncomingCPU implements backend.Polled: the CPU the receive-CPU filter
// saw last (port queues), -1 when unknown.
func (q *Queue) IncomingCPU() int {
	if !q.enter() {
		return -1 // closed: the map is unmapped
	}
	defer q.exit()
	return q.rxCPU.cpu()
}
