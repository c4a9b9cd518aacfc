#!/usr/bin/env bash
# The proxy benchmark (make bench-proxy; bench/README.md, "Proxy benchmark"): nginx, HAProxy and
# the strix proxy (examples/proxy) each put in front of the same three upstreams
# (build/examples/proxy-upstream) and driven by wrk on 127.0.0.1, one scenario after another:
#   healthy     three good upstreams
#   down        the third upstream's port refuses connections
#   slow        the third answers 500 ms late
#   failing     the third answers 30% of requests with 503
#   resetting   the third resets 30% of its connections instead of answering
#   flapping    the third goes down and comes back, every PROXY_BENCH_FLAP_MS
# Every proxy gets the same wrk connections, threads and duration, and fresh upstreams for each
# run (their counts are that run's). Per proxy and scenario the report gives requests/s, p50 /
# p99 / p99.9 latency, the share of 2xx responses and the upstream attempts per request (the
# requests the upstreams received over the responses wrk counted): build/bench/proxy.json,
# proxy.md, proxy.png. The whole measurement runs under tools/bench_load.py, so a run on a busy
# machine is marked untrustworthy as in make bench.
#
# Settings (environment):
#   PROXY_BENCH_SECONDS      wrk's duration per run (default 10; 2 for a smoke run)
#   PROXY_BENCH_CONNECTIONS  wrk's connections (default 64)
#   PROXY_BENCH_THREADS      wrk's threads (default 2)
#   PROXY_BENCH_WORKERS      each proxy's worker processes / threads (default: online CPUs)
#   PROXY_BENCH_SCENARIOS    comma-separated subset of the scenarios above (default: all)
#   PROXY_BENCH_PROXIES      comma-separated subset of nginx,haproxy,strix (default: all)
#   PROXY_BENCH_FLAP_MS      the flapping upstream's up and down spells (default: a fifth of the
#                            run, 250..2000 ms)
#   STRIX_PROXY              the strix proxy's binary (default build/examples/proxy); when it
#                            does not exist its column is skipped with a note
#   STRIX_PROXY_ARGS         extra flags for it (examples/proxy/README.md lists them); the
#                            default turns on the slow-call rules (below)
#   PROXY_UPSTREAM           the upstream's binary (default build/examples/proxy-upstream)
#   PROXY_BENCH_OUT          where the report goes (default build/bench)
# Everything listens on 127.0.0.1 only; every process the script starts is stopped by its pid,
# at the end of its run and on any exit (trap); every wait is bounded.
set -euo pipefail
# The strix proxy's configuration beside nginx's and HAProxy's recommended ones: an attempt with
# no response head after 50 ms is retried on another upstream, attempts of 100 ms or more count
# as slow for the circuit (half of the window slow opens it), and a circuit opens at a failure
# rate of 20% once 10 attempts are in its window (nginx's max_fails=3 takes an upstream out
# sooner still). STRIX_PROXY_ARGS= (empty) runs the proxy with its own defaults.
STRIX_SLOW_RULES="--retry-slow-ms 50 --circuit-slow-ms 100 --circuit-min-calls 10 --circuit-failure-rate 0.2"
cd "$(dirname "$0")/.."

SECS=${PROXY_BENCH_SECONDS:-10}
CONNS=${PROXY_BENCH_CONNECTIONS:-64}
THREADS=${PROXY_BENCH_THREADS:-2}
WORKERS=${PROXY_BENCH_WORKERS:-$(getconf _NPROCESSORS_ONLN)}
SCENARIOS=${PROXY_BENCH_SCENARIOS:-healthy,down,slow,failing,resetting,flapping}
PROXIES=${PROXY_BENCH_PROXIES:-nginx,haproxy,strix}
STRIX_PROXY=${STRIX_PROXY:-build/examples/proxy}
UPSTREAM=${PROXY_UPSTREAM:-build/examples/proxy-upstream}
OUT=${PROXY_BENCH_OUT:-build/bench}
RUNS=$OUT/proxy-runs

for v in SECS CONNS THREADS WORKERS; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "bench-proxy: $v must be a positive integer" >&2; exit 2; }
done
if [ -n "${PROXY_BENCH_FLAP_MS:-}" ]; then
  FLAP_MS=$PROXY_BENCH_FLAP_MS
else
  FLAP_MS=$((SECS * 1000 / 5))
  [ "$FLAP_MS" -lt 250 ] && FLAP_MS=250
  [ "$FLAP_MS" -gt 2000 ] && FLAP_MS=2000
fi

# The scenarios: the third upstream's flags ("down": none runs on its port).
scenario_flags() {
  case "$1" in
  healthy) echo "" ;;
  down) echo "" ;;
  slow) echo "--delay-ms 500" ;;
  failing) echo "--fail-rate 0.3 --fail-status 503" ;;
  resetting) echo "--reset-rate 0.3" ;;
  flapping) echo "--flap-ms $FLAP_MS" ;;
  *) return 1 ;;
  esac
}

# ---- processes ----------------------------------------------------------------------------------
# Every process started here, by pid, until it has been stopped and waited for (a pid is never
# signalled after its process has been reaped, so a reused pid is never hit).
declare -A LIVE=()

