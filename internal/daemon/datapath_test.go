package daemon

import "testing"

// uplinkQueues: one per CPU by default, on AF_XDP one per NIC queue of a
// multi-queue NIC; a request is taken as it is, and one below the NIC's
// queue count is reported.
func TestUplinkQueues(t *testing.T) {
	for _, c := range []struct {
		requested, nic, cpus int
		want                 int
		short                bool
	}{
		{0, 0, 4, 4, false}, // afpacket: per CPU
		{0, 1, 4, 4, false}, // afxdp on a veth: per CPU, sharing the one NIC queue
		{0, 8, 4, 8, false}, // afxdp on a NIC with more queues than CPUs
		{0, 3, 8, 3, false}, // afxdp, fewer NIC queues than CPUs: their interrupts spread them
		{2, 0, 4, 2, false}, // requested
		{2, 4, 4, 2, true},  // requested below the NIC's count
		{6, 4, 4, 6, false}, // requested above it: the extra ones share
		{0, 0, 0, 1, false}, // nothing known: one
	} {
		n, short := uplinkQueues(c.requested, c.nic, c.cpus)
		if n != c.want || short != c.short {
			t.Errorf("uplinkQueues(%d, %d, %d) = %d, %v; want %d, %v", c.requested, c.nic, c.cpus, n, short, c.want, c.short)
		}
	}
}
