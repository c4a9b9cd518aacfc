package main

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

var errCall = errors.New("call failed")

func fails() error    { return errCall }
func succeeds() error { return nil }

func state(b *breaker) uint32 { return atomic.LoadUint32(&b.state) }

// waitState polls until the breaker reaches want (the move to half-open runs on a timer).
func waitState(t *testing.T, b *breaker, want uint32) {
	t.Helper()
	for end := time.Now().Add(2 * time.Second); state(b) != want; {
		if time.Now().After(end) {
			t.Fatalf("state %d, want %d", state(b), want)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestBreakerOpensAtThresholdAndRefuses(t *testing.T) {
	b := newBreaker(3, 1, time.Hour)
	for i := 0; i < 2; i++ {
		if err := b.Run(fails); err != errCall {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if state(b) != breakerClosed {
		t.Fatal("opened below the threshold")
	}
	if err := b.Run(succeeds); err != nil {
		t.Fatal(err)
	}
	if b.Run(fails); state(b) != breakerOpen {
		t.Fatal("a success while closed must not forget errors; third error should open")
	}
	ran := false
	if err := b.Run(func() error { ran = true; return nil }); err != errBreakerOpen || ran {
		t.Fatalf("open breaker: err %v, ran %v", err, ran)
	}
}

func TestBreakerForgetsErrorsAfterQuietTimeout(t *testing.T) {
	b := newBreaker(2, 1, 20*time.Millisecond)
	b.Run(fails)
	time.Sleep(40 * time.Millisecond)
	b.Run(fails)
	if state(b) != breakerClosed {
		t.Fatal("errors further apart than the timeout opened it")
	}
	b.Run(fails)
	if state(b) != breakerOpen {
		t.Fatal("two errors within the timeout did not open it")
	}
}

func TestBreakerHalfOpen(t *testing.T) {
	b := newBreaker(1, 2, 20*time.Millisecond)
	b.Run(fails)
	if state(b) != breakerOpen {
		t.Fatal("not open")
	}
	waitState(t, b, breakerHalfOpen)
	b.Run(succeeds)
	if state(b) != breakerHalfOpen {
		t.Fatal("closed after one of two successes")
	}
	b.Run(fails)
	if state(b) != breakerOpen {
		t.Fatal("an error while half-open did not reopen it")
	}
	waitState(t, b, breakerHalfOpen)
	b.Run(succeeds)
	b.Run(succeeds)
	if state(b) != breakerClosed {
		t.Fatal("two successes while half-open did not close it")
	}
}

func TestBreakerPanicCountsAndIsReRaised(t *testing.T) {
	b := newBreaker(1, 1, time.Hour)
	func() {
		defer func() {
			if v := recover(); v != "boom" {
				t.Fatalf("recovered %v", v)
			}
		}()
		b.Run(func() error { panic("boom") })
	}()
	if state(b) != breakerOpen {
		t.Fatal("a panic did not count as an error")
	}
}
