//! rust-bench: the tokio and rayon peers of the strix benchmark suite.
//!
//!     rust-bench [--smoke] [--workers=N] [--filter=TEXT] --out=FILE
//!
//! Runs every workload of bench/README.md that tokio or rayon can do, the way each crate's
//! documentation shows, with the same sizes and repetitions as strix-bench, checks each result,
//! and writes the JSON object bench/peers/README.md defines to FILE (one line per finished
//! benchmark on stderr). --filter keeps the benchmarks whose name contains TEXT. Exit status:
//! 0 when everything ran and checked, 1 when a benchmark failed (it is still written, with
//! error_occurred), 2 on a usage error.
//!
//! The workloads that read the peak RSS run in a child process, `rust-bench --child=NAME`
//! (with the same --smoke and --workers), which prints one line on stdout: `ok fig=value ...`
//! or `err message`.

mod rayon_peer;
mod tokio_peer;
mod util;

use std::fmt::Write as _;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use util::now_ns;

/// One repetition's figures, and its latency samples (kept whole, percentiles read after every
/// repetition's samples are together).
pub struct Rep {
    pub figs: Vec<(&'static str, f64)>,
    pub samples: Vec<u64>,
}

impl Rep {
    pub fn counted(secs: f64, tasks: u64) -> Rep {
        Rep { figs: vec![("ns_per_task", secs * 1e9 / tasks as f64)], samples: Vec::new() }
    }

    pub fn latency(samples: Vec<u64>) -> Rep {
        Rep { figs: Vec::new(), samples }
    }

