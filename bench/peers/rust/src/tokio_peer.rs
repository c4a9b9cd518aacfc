//! The tokio peer: a multi-thread runtime with worker_threads = workers, used the way tokio's
//! documentation shows (tokio::spawn inside the runtime, Handle::spawn from outside it, JoinHandle
//! awaited for results, a Semaphore's owned permits to bound tasks in flight, bounded mpsc
//! channels between tasks, tokio::net::TcpStream with AsyncReadExt / AsyncWriteExt for sockets).
//! A runtime is built per run, outside the timed region.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::{Builder, Runtime};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::JoinHandle;

use crate::util::{self, now_ns, Countdown, Fanout, Signal};
use crate::Rep;

fn runtime(workers: usize) -> Result<Runtime, String> {
    Builder::new_multi_thread()
        .worker_threads(workers)
        .build()
        .map_err(|e| format!("tokio: cannot build a runtime: {}", e))
}

/// The same with the I/O driver on (what #[tokio::main] turns on with enable_all), for the
/// workloads on sockets only: the others run without it, as they always have.
fn runtime_io(workers: usize) -> Result<Runtime, String> {
    Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_io()
        .build()
        .map_err(|e| format!("tokio: cannot build a runtime: {}", e))
}

// ---- spawn_many, spawn_remote: n empty tasks on a countdown ----------------------------------

static COUNTDOWN: Countdown = Countdown::new();
static DONE: Signal = Signal::new();

fn empty_task() {
    COUNTDOWN.tick();
}

fn countdown_run(workers: usize, n: u64, remote: bool) -> Result<Rep, String> {
    let rt = runtime(workers)?;
    COUNTDOWN.start(n);
    let t0 = now_ns();
    if remote {
        let handle = rt.handle();
        for _ in 0..n {
            handle.spawn(async { empty_task() });
        }
    } else {
        // One task spawns them all from a worker (tokio's spawn_many_local shape).
        rt.spawn(async move {
            for _ in 0..n {
                tokio::spawn(async { empty_task() });
            }
        });
    }
    COUNTDOWN.wait();
    let secs = (now_ns() - t0) as f64 * 1e-9;
    let ran = n - COUNTDOWN.left();
    drop(rt);
    if ran != n {
        return Err(format!("tokio: {} of {} tasks ran", ran, n));
    }
    Ok(Rep::counted(secs, n))
}

pub fn spawn_many(workers: usize, n: u64) -> Result<Rep, String> {
    countdown_run(workers, n, false)
}

pub fn spawn_remote(workers: usize, n: u64) -> Result<Rep, String> {
    countdown_run(workers, n, true)
}

// ---- ping_pong: a task spawns a task and waits for it to start --------------------------------

/// A task spawned from a worker goes to that worker's LIFO slot, which other workers cannot
/// steal, so the parent cannot spin for it: it awaits a oneshot the child answers with its start
/// time (tokio's own ping_pong bench hands off through oneshots the same way).
pub fn ping_pong(workers: usize, rounds: u64) -> Result<Rep, String> {
    let rt = runtime(workers.max(2))?;
    let warmup = rounds / 100;
    let ping = rt.spawn(async move {
        let mut samples = Vec::with_capacity(rounds as usize);
        for r in 0..rounds + warmup {
            let (tx, rx) = oneshot::channel::<u64>();
            let t_submit = now_ns();
            tokio::spawn(async move {
                let _ = tx.send(now_ns());
            });
            let t_start = rx.await.map_err(|_| "tokio ping_pong: the pong task was dropped")?;
            if r >= warmup {
                samples.push(t_start - t_submit);
            }
        }
        Ok::<_, &str>(samples)
    });
    let samples = rt
        .block_on(ping)
        .map_err(|e| format!("tokio ping_pong: {}", e))?
        .map_err(String::from)?;
    drop(rt);
    if samples.len() as u64 != rounds {
        return Err(format!("tokio ping_pong: {} of {} hand-offs", samples.len(), rounds));
    }
    Ok(Rep::latency(samples))
}

// ---- wake: an outside thread spawns onto the idle runtime through its Handle -------------------

static RAN: AtomicU64 = AtomicU64::new(0);
static T_START: AtomicU64 = AtomicU64::new(0);

