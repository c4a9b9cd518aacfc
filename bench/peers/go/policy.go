package main

// circuit and ratelimit: `threads` goroutines, each locked to its own OS thread, making n calls
// each through one shared policy object. ns_per_task is the run's wall time over one thread's
// calls, so the /2 figure shows what a second thread adds; allocs_per_call counts the heap
// allocations of the whole process during the run, over all calls.

import (
	"fmt"
	"runtime"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// lanes runs body(i) on `threads` goroutines locked to their OS threads, all released together
// once every one is ready; it returns the wall time from the release to the last one's end and
// the heap allocations made meanwhile.
func lanes(threads int, body func(lane int)) (time.Duration, uint64) {
	var ready, finished sync.WaitGroup
	start := make(chan struct{})
	ready.Add(threads)
	finished.Add(threads)
	for i := 0; i < threads; i++ {
		go func(lane int) {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			defer finished.Done()
			ready.Done()
			<-start
			body(lane)
		}(i)
	}
	ready.Wait()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	t0 := time.Now()
	close(start)
	finished.Wait()
	el := time.Since(t0)
	runtime.ReadMemStats(&m1)
	return el, m1.Mallocs - m0.Mallocs
}

// circuit: calls returning nil through one closed breaker (100 errors within 1 s to open,
// one success to close, 1 s open); every call must have run, none refused.
func circuit(threads int, n int64) ([]fig, error) {
	b := newBreaker(100, 1, time.Second)
	ran := make([]int64, threads)
	refused := make([]int64, threads)
	failed := make([]int64, threads)
	el, allocs := lanes(threads, func(lane int) {
		var calls, open, other int64
		work := func() error {
			calls++
			return nil
		}
		for i := int64(0); i < n; i++ {
			switch err := b.Run(work); err {
			case nil:
			case errBreakerOpen:
				open++
			default:
				other++
			}
		}
		ran[lane], refused[lane], failed[lane] = calls, open, other
	})
	figs := []fig{
		{"ns_per_task", nsPer(el, n)},
		{"allocs_per_call", float64(allocs) / float64(n*int64(threads))},
	}
	for i := 0; i < threads; i++ {
		if ran[i] != n || refused[i] != 0 || failed[i] != 0 {
			return figs, fmt.Errorf("circuit: thread %d: %d of %d calls ran, %d refused, %d "+
				"failed", i, ran[i], n, refused[i], failed[i])
		}
	}
	return figs, nil
}

// ratelimit: Allow() on one shared token bucket. The rate is finite (rate.Inf and a zero rate
// take short cuts that skip the bucket's arithmetic), so every call advances the bucket, refills
// it and takes a token. The bucket starts full with 2^30 tokens, more than the calls of one run,
// and refills 1000 tokens per nanosecond besides: no call can be refused, and a refusal is an
// error in the limiter.
func ratelimit(threads int, n int64) ([]fig, error) {
	lim := rate.NewLimiter(rate.Limit(1e12), 1<<30)
	if int64(lim.Burst()) < n*int64(threads) {
		return nil, fmt.Errorf("ratelimit: burst %d below %d calls", lim.Burst(), n*int64(threads))
	}
	refused := make([]int64, threads)
	el, allocs := lanes(threads, func(lane int) {
		var no int64
		for i := int64(0); i < n; i++ {
			if !lim.Allow() {
				no++
			}
		}
		refused[lane] = no
	})
	var total int64
	for _, r := range refused {
		total += r
	}
	figs := []fig{
		{"ns_per_task", nsPer(el, n)},
		{"false_refusals", float64(total)},
		{"allocs_per_call", float64(allocs) / float64(n*int64(threads))},
	}
	if total != 0 {
		return figs, fmt.Errorf("ratelimit: %d of %d calls refused by a limiter that cannot "+
			"run out", total, n*int64(threads))
	}
	return figs, nil
}
