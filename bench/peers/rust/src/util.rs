//! What every workload shares: the clocks (the same ones bench/common.c and bench/hist.c read),
//! peak-RSS readings from /proc, a one-shot signal for "the last task ran", and the in-flight
//! bookkeeping of the fanout_limit calls.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is a valid timespec for the call to write; both clocks exist on Linux.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// CLOCK_MONOTONIC in ns: timestamps taken on one thread and compared on another.
pub fn now_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

/// The CPU time of the whole process (all threads), in seconds.
fn process_cpu_s() -> f64 {
    clock_ns(libc::CLOCK_PROCESS_CPUTIME_ID) as f64 * 1e-9
}

pub fn sleep_ns(ns: u64) {
    std::thread::sleep(Duration::from_nanos(ns));
}

/// The CPU the process burns while this thread sleeps idle_s, in % of one core: with nothing
/// submitted, that is the pool's idle cost.
pub fn idle_cpu_pct(idle_s: f64) -> f64 {
    let t0 = now_ns();
    let c0 = process_cpu_s();
    sleep_ns((idle_s * 1e9) as u64);
    let c1 = process_cpu_s();
    100.0 * (c1 - c0) / ((now_ns() - t0) as f64 * 1e-9)
}

/// Resets VmHWM to the current resident size (Linux: "5" to clear_refs).
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn status_kib(field: &str) -> f64 {
    let text = match std::fs::read_to_string("/proc/self/status") {
        Ok(t) => t,
        Err(_) => return 0.0,
    };
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix(field) {
            let num = rest.trim().trim_end_matches("kB").trim();
            return num.parse().unwrap_or(0.0);
        }
    }
    0.0
}

/// Peak resident memory since the last reset_peak_rss, in KiB.
pub fn peak_rss_kib() -> f64 {
    status_kib("VmHWM:")
}

pub fn rss_kib() -> f64 {
    status_kib("VmRSS:")
}

/// The online CPUs (what strix-bench defaults its workers to).
pub fn online_cpus() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    if n > 0 {
        n as usize
    } else {
        1
    }
}

/// A one-shot event: post() from any thread, wait() blocks until posted, reset() re-arms it.
pub struct Signal {
    posted: Mutex<bool>,
    cv: Condvar,
}

impl Signal {
    pub const fn new() -> Signal {
        Signal { posted: Mutex::new(false), cv: Condvar::new() }
    }

    pub fn post(&self) {
        *self.posted.lock().unwrap() = true;
        self.cv.notify_all();
    }

    pub fn wait(&self) {
        let mut p = self.posted.lock().unwrap();
        while !*p {
            p = self.cv.wait(p).unwrap();
        }
    }

    pub fn reset(&self) {
        *self.posted.lock().unwrap() = false;
    }
}

/// The countdown of spawn_many and spawn_remote (bench/harness.c's): every empty task takes one
/// off, and the one that reaches zero posts the signal the timer waits for.
pub struct Countdown {
    left: AtomicU64,
    done: Signal,
}

impl Countdown {
    pub const fn new() -> Countdown {
        Countdown { left: AtomicU64::new(0), done: Signal::new() }
    }

    pub fn start(&self, n: u64) {
        self.left.store(n, Ordering::Relaxed);
        self.done.reset();
    }

    pub fn tick(&self) {
        if self.left.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.done.post();
        }
    }

    pub fn wait(&self) {
        self.done.wait();
    }

    /// Tasks not run yet.
    pub fn left(&self) -> u64 {
        self.left.load(Ordering::Acquire)
    }
}

/// The bookkeeping every fanout_limit call does (the same as bench/fanout_bench.c's call_body):
/// count itself in flight, raise the high-water mark, optionally spin work_ns on the monotonic
/// clock, leave while counting itself done. In flight (low 32 bits) and done (high 32) share one
/// word, so a call makes two atomic adds on one line; the high-water mark has a line of its own
/// and is written only when it rises.
pub struct Fanout {
    state: Line<AtomicU64>,
    max: Line<AtomicU32>,
    work_ns: AtomicU64,
}

/// A value on a cache line of its own.
#[repr(align(64))]
struct Line<T>(T);

const FAN_DONE_ONE: u64 = 1 << 32;

impl Fanout {
    pub const fn new() -> Fanout {
        Fanout {
            state: Line(AtomicU64::new(0)),
            max: Line(AtomicU32::new(0)),
            work_ns: AtomicU64::new(0),
        }
    }

    pub fn reset(&self, work_ns: u64) {
        self.state.0.store(0, Ordering::Relaxed);
        self.max.0.store(0, Ordering::Relaxed);
        self.work_ns.store(work_ns, Ordering::Relaxed);
    }

    pub fn call(&self) {
        let now = (self.state.0.fetch_add(1, Ordering::Relaxed) + 1) as u32;
        let mut max = self.max.0.load(Ordering::Relaxed);
        while now > max {
            match self.max.0.compare_exchange_weak(max, now, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => break,
                Err(seen) => max = seen,
            }
        }
        let work = self.work_ns.load(Ordering::Relaxed);
        if work != 0 {
            let end = now_ns() + work;
            while now_ns() < end {}
        }
        self.state.0.fetch_add(FAN_DONE_ONE - 1, Ordering::Relaxed);
    }

    pub fn done(&self) -> u64 {
        self.state.0.load(Ordering::Acquire) >> 32
    }

    pub fn max_inflight(&self) -> u32 {
        self.max.0.load(Ordering::Relaxed)
    }
}

/// fib(n) by iteration: the value a fork-join fib must return.
pub fn fib_expected(n: u32) -> u64 {
    let (mut a, mut b) = (0u64, 1u64);
    for _ in 0..n {
        let t = a + b;
        a = b;
        b = t;
    }
    a
}

/// The calls (tasks) of a recursive fib(n) with no cutoff: 2 * fib(n + 1) - 1.
pub fn fib_calls(n: u32) -> u64 {
    2 * fib_expected(n + 1) - 1
}

/// The nodes of a 10-ary tree over `leaves` leaves (a power of 10), every level counted.
pub fn skynet_nodes(leaves: u64) -> u64 {
    let mut nodes = 0;
    let mut s = leaves;
    while s >= 1 {
        nodes += leaves / s;
        s /= 10;
    }
    nodes
}
