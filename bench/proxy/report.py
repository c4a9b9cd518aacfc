#!/usr/bin/env python3
"""Turns the proxy benchmark's runs (tools/bench_proxy.sh) into its report.

    bench/proxy/report.py RUNS [--json OUT.json] [--markdown OUT.md] [--png OUT.png]

RUNS is the folder the script filled: context.json (the settings and versions), load.json
(tools/bench_load.py's record of the machine's load over the measurement), skip-<proxy> (why a
proxy was not run) and one folder per scenario and proxy with meta.json, wrk.txt (wrk's output
with the PROXY_BENCH_JSON line of bench/proxy/wrk.lua), upstream-<n>.json (each upstream's
counts) and, for the strix proxy, proxy-stats.json.

Figures per proxy and scenario:
  requests_per_s        wrk's responses over its duration
  latency_ms            wrk's percentiles (p50, p75, p90, p99, p999), mean and max
  success_share         2xx responses / (responses + requests lost to socket errors: wrk's
                        connect, read and write errors)
  attempts_per_request  requests the three upstreams received / wrk's responses (1.0: no
                        retries; requests in flight when wrk stops count too, at most one per connection)
Python 3 standard library only; the chart needs gnuplot and is skipped without it.
"""
import argparse
import glob
import json
import os
import shutil
import subprocess
import sys

PROXIES = ["nginx", "haproxy", "strix"]
SCENARIOS = ["healthy", "down", "slow", "failing", "resetting", "flapping"]
SCENARIO_TEXT = {
    "healthy": "three good upstreams",
    "down": "one of three refuses connections",
    "slow": "one answers 500 ms late",
    "failing": "one answers 30% of requests with 503",
    "resetting": "one resets 30% of connections",
    "flapping": "one goes down and up every {flap} ms",
}


def load(path, default=None):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def wrk_result(path):
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("PROXY_BENCH_JSON "):
                    return json.loads(line.split(" ", 1)[1])
    except (OSError, ValueError):
        pass
    return None


def one_run(d):
    meta = load(os.path.join(d, "meta.json"), {})
    r = {"scenario": meta.get("scenario", os.path.basename(os.path.dirname(d))),
         "proxy": meta.get("proxy", os.path.basename(d)), "ok": False}
    ups = [load(p) for p in sorted(glob.glob(os.path.join(d, "upstream-[0-9].json")))]
    r["upstreams"] = [u for u in ups if u is not None]
    stats = load(os.path.join(d, "proxy-stats.json"))
    if stats is not None:
        r["proxy_stats"] = stats
    w = wrk_result(os.path.join(d, "wrk.txt"))
    if w is None:
        r["error"] = "no wrk result (see %s)" % d
        return r
    secs = w["duration_us"] / 1e6
    e = w["errors"]
    statuses = {int(k): v for k, v in w["statuses"].items()}
    ok2xx = sum(v for k, v in statuses.items() if 200 <= k < 300)
    lost = e["connect"] + e["read"] + e["write"]
    attempted = w["requests"] + lost
    up_requests = sum(u.get("requests", 0) for u in r["upstreams"])
    r.update({
        "ok": bool(meta.get("ok", True)),
        "duration_s": round(secs, 3),
        "requests": w["requests"],
        "requests_per_s": round(w["requests"] / secs, 1) if secs > 0 else 0.0,
        "latency_ms": {k: round(w["latency_us"][k] / 1000.0, 3)
                       for k in ("p50", "p75", "p90", "p99", "p999", "mean", "max")},
        "statuses": {str(k): statuses[k] for k in sorted(statuses)},
        "socket_errors": e,
        "success_share": round(ok2xx / attempted, 5) if attempted else 0.0,
        "upstream_requests": [u.get("requests", 0) for u in r["upstreams"]],
        "attempts_per_request": round(up_requests / w["requests"], 4) if w["requests"] else None,
    })
    if len(statuses) and sum(statuses.values()) != w["requests"]:
        r["note"] = "the status counts do not add up to wrk's responses"
    return r


def machine_line(load_rec):
    if not load_rec:
        return "Machine load: not recorded."
    if load_rec.get("untrustworthy"):
        return ("**WARNING: this run is untrustworthy, the machine was busy:** "
                + "; ".join(load_rec.get("reasons", []))
                + ". Compare nothing from it; run it again on a quiet machine.")
    return ("Machine load: quiet (other processes used %.0f%% of %d CPUs x %.0f s; the "
            "benchmark itself %.1f s of CPU)." % (100 * load_rec.get("others_share", 0),
                                                  load_rec.get("online_cpus", 0),
                                                  load_rec.get("wall_s", 0),
                                                  load_rec.get("bench_cpu_s", 0)))