stop_pid() {
  local pid=$1 i
  [ -n "${LIVE[$pid]:-}" ] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "bench-proxy: ${LIVE[$pid]} (pid $pid) ignored SIGTERM for 5 s: SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
  unset "LIVE[$pid]"
}

# shellcheck disable=SC2317  # called by the trap
cleanup() {
  local pid
  for pid in "${!LIVE[@]}"; do stop_pid "$pid"; done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A free TCP port on 127.0.0.1 below the ephemeral range (so no outgoing connection is handed it
# while a scenario counts on it being free or ours).
free_port() {
  python3 - <<'EOF'
import random, socket
lo = 20000
try:
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        hi = min(32768, int(f.read().split()[0]))
except OSError:
    hi = 32768
hi = max(hi, lo + 1000)
for _ in range(500):
    p = random.randrange(lo, hi)
    s = socket.socket()
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", p))
    except OSError:
        continue
    finally:
        s.close()
    print(p)
    break
else:
    raise SystemExit("bench-proxy: no free port on 127.0.0.1")
EOF
}

# Waits (at most 10 s) until 127.0.0.1:$1 accepts a connection; 1 if it never did.
wait_port() {
  python3 - "$1" <<'EOF'
import socket, sys, time
end = time.monotonic() + 10
while time.monotonic() < end:
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.05)
sys.exit(1)
EOF
}

sbin() { command -v "$1" 2>/dev/null || { [ -x "/usr/sbin/$1" ] && echo "/usr/sbin/$1"; } || true; }

fill() {  # fill TEMPLATE OUT NAME=VALUE...: @NAME@ replaced by VALUE
  local in=$1 out=$2 expr=() kv
  shift 2
  for kv in "$@"; do expr+=(-e "s|@${kv%%=*}@|${kv#*=}|g"); done
  sed "${expr[@]}" "$in" > "$out"
}

# ---- one run --------------------------------------------------------------------------------
# run_one SCENARIO PROXY: three fresh upstreams, the proxy, wrk; everything into $RUNS/S/P/.
run_one() {
  local scenario=$1 proxy=$2 d=$RUNS/$1/$2 flags port i up=() upids=() ppid="" bound
  mkdir -p "$d"
  flags=$(scenario_flags "$scenario")
  bound=$((SECS + 120))
  for i in 1 2 3; do
    if [ "$i" = 3 ] && [ "$scenario" = down ]; then
      up+=("$(free_port)")
      printf '{"port": %s, "down": true, "requests": 0}\n' "${up[2]}" > "$d/upstream-3.json"
      continue
    fi
    local f=""
    [ "$i" = 3 ] && f=$flags
    # shellcheck disable=SC2086
    "$UPSTREAM" --port 0 --ready-file "$d/upstream-$i.port" --stats "$d/upstream-$i.json" \
      --duration-s "$bound" --seed "$i" $f > "$d/upstream-$i.log" 2>&1 &
    LIVE[$!]="upstream $i"
    upids+=($!)
    for _ in $(seq 100); do [ -s "$d/upstream-$i.port" ] && break; sleep 0.05; done
    if [ ! -s "$d/upstream-$i.port" ]; then
      echo "bench-proxy: upstream $i did not start (see $d/upstream-$i.log)" >&2
      local u
      for u in "${upids[@]}"; do stop_pid "$u"; done
      return 1
    fi
    up+=("$(cat "$d/upstream-$i.port")")
  done
  port=$(free_port)
  local user=""
  [ "$(id -u)" = 0 ] && user="user $(id -un) $(id -gn);"
  case "$proxy" in
  nginx)
    fill bench/proxy/nginx.conf.in "$d/nginx.conf" "USER=$user" "WORKERS=$WORKERS" "DIR=$PWD/$d" \
      "PORT=$port" "UP1=${up[0]}" "UP2=${up[1]}" "UP3=${up[2]}"
    "$NGINX" -p "$PWD/$d" -c "$PWD/$d/nginx.conf" -e "$PWD/$d/nginx-error.log" \
      > "$d/proxy.log" 2>&1 &
    ;;
  haproxy)
    fill bench/proxy/haproxy.cfg.in "$d/haproxy.cfg" "WORKERS=$WORKERS" "PORT=$port" \
      "UP1=${up[0]}" "UP2=${up[1]}" "UP3=${up[2]}"
    "$HAPROXY" -f "$d/haproxy.cfg" -db > "$d/proxy.log" 2>&1 &
    ;;
  strix)
    # shellcheck disable=SC2086
    "$STRIX_PROXY" --listen "127.0.0.1:$port" --upstream "127.0.0.1:${up[0]}" \
      --upstream "127.0.0.1:${up[1]}" --upstream "127.0.0.1:${up[2]}" --workers "$WORKERS" \
      --connect-timeout-ms 1000 --attempt-timeout-ms 1000 --attempts 3 \
      --duration-s "$bound" --stats "$d/proxy-stats.json" ${STRIX_PROXY_ARGS-$STRIX_SLOW_RULES} \
      > "$d/proxy.log" 2>&1 &
    ;;
  esac
  ppid=$!
  LIVE[$ppid]=$proxy
  local ok=1
  if ! wait_port "$port"; then
    echo "bench-proxy: $proxy did not listen on 127.0.0.1:$port within 10 s (see $d/proxy.log)" >&2
    ok=0
  else
    timeout -k 5 $((SECS + 60)) wrk -t"$THREADS" -c"$CONNS" -d"${SECS}s" --timeout 5s --latency \
      -s bench/proxy/wrk.lua "http://127.0.0.1:$port/" > "$d/wrk.txt" 2>&1 || ok=0
  fi
  stop_pid "$ppid"
  for i in "${upids[@]}"; do stop_pid "$i"; done
  printf '{"scenario": "%s", "proxy": "%s", "port": %s, "upstream_ports": [%s, %s, %s], "flags": "%s", "ok": %s}\n' \
    "$scenario" "$proxy" "$port" "${up[0]}" "${up[1]}" "${up[2]}" "$flags" \
    "$([ $ok = 1 ] && echo true || echo false)" > "$d/meta.json"
  local line
  line=$(grep -m1 '^PROXY_BENCH_JSON ' "$d/wrk.txt" 2>/dev/null | cut -d' ' -f2- || true)
  if [ -n "$line" ]; then
    python3 -c 'import json,sys; r=json.loads(sys.argv[1]); print("  %-9s %-8s %9.0f req/s  p99 %8.2f ms" % (sys.argv[2], sys.argv[3], r["requests"] / (r["duration_us"] / 1e6), r["latency_us"]["p99"] / 1e3))' \
      "$line" "$scenario" "$proxy"
  else
    echo "  $scenario $proxy: no result (see $d/)"
  fi
}

