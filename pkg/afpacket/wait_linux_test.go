//go:build linux

package afpacket

import (
	"bufio"
	"encoding/binary"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vswitch/vswitch/pkg/backend"
	"golang.org/x/sys/unix"
)

// procThreads is the number of threads of this process.
func procThreads(t *testing.T) int {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Threads:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no Threads line in /proc/self/status")
	return 0
}

// Idle queues wait in the netpoller: a Recv with nothing to receive holds
// no thread (in ppoll, each held one, and the runtime's monitor took their
// Ps away every 10 ms), and a frame still wakes every one of them at once.
func TestParkedRecvsHoldNoThread(t *testing.T) {
	const queues = 16
	n := newTestNet(t)
	peer := n.raw("va", false)
	qs := make([]*Queue, queues)
	for i := range qs {
		qs[i] = n.open(smallRing(), "vb", backend.QueueConfig{Role: backend.RolePort})
	}
	time.Sleep(50 * time.Millisecond) // the test's own threads settle
	before := procThreads(t)
	got := make(chan int, queues)
	for i, q := range qs {
		go func() {
			b := backend.NewBatch(8)
			for {
				k, err := q.Recv(b)
				if err != nil {
					return
				}
				for j := 0; j < k; j++ {
					if isTestFrame(b.Frame(j)) {
						got <- i
					}
				}
				q.Release(b)
			}
		}()
	}
	time.Sleep(200 * time.Millisecond) // every Recv is asleep by now
	during := procThreads(t)
	t.Logf("threads: %d before, %d with %d queues waiting", before, during, queues)
	if during-before >= queues/2 {
		t.Errorf("%d idle Recvs took %d threads: they do not wait in the netpoller", queues, during-before)
	}
	peer.send(t, ethFrame(1, nil, 0x88b5, 46))
	seen := map[int]bool{}
	for len(seen) < queues {
		select {
		case i := <-got:
			seen[i] = true
		case <-time.After(2 * time.Second):
			t.Fatalf("a frame woke %d of %d parked queues within 2 s", len(seen), queues)
		}
	}
	for _, q := range qs {
		_ = q.Close()
	}
}

// A frame that crosses two queues, as through the switch (received on one
// port, sent on another whose peer a second queue receives from), is
// handed from the first receiver to the second on one thread: the send
// puts it in the second ring before the first receiver parks, and the
// thread that parks it finds the second ready in the netpoller. With each
// Recv asleep in ppoll on its own thread, every frame took a wake-up of a
// second thread.
func TestHandoffRunsToCompletion(t *testing.T) {
	const frames = 40
	n := newTestNet(t)
	n.ip("link", "add", "vc", "type", "veth", "peer", "name", "vd")
	n.ip("link", "set", "vc", "up")
	n.ip("link", "set", "vd", "up")
	n.waitUp("vc")
	n.waitUp("vd")
	peer := n.raw("va", false)
	in := n.open(smallRing(), "vb", backend.QueueConfig{Role: backend.RolePort})
	out := n.open(smallRing(), "vc", backend.QueueConfig{Role: backend.RoleUplinkTX})
	far := n.open(smallRing(), "vd", backend.QueueConfig{Role: backend.RolePort})
	defer in.Close()
	defer out.Close()
	defer far.Close()

	// tids[seq] is the thread that forwarded frame seq (written before the
	// Send that makes the frame visible to the second receiver).
	var tids [frames]atomic.Int64
	go func() {
		b := backend.NewBatch(8)
		var fs [][]byte
		for {
			k, err := in.Recv(b)
			if err != nil {
				return
			}
			tid := unix.Gettid()
			fs = fs[:0]
			for j := 0; j < k; j++ {
				if f := b.Frame(j); isTestFrame(f) {
					if seq := int(binary.BigEndian.Uint32(f[18:])); seq < frames {
						tids[seq].Store(int64(tid))
					}
					fs = append(fs, f)
				}
			}
			_, _ = out.Send(fs)
			in.Release(b)
		}
	}()
	type arrival struct{ seq, tid int }
	arrived := make(chan arrival, frames)
	go func() {
		b := backend.NewBatch(8)
		for {
			k, err := far.Recv(b)
			if err != nil {
				return
			}
			tid := unix.Gettid()
			for j := 0; j < k; j++ {
				if f := b.Frame(j); isTestFrame(f) {
					arrived <- arrival{int(binary.BigEndian.Uint32(f[18:])), tid}
				}
			}
			far.Release(b)
		}
	}()
	same := 0
	for i := 0; i < frames; i++ {
		time.Sleep(2 * time.Millisecond) // both receivers asleep again
		f := ethFrame(i, nil, 0x88b5, 46)
		binary.BigEndian.PutUint32(f[18:], uint32(i))
		peer.send(t, f)
		select {
		case a := <-arrived:
			if a.seq != i {
				t.Fatalf("frame %d arrived as %d", i, a.seq)
			}
			if int64(a.tid) == tids[i].Load() {
				same++
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("frame %d did not cross both queues within 2 s", i)
		}
	}
	t.Logf("%d of %d frames crossed both queues on one thread", same, frames)
	if same < frames/2 {
		t.Errorf("only %d of %d frames crossed both queues on one thread: the second receiver is woken on a thread of its own", same, frames)
	}
}
