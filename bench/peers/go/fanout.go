package main

// fanout_limit: n calls from one generator with at most 64 in flight, through errgroup's
// SetLimit, the bound golang.org/x/sync documents for it.

import (
	"fmt"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
)

const fanoutLimit = 64

// fanState is every implementation's in-flight bookkeeping: each call raises the in-flight
// count, keeps its high-water mark, optionally spins, and lowers it again while counting itself
// done. In flight (low 32 bits) and done (high 32) share one word, so a call makes two atomic
// adds on one line; the high-water mark has a line of its own and is written only when it rises
// (the same as bench/fanout_bench.c's call_body).
type fanState struct {
	state atomic.Uint64 // done << 32 | in flight
	_     [56]byte
	max   atomic.Uint32
	_     [60]byte
	work  int64 // ns each call spins on the monotonic clock
}

const fanDoneOne = uint64(1) << 32

func (s *fanState) call() error {
	now := uint32(s.state.Add(1))
	for m := s.max.Load(); now > m && !s.max.CompareAndSwap(m, now); m = s.max.Load() {
	}
	if s.work != 0 {
		for end := mono() + s.work; mono() < end; {
		}
	}
	s.state.Add(fanDoneOne - 1)
	return nil
}

// fanout: ns per call, the most calls in flight, and how far peak resident memory rose above
// the resident memory before the run.
func fanout(n int64, work time.Duration) ([]fig, error) {
	s := &fanState{work: int64(work)}
	resetPeakRSS()
	rss0 := rssKiB()
	t0 := time.Now()
	var g errgroup.Group
	g.SetLimit(fanoutLimit)
	call := s.call
	for i := int64(0); i < n; i++ {
		g.Go(call)
	}
	err := g.Wait()
	el := time.Since(t0)
	figs := []fig{
		{"ns_per_task", nsPer(el, n)},
		{"max_inflight", float64(s.max.Load())},
		{"rss_kib", peakRSSKiB() - rss0},
	}
	switch {
	case err != nil:
		return figs, fmt.Errorf("fanout_limit: %v", err)
	case int64(s.state.Load()>>32) != n:
		return figs, fmt.Errorf("fanout_limit: %d of %d calls ran", s.state.Load()>>32, n)
	case s.max.Load() > fanoutLimit:
		return figs, fmt.Errorf("fanout_limit: %d calls in flight, limit %d", s.max.Load(),
			fanoutLimit)
	}
	return figs, nil
}
