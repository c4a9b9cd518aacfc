//! The rayon peer: a ThreadPool with num_threads = workers, used the way rayon's documentation
//! shows (rayon::spawn for fire-and-forget tasks from inside the pool, ThreadPool::spawn from
//! outside it, rayon::join and rayon::scope for fork-join inside ThreadPool::install). A pool
//! is built per run, outside the timed region.
//!
//! Not here: fanout_limit (rayon has no bound on the calls in flight) and strand_pingpong
//! (rayon has no actors or channels); main.rs writes the notes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

use rayon::{ThreadPool, ThreadPoolBuilder};

use crate::util::{self, now_ns, Countdown, Signal};
use crate::Rep;

fn pool(workers: usize) -> Result<ThreadPool, String> {
    ThreadPoolBuilder::new()
        .num_threads(workers)
        .build()
        .map_err(|e| format!("rayon: cannot build a pool: {}", e))
}

// ---- spawn_many, spawn_remote: n empty tasks on a countdown ----------------------------------

static COUNTDOWN: Countdown = Countdown::new();
static DONE: Signal = Signal::new();

fn empty_task() {
    COUNTDOWN.tick();
}

fn countdown_run(workers: usize, n: u64, remote: bool) -> Result<Rep, String> {
    let p = pool(workers)?;
    COUNTDOWN.start(n);
    let t0 = now_ns();
    if remote {
        for _ in 0..n {
            p.spawn(empty_task);
        }
    } else {
        // rayon::spawn on a pool thread pushes onto that thread's own deque.
        p.spawn(move || {
            for _ in 0..n {
                rayon::spawn(empty_task);
            }
        });
    }
    COUNTDOWN.wait();
    let secs = (now_ns() - t0) as f64 * 1e-9;
    let ran = n - COUNTDOWN.left();
    drop(p);
    if ran != n {
        return Err(format!("rayon: {} of {} tasks ran", ran, n));
    }
    Ok(Rep::counted(secs, n))
}

pub fn spawn_many(workers: usize, n: u64) -> Result<Rep, String> {
    countdown_run(workers, n, false)
}

pub fn spawn_remote(workers: usize, n: u64) -> Result<Rep, String> {
    countdown_run(workers, n, true)
}

// ---- ping_pong: a task spawns a task and spins until it has started --------------------------

static TOKEN: AtomicU64 = AtomicU64::new(0);
static PONG_START: AtomicU64 = AtomicU64::new(0);

fn pong() {
    PONG_START.store(now_ns(), Ordering::Relaxed);
    TOKEN.store(1, Ordering::Release);
}

/// The spinning parent keeps its own thread, so only another pool thread can steal the child.
pub fn ping_pong(workers: usize, rounds: u64) -> Result<Rep, String> {
    let p = pool(workers.max(2))?;
    let warmup = rounds / 100;
    let (tx, rx) = mpsc::channel();
    p.spawn(move || {
        let mut samples = Vec::with_capacity(rounds as usize);
        for r in 0..rounds + warmup {
            TOKEN.store(0, Ordering::Relaxed);
            let t_submit = now_ns();
            rayon::spawn(pong);
            while TOKEN.load(Ordering::Acquire) == 0 {
                std::hint::spin_loop();
            }
            if r >= warmup {
                samples.push(PONG_START.load(Ordering::Relaxed) - t_submit);
            }
        }
        let _ = tx.send(samples);
    });
    let samples = rx.recv().map_err(|_| "rayon ping_pong: the ping task died".to_string())?;
    drop(p);
    if samples.len() as u64 != rounds {
        return Err(format!("rayon ping_pong: {} of {} hand-offs", samples.len(), rounds));
    }
    Ok(Rep::latency(samples))
}

// ---- wake: an outside thread spawns onto the idle pool ----------------------------------------

static RAN: AtomicU64 = AtomicU64::new(0);
static T_START: AtomicU64 = AtomicU64::new(0);

fn wake_task() {
    T_START.store(now_ns(), Ordering::Relaxed);
    RAN.fetch_add(1, Ordering::Release);
}

pub fn wake(workers: usize, samples: u64, gap_ns: u64, idle_s: f64) -> Result<Rep, String> {
    let p = pool(workers)?;
    let lat = crate::wake_loop(samples, gap_ns, &RAN, &T_START, || p.spawn(wake_task));
    let idle = util::idle_cpu_pct(idle_s);
    drop(p);
    let mut rep = Rep::latency(lat?);
    rep.figs.push(("idle_cpu_pct", idle));
    Ok(rep)
}

// ---- chain: each task spawns the next --------------------------------------------------------

static HOPS: AtomicU64 = AtomicU64::new(0);

fn hop(i: u64, n: u64) {
    HOPS.fetch_add(1, Ordering::Relaxed);
    if i + 1 == n {
        DONE.post();
    } else {
        rayon::spawn(move || hop(i + 1, n));
    }
}

pub fn chain(workers: usize, n: u64) -> Result<Rep, String> {
    let p = pool(workers)?;
    HOPS.store(0, Ordering::Relaxed);
    DONE.reset();
    let t0 = now_ns();
    p.spawn(move || hop(0, n));
    DONE.wait();
    let secs = (now_ns() - t0) as f64 * 1e-9;
    drop(p);
    let hops = HOPS.load(Ordering::Relaxed);
    if hops != n {
        return Err(format!("rayon chain: {} of {} hops", hops, n));
    }
    Ok(Rep::counted(secs, n))
}

// ---- fib: rayon::join at every call ------------------------------------------------------------

fn fib_join(n: u32) -> u64 {
    if n < 2 {
        return n as u64;
    }
    let (a, b) = rayon::join(|| fib_join(n - 1), || fib_join(n - 2));
    a + b
}

fn fib_once(workers: usize, n: u32) -> Result<(f64, u64), String> {
    let p = pool(workers)?;
    let t0 = now_ns();
    let v = p.install(|| fib_join(n));
    let secs = (now_ns() - t0) as f64 * 1e-9;
    drop(p);
    let want = util::fib_expected(n);
    if v != want {
        return Err(format!("rayon fib({}) = {}, want {}", n, v, want));
    }
    Ok((secs, util::fib_calls(n)))
}

pub fn fib(workers: usize, n: u32) -> Result<Rep, String> {
    let all = fib_once(workers, n)?;
    let one = fib_once(1, n)?;
    Ok(Rep::fib(all, one))
}

// ---- skynet: a rayon::scope per inner node, one scope.spawn per child ------------------------

fn sky(num: u64, size: u64) -> u64 {
    if size == 1 {
        return num;
    }
    let sub = size / 10;
    let mut sums = [0u64; 10];
    rayon::scope(|s| {
        for (i, slot) in sums.iter_mut().enumerate() {
            s.spawn(move |_| *slot = sky(num + i as u64 * sub, sub));
        }
    });
    sums.iter().sum()
}

pub fn skynet(workers: usize, leaves: u64) -> Result<Rep, String> {
    let p = pool(workers)?;
    let want = leaves * (leaves - 1) / 2;
    util::reset_peak_rss();
    let t0 = now_ns();
    let v = p.install(|| sky(0, leaves));
    let secs = (now_ns() - t0) as f64 * 1e-9;
    let rss = util::peak_rss_kib();
    drop(p);
    if v != want {
        return Err(format!("rayon skynet = {}, want {}", v, want));
    }
    let mut rep = Rep::counted(secs, util::skynet_nodes(leaves));
    rep.figs.push(("rss_kib", rss));
    Ok(rep)
}
