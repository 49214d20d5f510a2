//go:build linux

package afxdp

import (
	"flag"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vswitch/vswitch/pkg/backend"

	"golang.org/x/sys/unix"
)

// In both benchmarks one op is one frame, so ns/op is ns/frame and
// allocs/op must read 0.

// BenchmarkRecv measures Recv+Release on veth A while an AF_XDP
// transmit-only queue on the peer B floods 64 byte frames at it.
func BenchmarkRecv(b *testing.B) {
	tp := newTopo(b)
	rx := tp.open(b, New(testOptions(b)), tp.a, backend.QueueConfig{Role: backend.RolePort})
	gen := tp.open(b, New(testOptions(b)), tp.b, backend.QueueConfig{Role: backend.RoleUplinkTX})
	frames := make([][]byte, backend.DefaultBatch)
	for i := range frames {
		frames[i] = frame(macA, macB, uint32(i), 60)
	}
	benchRecv(b, rx, gen, frames)
}

// BenchmarkRecvBridgeVLAN measures Recv of 802.1Q-tagged 64 byte frames
// that reach veth A through a bridge with the tag held out of band:
// "restore" runs the device-bound program that re-inserts the tag,
// "plain" the program without the kfunc (frames arrive untagged). The
// generator is a transmit-only AF_XDP queue on D (see bridgeTopo).
func BenchmarkRecvBridgeVLAN(b *testing.B) {
	for _, c := range []struct {
		name  string
		plain bool
	}{{"restore", false}, {"plain", true}} {
		b.Run(c.name, func(b *testing.B) {
			requireVLANKfunc(b)
			bt := newBridgeTopo(b)
			opts := testOptions(b)
			opts.noVLANHint = c.plain
			rx := bt.open(b, New(opts), bt.a, backend.QueueConfig{Role: backend.RolePort})
			if rx.Info().VLANRestore == c.plain {
				b.Fatalf("VLANRestore = %v", rx.Info().VLANRestore)
			}
			gen := bt.open(b, New(testOptions(b)), bt.d, backend.QueueConfig{Role: backend.RoleUplinkTX})
			frames := make([][]byte, backend.DefaultBatch)
			for i := range frames {
				frames[i] = frame(macA, macB, uint32(i), 64, tag(0x8100, 5<<13|100))
			}
			benchRecv(b, rx, gen, frames)
		})
	}
}

// benchRecv floods frames from gen and times Recv+Release on rx.
func benchRecv(b *testing.B, rx, gen *Queue, frames [][]byte) {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := gen.Send(frames); err != nil {
				return
			}
		}
	}()
	batch := backend.NewBatch(backend.DefaultBatch)
	// Warm up until traffic flows.
	if _, err := rx.Recv(batch); err != nil {
		b.Fatal(err)
	}
	rx.Release(batch)

	// The receiver runs on its own locked thread so its CPU time can be
	// read: wall time per frame is bounded by the generator (copy-mode TX
	// on the peer plus veth NAPI on two cores); CPU time per frame is what
	// Recv+Release cost.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cpu0 := threadCPU()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	got, calls := 0, 0
	for got < b.N {
		n, err := rx.Recv(batch)
		if err != nil {
			b.Fatal(err)
		}
		got += n
		calls++
		rx.Release(batch)
	}
	el := time.Since(start)
	cpu := threadCPU() - cpu0
	b.StopTimer()
	close(stop)
	wg.Wait()
	b.ReportMetric(float64(el.Nanoseconds())/float64(got), "ns/frame")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(got), "cpu-ns/frame")
	b.ReportMetric(float64(got)/float64(calls), "frames/batch")
	b.ReportMetric(float64(got)/el.Seconds()/1e6, "Mpps")
}

// BenchmarkSend measures Send of 64-frame batches of 64 byte frames on veth
// A (copy mode: the kernel builds an skb per frame and hands it to B).
func BenchmarkSend(b *testing.B) {
	benchSend(b, 60)
}

// BenchmarkSend1500 is BenchmarkSend with full-size frames.
func BenchmarkSend1500(b *testing.B) {
	benchSend(b, 1514)
}

