#!/usr/bin/env python3
"""Turns the suite's results into the comparison table (and a PNG chart).

    bench_report.py RESULTS.json [--load LOAD.json] [--peers MANIFEST] [--markdown OUT.md]
                    [--png OUT.png] [--check] [--verdict]

RESULTS.json is strix-bench's Google Benchmark JSON. One row per workload and figure, one column
per implementation present, then the ratio of each peer to strix (> 1 means strix is better:
lower time or latency, or higher speedup). Repeated benchmarks are read from their median
aggregate. After the table, a list of notes: every note the peer programs gave (why a workload is
missing or shaped differently), numbered and marked in the cells it concerns, then the errors.

--peers takes tools/bench_all.sh's manifest (one line per peer program: "PROGRAM STATUS FILE")
and merges each program's JSON (bench/peers/README.md) into RESULTS.json, once: its benchmarks
appended (each tagged "peer": PROGRAM, so a second merge replaces them), its "notes" into the
top-level "notes" object, its context, exit status and file under "peers". A program that exited
nonzero or wrote no readable JSON adds an error entry ("peer/PROGRAM").

--load takes tools/bench_load.py's record of how busy the machine was and stores it in
RESULTS.json as "machine_load" (so a later re-render keeps it); without --load the field already
in RESULTS.json is used. When it says the run is untrustworthy, the table starts with a warning
line and the chart's title says so.
--check fails (exit 1) if any benchmark reported an error (a peer program's included), a figure
that must be zero is not (CHECK_ZERO), strix is missing a workload (but one whose module this
strix-bench was built without, STRIX_MODULE_ROWS), or a result names a workload or implementation
the tables do not know (the smoke run); a busy machine is reported but does not fail it.
Without --check the exit status is 1 on errors, after the report is written.
--verdict prints only the machine-load line.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import textwrap

# The table's columns, in this order; only those with a result (or a note) in the run appear.
IMPLS = ["strix", "thpool", "uv", "omp", "tbb", "asio", "go", "tokio", "rayon", "futex", "mutex",
         "fixed", "plain"]
# One colour per implementation, the same in every panel (strix the strongest).
COLOURS = {"strix": "#d95f02", "thpool": "#1f78b4", "uv": "#33a02c", "omp": "#6a3d9a",
           "tbb": "#b8860b", "asio": "#222222", "go": "#17becf", "tokio": "#8c564b",
           "rayon": "#b2182b", "futex": "#7f7f7f", "mutex": "#e7298a", "fixed": "#66a61e",
           "plain": "#a6761d"}
FIGURES = {
    "spawn_many": ["ns_per_task"],
    "spawn_remote": ["ns_per_task"],
    "spawn_many_reused": ["ns_per_task"],
    "spawn_remote_reused": ["ns_per_task"],
    "spawn_many_resized": ["ns_per_task"],
    "sustained": ["p50_ns", "p99_ns", "p999_ns", "max_ns", "rss_start_kib", "rss_end_kib",
                  "rss_max_kib"],
    "ping_pong": ["p50_ns", "p99_ns", "p999_ns", "max_ns"],
    "wake": ["p50_ns", "p99_ns", "p999_ns", "idle_cpu_pct"],
    "io_pingpong": ["p50_ns", "p99_ns", "p999_ns", "max_ns"],
    "timers": ["insert_ns", "cancel_ns", "expiry_ns", "bytes_per_timer", "svc_insert_ns",
               "svc_cancel_ns", "svc_bytes_per_timer", "lateness_p99_ticks", "svc_idle_cpu_pct"],
    "breaker": ["done_ns"],
    "chain": ["ns_per_task"],
    "chain/breaker": ["ns_per_task"],
    "yield": ["ns_per_task"],
    "skynet": ["ns_per_task", "rss_kib"],
    "fib/25": ["ns_per_task", "speedup"],
    "fib/30": ["ns_per_task", "speedup"],
    "fanout_limit/empty/1e5": ["ns_per_task", "max_inflight", "rss_kib"],
    "fanout_limit/empty/1e7": ["ns_per_task", "max_inflight", "rss_kib"],
    "fanout_limit/work10us/1e5": ["ns_per_task", "max_inflight", "rss_kib"],
    "retry_storm": ["lost", "duplicated", "p50_ns", "p99_ns", "idle_p50_ns", "idle_p99_ns"],
    "circuit/1": ["ns_per_task", "allocs_per_call"],
    "circuit/2": ["ns_per_task", "allocs_per_call"],
    "ratelimit/1": ["ns_per_task", "false_refusals"],
    "ratelimit/2": ["ns_per_task", "false_refusals"],
    "pipeline": ["ns_per_task", "allocs_per_call"],
    "pipeline6": ["ns_per_task", "allocs_per_call"],
    "pipeline7": ["ns_per_task", "allocs_per_call"],
    "policy/none": ["ns_per_task", "allocs_per_call"],
    "policy/ratelimit": ["ns_per_task", "allocs_per_call"],
    "policy/timeout": ["ns_per_task", "allocs_per_call"],
    "policy/retry": ["ns_per_task", "allocs_per_call"],
    "policy/circuit": ["ns_per_task", "allocs_per_call"],
    "policy/bulkhead": ["ns_per_task", "allocs_per_call"],
    "policy/adaptive": ["ns_per_task", "allocs_per_call"],
    "policy/chaos_off": ["ns_per_task", "allocs_per_call"],
    "policy/hedge": ["ns_per_task", "allocs_per_call"],
    "policy/timeout_hedge": ["ns_per_task", "allocs_per_call"],
    "strand_spawn": ["ns_per_task"],
    "strand_pingpong": ["p50_ns", "p99_ns", "p999_ns", "max_ns"],
    "group_signal": ["p50_ns", "p99_ns", "max_ns"],
    "blocking/none": ["p50_ns", "p99_ns", "p999_ns", "max_ns"],
    "blocking/workers": ["p50_ns", "p99_ns", "p999_ns", "max_ns"],
    "blocking/side": ["p50_ns", "p99_ns", "p999_ns", "max_ns"],
    "registry/1e3/1": ["ns_per_task", "bytes_per_key"],
    "registry/1e3/2": ["ns_per_task", "bytes_per_key"],
    "registry/1e5/1": ["ns_per_task", "bytes_per_key"],
    "registry/1e5/2": ["ns_per_task", "bytes_per_key"],
    "registry/1e6/1": ["ns_per_task", "bytes_per_key"],
    "registry/1e6/2": ["ns_per_task", "bytes_per_key"],
    "registry/churn1e5/1": ["ns_per_task", "bytes_per_key"],
    "registry/churn1e5/2": ["ns_per_task", "bytes_per_key"],
    "adaptive": ["p99_ns", "rejected_pct", "calls_per_s", "limit_before", "limit_after",
                 "converge_ns"],
    "hedge": ["p50_ns", "p99_ns", "extra_load_pct"],
}
# Why an implementation linked into strix-bench has no figure for a workload (the peer programs
# give theirs in their own JSON, merged into "notes").
IN_PROCESS_NOTES = {
    "fib/asio": "Boost.Asio (1.74) has no join: a handler can only post more work, and blocking "
                "a pool thread on a child's result (use_future) deadlocks once every thread "
                "waits, so fork-join fib would be a hand-written continuation scheme, not Asio",
    "skynet/asio": "Boost.Asio has no way to join results up a task tree: summing it needs "
                   "hand-written per-node counters and parent links (or blocking futures, which "
                   "deadlock a fixed pool)",
    "fanout_limit/asio": "Boost.Asio has no bound on handlers in flight: post always adds to the "
                         "pool's unbounded queue and 1.74 has no semaphore or channel, so a "
                         "64-call limit would be a hand-written semaphore, not Asio",
    "spawn_remote/omp": "OpenMP has no way to submit from a thread outside its team",
}
# Rows strix-bench has only when it was built with the strix module they use: the context key
# that says whether it was, and the note for strix's cell when it says "no" (then --check does not
# miss that row).
STRIX_MODULE_ROWS = {
    "io_pingpong": ("strix_io", "this strix-bench was built without strix's I/O module "
                    "(bench/bench.mk builds bench/io_bench.c only when include/strix/io.h "
                    "exists), so the row has its peers alone"),
}
# Characters of check text per line in the chart (two columns, each under half its width).
CHECK_COLUMN_CHARS = 70
# Figures where higher is better (the ratio column is then strix / peer).
HIGHER_BETTER = {"speedup", "calls_per_s"}
# Figures that are counts or checks, not compared.
NO_RATIO = {"idle_cpu_pct", "svc_idle_cpu_pct", "lost", "duplicated", "rss_kib", "max_inflight",
            "allocs_per_call", "bytes_per_timer", "svc_bytes_per_timer", "lateness_p99_ticks",
            "rss_start_kib", "rss_end_kib", "rss_max_kib", "false_refusals", "rejected_pct",
            "limit_before", "limit_after", "converge_ns", "extra_load_pct", "bytes_per_key"}
# Checks: figures that must be 0 for every implementation, or the result is wrong.
CHECK_ZERO = {"lost", "duplicated", "false_refusals"}
# Figures in nanoseconds: per task or call, and latency samples.
LATENCY = {"p50_ns", "p99_ns", "p999_ns", "max_ns", "idle_p50_ns", "idle_p99_ns"}


def is_time(fig):
    return fig.endswith("_ns") or fig == "ns_per_task"


def split_name(name):
    """'fib/strix/25/iterations:1/...' -> ('fib/25', 'strix'); 'chain/strix/breaker' ->
    ('chain/breaker', 'strix'); a name without an implementation -> (name, '')."""
    parts = [p for p in name.split("/") if ":" not in p and p != "manual_time"]
    if len(parts) < 2:
        return (parts[0] if parts else name), ""
    workload, impl = parts[0], parts[1]
    if len(parts) > 2:
        workload += "/" + "/".join(parts[2:])
    return workload, impl


def merge_peers(data, manifest):
    """Merges the peer programs' JSON named in tools/bench_all.sh's manifest into data."""
    with open(manifest) as f:
        lines = [ln.strip().split(None, 2) for ln in f if ln.strip()]
    benches = data.setdefault("benchmarks", [])
    notes = data.setdefault("notes", {})
    peers = data.setdefault("peers", {})
    for prog, status, path in lines:
        status = int(status)
        benches[:] = [b for b in benches if b.get("peer") != prog]
        peer, problem = None, None
        try:
            with open(path) as f:
                peer = json.load(f)
            if not isinstance(peer, dict) or not isinstance(peer.get("benchmarks", []), list):
                peer, problem = None, f"{path} is not a results object"
        except FileNotFoundError:
            problem = f"wrote no {path}"
        except ValueError as e:
            problem = f"{path} is not JSON ({e})"
        if peer is not None:
            for b in peer.get("benchmarks", []):
                if isinstance(b, dict):
                    benches.append(dict(b, peer=prog))
            for k, v in (peer.get("notes") or {}).items():
                notes[k] = v
        if status != 0 or problem:
            msg = f"{prog} exited with status {status}" if status != 0 else prog
            benches.append({"name": f"peer/{prog}", "run_name": f"peer/{prog}", "peer": prog,
                            "error_occurred": True,
                            "error_message": msg + (f"; {problem}" if problem else "")})
        peers[prog] = {"exit_status": status, "results": path,
                       "context": (peer or {}).get("context", {})}


def parse(data):
    """({(workload, impl): entry}, [(workload, impl, error)], [unknown names])."""
    results, errors, unknown = {}, [], []
    for b in data.get("benchmarks", []):
        workload, impl = split_name(b.get("run_name") or b.get("name") or "?")
        if b.get("error_occurred"):
            errors.append((workload, impl, b.get("error_message") or "failed"))
            continue
        if b.get("aggregate_name") not in (None, "median"):
            continue
        if workload not in FIGURES or impl not in IMPLS:
            if run_name(workload, impl) not in unknown:
                unknown.append(run_name(workload, impl))
            continue
        results[(workload, impl)] = b
    for (workload, impl), b in sorted(results.items()):
        for fig in FIGURES[workload]:
            if fig in CHECK_ZERO and b.get(fig) != 0:
                what = "not reported" if b.get(fig) is None else f"= {fmt(b[fig])}"
                errors.append((workload, impl, f"{fig} {what}, must be 0"))
    # A peer program run with another worker count than strix-bench does not compare.
    sw = str(data.get("context", {}).get("workers", ""))
    for prog, p in data.get("peers", {}).items():
        pw = str(p.get("context", {}).get("workers", ""))
        if sw and pw and pw != sw:
            errors.append(("peer", prog, f"ran with workers={pw}, strix-bench with {sw}"))
    return results, errors, unknown


def fmt(v):
    if v is None:
        return "-"
    if v >= 100:
        return f"{v:,.0f}"
    return f"{v:.3g}"


def fmt_ratio(r):
    return f"{r:.2f}x" if r >= 0.1 else f"{r:.2g}x"


def table(results):
    """[(workload, figure, {impl: value}, {peer: ratio})], in FIGURES order."""
    rows = []
    for workload, figures in FIGURES.items():
        impls = [i for i in IMPLS if (workload, i) in results]
        if not impls:
            continue
        for fig in figures:
            vals = {i: results[(workload, i)].get(fig) for i in impls}
            s = vals.get("strix")
            ratios = {}
            for i in impls:
                v = vals[i]
                if i == "strix" or fig in NO_RATIO or not s or v is None:
                    continue
                if fig in HIGHER_BETTER:
                    if v:
                        ratios[i] = s / v
                else:
                    ratios[i] = v / s
            rows.append((workload, fig, vals, ratios))
    return rows


def run_name(workload, impl):
    """('fib/30', 'go') -> 'fib/go/30', the name the benchmark has in the results."""
    head, _, rest = workload.partition("/")
    return "/".join(x for x in (head, impl, rest) if x)


def concerns(key, workload, impl):
    """Whether the note or error named key ('<workload>/<impl>[/<arg>]', as the peers name their
    notes) is about this cell: the same impl, and the workload itself or one of its cases
    ('fib/go' covers fib/25 and fib/30, 'fanout_limit/rayon' every fanout_limit case)."""
    w, i = split_name(key)
    return i == impl and (workload == w or workload.startswith(w + "/"))


def load_line(ml):
    """The machine-load line of the report: a warning when the run is untrustworthy."""
    if not ml:
        return ("Machine load: not recorded for this run (run before tools/bench_load.py "
                "existed, or not through tools/bench.sh).")
    figures = (f"other processes used {ml['others_share']:.1%} of the CPU time over the run, "
               f"at most {ml['others_worst_interval_share']:.0%} in any {ml['interval_s']:g} s "
               f"interval; the benchmark programs used {ml['bench_cpu_s']:.1f} s of CPU in "
               f"{ml['wall_s']:.1f} s; the 1-minute load average was {ml['load1_before']:.2f} "
               f"before and at most {ml['load1_max']:.2f} during, on {ml['online_cpus']} CPUs")
    if ml["untrustworthy"]:
        return ("**WARNING: this run is untrustworthy, the machine was busy:** "
                + "; ".join(ml["reasons"]) + ". Compare nothing from it; run it again on a quiet "
                "machine.")
    return f"Machine load: quiet. {figures[0].upper()}{figures[1:]}."


def peers_line(peers):
    if not peers:
        return "Peer programs: none in this run."
    out = []
    for prog, p in peers.items():
        c = p.get("context", {})
        impls = ", ".join(c.get("impl", [])) or "?"
        out.append(f"{prog} ({impls}; {c.get('version', '?')}; workers={c.get('workers', '?')}; "
                   f"exit status {p.get('exit_status', '?')})")
    return "Peer programs, run after strix-bench: " + "; ".join(out) + "."


def markdown(rows, ctx, ml, notes, errors, unknown, peers):
    """The table, one column per implementation present; cells carry [k] for note k (a peer's
    reason for a missing or differently shaped figure) and 'error' where the run failed."""
    def cell_keys(workload, impl):
        return [k for k in notes if concerns(k, workload, impl)]

    workloads = list(dict.fromkeys(w for w, _, _, _ in rows))
    cols = [i for i in IMPLS
            if any(i in v for _, _, v, _ in rows)
            or any(concerns(k, w, i) for k in notes for w in workloads)]
    numbers = {}
    lines = [load_line(ml), "",
             f"strix-bench {ctx.get('date', '')}: {ctx.get('num_cpus', '?')} CPUs, "
             f"workers={ctx.get('workers', '?')}, smoke={ctx.get('smoke', '?')}. "
             "Medians of the repetitions; ratios are peer / strix (for speedup strix / peer): "
             "above 1, strix is ahead. [k]: note k below the table.", "",
             peers_line(peers), "",
             "| workload / figure | " + " | ".join(cols) + " | peer / strix |",
             "|---|" + "---|" * len(cols) + "---|"]
    for workload, fig, vals, ratios in rows:
        cells = []
        for i in cols:
            marks = []
            for k in cell_keys(workload, i):
                numbers.setdefault(k, len(numbers) + 1)
                marks.append(f"[{numbers[k]}]")
            if i in vals:
                text = fmt(vals[i]) if vals[i] is not None else "n/a"
            elif any(w == workload and im == i for w, im, _ in errors):
                text = "error"
            else:
                text = "-" if marks else ""
            cells.append(" ".join([text] + marks) if marks else text)
        r = ", ".join(f"{i} {fmt_ratio(x)}" for i, x in ratios.items())
        lines.append(f"| {workload} {fig} | " + " | ".join(cells) + f" | {r} |")
    for k in sorted(notes):
        numbers.setdefault(k, len(numbers) + 1)
    if numbers:
        lines += ["", "Notes:", ""]
        for k, n in sorted(numbers.items(), key=lambda kv: kv[1]):
            lines.append(f"{n}. `{k}`: {notes[k]}")
    if errors or unknown:
        lines += ["", "Errors:", ""]
        lines += [f"- `{run_name(w, i)}`: {e}" for w, i, e in errors]
        lines += [f"- `{u}`: not in the report's tables (FIGURES, IMPLS in "
                  "tools/bench_report.py)" for u in unknown]
    return "\n".join(lines)


# ---- chart -------------------------------------------------------------------------------------

def gp_str(s):
    return "'" + s.replace("'", "''") + "'"


def decade_tics(lo, hi):
    """Explicit tics at powers of ten, 1k/1M/1G above a thousand (no 'm' for milli)."""
    tics, e = [], math.floor(math.log10(lo))
    while 10 ** e <= hi:
        v = 10 ** e
        text = f"{v:g}" if v < 1000 else f"{v // 1000 ** (e // 3):g}" + " kMG"[e // 3]
        tics.append(f"'{text}' {v:g}")
        e += 1
    return "set format x '%g'; set xtics (" + ", ".join(tics) + ")"


class Panel:
    """One horizontal bar panel: groups of bars (one bar per implementation) on a shared axis."""

    def __init__(self, title, xlabel, log, groups):
        self.title, self.xlabel, self.log = title, xlabel, log
        self.groups = groups  # [(label, [(impl, value, note)])]

    def bars(self):
        return sum(len(g[1]) for g in self.groups)

    def height(self):  # in bar units, with room for the title and the axis
        return self.bars() + 0.6 * len(self.groups) + 6

    def script(self, name):
        """Datablocks and plot commands; y grows downwards, one unit per bar."""
        blocks, tics, labels = {}, [], []
        y = 0.0
        for label, bars in self.groups:
            top = y
            for impl, v, note in bars:
                blocks.setdefault(impl, []).append((y, v))
                labels.append((y, v, fmt(v) + note))
                y += 1
            tics.append((label, (top + y - 1) / 2))
            y += 0.6
        vals = [v for _, bars in self.groups for _, v, _ in bars if v is not None and v > 0]
        if self.log:
            lo = 10 ** math.floor(math.log10(min(vals))) if vals else 1
            hi = max(vals) * 15 if vals else 10  # room for the value labels
            base = lo
        else:
            lo, hi, base = 0, (max(vals) if vals else 1) * 1.35, 0
        out = [f"set title {gp_str(self.title)} font ',11'",
               f"set xlabel {gp_str(self.xlabel)}",
               "set logscale x" if self.log else "unset logscale x",
               f"set yrange [{y - 0.4}:-0.6]",
               f"set xrange [{lo * 0.999 if self.log else lo}:{hi}]",  # keep the first tic
               decade_tics(lo, hi) if self.log else "set xtics autofreq; set format x '%g'",
               "set ytics (" + ", ".join(f"{gp_str(l)} {p}" for l, p in tics) + ")",
               ]
        for impl, pts in blocks.items():
            out.append(f"${name}_{impl} << EOD")
            out += [f"{yy} {v if v is not None else 'NaN'}" for yy, v in pts]
            out.append("EOD")
        out.append(f"${name}_lab << EOD")
        for yy, v, text in labels:
            x = v if v is not None and (v > 0 or not self.log) else base
            out.append(f"{x} {yy} \"{text}\"")
        out.append("EOD")
        plots = [f"${name}_{impl} using ({base}):1:({base}):2:($1-0.4):($1+0.4) "
                 f"with boxxyerror fs solid 0.85 noborder lc rgb '{COLOURS.get(impl, '#000000')}' "
                 "notitle" for impl in blocks]
        plots.append(f"${name}_lab using 1:2:3 with labels left offset char 0.4,0 "
                     "font ',8' notitle")
        out.append("plot " + ", \\\n     ".join(plots))
        return "\n".join(out)


def panels(rows):
    def note(fig, ratios, impl):
        r = ratios.get(impl)
        return "" if r is None else f"  ({fmt_ratio(r)})"

    compared = [r for r in rows if any(i != "strix" and v is not None for i, v in r[2].items())]
    alone = [r for r in rows if r not in compared]
    groups = {"time": [], "latency": [], "speedup": [], "alone": []}
    for workload, fig, vals, ratios in compared:
        bars = [(i, vals[i], note(fig, ratios, i)) for i in IMPLS if i in vals]
        if fig in HIGHER_BETTER:
            groups["speedup"].append((workload, bars))
        elif fig in LATENCY:
            groups["latency"].append((f"{workload} {fig.replace('_ns', '')}", bars))
        elif is_time(fig):
            label = workload if fig == "ns_per_task" else f"{workload} {fig}"
            groups["time"].append((label, bars))
    for workload, fig, vals, ratios in alone:
        if is_time(fig) and vals.get("strix") is not None:
            groups["alone"].append((f"{workload} {fig}", [("strix", vals["strix"], "")]))
    panels = [
        ("time", "Time per task or call, against peers (shorter is better)",
         "ns per task or call (log scale)", True),
        ("latency", "Latency percentiles, against peers (shorter is better)",
         "ns per hand-off or wake-up (log scale)", True),
        ("speedup", "fib speedup, 1 worker -> all workers (longer is better)",
         "speedup (linear scale)", False),
        ("alone", "strix only (no peer measured): time per operation and latency",
         "ns (log scale)", True),
    ]
    out = [Panel(title, axis, log, groups[key]) for key, title, axis, log in panels if groups[key]]
    # The rest: counts, checks and sizes, as text.
    checks = [(w, f, v) for w, f, v, _ in rows if not is_time(f) and f not in HIGHER_BETTER]
    return out, checks


def chart(rows, png, ctx, ml):
    """Horizontal bar panels grouped by figure kind, one colour per implementation."""
    pans, checks = panels(rows)
    if not pans:
        return
    bar_px = 17
    check_cols = 2
    # Each check as text, wrapped to fit its column (continuations indented).
    check_text = []
    for w, f, v in checks:
        text = f"{w} {f}: " + ", ".join(f"{i} {fmt(x)}" for i, x in v.items())
        check_text += textwrap.wrap(text, width=CHECK_COLUMN_CHARS, subsequent_indent="    ")
    check_lines = math.ceil(len(check_text) / check_cols)
    # Two columns, each panel (then the text of checks) going to the shorter one, in order.
    items = [(p, p.height() * bar_px) for p in pans]
    if checks:
        items.append(("checks", 40 + 16 * check_lines))
    cols = [[], []]
    for it in items:
        min(cols, key=lambda c: sum(h for _, h in c)).append(it)
    col_px = max(sum(h for _, h in c) for c in cols)
    warn = []
    if ml and ml["untrustworthy"]:
        warn = textwrap.wrap("UNTRUSTWORTHY RUN, the machine was busy: "
                             + "; ".join(ml["reasons"]), 170)
    head_px = 84 + 18 * len(warn)
    width, height = 1800, int(head_px + col_px + 10)

    def sy(px):  # pixels from the top -> screen fraction from the bottom
        return 1 - px / height

    title = (f"strix-bench {ctx.get('date', '')[:16]}   {ctx.get('num_cpus', '?')} CPUs, "
             f"workers={ctx.get('workers', '?')}" + ("   SMOKE RUN (tiny sizes)"
                                                    if ctx.get("smoke") == "yes" else ""))
    s = [f"set terminal pngcairo size {width},{height} noenhanced font 'Sans,9'",
         f"set output {gp_str(png)}",
         "set multiplot",
         "set style fill solid 0.85 noborder",
         "set grid xtics lc rgb '#dddddd'",
         "set tics nomirror", "set ytics scale 0 font ',9'",
         "set lmargin 30", "set rmargin 3", "set tmargin 2.5", "set bmargin 3.5",
         "unset key"]
    s.append(f"set label 1 {gp_str(title)} at screen 0.5, {sy(22)} center font ',14'")
    sub = ("bar labels: value, and for peers (peer / strix; for speedup strix / peer): "
           "above 1x strix is ahead. Medians of the repetitions, all from one run.")
    s.append(f"set label 2 {gp_str(sub)} at screen 0.5, {sy(44)} center font ',9'")
    for k, line in enumerate(warn):
        s.append(f"set label {k + 3} {gp_str(line)} at screen 0.5, {sy(66 + 18 * k)} center "
                 "font ',11' tc rgb '#cc0000'")
    # The legend: one swatch per implementation present.
    present = [i for i in IMPLS if any(i in r[2] for r in rows)]
    x0 = 0.5 - 0.04 * len(present)
    for k, impl in enumerate(present):
        x = x0 + 0.08 * k
        yy = sy(head_px - 14)
        s.append(f"set object {k + 1} rect at screen {x}, {yy} size screen 0.012, screen "
                 f"{10 / height} fc rgb '{COLOURS.get(impl, '#000000')}' fs solid noborder")
        s.append(f"set label {k + 20} {gp_str(impl)} at screen {x + 0.01}, {yy} left font ',10'")
    first = True
    text_at = None
    for c, col in enumerate(cols):
        top = head_px
        for n, (p, h) in enumerate(col):
            if p == "checks":
                text_at = (0.5 * c, top)
            else:
                s.append(f"set origin {0.5 * c}, {sy(top + h)}")
                s.append(f"set size 0.5, {h / height}")
                s.append(p.script(f"p{c}{n}"))
                if first:  # the labels and objects above belong to the first plot only
                    s.append("unset label; unset object")
                    first = False
            top += h
    if text_at:
        x0, y0 = text_at
        y0 += 12
        s.append(f"set label 1 {gp_str('Counts, checks and sizes (not compared)')} "
                 f"at screen {x0 + 0.01}, {sy(y0)} left font ',11'")
        for k, text in enumerate(check_text):
            col, line = divmod(k, check_lines)
            s.append(f"set label {k + 2} {gp_str(text)} at screen {x0 + 0.01 + col * 0.24}, "
                     f"{sy(y0 + 24 + 16 * line)} left font ',9'")
        s += ["set origin 0,0", "set size 1,1", "unset border", "unset tics", "unset grid",
              "unset xlabel", "unset title", "unset logscale", "set xrange [0:1]",
              "set yrange [0:1]", "plot NaN notitle"]
    s.append("unset multiplot")
    with tempfile.NamedTemporaryFile("w", suffix=".gp", delete=False) as f:
        f.write("\n".join(s) + "\n")
        gp = f.name
    try:
        subprocess.run(["gnuplot", gp], check=True, stdout=subprocess.DEVNULL)
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"bench_report: no chart ({e}; script kept in {gp})", file=sys.stderr)
        return
    os.unlink(gp)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("json")
    ap.add_argument("--load", help="tools/bench_load.py's output, stored into JSON")
    ap.add_argument("--peers", help="tools/bench_all.sh's manifest: peer results merged into JSON")
    ap.add_argument("--markdown")
    ap.add_argument("--png")
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--verdict", action="store_true")
    a = ap.parse_args()
    try:
        with open(a.json) as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        sys.exit(f"bench_report: no results in {a.json} ({e}); a --benchmark_filter matching "
                 "nothing leaves it empty")
    if a.peers:
        merge_peers(data, a.peers)
    if a.load:
        with open(a.load) as f:
            data["machine_load"] = json.load(f)
    if a.peers or a.load:
        with open(a.json, "w") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
    ml = data.get("machine_load")
    if a.verdict:
        print(load_line(ml))
        sys.exit(0)
    results, errors, unknown = parse(data)
    rows = table(results)
    ctx = data.get("context", {})
    notes = dict(IN_PROCESS_NOTES, **data.get("notes", {}))
    unbuilt = [w for w, (key, _) in STRIX_MODULE_ROWS.items() if ctx.get(key) == "no"]
    for w in unbuilt:
        notes[run_name(w, "strix")] = STRIX_MODULE_ROWS[w][1]
    md = markdown(rows, ctx, ml, notes, errors, unknown, data.get("peers", {}))
    print(f"\nstrix bench report")
    print(md)
    if ml and ml["untrustworthy"]:
        print("\n" + load_line(ml), file=sys.stderr)
    for w, i, e in errors:
        print(f"ERROR {run_name(w, i)}: {e}", file=sys.stderr)
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(md + "\n")
    if a.png:
        chart(rows, a.png, ctx, ml)
        print(f"chart: {a.png}")
    if a.check:
        missing = [w for w in FIGURES if (w, "strix") not in results and w not in unbuilt]
        for m in missing:
            print(f"MISSING {run_name(m, 'strix')}", file=sys.stderr)
        for u in unknown:
            print(f"UNKNOWN {u}: not in the report's tables", file=sys.stderr)
        if errors or missing or unknown:
            sys.exit(1)
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