# ---- measure: every scenario, every proxy (run under tools/bench_load.py) ------------------
measure() {
  local s p
  IFS=, read -ra scen <<< "$SCENARIOS"
  IFS=, read -ra prox <<< "$PROXIES"
  for s in "${scen[@]}"; do
    for p in "${prox[@]}"; do
      [ -f "$RUNS/skip-$p" ] && continue
      run_one "$s" "$p" || echo "bench-proxy: $s / $p: no result" >&2
    done
  done
}

if [ "${1:-}" = --measure ]; then
  NGINX=$(sbin nginx) HAPROXY=$(sbin haproxy)
  measure
  exit 0
fi

# ---- main -------------------------------------------------------------------------------------
IFS=, read -ra scen <<< "$SCENARIOS"
for s in "${scen[@]}"; do
  scenario_flags "$s" > /dev/null || { echo "bench-proxy: unknown scenario '$s'" >&2; exit 2; }
done
[ -x "$UPSTREAM" ] || { echo "bench-proxy: $UPSTREAM is missing (make proxy-examples)" >&2; exit 1; }
command -v wrk > /dev/null || { echo "bench-proxy: wrk is missing (tools/deps.sh bench)" >&2; exit 1; }
rm -rf "$RUNS"
mkdir -p "$RUNS"
IFS=, read -ra prox <<< "$PROXIES"
for p in "${prox[@]}"; do
  why=""
  case "$p" in
  nginx) [ -n "$(sbin nginx)" ] || why="nginx is not installed (tools/deps.sh bench)" ;;
  haproxy) [ -n "$(sbin haproxy)" ] || why="haproxy is not installed (tools/deps.sh bench)" ;;
  strix) [ -x "$STRIX_PROXY" ] || why="$STRIX_PROXY does not exist yet (examples/proxy/README.md: the interface it will have)" ;;
  *) echo "bench-proxy: unknown proxy '$p'" >&2; exit 2 ;;
  esac
  if [ -n "$why" ]; then
    echo "bench-proxy: skipping $p: $why" >&2
    echo "$why" > "$RUNS/skip-$p"
  fi
done
{
  echo "{\"seconds\": $SECS, \"connections\": $CONNS, \"threads\": $THREADS, \"workers\": $WORKERS,"
  echo " \"flap_ms\": $FLAP_MS, \"scenarios\": \"$SCENARIOS\", \"proxies\": \"$PROXIES\","
  echo " \"nginx\": \"$( { $(sbin nginx) -v 2>&1 || true; } | head -1)\","
  echo " \"haproxy\": \"$( { $(sbin haproxy) -v 2>&1 || true; } | head -1 | cut -d' ' -f1-3)\","
  echo " \"wrk\": \"$(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)\", \"strix_proxy\": \"$STRIX_PROXY\","
  echo " \"date\": \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\", \"cpus\": $(getconf _NPROCESSORS_ONLN)}"
} > "$RUNS/context.json"
echo "bench-proxy: ${SECS} s per run, $CONNS connections, $THREADS wrk threads, $WORKERS proxy workers"
status=0
python3 tools/bench_load.py "$RUNS/load.json" --interval 2 -- "$PWD/tools/bench_proxy.sh" --measure || status=$?
python3 bench/proxy/report.py "$RUNS" --json "$OUT/proxy.json" --markdown "$OUT/proxy.md" \
  --png "$OUT/proxy.png"
exit $status
