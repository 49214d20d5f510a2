package backend

// Stat is one backend-specific counter: a stable snake_case name (it
// becomes a JSON key and a metric label value, so it never changes once
// released) and the count so far.
type Stat struct {
	Name  string
	Value uint64
}

// CustomStatser is implemented by queues that count things only their
// backend knows: segments cut from GSO super-frames and checksums completed
// by AF_PACKET, drops the kernel counts on an AF_XDP socket, and the like.
// It is optional, in the way Open vSwitch's netdev providers may implement
// get_custom_stats: the datapath asks for it with a type assertion (see
// CustomStats) and carries whatever it gets to the API and /metrics
// without knowing what the names mean.
//
// What every backend counts belongs in QueueStats instead, where the
// datapath can act on it (drops become drop reasons).
type CustomStatser interface {
	// CustomStats appends the queue's counters to dst and returns the
	// extended slice, as append does: callers pass a reused or stack
	// buffer and nothing is allocated while it has room. A queue reports
	// the same names, in the same order, on every call, including after
	// Close (the final values); every value is a counter that only grows
	// over the queue's life. Safe to call concurrently with Recv, Send
	// and Close.
	CustomStats(dst []Stat) []Stat
}

// CustomStats appends q's custom counters to dst when q implements
// CustomStatser, and returns dst unchanged when it does not.
func CustomStats(q Queue, dst []Stat) []Stat {
	if cs, ok := q.(CustomStatser); ok {
		return cs.CustomStats(dst)
	}
	return dst
}