    /// ns_per_task on all workers; speedup = ns_per_task on 1 worker / on all workers.
    pub fn fib(all: (f64, u64), one: (f64, u64)) -> Rep {
        let ns = all.0 * 1e9 / all.1 as f64;
        let ns1 = one.0 * 1e9 / one.1 as f64;
        Rep { figs: vec![("ns_per_task", ns), ("speedup", ns1 / ns)], samples: Vec::new() }
    }
}

/// The wake harness of bench/harness.c: sleep gap_ns, wait (1 us sleeps) until the previous task
/// ran, stamp, submit one task; the task stores its start time in t_start and counts itself in
/// ran. Returns one submit -> start sample per task.
pub fn wake_loop(
    samples: u64,
    gap_ns: u64,
    ran: &AtomicU64,
    t_start: &AtomicU64,
    mut submit: impl FnMut(),
) -> Result<Vec<u64>, String> {
    let mut lat = Vec::with_capacity(samples as usize);
    let mut t_submit = 0;
    ran.store(0, Ordering::Relaxed);
    for i in 0..=samples {
        if i < samples {
            util::sleep_ns(gap_ns);
        }
        while ran.load(Ordering::Acquire) != i {
            util::sleep_ns(1000);
        }
        if i > 0 {
            lat.push(t_start.load(Ordering::Relaxed).saturating_sub(t_submit));
        }
        if i < samples {
            t_submit = now_ns();
            submit();
        }
    }
    if lat.len() as u64 != samples || ran.load(Ordering::Acquire) != samples {
        return Err(format!("wake: {} of {} tasks ran", lat.len(), samples));
    }
    Ok(lat)
}

/// The fanout_limit figures, after checking that every call ran and no more than `limit` were
/// ever in flight.
pub fn fanout_rep(
    secs: f64,
    n: u64,
    limit: u32,
    done: u64,
    max_inflight: u32,
    rss_kib: f64,
) -> Result<Rep, String> {
    if done != n {
        return Err(format!("fanout: {} of {} calls ran", done, n));
    }
    if max_inflight > limit {
        return Err(format!("fanout: {} calls in flight, limit {}", max_inflight, limit));
    }
    let mut rep = Rep::counted(secs, n);
    rep.figs.push(("max_inflight", max_inflight as f64));
    rep.figs.push(("rss_kib", rss_kib));
    Ok(rep)
}

// ---- the report ------------------------------------------------------------------------------

enum Outcome {
    Done { reps: usize, figs: Vec<(String, f64)> },
    Failed(String),
}

struct Entry {
    name: String,
    outcome: Outcome,
}

struct Report {
    out: String,
    workers: usize,
    smoke: bool,
    entries: Vec<Entry>,
    notes: Vec<(&'static str, &'static str)>,
}

/// The report; None in a child (--child), which prints its one result on stdout instead.
static REPORT: Mutex<Option<Report>> = Mutex::new(None);

/// The benchmark running now and the time it must end by (the watchdog's view).
static RUNNING: Mutex<Option<(String, u64)>> = Mutex::new(None);

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn json_num(v: f64) -> String {
    if v.is_finite() {
        format!("{}", v)
    } else {
        "null".to_string()
    }
}

impl Report {
    fn json(&self) -> String {
        let mut o = String::new();
        let version = format!(
            "tokio {}, rayon {}, rustc {}",
            env!("PEER_TOKIO_VERSION"),
            env!("PEER_RAYON_VERSION"),
            env!("PEER_RUSTC_VERSION")
        );
        let _ = write!(
            o,
            "{{\n  \"context\": {{\"impl\": [\"tokio\", \"rayon\"], \"version\": {}, \
             \"workers\": {}, \"smoke\": \"{}\"}},\n  \"benchmarks\": [",
            json_str(&version),
            self.workers,
            if self.smoke { "yes" } else { "no" }
        );
        for (i, e) in self.entries.iter().enumerate() {
            o.push_str(if i == 0 { "\n    " } else { ",\n    " });
            let name = json_str(&e.name);
            match &e.outcome {
                Outcome::Done { reps, figs } => {
                    let _ = write!(o, "{{\"name\": {}, \"run_name\": {}", name, name);
                    if *reps > 1 {
                        o.push_str(", \"run_type\": \"aggregate\", \"aggregate_name\": \"median\"");
                    } else {
                        o.push_str(", \"run_type\": \"iteration\"");
                    }
                    let _ = write!(o, ", \"repetitions\": {}", reps);
                    for (k, v) in figs {
                        let _ = write!(o, ", \"{}\": {}", k, json_num(*v));
                    }
                    let _ = write!(o, ", \"workers\": {}}}", self.workers);
                }
                Outcome::Failed(msg) => {
                    let _ = write!(
                        o,
                        "{{\"name\": {}, \"run_name\": {}, \"error_occurred\": true, \
                         \"error_message\": {}, \"workers\": {}}}",
                        name,
                        name,
                        json_str(msg),
                        self.workers
                    );
                }
            }
        }
        o.push_str("\n  ],\n  \"notes\": {");
        for (i, (k, v)) in self.notes.iter().enumerate() {
            o.push_str(if i == 0 { "\n    " } else { ",\n    " });
            let _ = write!(o, "{}: {}", json_str(k), json_str(v));
        }
        o.push_str(if self.notes.is_empty() { "}\n}\n" } else { "\n  }\n}\n" });
        o
    }

    fn write(&self) -> Result<(), String> {
        std::fs::write(&self.out, self.json()).map_err(|e| format!("{}: {}", self.out, e))
    }

    fn failed(&self) -> bool {
        self.entries.iter().any(|e| matches!(e.outcome, Outcome::Failed(_)))
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The sample at quantile q of sorted samples (rank floor(q * count), as bench/hist.c reads it).
fn quantile(sorted: &[u64], q: f64) -> f64 {
    let rank = ((q * sorted.len() as f64) as usize).min(sorted.len() - 1);
    sorted[rank] as f64
}

/// Medians of each figure over the repetitions, then the percentiles of every sample.
fn aggregate(reps: Vec<Rep>) -> Vec<(String, f64)> {
    let mut figs = Vec::new();
    for (k, _) in &reps[0].figs {
        let vals = reps
            .iter()
            .filter_map(|r| r.figs.iter().find(|(n, _)| n == k).map(|(_, v)| *v))
            .collect();
        figs.push((k.to_string(), median(vals)));
    }
    let mut all: Vec<u64> = reps.into_iter().flat_map(|r| r.samples).collect();
    if !all.is_empty() {
        all.sort_unstable();
        figs.push(("p50_ns".to_string(), quantile(&all, 0.50)));
        figs.push(("p99_ns".to_string(), quantile(&all, 0.99)));
        figs.push(("p999_ns".to_string(), quantile(&all, 0.999)));
        figs.push(("max_ns".to_string(), *all.last().unwrap() as f64));
    }
    figs
}

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panicked".to_string()
    }
}

/// Runs body `reps` times, stopping at the first failure: the aggregated figures or the failure.
fn run_reps(
    name: &str,
    reps: usize,
    mut body: impl FnMut() -> Result<Rep, String>,
) -> Result<Vec<(String, f64)>, String> {
    let mut done = Vec::with_capacity(reps);
    for _ in 0..reps {
        match panic::catch_unwind(AssertUnwindSafe(&mut body)) {
            Ok(Ok(r)) => done.push(r),
            Ok(Err(e)) => return Err(e),
            Err(p) => return Err(format!("{}: {}", name, panic_text(p))),
        }
    }
    Ok(aggregate(done))
}

struct Runner {
    filter: Option<String>,
    limit_s: u64,
    workers: usize,
    smoke: bool,
    /// --child=NAME: run only NAME, in this process, and print its result on stdout.
    child: Option<String>,
}

impl Runner {
    fn bench(&self, name: &str, reps: usize, body: impl FnMut() -> Result<Rep, String>) {
        self.run(name, reps, false, body)
    }