def fmt_rate(x):
    return "{:,.0f}".format(x)


def fmt_ms(x):
    return "%.2f" % x if x < 100 else "%.0f" % x


FIGURES = [
    ("requests/s", lambda r: fmt_rate(r["requests_per_s"])),
    ("p50 ms", lambda r: fmt_ms(r["latency_ms"]["p50"])),
    ("p99 ms", lambda r: fmt_ms(r["latency_ms"]["p99"])),
    ("p99.9 ms", lambda r: fmt_ms(r["latency_ms"]["p999"])),
    ("2xx share", lambda r: "%.2f%%" % (100 * r["success_share"])),
    ("upstream attempts / request",
     lambda r: "%.3f" % r["attempts_per_request"] if r["attempts_per_request"] is not None
     else "-"),
]


def markdown(rep):
    ctx = rep["context"]
    proxies = [p for p in PROXIES if p in ctx.get("proxies", ",".join(PROXIES)).split(",")]
    scenarios = [s for s in SCENARIOS if s in {r["scenario"] for r in rep["results"]}]
    by = {(r["scenario"], r["proxy"]): r for r in rep["results"]}
    notes = []

    def note(text):
        notes.append(text)
        return "[%d]" % len(notes)

    skip_ref = {p: note("%s: skipped, %s" % (p, why)) for p, why in rep["skipped"].items()}
    lines = ["# Proxy benchmark", "", machine_line(rep.get("machine_load")), ""]
    lines.append("%s, %s CPUs. wrk: %s connections, %s threads, %s s per run (%s); each proxy "
                 "with %s workers. %s, %s, %s.%s" % (
                     ctx.get("date", "?"), ctx.get("cpus", "?"), ctx.get("connections"),
                     ctx.get("threads"), ctx.get("seconds"),
                     "smoke run" if ctx.get("seconds", 10) < 5 else "full run",
                     ctx.get("workers"), ctx.get("nginx", "nginx ?"),
                     ctx.get("haproxy", "HAProxy ?"), ctx.get("wrk", "wrk ?"),
                     "" if ctx.get("seconds", 10) >= 5 else
                     " Figures from runs this short are noisy."))
    lines.append("")
    lines.append("| scenario | figure | " + " | ".join(proxies) + " |")
    lines.append("|---|---|" + "---|" * len(proxies))
    for s in scenarios:
        label = "**%s**: %s" % (s, SCENARIO_TEXT[s].format(flap=ctx.get("flap_ms", "?")))
        for i, (name, f) in enumerate(FIGURES):
            cells = []
            for p in proxies:
                r = by.get((s, p))
                if p in skip_ref:
                    cells.append("skipped " + skip_ref[p] if i == 0 else "-")
                elif r is None:
                    cells.append("-")
                elif "error" in r:
                    cells.append(("error " + note("%s / %s: %s" % (s, p, r["error"])))
                                 if i == 0 else "-")
                else:
                    cells.append(f(r))
            lines.append("| %s | %s | %s |" % (label if i == 0 else "", name, " | ".join(cells)))
    lines.append("")
    lines.append("Responses by status and requests lost to socket errors (wrk), requests each "
                 "upstream received:")
    lines.append("")
    for s in scenarios:
        for p in proxies:
            r = by.get((s, p))
            if r is None or "error" in r:
                continue
            e = r["socket_errors"]
            errs = ", ".join("%s %d" % (k, e[k]) for k in ("connect", "read", "write", "timeout")
                             if e.get(k))
            lines.append("- %s / %s: %s%s; upstreams %s" % (
                s, p, ", ".join("%s: %s" % kv for kv in r["statuses"].items()) or "none",
                "; socket errors: " + errs if errs else "",
                " / ".join(str(x) for x in r["upstream_requests"])))
    if notes:
        lines += ["", "**Notes**", ""]
        lines += ["%d. %s" % (i + 1, n) for i, n in enumerate(notes)]
    lines += ["", "2xx share: 2xx responses / (responses + requests lost to wrk's connect, read "
              "and write errors). Upstream attempts / request: the requests the three upstreams "
              "received over wrk's responses (requests in flight when wrk stops add at most one per "
              "connection)."]
    return "\n".join(lines) + "\n"