fn wake_task() {
    T_START.store(now_ns(), Ordering::Relaxed);
    RAN.fetch_add(1, Ordering::Release);
}

pub fn wake(workers: usize, samples: u64, gap_ns: u64, idle_s: f64) -> Result<Rep, String> {
    let rt = runtime(workers)?;
    let handle = rt.handle().clone();
    let lat = crate::wake_loop(samples, gap_ns, &RAN, &T_START, || {
        handle.spawn(async { wake_task() });
    });
    let idle = util::idle_cpu_pct(idle_s);
    drop(rt);
    let mut rep = Rep::latency(lat?);
    rep.figs.push(("idle_cpu_pct", idle));
    Ok(rep)
}

// ---- chain: each task spawns the next (tokio's chained_spawn) ----------------------------------

static HOPS: AtomicU64 = AtomicU64::new(0);

fn hop(i: u64, n: u64) {
    HOPS.fetch_add(1, Ordering::Relaxed);
    if i + 1 == n {
        DONE.post();
    } else {
        tokio::spawn(async move { hop(i + 1, n) });
    }
}

pub fn chain(workers: usize, n: u64) -> Result<Rep, String> {
    let rt = runtime(workers)?;
    HOPS.store(0, Ordering::Relaxed);
    DONE.reset();
    let t0 = now_ns();
    rt.spawn(async move { hop(0, n) });
    DONE.wait();
    let secs = (now_ns() - t0) as f64 * 1e-9;
    drop(rt);
    let hops = HOPS.load(Ordering::Relaxed);
    if hops != n {
        return Err(format!("tokio chain: {} of {} hops", hops, n));
    }
    Ok(Rep::counted(secs, n))
}

// ---- yield: tokio's yield_many (tasks spawned from outside, each yielding in a loop) -----------

const YIELD_TASKS: u64 = 200;
static YIELDS: AtomicU64 = AtomicU64::new(0);

pub fn yield_many(workers: usize, n: u64) -> Result<Rep, String> {
    let each = n / YIELD_TASKS;
    if each == 0 {
        return Err("tokio yield: fewer yields than tasks".into());
    }
    let rt = runtime(workers)?;
    let left = Arc::new(Countdown::new());
    left.start(YIELD_TASKS);
    YIELDS.store(0, Ordering::Relaxed);
    let t0 = now_ns();
    for _ in 0..YIELD_TASKS {
        let left = left.clone();
        rt.spawn(async move {
            for _ in 0..each {
                tokio::task::yield_now().await;
            }
            YIELDS.fetch_add(each, Ordering::Relaxed);
            left.tick();
        });
    }
    left.wait();
    let secs = (now_ns() - t0) as f64 * 1e-9;
    drop(rt);
    let total = each * YIELD_TASKS;
    let yields = YIELDS.load(Ordering::Relaxed);
    if yields != total {
        return Err(format!("tokio yield: {} of {} yields", yields, total));
    }
    Ok(Rep::counted(secs, total))
}

// ---- fib: both children spawned, their JoinHandles awaited ------------------------------------

fn fib_task(n: u32) -> JoinHandle<u64> {
    tokio::spawn(async move {
        if n < 2 {
            return n as u64;
        }
        let a = fib_task(n - 1);
        let b = fib_task(n - 2);
        a.await.expect("fib child") + b.await.expect("fib child")
    })
}

/// One fib(n) on a runtime of `workers`: (seconds, tasks).
fn fib_once(workers: usize, n: u32) -> Result<(f64, u64), String> {
    let rt = runtime(workers)?;
    let t0 = now_ns();
    let v = rt.block_on(async move { fib_task(n).await });
    let secs = (now_ns() - t0) as f64 * 1e-9;
    drop(rt);
    let want = util::fib_expected(n);
    match v {
        Ok(v) if v == want => Ok((secs, util::fib_calls(n))),
        Ok(v) => Err(format!("tokio fib({}) = {}, want {}", n, v, want)),
        Err(e) => Err(format!("tokio fib({}): {}", n, e)),
    }
}

pub fn fib(workers: usize, n: u32) -> Result<Rep, String> {
    let all = fib_once(workers, n)?;
    let one = fib_once(1, n)?;
    Ok(Rep::fib(all, one))
}

