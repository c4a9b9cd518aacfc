package main

// A circuit breaker with the semantics go-resiliency's breaker package documents (Debian packages
// no Go circuit breaker, and the build is offline):
//
//   - closed: calls run; it opens when errorThreshold errors are seen with no error-free gap of
//     at least timeout between them (a longer gap forgets the earlier errors);
//   - open: calls are refused with errBreakerOpen, without running, until timeout has passed;
//     then it is half-open;
//   - half-open: calls run; successThreshold successes in a row close it, one error opens it.
//
// The state is one uint32 read atomically on every call. A success seen while closed returns
// without taking the lock; every other result is settled under the mutex. A panic in the call
// counts as an error and is re-raised once settled.

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

const (
	breakerClosed uint32 = iota
	breakerOpen
	breakerHalfOpen
)

var errBreakerOpen = errors.New("circuit breaker is open")

type breaker struct {
	errorThreshold, successThreshold int
	timeout                          time.Duration

	state uint32 // read with atomic loads; stored only under mu

	mu        sync.Mutex
	errs      int       // errors counted toward errorThreshold (closed)
	successes int       // successes in a row (half-open)
	lastErr   time.Time // when the last counted error was settled
}

func newBreaker(errorThreshold, successThreshold int, timeout time.Duration) *breaker {
	return &breaker{
		errorThreshold:   errorThreshold,
		successThreshold: successThreshold,
		timeout:          timeout,
	}
}

// Run returns errBreakerOpen at once while the breaker is open; otherwise it runs work and
// returns what work returned. Safe for concurrent use.
func (b *breaker) Run(work func() error) error {
	seen := atomic.LoadUint32(&b.state)
	if seen == breakerOpen {
		return errBreakerOpen
	}
	value, panicked, err := protect(work)
	if err == nil && !panicked && seen == breakerClosed {
		return nil
	}
	b.settle(err != nil || panicked)
	if panicked {
		panic(value)
	}
	return err
}

// protect runs work, catching a panic so that Run can count it before re-raising it.
func protect(work func() error) (value interface{}, panicked bool, err error) {
	panicked = true
	defer func() {
		if panicked {
			value = recover()
		}
	}()
	err = work()
	panicked = false
	return
}

func (b *breaker) settle(failed bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !failed {
		if b.state == breakerHalfOpen {
			b.successes++
			if b.successes >= b.successThreshold {
				b.become(breakerClosed)
			}
		}
		return
	}
	now := time.Now()
	if b.errs > 0 && now.Sub(b.lastErr) > b.timeout {
		b.errs = 0
	}
	switch b.state {
	case breakerClosed:
		b.errs++
		b.lastErr = now
		if b.errs >= b.errorThreshold {
			b.trip()
		}
	case breakerHalfOpen:
		b.trip()
	}
	// A call that began before the breaker opened and failed after: already open, nothing to do.
}

// trip opens the breaker and arranges the move to half-open once timeout has passed. Only one
// such move is pending at a time: the breaker trips only from closed or half-open.
func (b *breaker) trip() {
	b.become(breakerOpen)
	time.AfterFunc(b.timeout, func() {
		b.mu.Lock()
		b.become(breakerHalfOpen)
		b.mu.Unlock()
	})
}

// become starts a state afresh; mu is held.
func (b *breaker) become(state uint32) {
	b.errs, b.successes = 0, 0
	atomic.StoreUint32(&b.state, state)
}
