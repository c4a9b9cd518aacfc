#!/usr/bin/env python3
"""Turns strix-bench's Google Benchmark JSON into the comparison table (and a PNG chart).

One row per workload and figure, one column per implementation, then the ratio of each peer to
strix (> 1 means strix is better: lower time or latency). Repeated benchmarks are read from their
median aggregate. --check fails (exit 1) if any benchmark reported an error or is missing figures.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

IMPLS = ["strix", "thpool", "uv", "omp", "tbb", "futex", "mutex"]
FIGURES = {
    "spawn_many": ["ns_per_task"],
    "spawn_remote": ["ns_per_task"],
    "ping_pong": ["p50_ns", "p99_ns", "p999_ns", "max_ns"],
    "wake": ["p50_ns", "p99_ns", "p999_ns", "idle_cpu_pct"],
    "timers": ["insert_ns", "cancel_ns", "expiry_ns", "bytes_per_timer", "svc_insert_ns",
               "svc_cancel_ns", "svc_bytes_per_timer", "lateness_p99_ticks", "svc_idle_cpu_pct"],
    "breaker": ["done_ns"],
    "chain": ["ns_per_task"],
    "chain/breaker": ["ns_per_task"],
    "skynet": ["ns_per_task", "rss_kib"],
    "fib/25": ["ns_per_task", "speedup"],
    "fib/30": ["ns_per_task", "speedup"],
    "fanout_limit/empty/1e5": ["ns_per_task", "max_inflight", "rss_kib"],
    "fanout_limit/empty/1e7": ["ns_per_task", "max_inflight", "rss_kib"],
    "fanout_limit/work10us/1e5": ["ns_per_task", "max_inflight", "rss_kib"],
    "retry_storm": ["lost", "duplicated", "p50_ns", "p99_ns", "idle_p50_ns", "idle_p99_ns"],
    "circuit/1": ["ns_per_task", "allocs_per_call"],
    "circuit/2": ["ns_per_task", "allocs_per_call"],
    "pipeline": ["ns_per_task", "allocs_per_call"],
    "group_signal": ["p50_ns", "p99_ns", "max_ns"],
}
# Figures where higher is better (the ratio column is then strix / peer's inverse).
HIGHER_BETTER = {"speedup"}
# Figures that are counts or checks, not compared.
NO_RATIO = {"idle_cpu_pct", "lost", "duplicated", "rss_kib", "max_inflight", "allocs_per_call"}


def split_name(name):
    """'fib/strix/25/iterations:1/...' -> ('fib/25', 'strix'); 'chain/strix/breaker' ->
    ('chain/breaker', 'strix')."""
    parts = [p for p in name.split("/") if ":" not in p and p != "manual_time"]
    workload, impl = parts[0], parts[1]
    if len(parts) > 2:
        workload += "/" + "/".join(parts[2:])
    return workload, impl


def load(path):
    with open(path) as f:
        data = json.load(f)
    results, errors = {}, []
    for b in data.get("benchmarks", []):
        name = b.get("run_name", b["name"])
        workload, impl = split_name(name)
        if b.get("error_occurred"):
            errors.append(f"{workload}/{impl}: {b.get('error_message')}")
            continue
        agg = b.get("aggregate_name")
        if agg not in (None, "median"):
            continue
        results[(workload, impl)] = b
    return data, results, errors


def fmt(v):
    if v is None:
        return "-"
    if v >= 100:
        return f"{v:,.0f}"
    return f"{v:.3g}"


def table(results):
    rows = []
    for workload, figures in FIGURES.items():
        impls = [i for i in IMPLS if (workload, i) in results]
        if not impls:
            continue
        for fig in figures:
            vals = {i: results[(workload, i)].get(fig) for i in impls}
            s = vals.get("strix")
            ratios = []
            for i in impls:
                if i == "strix" or fig in NO_RATIO:
                    continue
                v = vals[i]
                if fig in HIGHER_BETTER and s and v:
                    ratios.append(f"{i}/strix {s / v:.2f}x")
                elif s and v is not None:
                    ratios.append(f"{i}/strix {v / s:.2f}x")
            rows.append((f"{workload} {fig}", [(i, vals[i]) for i in impls], ratios))
    return rows


def markdown(rows):
    lines = ["| workload / figure | " + " | ".join(IMPLS) + " | peer / strix |",
             "|---|" + "---|" * len(IMPLS) + "---|"]
    for label, vals, ratios in rows:
        d = dict(vals)
        cells = [fmt(d[i]) if i in d else "" for i in IMPLS]
        lines.append(f"| {label} | " + " | ".join(cells) + " | " + ", ".join(ratios) + " |")
    return "\n".join(lines)


def chart(rows, png):
    """Bar chart of peer/strix ratios (log scale), one group per figure."""
    data = []
    for label, vals, ratios in rows:
        for r in ratios:
            impl, x = r.split("/strix ")
            data.append((label, impl, float(x.rstrip("x"))))
    if not data:
        return
    with tempfile.NamedTemporaryFile("w", suffix=".dat", delete=False) as f:
        for label, impl, x in data:
            f.write(f'"{label}: {impl}" {x}\n')
        dat = f.name
    script = f"""
set terminal pngcairo size 1400,600 noenhanced
set output '{png}'
set title 'strix vs peers: peer / strix (higher = strix better), same run'
set style fill solid 0.8
set boxwidth 0.7
set logscale y
set yrange [0.1:*]
set grid ytics
set xtics rotate by -45 font ',8'
set ylabel 'ratio'
plot '{dat}' using 0:2:xtic(1) with boxes notitle, 1 with lines lc rgb 'red' title 'parity'
"""
    try:
        subprocess.run(["gnuplot"], input=script, text=True, check=True,
                       stdout=subprocess.DEVNULL)
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"bench_report: no chart ({e})", file=sys.stderr)
    finally:
        os.unlink(dat)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("json")
    ap.add_argument("--markdown")
    ap.add_argument("--png")
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args()
    data, results, errors = load(a.json)
    rows = table(results)
    md = markdown(rows)
    ctx = data.get("context", {})
    print(f"\nstrix bench report ({ctx.get('date', '')}, {ctx.get('num_cpus', '?')} CPUs, "
          f"workers={ctx.get('workers', '?')})")
    print(md)
    for e in errors:
        print(f"ERROR {e}", file=sys.stderr)
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(md + "\n")
    if a.png:
        chart(rows, a.png)
        print(f"chart: {a.png}")
    missing = [k for k in [(w, "strix") for w in FIGURES] if k not in results]
    if a.check and (errors or missing):
        for m in missing:
            print(f"MISSING {m[0]}/{m[1]}", file=sys.stderr)
        sys.exit(1)
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