// ---- skynet: a 10-ary tree of tasks, sums joined up through JoinHandles -----------------------

fn sky(num: u64, size: u64) -> JoinHandle<u64> {
    tokio::spawn(async move {
        if size == 1 {
            return num;
        }
        let sub = size / 10;
        let kids: [JoinHandle<u64>; 10] = std::array::from_fn(|i| sky(num + i as u64 * sub, sub));
        let mut sum = 0;
        for k in kids {
            sum += k.await.expect("skynet child");
        }
        sum
    })
}

pub fn skynet(workers: usize, leaves: u64) -> Result<Rep, String> {
    let rt = runtime(workers)?;
    let want = leaves * (leaves - 1) / 2;
    util::reset_peak_rss();
    let t0 = now_ns();
    let v = rt.block_on(async move { sky(0, leaves).await });
    let secs = (now_ns() - t0) as f64 * 1e-9;
    let rss = util::peak_rss_kib();
    drop(rt);
    match v {
        Ok(v) if v == want => {
            let mut rep = Rep::counted(secs, util::skynet_nodes(leaves));
            rep.figs.push(("rss_kib", rss));
            Ok(rep)
        }
        Ok(v) => Err(format!("tokio skynet = {}, want {}", v, want)),
        Err(e) => Err(format!("tokio skynet: {}", e)),
    }
}

// ---- fanout_limit: a Semaphore's owned permit per spawned call --------------------------------

static FAN: Fanout = Fanout::new();

/// The generator is the block_on future (where #[tokio::main] code runs): it takes an owned
/// permit before each spawn, the call drops it when it ends; all calls have ended when the
/// generator gets every permit back.
pub fn fanout(workers: usize, n: u64, limit: u32, work_ns: u64) -> Result<Rep, String> {
    let rt = runtime(workers)?;
    FAN.reset(work_ns);
    util::reset_peak_rss();
    let rss0 = util::rss_kib();
    let t0 = now_ns();
    let r = rt.block_on(async move {
        let sem = Arc::new(Semaphore::new(limit as usize));
        for _ in 0..n {
            let permit = sem.clone().acquire_owned().await.map_err(|e| e.to_string())?;
            tokio::spawn(async move {
                FAN.call();
                drop(permit);
            });
        }
        let all = sem.acquire_many(limit).await.map_err(|e| e.to_string())?;
        drop(all);
        Ok::<(), String>(())
    });
    let secs = (now_ns() - t0) as f64 * 1e-9;
    let rss = util::peak_rss_kib() - rss0;
    drop(rt);
    r.map_err(|e| format!("tokio fanout: {}", e))?;
    crate::fanout_rep(secs, n, limit, FAN.done(), FAN.max_inflight(), rss)
}

// ---- strand_pingpong: two tasks, each with a capacity-1 mpsc inbox -----------------------------

type Token = (u64, u64); // (send time, hand-off number)

/// Receives a token, records send -> receive, sends the next one to the peer; the actor that
/// receives the last hand-off stops, and dropping its sender ends the peer's recv loop.
async fn actor(
    mut inbox: mpsc::Receiver<Token>,
    peer: mpsc::Sender<Token>,
    starts: bool,
    total: u64,
    warmup: u64,
) -> Vec<u64> {
    let mut samples = Vec::with_capacity((total / 2) as usize);
    if starts && peer.send((now_ns(), 0)).await.is_err() {
        return samples;
    }
    while let Some((t_send, seq)) = inbox.recv().await {
        let t = now_ns();
        if seq >= warmup {
            samples.push(t - t_send);
        }
        if seq + 1 == total || peer.send((now_ns(), seq + 1)).await.is_err() {
            break;
        }
    }
    samples
}