def chart(rep, png):
    if shutil.which("gnuplot") is None:
        print("report: gnuplot not found, no chart", file=sys.stderr)
        return
    ctx = rep["context"]
    proxies = [p for p in PROXIES if p not in rep["skipped"]
               and any(r["proxy"] == p and "error" not in r for r in rep["results"])]
    scenarios = [s for s in SCENARIOS if any(r["scenario"] == s for r in rep["results"])]
    if not proxies or not scenarios:
        return
    by = {(r["scenario"], r["proxy"]): r for r in rep["results"] if "error" not in r}
    dat = png + ".dat"
    with open(dat, "w") as f:
        f.write("# scenario " + " ".join("%s_rps %s_p99 %s_ok" % (p, p, p) for p in proxies) + "\n")
        for s in scenarios:
            row = [s]
            for p in proxies:
                r = by.get((s, p))
                row += (["%.1f" % r["requests_per_s"], "%.3f" % max(r["latency_ms"]["p99"], 0.001),
                         "%.3f" % (100 * r["success_share"])] if r else ["NaN"] * 3)
            f.write(" ".join(row) + "\n")
    colours = {"nginx": "#009639", "haproxy": "#1f6fb2", "strix": "#d9480f"}
    title = "Proxy benchmark: %s s per run, %s connections%s" % (
        ctx.get("seconds"), ctx.get("connections"),
        " (smoke run)" if ctx.get("seconds", 10) < 5 else "")
    load_rec = rep.get("machine_load") or {}
    warn = "untrustworthy: the machine was busy" if load_rec.get("untrustworthy") else ""

    def panel(col, ylabel, logscale, ttl):
        plots = []
        for i, p in enumerate(proxies):
            plots.append("'%s' using %d:xtic(1) title '%s' lc rgb '%s'" % (
                dat, 2 + 3 * i + col, p, colours[p]))
        return "\n".join([
            "set title '%s'" % ttl,
            "set ylabel '%s'" % ylabel,
            "set logscale y" if logscale else "unset logscale y",
            "set yrange [%s]" % ("0.1:*" if logscale else "0:105" if col == 2 else "0:*"),
            "plot " + ", ".join(plots)])

    script = "\n".join([
        "set terminal pngcairo size 1500,520 font 'sans,10'",
        "set output '%s'" % png,
        "set multiplot layout 1,3 title \"%s%s\"" % (title, ("\\n{/:Bold %s}" % warn) if warn else ""),
        "set style data histograms",
        "set style histogram clustered gap 1",
        "set style fill solid 0.85 border -1",
        "set boxwidth 0.9",
        "set xtics rotate by -30",
        "set grid ytics",
        "set tmargin 4",
        "set key outside bottom center horizontal",
        panel(0, "requests/s", False, "throughput"),
        panel(1, "ms", True, "p99 latency (log)"),
        panel(2, "%", False, "2xx share"),
        "unset multiplot",
    ])
    try:
        subprocess.run(["gnuplot"], input=script.encode(), check=True, timeout=60)
    except (subprocess.SubprocessError, OSError) as e:
        print("report: gnuplot failed: %s" % e, file=sys.stderr)
    finally:
        os.remove(dat)


def main():
    ap = argparse.ArgumentParser(usage=__doc__.split("\n\n")[1].strip())
    ap.add_argument("runs")
    ap.add_argument("--json")
    ap.add_argument("--markdown")
    ap.add_argument("--png")
    a = ap.parse_args()
    rep = {"context": load(os.path.join(a.runs, "context.json"), {}),
           "machine_load": load(os.path.join(a.runs, "load.json")),
           "skipped": {}, "results": []}
    for path in sorted(glob.glob(os.path.join(a.runs, "skip-*"))):
        with open(path) as f:
            rep["skipped"][os.path.basename(path)[5:]] = f.read().strip()
    for s in SCENARIOS:
        for p in PROXIES:
            d = os.path.join(a.runs, s, p)
            if os.path.isdir(d):
                rep["results"].append(one_run(d))
    md = markdown(rep)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rep, f, indent=1)
            f.write("\n")
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(md)
    if a.png:
        chart(rep, a.png)
    sys.stdout.write(md)
    failed = [r for r in rep["results"] if "error" in r]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
