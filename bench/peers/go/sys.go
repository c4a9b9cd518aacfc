package main

import (
	"bufio"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// epoch anchors mono: time.Since reads the monotonic clock, so mono is a monotonic timestamp
// that one goroutine can take and another compare with its own.
var epoch = time.Now()

func mono() int64 { return int64(time.Since(epoch)) }

// nanosleep blocks the calling OS thread in nanosleep(2) for ns nanoseconds, resuming after a
// signal (Go's preemption signals interrupt it) with the time that was left.
func nanosleep(ns int64) {
	ts := syscall.NsecToTimespec(ns)
	for {
		var left syscall.Timespec
		if syscall.Nanosleep(&ts, &left) != syscall.EINTR {
			return
		}
		ts = left
	}
}

// processCPU is the user + system CPU time of the whole process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// idleCPUPct is the process's CPU time over `idle` of wall time spent asleep in nanosleep, in
// percent of one core.
func idleCPUPct(idle time.Duration) float64 {
	c0, t0 := processCPU(), time.Now()
	nanosleep(int64(idle))
	c1, wall := processCPU(), time.Since(t0)
	return 100 * float64(c1-c0) / float64(wall)
}

// resetPeakRSS returns the heap's free memory to the system, then restarts the peak resident
// memory count (VmHWM) at the resident memory of now.
func resetPeakRSS() {
	debug.FreeOSMemory()
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

func statusKiB(field string) float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, field) {
			rest := strings.TrimSuffix(strings.TrimPrefix(line, field), "kB")
			kib, _ := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return kib
		}
	}
	return 0
}

func peakRSSKiB() float64 { return statusKiB("VmHWM:") }
func rssKiB() float64     { return statusKiB("VmRSS:") }