pub fn strand_pingpong(workers: usize, rounds: u64) -> Result<Rep, String> {
    let rt = runtime(workers)?;
    let warmup = 2 * (rounds / 100);
    let total = 2 * rounds + warmup;
    let (to_a, inbox_a) = mpsc::channel::<Token>(1);
    let (to_b, inbox_b) = mpsc::channel::<Token>(1);
    let a = rt.spawn(actor(inbox_a, to_b, true, total, warmup));
    let b = rt.spawn(actor(inbox_b, to_a, false, total, warmup));
    let r = rt.block_on(async move {
        let mut s = a.await?;
        s.extend(b.await?);
        Ok::<_, tokio::task::JoinError>(s)
    });
    drop(rt);
    let samples = r.map_err(|e| format!("tokio strand_pingpong: {}", e))?;
    if samples.len() as u64 != 2 * rounds {
        return Err(format!("tokio strand_pingpong: {} of {} hand-offs", samples.len(), 2 * rounds));
    }
    Ok(Rep::latency(samples))
}

// ---- io_pingpong: two tasks, each owning one end of a TCP connection over 127.0.0.1 ------------

/// The send time of the hand-off in flight (one at a time): stored right before the write,
/// read by the other end once it has read the byte.
static IO_T_SEND: AtomicU64 = AtomicU64::new(0);

/// A connected pair over 127.0.0.1 (the listener on port 0 there, dropped once it accepted),
/// TCP_NODELAY on both ends, both non-blocking as TcpStream::from_std requires.
fn tcp_pair() -> std::io::Result<(std::net::TcpStream, std::net::TcpStream)> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let a = std::net::TcpStream::connect(listener.local_addr()?)?;
    let (b, _) = listener.accept()?;
    for s in [&a, &b] {
        s.set_nodelay(true)?;
        s.set_nonblocking(true)?;
    }
    Ok((a, b))
}

/// What an end says when the other one went away (after failing itself, which is the cause).
const IO_CLOSED: &str = "tokio io_pingpong: the other end closed the connection";

/// One end: hand-off k (from 1) carries the byte k & 0xff and goes from end 0 to end 1 when k is
/// odd; each end reads one byte, checks it is the next one, records write -> read, writes the
/// next byte back. The end that reads the last hand-off, and the one that writes it, stop.
async fn io_end(
    std: std::net::TcpStream,
    me: u64,
    total: u64,
    warmup: u64,
) -> Result<Vec<u64>, String> {
    let err = |what: &str, e: std::io::Error| format!("tokio io_pingpong: {}: {}", what, e);
    let mut s = tokio::net::TcpStream::from_std(std).map_err(|e| err("from_std", e))?;
    let mut samples = Vec::with_capacity((total / 2) as usize);
    let mut buf = [0u8; 1];
    let mut k = 0; // the last hand-off this end read or wrote
    if me == 0 {
        k = 1;
        IO_T_SEND.store(now_ns(), Ordering::Release);
        s.write_all(&[1]).await.map_err(|e| err("write", e))?;
    }
    loop {
        match s.read_exact(&mut buf).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(IO_CLOSED.into()),
            Err(e) => return Err(err("read", e)),
        }
        let t = now_ns();
        k += 1;
        if buf[0] != k as u8 || k % 2 != me {
            let what = format!("end {} read byte {} as hand-off {}", me, buf[0], k);
            return Err(format!("tokio io_pingpong: {}", what));
        }
        if k > warmup {
            samples.push(t.saturating_sub(IO_T_SEND.load(Ordering::Acquire)));
        }
        if k == total {
            return Ok(samples);
        }
        k += 1;
        IO_T_SEND.store(now_ns(), Ordering::Release);
        s.write_all(&[k as u8]).await.map_err(|e| err("write", e))?;
        if k == total {
            return Ok(samples);
        }
    }
}

pub fn io_pingpong(workers: usize, rounds: u64) -> Result<Rep, String> {
    let rt = runtime_io(workers.max(2))?;
    let warm = rounds / 100;
    let (total, warmup) = (2 * (rounds + warm), 2 * warm);
    let (a, b) = tcp_pair().map_err(|e| format!("tokio io_pingpong: 127.0.0.1: {}", e))?;
    let ta = rt.spawn(io_end(a, 0, total, warmup));
    let tb = rt.spawn(io_end(b, 1, total, warmup));
    let r = rt.block_on(async move {
        let ra = ta.await.map_err(|e| format!("tokio io_pingpong: {}", e))?;
        let rb = tb.await.map_err(|e| format!("tokio io_pingpong: {}", e))?;
        match (ra, rb) {
            (Ok(mut s), Ok(sb)) => {
                s.extend(sb);
                Ok(s)
            }
            (Err(e), Err(eb)) if e == IO_CLOSED => Err(eb),
            (Err(e), _) | (_, Err(e)) => Err(e),
        }
    });
    drop(rt);
    let samples = r?;
    if samples.len() as u64 != 2 * rounds {
        return Err(format!("tokio io_pingpong: {} of {} hand-offs", samples.len(), 2 * rounds));
    }
    Ok(Rep::latency(samples))
}

