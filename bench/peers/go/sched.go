package main

// spawn_many, spawn_remote, chain, yield, ping_pong, wake and strand_pingpong: the cost and the
// latency of starting goroutines and handing values between them.

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// countdown: every task takes one off; the task that takes the last one closes done.
type countdown struct {
	left atomic.Int64
	done chan struct{}
}

func newCountdown(n int64) *countdown {
	c := &countdown{done: make(chan struct{})}
	c.left.Store(n)
	return c
}

func emptyTask(c *countdown) {
	if c.left.Add(-1) == 0 {
		close(c.done)
	}
}

func spawnAll(c *countdown, n int64) {
	for i := int64(0); i < n; i++ {
		go emptyTask(c)
	}
}

// spawnMany: one goroutine starts n goroutines; timed until the last of them has run.
func spawnMany(n int64) ([]fig, error) {
	c := newCountdown(n)
	t0 := time.Now()
	go spawnAll(c, n)
	<-c.done
	el := time.Since(t0)
	if left := c.left.Load(); left != 0 {
		return nil, fmt.Errorf("spawn_many: %d of %d tasks ran", n-left, n)
	}
	return []fig{{"ns_per_task", nsPer(el, n)}}, nil
}

// spawnRemote: the same n goroutines started by the main goroutine, locked to its OS thread.
func spawnRemote(n int64) ([]fig, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	c := newCountdown(n)
	t0 := time.Now()
	spawnAll(c, n)
	<-c.done
	el := time.Since(t0)
	if left := c.left.Load(); left != 0 {
		return nil, fmt.Errorf("spawn_remote: %d of %d tasks ran", n-left, n)
	}
	return []fig{{"ns_per_task", nsPer(el, n)}}, nil
}

// chain: each hop's goroutine starts the next hop's; the go statement orders one hop's
// increment before the next one's, so hops needs no atomic.
type chainRun struct {
	hops int64
	done chan struct{}
}

func hop(c *chainRun, left int64) {
	c.hops++
	if left == 1 {
		close(c.done)
		return
	}
	go hop(c, left-1)
}

func chain(n int64) ([]fig, error) {
	c := &chainRun{done: make(chan struct{})}
	t0 := time.Now()
	go hop(c, n)
	<-c.done
	el := time.Since(t0)
	if c.hops != n {
		return nil, fmt.Errorf("chain: %d of %d hops", c.hops, n)
	}
	return []fig{{"ns_per_task", nsPer(el, n)}}, nil
}

// yield (tokio's yield_many): yieldTasks goroutines started from the main goroutine, each
// calling runtime.Gosched n / yieldTasks times; ns per yield.
const yieldTasks = 200

func yieldMany(n int64) ([]fig, error) {
	each := n / yieldTasks
	if each == 0 {
		return nil, fmt.Errorf("yield: fewer yields than goroutines")
	}
	var wg sync.WaitGroup
	var yields atomic.Int64
	wg.Add(yieldTasks)
	t0 := time.Now()
	for i := 0; i < yieldTasks; i++ {
		go func() {
			for k := int64(0); k < each; k++ {
				runtime.Gosched()
			}
			yields.Add(each)
			wg.Done()
		}()
	}
	wg.Wait()
	el := time.Since(t0)
	total := each * yieldTasks
	if y := yields.Load(); y != total {
		return nil, fmt.Errorf("yield: %d of %d yields", y, total)
	}
	return []fig{{"ns_per_task", nsPer(el, total)}}, nil
}

// ping_pong: a goroutine starts a new goroutine and spins until it has run. The spinner holds
// its P, so the new goroutine starts only once another P takes it. Sample: the go statement ->
// the new goroutine's first instruction. Each pong's writes precede its token store, which the
// ping loop reads before starting the next pong, so ran and samples need no lock.
type pingPongRun struct {
	token   atomic.Int32
	submit  int64
	ran     int64
	warmup  int64
	samples []int64
}