    /// For the workloads that read the process's peak RSS: they run in a fresh process of their
    /// own, since memory earlier workloads freed stays resident in the C heap (glibc keeps the
    /// top of a thread's arena) and would count in the peak, or hide a rise.
    fn bench_alone(&self, name: &str, reps: usize, body: impl FnMut() -> Result<Rep, String>) {
        self.run(name, reps, true, body)
    }

    fn run(
        &self,
        name: &str,
        reps: usize,
        alone: bool,
        body: impl FnMut() -> Result<Rep, String>,
    ) {
        if let Some(only) = &self.child {
            if name == only {
                *RUNNING.lock().unwrap() =
                    Some((name.to_string(), now_ns() + self.limit_s * 1_000_000_000));
                match run_reps(name, reps, body) {
                    Ok(figs) => {
                        let shown: String =
                            figs.iter().map(|(k, v)| format!(" {}={}", k, v)).collect();
                        println!("ok{}", shown);
                    }
                    Err(e) => println!("err {}", e),
                }
                *RUNNING.lock().unwrap() = None;
            }
            return;
        }
        if let Some(f) = &self.filter {
            if !name.contains(f.as_str()) {
                return;
            }
        }
        // A child has the same limit and its own watchdog; this one is the backstop.
        let limit_s = if alone { self.limit_s + 30 } else { self.limit_s };
        *RUNNING.lock().unwrap() = Some((name.to_string(), now_ns() + limit_s * 1_000_000_000));
        let t0 = now_ns();
        let r = if alone { self.in_child(name) } else { run_reps(name, reps, body) };
        *RUNNING.lock().unwrap() = None;
        let secs = (now_ns() - t0) as f64 * 1e-9;
        let outcome = match r {
            Err(e) => {
                eprintln!("{}: FAILED: {}", name, e);
                Outcome::Failed(e)
            }
            Ok(figs) => {
                let shown: Vec<String> =
                    figs.iter().map(|(k, v)| format!("{}={:.4}", k, v)).collect();
                eprintln!("{}: {} ({} reps, {:.2} s)", name, shown.join(" "), reps, secs);
                Outcome::Done { reps, figs }
            }
        };
        let mut r = REPORT.lock().unwrap();
        r.as_mut().unwrap().entries.push(Entry { name: name.to_string(), outcome });
    }

    /// Runs this program again as `--child=name` and reads its one line of result.
    fn in_child(&self, name: &str) -> Result<Vec<(String, f64)>, String> {
        let exe = std::env::current_exe().map_err(|e| format!("{}: {}", name, e))?;
        let mut cmd = Command::new(exe);
        cmd.arg(format!("--workers={}", self.workers)).arg(format!("--child={}", name));
        if self.smoke {
            cmd.arg("--smoke");
        }
        let out = cmd
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("{}: cannot start a child process: {}", name, e))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text.lines().last().unwrap_or("");
        if let Some(msg) = line.strip_prefix("err ") {
            return Err(msg.to_string());
        }
        let figs = match line.strip_prefix("ok") {
            Some(rest) => rest
                .split_whitespace()
                .map(|kv| {
                    let (k, v) = kv.split_once('=')?;
                    Some((k.to_string(), v.parse::<f64>().ok()?))
                })
                .collect::<Option<Vec<_>>>(),
            None => None,
        };
        match figs {
            Some(f) if !f.is_empty() && out.status.success() => Ok(f),
            _ => Err(format!("{}: the child process ended ({}) with no result", name, out.status)),
        }
    }
}

