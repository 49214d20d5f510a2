package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vswitch/vswitch/pkg/api"
)

// portModel is what a port looks like through the API, as the kill -9
// test tracks it (present false: no such port).
type portModel struct {
	present bool
	vlan    int
	trunk   string
	pcp     int
	macs    string
}

func (m portModel) String() string {
	if !m.present {
		return "absent"
	}
	return fmt.Sprintf("vlan %d trunk %q pcp %d macs [%s]", m.vlan, m.trunk, m.pcp, m.macs)
}

// modelOf is a port as list-ports shows it.
func modelOf(p api.Port) portModel {
	trunk := make([]string, len(p.Trunk))
	for i, v := range p.Trunk {
		trunk[i] = fmt.Sprint(v)
	}
	return portModel{present: true, vlan: p.VLAN, trunk: strings.Join(trunk, ","), pcp: p.PCP, macs: strings.Join(p.MACs, ",")}
}

// kill9Worker owns some ports and writes to them one request at a time, so
// each port has at most one write in flight when the daemon dies.
type kill9Worker struct {
	id      int
	ports   []string
	model   map[string]portModel // acknowledged state
	pending map[string]portModel // the write in flight when the daemon died
	r       *rand.Rand
}

// next picks a write for one of w's ports: add an absent port; set (VLAN,
// PCP or MACs) or delete a present one. It returns the request and the
// state it leads to.
func (w *kill9Worker) next() (name string, do func(ctx context.Context, c *api.Client) error, after portModel) {
	name = w.ports[w.r.IntN(len(w.ports))]
	cur := w.model[name]
	mac := func() string { return fmt.Sprintf("52:54:00:%02x:%02x:%02x", w.id, w.r.IntN(256), 1+w.r.IntN(254)) }
	switch {
	case !cur.present:
		after = portModel{present: true, pcp: w.r.IntN(8)}
		spec := api.PortSpec{Name: name, PCP: &after.pcp}
		if w.r.IntN(4) == 0 {
			after.trunk = fmt.Sprintf("%d,%d", 10+w.r.IntN(100), 200+w.r.IntN(100))
			spec.Trunk = &after.trunk
		} else {
			after.vlan = 1 + w.r.IntN(4094)
			spec.VLAN = &after.vlan
		}
		if w.r.IntN(2) == 0 {
			after.macs = mac()
			spec.MACs = &[]string{after.macs}
		}
		return name, func(ctx context.Context, c *api.Client) error { _, err := c.AddPort(ctx, spec); return err }, after
	case w.r.IntN(4) == 0:
		return name, func(ctx context.Context, c *api.Client) error { return c.DeletePort(ctx, name) }, portModel{}
	default:
		after = cur
		var spec api.PortSpec
		switch k := w.r.IntN(3); {
		case k == 0 && cur.trunk == "":
			after.vlan = 1 + w.r.IntN(4094)
			spec.VLAN = &after.vlan
		case k == 1:
			after.pcp = w.r.IntN(8)
			spec.PCP = &after.pcp
		default:
			m1, m2 := mac(), mac()
			macs := []string{m1, m2}
			if m1 == m2 {
				macs = macs[:1] // listed once
			}
			after.macs = strings.Join(macs, ",")
			spec.MACs = &macs
		}
		return name, func(ctx context.Context, c *api.Client) error { _, err := c.UpdatePort(ctx, name, spec); return err }, after
	}
}

