//go:build linux

package afpacket

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vswitch/vswitch/pkg/backend"
)

// benchFrames returns batch copies of a UDP frame of the given size, each
// with a different source port (distinct flows).
func benchFrames(batch, size int) [][]byte {
	fs := make([][]byte, batch)
	for i := range fs {
		fs[i] = udpFrame(i, [4]byte{10, 0, 0, 1}, [4]byte{10, 0, 0, 2}, uint16(1000+i), 9, size-14-20-8)
	}
	return fs
}

// BenchmarkRecvRelease measures the receive path over a veth pair: a
// goroutine floods the peer end with sendmmsg while the benchmark loop runs
// Recv / touch every frame / Release. One op is one received frame, so
// ns/op is ns/frame for the whole path (sender, veth, kernel ring copy and
// our ring walk share the machine's CPUs).
func BenchmarkRecvRelease(b *testing.B) {
	for _, size := range []int{64, 1500} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			n := newTestNet(b)
			rx := n.open(&Backend{}, "vb", backend.QueueConfig{Role: backend.RolePort})
			tx := n.open(&Backend{}, "va", backend.QueueConfig{Role: backend.RoleUplinkTX})
			frames := benchFrames(backend.DefaultBatch, size)

			var stop atomic.Bool
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for !stop.Load() {
					_, _ = tx.Send(frames)
				}
			}()
			batch := backend.NewBatch(backend.DefaultBatch)
			// warm up: the first frames
			if _, err := rx.Recv(batch); err != nil {
				b.Fatal(err)
			}
			rx.Release(batch)

			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			got, sum := 0, 0
			for got < b.N {
				k, err := rx.Recv(batch)
				if err != nil {
					b.Fatal(err)
				}
				for i := 0; i < k; i++ {
					sum += int(batch.Buf[i][batch.Off[i]+batch.Len[i]-1])
				}
				rx.Release(batch)
				got += k
			}
			b.StopTimer()
			stop.Store(true)
			wg.Wait()
			st := rx.Stats()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(got), "ns/frame")
			b.ReportMetric(float64(got)/b.Elapsed().Seconds()/1e6, "Mpps")
			b.ReportMetric(float64(st.RxDropped)/float64(st.RxDropped+st.RxPackets+1), "ringdrop-ratio")
			_ = sum
		})
	}
}

// BenchmarkRecvDrain isolates our share of the receive path: with the
// timer stopped the ring is filled, then the timed loop drains it with
// Recv / touch / Release while nothing else runs. One op is one frame.
func BenchmarkRecvDrain(b *testing.B) {
	b.Run("untagged", func(b *testing.B) { benchRecvDrain(b, false) })
	// tagged: every frame carries an 802.1Q tag the kernel strips and we
	// rebuild in place.
	b.Run("dot1q", func(b *testing.B) { benchRecvDrain(b, true) })
}

func benchRecvDrain(b *testing.B, tagged bool) {
	n := newTestNet(b)
	rx := n.open(&Backend{}, "vb", backend.QueueConfig{Role: backend.RoleUplinkRX})
	tx := n.open(&Backend{}, "va", backend.QueueConfig{Role: backend.RoleUplinkTX})
	frames := benchFrames(backend.DefaultBatch, 64)
	if tagged {
		for i, f := range frames {
			frames[i] = append(append(append([]byte{}, f[:12]...), 0x81, 0x00, 0xa0, 0x64), f[12:]...)
		}
	}
	batch := backend.NewBatch(backend.DefaultBatch)
	drain := func() (got, sum int) {
		for rx.rx.ready() { // never blocks: only while a frame is waiting
			k, err := rx.Recv(batch)
			if err != nil {
				b.Fatal(err)
			}
			for i := 0; i < k; i++ {
				sum += int(batch.Buf[i][batch.Off[i]+batch.Len[i]-1])
			}
			rx.Release(batch)
			got += k
		}
		return got, sum
	}
	fill := func() {
		for i := 0; i < 25; i++ { // 1600 frames, most of the ring's 1952 slots
			_, _ = tx.Send(frames)
		}
		time.Sleep(time.Millisecond) // let the veth backlog drain into the ring
	}
	fill()
	drain()
	b.ReportAllocs()
	b.ResetTimer()
	got := 0
	for got < b.N {
		b.StopTimer()
		fill()
		b.StartTimer()
		k, _ := drain()
		got += k
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(got), "ns/frame")
}

// BenchmarkSend measures sendmmsg TX into a veth whose peer has no
// listener. One op is one frame (sent in batches of DefaultBatch).
func BenchmarkSend(b *testing.B) {
	for _, size := range []int{64, 1500} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			n := newTestNet(b)
			tx := n.open(&Backend{}, "va", backend.QueueConfig{Role: backend.RoleUplinkTX})
			frames := benchFrames(backend.DefaultBatch, size)
			if _, err := tx.Send(frames); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			sent := 0
			for sent < b.N {
				k, err := tx.Send(frames)
				if err != nil {
					b.Fatal(err)
				}
				sent += len(frames)
				_ = k
			}
			b.StopTimer()
			st := tx.Stats()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(sent), "ns/frame")
			b.ReportMetric(float64(st.TxErrors), "txerrors")
		})
	}
}