/// Ends a benchmark that runs past its limit (a lost wake-up would otherwise hang the suite):
/// the entry is written as failed, with everything finished before it, and the exit status is 1.
fn watchdog() {
    loop {
        util::sleep_ns(250_000_000);
        let running = RUNNING.lock().unwrap().clone();
        if let Some((name, deadline)) = running {
            if now_ns() > deadline {
                let msg = format!("{}: did not finish within its time limit", name);
                let mut r = REPORT.lock().unwrap();
                match r.as_mut() {
                    None => println!("err {}", msg),
                    Some(r) => {
                        eprintln!("{}: FAILED: {}", name, msg);
                        r.entries.push(Entry { name, outcome: Outcome::Failed(msg) });
                        if let Err(e) = r.write() {
                            eprintln!("rust-bench: {}", e);
                        }
                    }
                }
                std::process::exit(1);
            }
        }
    }
}

const NOTE_PING_PONG_TOKIO: &str = "a task spawned from a worker goes to that worker's LIFO slot, \
which other workers cannot steal (tokio 1.24; turning the slot off is tokio_unstable), so a \
parent spinning on a token never sees its child start. The parent awaits a oneshot that the \
child answers with its start time, as tokio's own ping_pong bench hands off, and the child \
starts on the same worker once the parent yields: a same-worker hand-off, not the cross-worker \
one the other pools are measured on";
const NOTE_FANOUT_RAYON: &str = "rayon has no bound on the calls in flight: rayon::spawn and \
scope.spawn queue every call at once, and parallel iterators split the range as they choose; \
keeping 64 in flight would take a semaphore that rayon does not have, so there is no rayon way \
to run this workload";
const NOTE_IO_RAYON: &str = "rayon has no I/O: it is a pool for CPU work (join, scope, spawn), \
with no reactor to wait on a socket. An end would be a pool thread blocked in read(2), a measure \
of the kernel's blocking reads rather than of rayon";
const NOTE_STRAND_RAYON: &str = "rayon has no actors or channels: its API is fork-join over a \
pool (join, scope, spawn). Two actors would be two pool threads blocked on std::sync::mpsc, a \
measure of std's channels and thread wake-ups rather than of rayon";
const NOTE_YIELD_RAYON: &str = "rayon 1.6 (rayon-core 1.10, Debian's) has no yield: \
rayon::yield_now came with rayon-core 1.11, and a rayon job cannot suspend itself to run later";

fn usage() -> ! {
    eprintln!("usage: rust-bench [--smoke] [--workers=N] [--filter=TEXT] --out=FILE");
    std::process::exit(2);
}

