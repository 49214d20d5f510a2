package integration

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vswitch/vswitch/pkg/api"
	"github.com/vswitch/vswitch/test/topo"
)

// budget is what vswitchd may take, as README.md "Memory and file
// descriptors" documents it: resident memory (VmRSS) and open file
// descriptors with no port, what each attached port adds, and what 1024
// learned MACs add. The numbers are the measured ones with a margin of
// 20-50 % (the machine, the kernel and the Go runtime move them a little);
// a change that costs more per port or per MAC has to update README.md and
// this table together.
type budget struct {
	baseKiB, portKiB, per1024MACsKiB int
	// baseFDs is an upper bound: the uplink's queues, the state file, the
	// API socket, the runtime's epoll and its pipe; the CPU pollers' come
	// on top (3 per CPU).
	baseFDs int
	// portFDs is exact when the port's queue never had to wait on an
	// epoll set of its own (see afpacket's armEdge); the test allows one
	// more per port for that.
	portFDs int
}

var budgets = map[string]budget{
	// uplink RX ring 4 MiB; per port its RX ring (2 MiB) and ~0.3 MiB of
	// heap, thread and socket buffers; fds: port socket + the waiter's
	// epoll instance (watched by the netpoller) and eventfd, the port's own
	// uplink TX socket. The uplink RX queue has a waiter too.
	"afpacket": {baseKiB: 22 << 10, portKiB: 2816, per1024MACsKiB: 1536, baseFDs: 18, portFDs: 4},
	// uplink UMEM 8 MiB; ports as afpacket, but their uplink TX joins the
	// uplink's one XSK.
	"afxdp": {baseKiB: 30 << 10, portKiB: 2816, per1024MACsKiB: 1536, baseFDs: 21, portFDs: 3},
	// a UMEM (8 MiB) per port; fds: XSK, the waiter's epoll instance and
	// eventfd, a packet socket holding promiscuous mode, XDP program, map
	// and link.
	"afxdp-xsk": {baseKiB: 30 << 10, portKiB: 9 << 10, per1024MACsKiB: 1536, baseFDs: 21, portFDs: 7},
}

// budgetPorts is how many ports TestMemoryBudget attaches; each learns
// budgetMACsPerPort MACs (the default --max-macs-per-port), so together they
// fill the FDB to its default --fdb-max of 32768. The ports are spread over
// budgetVLANs VLANs, so no VLAN reaches --max-macs-per-vlan (8192).
const (
	budgetPorts       = 32
	budgetMACsPerPort = 1024
	budgetVLANs       = 8
)

// memSample is what /proc says about a process at one moment.
type memSample struct {
	rssKiB, fds, threads int
	// RSS by kind of mapping (smaps): the AF_PACKET rings and XSK rings
	// (mappings of a socket), the Go heap (anonymous memory in the
	// runtime's arena range), other anonymous memory (AF_XDP UMEMs, the
	// runtime's own structures, thread stacks) and files (the binary, libc,
	// the state file).
	ringKiB, heapKiB, anonKiB, fileKiB int
}

func (s memSample) String() string {
	return fmt.Sprintf("RSS %d KiB (rings %d, Go heap %d, other anonymous %d, files %d), %d fds, %d threads",
		s.rssKiB, s.ringKiB, s.heapKiB, s.anonKiB, s.fileKiB, s.fds, s.threads)
}

// goHeapStart and goHeapEnd bound where the Go runtime places its heap on
// 64-bit Linux: at 0x00c0<<32 and the hints after it, or, with Go 1.26's
// randomised heap base, anywhere below 1<<46 (the runtime keeps 47 bits on
// amd64 and throws one more away). The kernel places mmap(NULL) mappings
// (libc, AF_XDP UMEMs, thread stacks, the runtime's own structures) near
// the top of the 47-bit space, above it; the binary's data and bss sit
// below 4 GiB.
const goHeapStart, goHeapEnd = 1 << 32, 1 << 46