func pong(p *pingPongRun) {
	t := mono()
	if p.ran >= p.warmup {
		p.samples = append(p.samples, t-p.submit)
	}
	p.ran++
	p.token.Store(1)
}

func ping(p *pingPongRun, total int64, done chan<- struct{}) {
	for r := int64(0); r < total; r++ {
		p.token.Store(0)
		p.submit = mono()
		go pong(p)
		for p.token.Load() == 0 {
		}
	}
	close(done)
}

func pingPong(reps int, rounds int64, procs int) ([]fig, error) {
	prev := runtime.GOMAXPROCS(procs)
	defer runtime.GOMAXPROCS(prev)
	var all []int64
	for r := 0; r < reps; r++ {
		runtime.GC()
		p := &pingPongRun{warmup: rounds / 100, samples: make([]int64, 0, rounds)}
		done := make(chan struct{})
		go ping(p, rounds+p.warmup, done)
		<-done
		if p.ran != rounds+p.warmup {
			return nil, fmt.Errorf("ping_pong: %d of %d hand-offs", p.ran, rounds+p.warmup)
		}
		all = append(all, p.samples...)
	}
	return latencyFigs(all, true), nil
}

// wake: the main goroutine, locked to its OS thread, plays the outside thread: it sleeps gap,
// makes sure the previous task has run (polling with 1 us sleeps), then starts one goroutine.
// Sample: the go statement -> the goroutine's start. Then the process's CPU over `idle`.
type wakeRun struct {
	submit  atomic.Int64
	ran     atomic.Int64
	samples []int64 // appended by one task at a time: ran orders them
}

func wakeTask(w *wakeRun) {
	t := mono()
	w.samples = append(w.samples, t-w.submit.Load())
	w.ran.Add(1)
}

func wake(samples int64, gap, idle time.Duration) ([]fig, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	w := &wakeRun{samples: make([]int64, 0, samples)}
	deadline := mono() + int64(hangLimit)
	waitRan := func(i int64) error {
		for w.ran.Load() != i {
			if mono() > deadline {
				return fmt.Errorf("wake: task %d of %d never ran", i, samples)
			}
			nanosleep(1000)
		}
		return nil
	}
	for i := int64(0); i < samples; i++ {
		nanosleep(int64(gap))
		if err := waitRan(i); err != nil {
			return nil, err
		}
		w.submit.Store(mono())
		go wakeTask(w)
	}
	if err := waitRan(samples); err != nil {
		return nil, err
	}
	figs := latencyFigs(w.samples, false)
	return append(figs, fig{"idle_cpu_pct", idleCPUPct(idle)}), nil
}

// strand_pingpong: two goroutines hand a timestamp back and forth over two unbuffered channels,
// each receiving, then sending its own send time to the other. One sample per hand-off: the
// sender's timestamp -> the receiver holding it. A round trip is two hand-offs.
func strandPingPong(reps int, rounds int64) ([]fig, error) {
	var all []int64
	for r := 0; r < reps; r++ {
		runtime.GC()
		warmup := rounds / 100
		total := rounds + warmup
		toB, toA := make(chan int64), make(chan int64)
		got := [2][]int64{make([]int64, 0, rounds), make([]int64, 0, rounds)}
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { // A: starts each round trip
			defer wg.Done()
			for i := int64(0); i < total; i++ {
				toB <- mono()
				sent := <-toA
				if t := mono(); i >= warmup {
					got[0] = append(got[0], t-sent)
				}
			}
		}()
		go func() { // B
			defer wg.Done()
			for i := int64(0); i < total; i++ {
				sent := <-toB
				if t := mono(); i >= warmup {
					got[1] = append(got[1], t-sent)
				}
				toA <- mono()
			}
		}()
		wg.Wait()
		if n := int64(len(got[0]) + len(got[1])); n != 2*rounds {
			return nil, fmt.Errorf("strand_pingpong: %d of %d hand-offs", n, 2*rounds)
		}
		all = append(append(all, got[0]...), got[1]...)
	}
	return latencyFigs(all, true), nil
}