fn main() {
    let mut smoke = false;
    let mut workers = util::online_cpus();
    let mut out = None;
    let mut filter = None;
    let mut child = None;
    for a in std::env::args().skip(1) {
        if a == "--smoke" {
            smoke = true;
        } else if let Some(v) = a.strip_prefix("--workers=") {
            workers = match v.parse() {
                Ok(n) if n > 0 => n,
                _ => usage(),
            };
        } else if let Some(v) = a.strip_prefix("--out=") {
            out = Some(v.to_string());
        } else if let Some(v) = a.strip_prefix("--filter=") {
            filter = Some(v.to_string());
        } else if let Some(v) = a.strip_prefix("--child=") {
            child = Some(v.to_string());
        } else {
            usage();
        }
    }
    if child.is_none() {
        let out = out.unwrap_or_else(|| usage());
        *REPORT.lock().unwrap() = Some(Report {
            out,
            workers,
            smoke,
            entries: Vec::new(),
            notes: vec![
                ("ping_pong/tokio", NOTE_PING_PONG_TOKIO),
                ("fanout_limit/rayon", NOTE_FANOUT_RAYON),
                ("strand_pingpong/rayon", NOTE_STRAND_RAYON),
                ("yield/rayon", NOTE_YIELD_RAYON),
                ("io_pingpong/rayon", NOTE_IO_RAYON),
            ],
        });
    }
    std::thread::spawn(watchdog);

    let size = |full: u64, small: u64| if smoke { small } else { full };
    let reps = |full: usize| if smoke { 1 } else { full };
    let run = Runner { filter, limit_s: if smoke { 60 } else { 300 }, workers, smoke, child };
    let w = workers;

    let n = size(1_000_000, 2000);
    run.bench("spawn_many/tokio", reps(5), || tokio_peer::spawn_many(w, n));
    run.bench("spawn_many/rayon", reps(5), || rayon_peer::spawn_many(w, n));
    run.bench("spawn_remote/tokio", reps(5), || tokio_peer::spawn_remote(w, n));
    run.bench("spawn_remote/rayon", reps(5), || rayon_peer::spawn_remote(w, n));

    let rounds = size(100_000, 300);
    run.bench("ping_pong/tokio", reps(3), || tokio_peer::ping_pong(w, rounds));
    run.bench("ping_pong/rayon", reps(3), || rayon_peer::ping_pong(w, rounds));

    let samples = size(20_000, 100);
    let idle_s = if smoke { 0.2 } else { 2.0 };
    run.bench("wake/tokio", 1, || tokio_peer::wake(w, samples, 200_000, idle_s));
    {
        use tokio_peer::BlockingMode as M;
        run.bench("blocking/tokio/none", 1, || tokio_peer::blocking(w, M::None, samples, 50_000));
        run.bench("blocking/tokio/workers", 1, || {
            tokio_peer::blocking(w, M::Workers, samples, 50_000)
        });
        run.bench("blocking/tokio/side", 1, || tokio_peer::blocking(w, M::Side, samples, 50_000));
    }
    run.bench("wake/rayon", 1, || rayon_peer::wake(w, samples, 200_000, idle_s));

    let hops = size(1_000_000, 2000);
    run.bench("chain/tokio", reps(5), || tokio_peer::chain(w, hops));
    run.bench("chain/rayon", reps(5), || rayon_peer::chain(w, hops));
    run.bench("yield/tokio", reps(5), || tokio_peer::yield_many(w, size(200_000, 2000)));

    for full_n in [25u32, 30] {
        let fib_n = if smoke { full_n - 10 } else { full_n };
        run.bench(&format!("fib/tokio/{}", full_n), reps(3), || tokio_peer::fib(w, fib_n));
        run.bench(&format!("fib/rayon/{}", full_n), reps(3), || rayon_peer::fib(w, fib_n));
    }

    let leaves = size(1_000_000, 1000);
    run.bench_alone("skynet/tokio", reps(3), || tokio_peer::skynet(w, leaves));
    run.bench_alone("skynet/rayon", reps(3), || rayon_peer::skynet(w, leaves));

    let cases: [(&str, u64, u64, usize); 3] = [
        ("empty/1e5", size(100_000, 1000), 0, reps(3)),
        ("empty/1e7", size(10_000_000, 2000), 0, 1),
        ("work10us/1e5", size(100_000, 200), 10_000, reps(3)),
    ];
    for (case, calls, work_ns, case_reps) in cases {
        run.bench_alone(&format!("fanout_limit/tokio/{}", case), case_reps, || {
            tokio_peer::fanout(w, calls, 64, work_ns)
        });
    }

    let strand_rounds = size(100_000, 300);
    run.bench("strand_pingpong/tokio", reps(3), || tokio_peer::strand_pingpong(w, strand_rounds));

    let io_rounds = size(100_000, 300);
    run.bench("io_pingpong/tokio", reps(3), || tokio_peer::io_pingpong(w, io_rounds));

    let guard = REPORT.lock().unwrap();
    let r = match guard.as_ref() {
        Some(r) => r,
        None => std::process::exit(0),
    };
    if let Err(e) = r.write() {
        eprintln!("rust-bench: {}", e);
        std::process::exit(1);
    }
    std::process::exit(if r.failed() { 1 } else { 0 });
}