func benchSend(b *testing.B, size int) {
	tp := newTopo(b)
	q := tp.open(b, New(testOptions(b)), tp.a, backend.QueueConfig{Role: backend.RoleUplinkTX})
	frames := make([][]byte, backend.DefaultBatch)
	for i := range frames {
		// Unicast to a MAC B does not own: B's stack drops it early.
		frames[i] = frame([]byte{0x02, 0, 0, 0, 0, 0x77}, macA, uint32(i), size)
	}
	linkTx := func() uint64 {
		var v uint64
		inNS(b, tp.ns, func() {
			l, err := netlink.LinkByName(tp.a)
			if err == nil && l.Attrs().Statistics != nil {
				v = l.Attrs().Statistics.TxPackets
			}
		})
		return v
	}
	tx0 := linkTx()
	b.ReportAllocs()
	b.SetBytes(int64(size))
	b.ResetTimer()
	start := time.Now()
	sent, calls := 0, 0
	for sent < b.N {
		k := b.N - sent
		if k > len(frames) {
			k = len(frames)
		}
		n, err := q.Send(frames[:k])
		if err != nil {
			b.Fatal(err)
		}
		sent += n
		calls++
	}
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(el.Nanoseconds())/float64(sent), "ns/frame")
	b.ReportMetric(float64(sent)/el.Seconds()/1e6, "Mpps")
	st := q.Stats()
	b.ReportMetric(float64(st.TxErrors)/float64(st.TxPackets+st.TxErrors+1), "refused/frame")
	// What the veth really transmitted (the kernel may still drop a frame
	// it took from the TX ring).
	time.Sleep(20 * time.Millisecond)
	b.ReportMetric(float64(linkTx()-tx0)/float64(sent), "wire/frame")
}

// threadCPU is the calling thread's user+system CPU time.
func threadCPU() time.Duration {
	var ru unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_THREAD, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRecvDrain isolates the cost of Recv+Release: with the timer
// stopped the peer fills the RX ring, then the timed part drains frames
// that are already there (no poll, no competing generator). Refilling costs
// far more than draining, so a time-based -benchtime would run for minutes:
// it runs only with a count, e.g. -benchtime=200000x.
func BenchmarkRecvDrain(b *testing.B) {
	if bt := flag.Lookup("test.benchtime"); bt == nil || !strings.HasSuffix(bt.Value.String(), "x") {
		b.Skip("needs -benchtime=Nx (refilling the ring dominates otherwise)")
	}
	tp := newTopo(b)
	rx := tp.open(b, New(testOptions(b)), tp.a, backend.QueueConfig{Role: backend.RolePort})
	gen := tp.open(b, New(testOptions(b)), tp.b, backend.QueueConfig{Role: backend.RoleUplinkTX})
	frames := make([][]byte, 32)
	for i := range frames {
		frames[i] = frame(macA, macB, uint32(i), 60)
	}
	batch := backend.NewBatch(backend.DefaultBatch)
	ready := func() int {
		rx.x.rxMu.Lock()
		defer rx.x.rxMu.Unlock()
		return int(atomic.LoadUint32(rx.x.rx.producer) - rx.x.rx.local)
	}
	b.ReportAllocs()
	b.ResetTimer()
	var timed time.Duration
	got := 0
	for got < b.N {
		b.StopTimer()
		// veth's NAPI ring holds 256 frames: send in small bursts.
		for i := 0; i < 40 && ready() < 1024; i++ {
			if _, err := gen.Send(frames); err != nil {
				b.Fatal(err)
			}
			time.Sleep(50 * time.Microsecond)
		}
		avail := ready()
		b.StartTimer()
		start := time.Now()
		for avail > 0 && got < b.N {
			n, err := rx.Recv(batch)
			if err != nil {
				b.Fatal(err)
			}
			avail -= n
			got += n
			rx.Release(batch)
		}
		timed += time.Since(start)
	}
	b.StopTimer()
	b.ReportMetric(float64(timed.Nanoseconds())/float64(got), "ns/frame")
}
