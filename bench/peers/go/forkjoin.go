package main

// fib and skynet: recursive fork-join, every call or tree node its own goroutine.

import (
	"fmt"
	"runtime"
	"sync"
	"time"
)

// fib forks both recursive calls as goroutines and joins them with a WaitGroup; no cutoff.
func fib(n int) uint64 {
	if n < 2 {
		return uint64(n)
	}
	var x, y uint64
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		x = fib(n - 1)
	}()
	go func() {
		defer wg.Done()
		y = fib(n - 2)
	}()
	wg.Wait()
	return x + y
}

func fibExpected(n int) uint64 {
	a, b := uint64(0), uint64(1)
	for i := 0; i < n; i++ {
		a, b = b, a+b
	}
	return a
}

// fibCalls is the number of fib calls for fib(n): 2*fib(n+1) - 1.
func fibCalls(n int) int64 { return int64(2*fibExpected(n+1) - 1) }

// fibOnce runs fib(n) with the root call a goroutine too, on `procs` Ps; ns per call.
func fibOnce(n, procs int) (float64, error) {
	runtime.GOMAXPROCS(procs)
	runtime.GC()
	res := make(chan uint64, 1)
	t0 := time.Now()
	go func() { res <- fib(n) }()
	v := <-res
	el := time.Since(t0)
	if want := fibExpected(n); v != want {
		return 0, fmt.Errorf("fib(%d) = %d expected, got %d (GOMAXPROCS %d)", n, want, v, procs)
	}
	return nsPer(el, fibCalls(n)), nil
}

// fibSpeedup: one repetition, first on one P, then on all; speedup = ns per call on one P over
// ns per call on all of them.
func fibSpeedup(n int) ([]fig, error) {
	defer runtime.GOMAXPROCS(workers)
	one, err := fibOnce(n, 1)
	if err != nil {
		return nil, err
	}
	all, err := fibOnce(n, workers)
	if err != nil {
		return nil, err
	}
	return []fig{{"ns_per_task", all}, {"speedup", one / all}}, nil
}

// skynetNode is the classic skynet: a goroutine per node, each inner node starting its ten
// children with their own channel and summing what they send back; leaf i sends i.
func skynetNode(up chan<- int64, num, size int64) {
	if size == 1 {
		up <- num
		return
	}
	kids := make(chan int64)
	step := size / 10
	for i := int64(0); i < 10; i++ {
		go skynetNode(kids, num+i*step, step)
	}
	var sum int64
	for i := 0; i < 10; i++ {
		sum += <-kids
	}
	up <- sum
}

// skynet over `leaves` leaves (a power of ten); ns per node and the run's peak resident memory.
func skynet(leaves int64) ([]fig, error) {
	var nodes int64
	for s := leaves; s >= 1; s /= 10 {
		nodes += leaves / s
	}
	want := leaves * (leaves - 1) / 2
	resetPeakRSS()
	root := make(chan int64)
	t0 := time.Now()
	go skynetNode(root, 0, leaves)
	sum := <-root
	el := time.Since(t0)
	rss := peakRSSKiB()
	if sum != want {
		return nil, fmt.Errorf("skynet(%d) = %d expected, got %d", leaves, want, sum)
	}
	return []fig{{"ns_per_task", nsPer(el, nodes)}, {"rss_kib", rss}}, nil
}
