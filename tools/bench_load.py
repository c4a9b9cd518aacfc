#!/usr/bin/env python3
"""Runs a command (the benchmark binary) and records how busy the machine was around it.

    tools/bench_load.py OUT.json [--interval S] -- COMMAND [ARGS...]

It samples /proc/loadavg and the "cpu" line of /proc/stat before the command starts, every
--interval seconds while it runs (with the command's own utime+stime from /proc/<pid>/stat), and
after it exits; the command's total CPU time comes from wait4()'s rusage, which covers all of its
threads. OUT.json gets the samples, the totals and a verdict: "untrustworthy" and the reasons,
each with its figures. The command's stdin, stdout and stderr are passed through untouched, and
the wrapper exits with the command's status.

The thresholds (below, next to each check) are deliberately loose: a benchmark on a shared VM is
never perfectly alone, and the warning is for runs where the comparison itself is in doubt.
"""
import argparse
import json
import math
import os
import signal
import sys
import time

TICK = os.sysconf("SC_CLK_TCK")
NCPU = os.sysconf("SC_NPROCESSORS_ONLN")

# Whole-run check: CPU time used by everything other than the benchmark, as a share of what the
# machine could give in that time (online CPUs x wall time). Kernel threads, this sampler and the
# usual daemons stay well under 2%; above 10% (a fifth of a core on average on two CPUs, for the
# whole run) other work has been competing with the benchmark's workers. The machine's busy time
# is tick-sampled and the benchmark's exact, so the difference carries a few percent of noise
# either way (a quiet run can even come out below zero, counted as zero); 10% is above it.
OTHERS_RUN_MAX = 0.10
# Per-interval check: the same share over one sampling interval. A burst of other work hurts the
# rows that ran during it even when the run as a whole looks quiet; above 25% (half a core for the
# whole interval on two CPUs) those rows are suspect.
OTHERS_INTERVAL_MAX = 0.25
# Load check: the 1-minute load average against the online CPUs. Before the run the load is
# entirely other work: above the CPU count the machine was oversubscribed as the run began.
# During and after the run the load also counts the benchmark's own threads, so the figure
# compared is the load minus the benchmark's share of it, estimated with the kernel's own
# filter (the 1-minute exponential average, updated per sample) applied to the benchmark's
# threads that are runnable at each sample (at least its cores in use over the interval); what
# remains is other work, judged against the same limit.
LOAD_MAX_PER_CPU = 1.0