// kill -9 at a random point of 200 mixed writes from concurrent clients,
// 20 times over: after each restart every acknowledged
// write is there, and a write in flight at the kill is either wholly
// applied or not at all; the state file never needs repair.
func TestKill9DuringWrites(t *testing.T) {
	needBinaries(t)
	t.Parallel()
	_, hvs := newLab(t, "afpacket", 1)
	h := hvs[0]
	const (
		workers        = 8
		portsPerWorker = 4
		writesPerRound = 200
	)
	const rounds = 20 // about 4 s: no need to cut it with -short
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rnd := rand.New(rand.NewPCG(seed, 0))
	ws := make([]*kill9Worker, workers)
	for i := range ws {
		ws[i] = &kill9Worker{id: i, model: map[string]portModel{}, pending: map[string]portModel{}, r: rand.New(rand.NewPCG(seed, uint64(i+1)))}
		for j := range portsPerWorker {
			ws[i].ports = append(ws[i].ports, fmt.Sprintf("k%d-%d", i, j))
		}
	}
	begin := time.Now()
	// applied and lost count the writes in flight at a kill (and not a
	// no-op) that the restart shows done and not done.
	acked, inFlight, applied, lost := 0, 0, 0, 0
	for round := range rounds {
		h.start("--lldp-interval", "0")
		// The restart: every acknowledged write is there, an unacknowledged
		// one wholly or not at all; nothing needed repair.
		got, now := map[string]portModel{}, map[string]portModel{}
		for _, p := range h.ports() {
			if p.Problem != "" {
				t.Fatalf("round %d: port %s unusable after kill -9: %s", round, p.Name, p.Problem)
			}
			got[p.Name] = modelOf(p)
			now[p.Name] = got[p.Name]
		}
		st := h.status()
		if len(st.StateNotes) != 0 || st.PortsUnusable != 0 {
			t.Fatalf("round %d: state file needed repair after kill -9: %q", round, st.StateNotes)
		}
		for _, w := range ws {
			for _, name := range w.ports {
				want, g := w.model[name], got[name]
				delete(got, name)
				p, ok := w.pending[name]
				if ok && p != want {
					if g == p {
						applied++
					} else if g == want {
						lost++
					}
				}
				if g == want || ok && g == p {
					continue
				}
				pend := "none"
				if ok {
					pend = p.String()
				}
				t.Errorf("round %d: port %s is %v after the restart; acknowledged %v, in flight %s", round, name, g, want, pend)
			}
			// What the daemon has is the truth for the next round.
			for _, name := range w.ports {
				w.model[name] = now[name]
			}
			clear(w.pending)
		}
		for name := range got {
			t.Errorf("round %d: port %s appeared from nowhere", round, name)
		}
		if t.Failed() {
			return
		}

		// 200 writes from 8 clients; kill -9 once a random number of them
		// has been acknowledged, 0-3 ms later.
		killAt := int64(rnd.IntN(writesPerRound))
		var acks, issued atomic.Int64
		var killed atomic.Bool
		killNow := make(chan struct{})
		var once sync.Once
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for _, w := range ws {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := api.NewClient(h.sock)
				defer c.Close()
				for issued.Add(1) <= writesPerRound {
					name, do, after := w.next()
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					err := do(ctx, c)
					cancel()
					if err != nil {
						if killed.Load() {
							w.pending[name] = after // unacknowledged: maybe applied
							return
						}
						errs <- fmt.Errorf("%s: %w", name, err)
						return
					}
					w.model[name] = after
					if acks.Add(1) > killAt {
						once.Do(func() { close(killNow) })
					}
				}
			}()
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-killNow:
			// Somewhere inside the next writes: before, during or after
			// their commit.
			time.Sleep(time.Duration(rnd.IntN(3000)) * time.Microsecond)
		case <-done:
		}
		killed.Store(true)
		if err := h.d.kill(syscall.SIGKILL, 5*time.Second); err == nil {
			t.Fatal("vswitchd exited 0 on SIGKILL?")
		}
		<-done
		close(errs)
		for err := range errs {
			t.Fatalf("round %d: a write failed before the kill: %v", round, err)
		}
		n := 0
		for _, w := range ws {
			n += len(w.pending)
		}
		acked += int(acks.Load())
		inFlight += n
	}
	// The last round's writes are checked by one more start.
	h.start("--lldp-interval", "0")
	final := map[string]portModel{}
	for _, p := range h.ports() {
		final[p.Name] = modelOf(p)
	}
	for _, w := range ws {
		for _, name := range w.ports {
			g := final[name]
			if p, ok := w.pending[name]; g != w.model[name] && !(ok && g == p) {
				t.Errorf("final: port %s is %v, acknowledged %v", name, g, w.model[name])
			}
		}
	}
	t.Logf("%d rounds in %v: %d acknowledged writes all present; of %d writes in flight at the kills, %d applied, %d not, none half-applied",
		rounds, time.Since(begin).Round(time.Millisecond), acked, inFlight, applied, lost)
}
