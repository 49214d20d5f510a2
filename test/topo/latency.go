package topo

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"time"
)

// RTTs sends n echo requests interval apart and returns the round-trip time
// of every reply, in the order they were sent, and how many got none by
// timeout after the last one. The times come from the timestamps each
// request carries (CLOCK_MONOTONIC through time.Now), not from parsing
// ping(8).
func (p *Pinger) RTTs(n int, interval, timeout time.Duration) (rtts []time.Duration, lost int, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	sent := make(map[uint16]time.Time, n)
	got := make(map[uint16]time.Duration, n)
	first := p.seq + 1
	collect := func(until time.Time) error {
		for len(got) < n {
			seq, err := p.recv(until)
			if err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					return nil
				}
				return err
			}
			if t, ok := sent[seq]; ok {
				if _, dup := got[seq]; !dup {
					got[seq] = time.Since(t)
				}
			}
		}
		return nil
	}
	next := time.Now()
	for i := 0; i < n; i++ {
		p.seq++
		sent[p.seq] = time.Now()
		if err := p.send(p.seq); err != nil {
			return nil, 0, err
		}
		next = next.Add(interval)
		if err := collect(next); err != nil {
			return nil, 0, fmt.Errorf("probe %s in %s: %w", p.dst, p.ns, err)
		}
	}
	if err := collect(time.Now().Add(timeout)); err != nil {
		return nil, 0, fmt.Errorf("probe %s in %s: %w", p.dst, p.ns, err)
	}
	for s := first; s != p.seq+1; s++ {
		if d, ok := got[s]; ok {
			rtts = append(rtts, d)
		}
	}
	return rtts, n - len(rtts), nil
}

// Latency summarises round-trip times. The benchmark harness (test/bench)
// reports its probes through it too, so there is one percentile rule.
type Latency struct {
	N             int
	Min, P50, P99 time.Duration
	Max           time.Duration
	Mean, Stdev   time.Duration // population standard deviation
}

// Summarize computes the summary of rtts (nearest-rank percentiles, see
// Percentile). It does not modify rtts.
func Summarize(rtts []time.Duration) Latency {
	if len(rtts) == 0 {
		return Latency{}
	}
	s := slices.Clone(rtts)
	slices.Sort(s)
	var sum float64
	for _, v := range s {
		sum += float64(v)
	}
	mean := sum / float64(len(s))
	var sq float64
	for _, v := range s {
		d := float64(v) - mean
		sq += d * d
	}
	return Latency{N: len(s), Min: s[0], P50: Percentile(s, 50), P99: Percentile(s, 99), Max: s[len(s)-1],
		Mean: time.Duration(mean), Stdev: time.Duration(math.Sqrt(sq / float64(len(s))))}
}

// Percentile returns the p-th percentile (0 < p <= 100) of sorted (in
// ascending order) by the nearest-rank method: the smallest value with at
// least p% of the values at or below it. p50 of 1..100 is 50, p99 is 99,
// p100 the maximum; p <= 0 gives the minimum. Empty: the zero value.
func Percentile[T cmp.Ordered](sorted []T, p float64) T {
	n := len(sorted)
	if n == 0 {
		var zero T
		return zero
	}
	r := int(math.Ceil(p / 100 * float64(n)))
	r = min(max(r, 1), n)
	return sorted[r-1]
}

func (l Latency) String() string {
	ms := func(d time.Duration) string { return fmt.Sprintf("%.3f", float64(d)/float64(time.Millisecond)) }
	return fmt.Sprintf("min/p50/p99/max %s/%s/%s/%s ms (%d probes)", ms(l.Min), ms(l.P50), ms(l.P99), ms(l.Max), l.N)
}