func sampleProc(t *testing.T, pid int) memSample {
	t.Helper()
	var s memSample
	s.rssKiB = rssKiB(t, pid)
	var err error
	if s.fds, err = fdCount(pid); err != nil {
		t.Fatal(err)
	}
	if s.threads, err = threadCount(pid); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cur *int
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		if lo, _, ok := strings.Cut(fields[0], "-"); ok && len(fields) >= 5 && !strings.HasSuffix(fields[0], ":") {
			start, err := strconv.ParseUint(lo, 16, 64)
			if err != nil {
				continue
			}
			name := ""
			if len(fields) >= 6 {
				name = fields[5]
			}
			switch {
			case strings.HasPrefix(name, "socket:"):
				cur = &s.ringKiB
			case name == "" && start >= goHeapStart && start < goHeapEnd:
				cur = &s.heapKiB
			case name == "" || strings.HasPrefix(name, "["):
				cur = &s.anonKiB
			default:
				cur = &s.fileKiB
			}
			continue
		}
		if fields[0] == "Rss:" && cur != nil && len(fields) >= 2 {
			n, _ := strconv.Atoi(fields[1])
			*cur += n
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestMemoryBudget checks README.md's memory and file descriptor budget:
// vswitchd with budgetPorts ports attached, and then with every port having
// learned its limit of MACs (the FDB full at its default --fdb-max), stays
// under base + ports x per-port + MACs x per-MAC; the file descriptors are
// what each port opens and nothing more, and they and the rings go back to
// the baseline when the ports are deleted.
func TestMemoryBudget(t *testing.T) {
	forEachDatapath(t, func(t *testing.T, dp string) {
		b, ok := budgets[dp]
		if !ok {
			t.Fatalf("no budget for %s", dp)
		}
		// The race detector's shadow memory multiplies RSS: only the
		// descriptors, threads and rings are checked then.
		checkRSS := os.Getenv("VSWITCH_RACE") == ""
		if !checkRSS {
			t.Log("vswitchd built with the race detector (VSWITCH_RACE): RSS is not held to the budget")
		}
		lab, hvs := newLab(t, dp, 1)
		h := hvs[0]
		// All VM ends in one namespace, without IPv6 (no router
		// solicitations or DAD: the only frames are the test's).
		vms, err := lab.tp.NewNS("vms")
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"all", "default"} {
			if err := vms.Sysctl("net.ipv6.conf."+k+".disable_ipv6", "1"); err != nil {
				t.Fatal(err)
			}
		}
		for i := range budgetPorts {
			if err := topo.VethPair(h.ns, fmt.Sprintf("vnet%d", i), vms, fmt.Sprintf("e%d", i)); err != nil {
				t.Fatal(err)
			}
		}
		h.start()
		pid := h.d.pid()
		time.Sleep(500 * time.Millisecond) // start-up work (state file, EVB station) done
		base := sampleProc(t, pid)
		t.Logf("%s, no port: %v", dp, base)
		if checkRSS && base.rssKiB > b.baseKiB {
			t.Errorf("RSS with no port %d KiB, budget %d KiB", base.rssKiB, b.baseKiB)
		}
		// Each CPU poller (--cpu-poll) has an epoll instance to sleep on,
		// one to park on and an eventfd.
		if want := b.baseFDs + 3*runtime.NumCPU(); base.fds > want {
			t.Errorf("%d fds with no port, budget %d", base.fds, want)
		}

		c := api.NewClient(h.sock)
		defer c.Close()
		start := time.Now()
		for i := range budgetPorts {
			vid := 100 + i%budgetVLANs
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, err := c.AddPort(ctx, api.PortSpec{Name: fmt.Sprintf("vnet%d", i), VLAN: &vid})
			cancel()
			if err != nil {
				t.Fatal(err)
			}
		}
		for i := range budgetPorts {
			h.waitState(fmt.Sprintf("vnet%d", i), "up", 10*time.Second)
		}
		t.Logf("%d ports added and up in %v", budgetPorts, time.Since(start).Round(time.Millisecond))
		c.Close() // its idle connection would count as an fd
		ports := waitFDs(t, pid, base.fds+budgetPorts*b.portFDs, 2*time.Second)
		t.Logf("%s, %d ports: %v; per port: %d KiB (rings %d, Go heap %d, other %d), %.2f fds, %.2f threads", dp, budgetPorts, ports,
			(ports.rssKiB-base.rssKiB)/budgetPorts, (ports.ringKiB-base.ringKiB)/budgetPorts, (ports.heapKiB-base.heapKiB)/budgetPorts,
			(ports.anonKiB-base.anonKiB)/budgetPorts, float64(ports.fds-base.fds)/budgetPorts, float64(ports.threads-base.threads)/budgetPorts)
		if limit := b.baseKiB + budgetPorts*b.portKiB; checkRSS && ports.rssKiB > limit {
			t.Errorf("RSS with %d ports %d KiB, budget %d KiB (%d + %d x %d)", budgetPorts, ports.rssKiB, limit, b.baseKiB, budgetPorts, b.portKiB)
		}
		if got := ports.rssKiB - base.rssKiB; checkRSS && got > budgetPorts*b.portKiB {
			t.Errorf("%d ports added %d KiB, budget %d KiB per port", budgetPorts, got, b.portKiB)
		}
		if got, want := ports.fds-base.fds, budgetPorts*b.portFDs; got < want || got > want+budgetPorts {
			t.Errorf("%d ports opened %d fds, want %d per port (%d, up to one more each)", budgetPorts, got, b.portFDs, want)
		}
		// Workers are goroutines, not locked to threads, and an idle one
		// waits in the netpoller, holding no thread (internal/rxwait):
		// idle ports add a few threads, not one each (6 for 32 ports
		// measured; each worker asleep in ppoll held one before). A port
		// with traffic streaming waits on a thread of its own, and the
		// runtime keeps threads for reuse: up to one a port after the
		// flood below.
		if got := ports.threads - base.threads; got > budgetPorts/2 {
			t.Errorf("%d idle ports added %d threads, want only a few: idle workers hold threads", budgetPorts, got)
		}

		floodBudgetMACs(t, h, vms)
		// The learned MACs are saved to the state file every 5 s when the
		// FDB changed: the sample is taken after the first save that
		// found them all, whose memory counts.
		time.Sleep(5*time.Second + 500*time.Millisecond)
		fi, err := os.Stat(h.state)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("state file %d KiB", fi.Size()>>10)
		if fi.Size() < budgetPorts*budgetMACsPerPort*32 {
			t.Fatalf("state file %d KiB: the learned MACs were not saved", fi.Size()>>10)
		}
		macs := sampleProc(t, pid)
		nmacs := budgetPorts * budgetMACsPerPort
		t.Logf("%s, %d ports, %d learned MACs: %v; per 1024 MACs: %d KiB (Go heap %d)", dp, budgetPorts, nmacs, macs,
			(macs.rssKiB-ports.rssKiB)*1024/nmacs, (macs.heapKiB-ports.heapKiB)*1024/nmacs)
		if limit := b.baseKiB + budgetPorts*b.portKiB + nmacs/1024*b.per1024MACsKiB; checkRSS && macs.rssKiB > limit {
			t.Errorf("RSS with %d ports and %d learned MACs %d KiB, budget %d KiB", budgetPorts, nmacs, macs.rssKiB, limit)
		}
		if got := macs.rssKiB - ports.rssKiB; checkRSS && got > nmacs/1024*b.per1024MACsKiB {
			t.Errorf("%d learned MACs added %d KiB, budget %d KiB per 1024", nmacs, got, b.per1024MACsKiB)
		}

		// Deleting the ports gives back every descriptor, thread and ring.
		c = api.NewClient(h.sock)
		for i := range budgetPorts {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := c.DeletePort(ctx, fmt.Sprintf("vnet%d", i))
			cancel()
			if err != nil {
				t.Fatal(err)
			}
		}
		c.Close()
		after := waitFDs(t, pid, base.fds, 5*time.Second)
		t.Logf("%s, ports deleted: %v", dp, after)
		// One more is allowed: the uplink's receive queue (one, with
		// --uplink-queues 1 in the harness) makes its epoll set the first time it waits
		// while holding frames, which the MAC flood's reflections may
		// cause; it stays with the queue. Ports leave nothing.
		if after.fds < base.fds || after.fds > base.fds+1 {
			t.Errorf("%d fds after deleting the ports, %d before adding them", after.fds, base.fds)
		}
		if after.ringKiB != base.ringKiB {
			t.Errorf("rings of %d KiB still mapped after deleting the ports, %d KiB before adding them", after.ringKiB, base.ringKiB)
		}
		// The Go runtime keeps idle threads for reuse: they must not
		// grow, but need not go.
		if most := max(ports.threads, macs.threads); after.threads > most {
			t.Errorf("%d threads after deleting the ports, %d with them", after.threads, most)
		}
	})
}

// waitFDs samples pid until it has at most want fds (an API connection the
// server has not seen close yet goes away) or timeout, and returns the last
// sample.
func waitFDs(t *testing.T, pid, want int, timeout time.Duration) memSample {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s := sampleProc(t, pid)
		if s.fds <= want || time.Now().After(deadline) {
			return s
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// floodBudgetMACs sends, from every VM end eK, budgetMACsPerPort frames with
// distinct source MACs, one port after another per round so no port's ring
// takes more than one frame per round, and waits until every port learned
// all of them (resending the rounds that a full ring dropped).
func floodBudgetMACs(t *testing.T, h *hv, vms *topo.NS) {
	t.Helper()
	conns := make([]*topo.PacketConn, budgetPorts)
	for i := range conns {
		var err error
		if conns[i], err = vms.PacketConn(fmt.Sprintf("e%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	nobody := topo.MustMAC("52:54:00:ee:ee:ee")
	frame := topo.BuildUDPv4(nobody, nobody, net.ParseIP("10.0.0.1"), net.ParseIP("10.0.0.99"), 4000, 4000, []byte("budget"))
	want := budgetPorts * budgetMACsPerPort
	start := time.Now()
	learned := 0
	for try := 0; try < 4; try++ {
		for r := range budgetMACsPerPort {
			for i, c := range conns {
				src := frame[6:12]
				src[0], src[1], src[2], src[3] = 0x02, 0xbd, byte(i), 0
				binary.BigEndian.PutUint16(src[4:], uint16(r))
				if err := c.WriteFrame(frame); err != nil {
					t.Fatal(err)
				}
			}
		}
		deadline := time.Now().Add(3 * time.Second)
		for {
			c := api.NewClient(h.sock)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			st, err := c.Status(ctx)
			cancel()
			c.Close()
			if err != nil {
				t.Fatal(err)
			}
			if st.FDB == nil {
				t.Fatal("status without fdb")
			}
			learned = st.FDB.Learned
			if learned >= want || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if learned >= want {
			break
		}
		t.Logf("round %d: %d of %d MACs learned; sending again", try+1, learned, want)
	}
	t.Logf("%d MACs learned in %v", learned, time.Since(start).Round(time.Millisecond))
	if learned != want {
		t.Fatalf("the FDB learned %d MACs, want %d (%d ports x %d)", learned, want, budgetPorts, budgetMACsPerPort)
	}
	for _, p := range h.stats().Ports {
		if p.LearnedMACs != budgetMACsPerPort {
			t.Errorf("port %s learned %d MACs, want %d", p.Name, p.LearnedMACs, budgetMACsPerPort)
		}
	}
}