def cpu_line():
    """System-wide busy and total jiffies from /proc/stat's first line (all CPUs)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    v += [0] * (10 - len(v))
    user, nice, system, idle, iowait, irq, softirq, steal = v[:8]
    # guest and guest_nice are already inside user and nice; iowait is idle time.
    # steal is time the hypervisor ran something else on our vCPUs: on a shared VM that is
    # exactly "the machine was busy", so it counts as busy (and is reported on its own).
    busy = user + nice + system + irq + softirq + steal
    return {"busy": busy, "idle": idle + iowait, "total": busy + idle + iowait, "steal": steal,
            "cols": {"user": user + nice, "system": system, "irq": irq + softirq}}


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def proc_cpu(pid):
    """(CPU time so far, in jiffies, of the process (all threads), its reaped children and its
    live descendants; how many of their threads are runnable or in uninterruptible sleep now,
    what the load average counts), or None once the process is gone. The benchmark binary has
    no descendants, but a wrapper such as timeout would, and the proxy benchmark's script runs
    wrk, the proxies and the upstreams."""
    stats = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                rest = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # stat(5) fields 4 (ppid), 14-17 (utime, stime, cutime, cstime)
        stats[int(d)] = (int(rest[1]), sum(int(x) for x in rest[11:15]))
    if pid not in stats:
        return None
    total, runnable, todo = 0, 0, [pid]
    while todo:
        p = todo.pop()
        total += stats[p][1]
        runnable += runnable_threads(p)
        todo += [c for c, (pp, _) in stats.items() if pp == p]
    return total, runnable


def runnable_threads(pid):
    """The threads of pid in state R or D (stat(5) field 3): the tasks the load average counts."""
    n = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    for t in tids:
        try:
            with open(f"/proc/{pid}/task/{t}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        n += state in ("R", "D")
    return n


def sample(pid=None):
    s = {"t": time.monotonic(), "load1": loadavg(), **cpu_line()}
    if pid is not None:
        got = proc_cpu(pid)
        s["proc"], s["runnable"] = got if got is not None else (None, None)
    return s


def verdict(samples, child_cpu_s, wall_s, interval):
    first, last = samples[0], samples[-1]
    busy_s = (last["busy"] - first["busy"]) / TICK
    idle_s = (last["idle"] - first["idle"]) / TICK
    steal_s = (last["steal"] - first["steal"]) / TICK
    capacity_s = NCPU * wall_s
    # /proc/stat's busy columns are sampled at the tick, and on a VM its jiffies fall short of
    # the wall clock (lost ticks), while the benchmark's rusage is exact. Both are brought to
    # the same scale: the busy share of /proc/stat's own total, times the real capacity.
    machine_s = busy_s / (busy_s + idle_s) * capacity_s if busy_s + idle_s > 0 else 0.0
    others_s = max(0.0, machine_s - child_cpu_s)
    reasons = []
    share = others_s / capacity_s if capacity_s > 0 else 0.0
    if share > OTHERS_RUN_MAX:
        reasons.append(f"other processes used {others_s:.1f} s of CPU during the run "
                       f"({share:.0%} of {NCPU} CPUs x {wall_s:.0f} s; limit "
                       f"{OTHERS_RUN_MAX:.0%}; the benchmark itself used {child_cpu_s:.1f} s)")

    # Per interval, and the load with the benchmark's estimated share taken out.
    worst = {"share": 0.0, "at_s": 0.0, "others_s": 0.0}
    bench_load = 0.0
    others_load_max = {"load1": first["load1"], "others": first["load1"], "at_s": 0.0}
    for a, b in zip(samples, samples[1:]):
        dt = b["t"] - a["t"]
        if dt <= 0:
            continue
        pa, pb = a.get("proc"), b.get("proc")
        if pb is None:  # the last sample is after exit: use the rusage total
            pb = child_cpu_s * TICK
        if pa is None:
            pa = 0
        bench_cores = max(0.0, (pb - pa) / TICK / dt)
        # What the benchmark adds to the load: its threads that are running or waiting for a
        # CPU (a benchmark with more runnable threads than CPUs, as the proxy benchmark's wrk,
        # proxies and upstreams, loads the machine beyond the cores it uses), and at least the
        # cores it used over the interval.
        bench_in_load = max(bench_cores, b.get("runnable") or 0)
        decay = math.exp(-dt / 60.0)
        bench_load = bench_load * decay + bench_in_load * (1 - decay)
        jb, ji = b["busy"] - a["busy"], b["idle"] - a["idle"]
        machine = jb / (jb + ji) * NCPU * dt if jb + ji > 0 else 0.0
        o = max(0.0, machine - (pb - pa) / TICK)
        s = o / (NCPU * dt)
        at = b["t"] - first["t"]
        b["others_share"] = round(s, 3)
        b["bench_cores"] = round(bench_cores, 2)
        # A short last interval (the command exiting just after a sample) is a few jiffies:
        # too coarse to judge on its own; the whole-run check still counts it.
        if dt >= interval / 2 and s > worst["share"]:
            worst = {"share": s, "at_s": at, "others_s": o}
        other_load = b["load1"] - bench_load
        if other_load > others_load_max["others"]:
            others_load_max = {"load1": b["load1"], "others": other_load, "at_s": at}
    if worst["share"] > OTHERS_INTERVAL_MAX and len(samples) > 2:
        reasons.append(f"other processes used {worst['share']:.0%} of the CPUs in one "
                       f"interval ({worst['others_s']:.1f} s of CPU, ending {worst['at_s']:.0f} s "
                       f"into the run; limit {OTHERS_INTERVAL_MAX:.0%})")
    if first["load1"] > LOAD_MAX_PER_CPU * NCPU:
        reasons.append(f"the 1-minute load average was {first['load1']:.2f} on {NCPU} CPUs "
                       f"before the run started")
    elif others_load_max["others"] > LOAD_MAX_PER_CPU * NCPU:
        reasons.append(f"the 1-minute load average reached {others_load_max['load1']:.2f} on "
                       f"{NCPU} CPUs {others_load_max['at_s']:.0f} s into the run, about "
                       f"{others_load_max['others']:.2f} of it not the benchmark's")
    return {
        "untrustworthy": bool(reasons),
        "reasons": reasons,
        "online_cpus": NCPU,
        "wall_s": round(wall_s, 3),
        "bench_cpu_s": round(child_cpu_s, 3),
        "system_busy_cpu_s": round(busy_s, 3),
        "system_idle_cpu_s": round(idle_s, 3),
        "machine_busy_cpu_s": round(machine_s, 3),
        "others_cpu_s": round(others_s, 3),
        "others_share": round(share, 4),
        "others_worst_interval_share": round(worst["share"], 4),
        "steal_cpu_s": round(steal_s, 3),
        "system_cpu_s_by_kind": {k: round((last["cols"][k] - first["cols"][k]) / TICK, 3)
                                 for k in first["cols"]},
        "load1_before": first["load1"],
        "load1_max": max(s["load1"] for s in samples),
        "load1_after": last["load1"],
        "others_load1_max": round(others_load_max["others"], 2),
        "interval_s": None,
        "thresholds": {"others_run_share": OTHERS_RUN_MAX,
                       "others_interval_share": OTHERS_INTERVAL_MAX,
                       "load1_per_cpu": LOAD_MAX_PER_CPU},
    }


def main():
    ap = argparse.ArgumentParser(usage=__doc__.split("\n\n")[1].strip())
    ap.add_argument("out")
    ap.add_argument("--interval", type=float, default=5.0)
    argv = sys.argv[1:]
    if "--" not in argv:
        ap.error("no command (put it after --)")
    cut = argv.index("--")
    a = ap.parse_args(argv[:cut])
    cmd = argv[cut + 1:]
    if not cmd:
        ap.error("no command")

    samples = [sample()]
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:
        try:
            os.execvp(cmd[0], cmd)
        finally:
            os._exit(127)
    # Ctrl-C goes to the whole foreground group; let the child decide, then report its status.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    status = ru = None
    next_t = t0 + a.interval
    while True:
        wpid, st, r = os.wait4(pid, os.WNOHANG)
        if wpid == pid:
            status, ru = st, r
            break
        now = time.monotonic()
        if now >= next_t:
            s = sample(pid)
            if s["proc"] is not None:
                samples.append(s)
            next_t += a.interval
        time.sleep(min(0.1, max(0.0, next_t - now)))
    wall = time.monotonic() - t0
    samples.append(sample())
    v = verdict(samples, ru.ru_utime + ru.ru_stime, wall, a.interval)
    v["interval_s"] = a.interval
    v["samples"] = [{"at_s": round(s["t"] - t0, 2), "load1": s["load1"],
                     **{k: s[k] for k in ("bench_cores", "runnable", "others_share") if k in s}}
                    for s in samples]
    with open(a.out, "w") as f:
        json.dump(v, f, indent=1)
        f.write("\n")
    sys.exit(os.waitstatus_to_exitcode(status) if status is not None else 1)


if __name__ == "__main__":
    main()