// ---- blocking: CPU task latency beside 1 ms blocking calls (bench/blocking_bench.c) -----------

/// Where the blocking calls run: nowhere, as ordinary tasks on the workers (a blocking sleep in
/// an async task: the starvation case), or through spawn_blocking on tokio's blocking pool.
#[derive(Clone, Copy, PartialEq)]
pub enum BlockingMode {
    None,
    Workers,
    Side,
}

/// `samples` CPU tasks of about 1 us, one every gap_ns from an outside thread, each one's
/// submit -> start latency; beside them an outside thread submits 1 ms sleeps, one every
/// 1 ms / workers (as many in flight as workers). Checked: every task and call ran once.
pub fn blocking(workers: usize, mode: BlockingMode, samples: u64, gap_ns: u64)
    -> Result<Rep, String> {
    use std::sync::atomic::AtomicBool;

    const BLOCK_NS: u64 = 1_000_000;
    const WORK_NS: u64 = 1_000;
    let rt = runtime(workers)?;
    let handle = rt.handle().clone();
    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new((AtomicU64::new(0), AtomicU64::new(0))); // submitted, ran
    let blocker = if mode != BlockingMode::None {
        let (h, stop, calls) = (handle.clone(), stop.clone(), calls.clone());
        let gap = BLOCK_NS / workers.max(1) as u64;
        Some(std::thread::spawn(move || {
            let mut next = now_ns();
            while !stop.load(Ordering::Acquire) {
                let c = calls.clone();
                let call = move || {
                    std::thread::sleep(std::time::Duration::from_nanos(BLOCK_NS));
                    c.1.fetch_add(1, Ordering::Release);
                };
                if mode == BlockingMode::Side {
                    h.spawn_blocking(call);
                } else {
                    h.spawn(async move { call() });
                }
                calls.0.fetch_add(1, Ordering::Relaxed);
                next += gap;
                let now = now_ns();
                if next > now {
                    util::sleep_ns(next - now);
                }
            }
        }))
    } else {
        None
    };
    if mode != BlockingMode::None {
        util::sleep_ns(20 * BLOCK_NS);
    }
    let slots: Arc<Vec<(AtomicU64, AtomicU64, AtomicU64)>> = Arc::new(
        (0..samples).map(|_| (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0))).collect());
    let mut next = now_ns();
    for i in 0..samples as usize {
        next += gap_ns;
        let now = now_ns();
        if next > now {
            util::sleep_ns(next - now);
        }
        let s = slots.clone();
        s[i].0.store(now_ns(), Ordering::Relaxed);
        handle.spawn(async move {
            let t = now_ns();
            s[i].1.store(t.saturating_sub(s[i].0.load(Ordering::Relaxed)), Ordering::Relaxed);
            while now_ns() < t + WORK_NS {}
            s[i].2.fetch_add(1, Ordering::Release);
        });
    }
    for s in slots.iter() {
        while s.2.load(Ordering::Acquire) == 0 {
            util::sleep_ns(10_000);
        }
    }
    stop.store(true, Ordering::Release);
    if let Some(b) = blocker {
        b.join().map_err(|_| "tokio blocking: the blocker thread panicked".to_string())?;
    }
    while calls.1.load(Ordering::Acquire) != calls.0.load(Ordering::Relaxed) {
        util::sleep_ns(100_000);
    }
    drop(rt);
    let mut lat = Vec::with_capacity(samples as usize);
    for s in slots.iter() {
        if s.2.load(Ordering::Acquire) != 1 {
            return Err("tokio blocking: a task ran more than once".to_string());
        }
        lat.push(s.1.load(Ordering::Relaxed));
    }
    Ok(Rep::latency(lat))
}
