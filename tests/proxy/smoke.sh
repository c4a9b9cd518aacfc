#!/usr/bin/env bash
# The proxy's smoke test (make check-proxy, run by make test; make check-proxy-asan runs it on
# the proxy built with ASan and UBSan): three upstreams behind the proxy, one healthy, one that
# answers half of its requests with 503 and one that is down (a closed port), and requests of
# every shape through it with tests/proxy/client.c on 127.0.0.1 only:
#   keep-alive GETs, pipelined GETs, Content-Length and chunked bodies (small ones that come with
#   the head, large ones streamed) each followed by a request on the same connection (framing
#   kept), Expect: 100-continue, HTTP/1.0 with and without keep-alive, HEAD, /metrics, a bad
#   request (400) and a head too large (431).
# Every idempotent request must get 200 however the faulty upstreams behave (retries on the next
# upstream); the POST gets 200 or the 503 as received (it is never sent twice). Then SIGTERM: the
# proxy must exit 0 and its --stats must add up, with the upstreams' own counts too.
#
# All of it twice: with a shard per worker (the default) and with one pool for both workers
# (--shards 1), the two ways the proxy spreads connections over its workers.
#
# Environment: PROXY (default build/examples/proxy), PROXY_UPSTREAM, PROXY_CLIENT. Every
# process is stopped by its pid; every wait is bounded. Prints one line per check and a summary;
# exits 1 if any failed.
set -euo pipefail
cd "$(dirname "$0")/../.."

PROXY=${PROXY:-build/examples/proxy}
UPSTREAM=${PROXY_UPSTREAM:-build/examples/proxy-upstream}
CLIENT=${PROXY_CLIENT:-build/tests/proxy-client}
for b in "$PROXY" "$UPSTREAM" "$CLIENT"; do
  [ -x "$b" ] || { echo "check-proxy: $b is missing" >&2; exit 1; }
done

tmp=$(mktemp -d)
declare -A LIVE=()
stop_pid() {  # stop_pid PID: SIGTERM, at most 5 s, then SIGKILL; sets STATUS to its exit status
  local pid=$1 i
  STATUS=
  [ -n "${LIVE[$pid]:-}" ] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "check-proxy: ${LIVE[$pid]} (pid $pid) ignored SIGTERM for 5 s: SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  STATUS=0
  wait "$pid" 2>/dev/null || STATUS=$?
  unset "LIVE[$pid]"
}
cleanup() {
  local pid
  for pid in "${!LIVE[@]}"; do stop_pid "$pid"; done
  rm -rf "$tmp"
}
trap cleanup EXIT

wait_file() {  # wait_file FILE: at most 10 s for FILE to be non-empty
  local i
  for i in $(seq 200); do [ -s "$1" ] && return 0; sleep 0.05; done
  return 1
}

pass=0
fail=0
check() {  # check NAME EXPECTED ACTUAL
  if [ "$2" = "$3" ]; then
    pass=$((pass + 1))
    echo "PASS $1"
  else
    fail=$((fail + 1))
    echo "FAIL $1"
    echo "    expected: $(printf '%s' "$2" | tr '\n' '|')"
    echo "    got:      $(printf '%s' "$3" | tr '\n' '|')"
  fi
}

smoke() {  # smoke PROXY-FLAGS...: one whole run
  # ---- the upstreams and the proxy -----------------------------------------------------------------
  up_flags=("" "--fail-rate 0.5 --seed 7")
  ports=()
  upids=()
  for i in 1 2; do
    # shellcheck disable=SC2086
    "$UPSTREAM" --port 0 --ready-file "$tmp/up$i.port" --stats "$tmp/up$i.json" --duration-s 120 \
      ${up_flags[$((i - 1))]} > "$tmp/up$i.log" 2>&1 &
    LIVE[$!]="upstream $i"
    upids+=($!)
    wait_file "$tmp/up$i.port" || { echo "check-proxy: upstream $i did not start" >&2; exit 1; }
    ports+=("$(cat "$tmp/up$i.port")")
  done
  ports+=("$("$CLIENT" free-port)")   # the third: nobody listens there
  "$PROXY" --listen 127.0.0.1:0 --upstream "127.0.0.1:${ports[0]}" \
    --upstream "127.0.0.1:${ports[1]}" --upstream "127.0.0.1:${ports[2]}" --workers 2 \
    --attempts 3 --ready-file "$tmp/proxy.port" --stats "$tmp/stats.json" --duration-s 120 \
    "$@" > "$tmp/proxy.log" 2>&1 &
  ppid=$!
  LIVE[$ppid]=proxy
  wait_file "$tmp/proxy.port" ||
    { echo "check-proxy: the proxy did not start" >&2; cat "$tmp/proxy.log" >&2; exit 1; }
  P=$(cat "$tmp/proxy.port")

  requests=0   # requests sent, as the proxy should count them
  forwarded=0  # of those, the ones that go to an upstream
  run() {      # run NAME EXPECTED REQ...: one connection, REQ... sent on it; output checked
    local name=$1 want=$2 got
    shift 2
    got=$("$CLIENT" "$P" "$@" 2>&1 || true)
    check "$name" "$want" "$got"
  }
  G='GET / HTTP/1.1\r\nHost: smoke\r\n\r\n'
  ok=$(printf '200 64')

  # ---- requests ------------------------------------------------------------------------------------
  reqs=()
  want=""
  for i in $(seq 20); do reqs+=("$G"); want+="$ok"$'\n'; done
  run "20 keep-alive GETs, all 200" "${want}open" "${reqs[@]}"
  requests=$((requests + 20)); forwarded=$((forwarded + 20))

  run "pipelined GETs, the last closing" "$ok"$'\n'"$ok"$'\n'"$ok"$'\n'closed --pipeline "$G" \
    'GET /two HTTP/1.1\r\nHost: smoke\r\n\r\n' 'GET /three HTTP/1.1\r\nHost: smoke\r\nConnection: close\r\n\r\n'
  requests=$((requests + 3)); forwarded=$((forwarded + 3))

  run "small bodies (Content-Length, chunked), then a GET on the same connection" \
    "$ok"$'\n'"$ok"$'\n'"$ok"$'\n'open \
    'PUT /cl HTTP/1.1\r\nHost: smoke\r\nContent-Length: 5\r\n\r\nhello' \
    'PUT /ch HTTP/1.1\r\nHost: smoke\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n' "$G"
  requests=$((requests + 3)); forwarded=$((forwarded + 3))

  # Large bodies are streamed (the first attempt has to succeed: a streamed body is never sent
  # twice), so they go where the healthy upstream is sure to be reached: each after a GET that
  # moved the round robin. Their answers are checked to be 200 or an upstream's 503, and the GET
  # after them on the same connection must work.
  got=$("$CLIENT" "$P" 'PUT /big HTTP/1.1\r\nHost: smoke\r\nContent-Length: 100000\r\n\r\n{x100000}' \
    'PUT /bigch HTTP/1.1\r\nHost: smoke\r\nTransfer-Encoding: chunked\r\n\r\n{c100000}' "$G" 2>&1 || true)
  check "large bodies (Content-Length, chunked), streamed, then a GET" "yes" \
    "$(echo "$got" | awk 'NR<=2 && !/^(200|503|502) /{bad=1} NR==3 && $0!="200 64"{bad=1}
      NR==4 && $0!="open"{bad=1} END{print (bad||NR!=4)?"no":"yes"}')"
  requests=$((requests + 3)); forwarded=$((forwarded + 3))
  big5xx=$(echo "$got" | head -2 | grep -c '^50' || true)

  got=$("$CLIENT" "$P" \
    'PUT /exp HTTP/1.1\r\nHost: smoke\r\nContent-Length: 50000\r\nExpect: 100-continue\r\n\r\n{1xx}{x50000}' \
    "$G" 2>&1 || true)
  check "Expect: 100-continue: 100 from the proxy, then the response" "yes" \
    "$(echo "$got" | awk 'NR==1 && $0!="interim 100"{bad=1} NR==2 && !/^(200|503|502) /{bad=1}
      NR==3 && $0!="200 64"{bad=1} END{print (bad||NR!=4)?"no":"yes"}')"
  requests=$((requests + 2)); forwarded=$((forwarded + 2))
  big5xx=$((big5xx + $(echo "$got" | sed -n 2p | grep -c '^50' || true)))

  run "HTTP/1.0 without keep-alive: answered, closed" "$ok"$'\n'closed 'GET / HTTP/1.0\r\n\r\n'
  run "HTTP/1.0 keep-alive, HEAD" "$ok"$'\n''200 0'$'\n'open \
    'GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n' 'HEAD / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n'
  run "HEAD on HTTP/1.1" '200 0'$'\n'open 'HEAD / HTTP/1.1\r\nHost: smoke\r\n\r\n'
  requests=$((requests + 4)); forwarded=$((forwarded + 4))

  got=$("$CLIENT" "$P" 'POST /p HTTP/1.1\r\nHost: smoke\r\nContent-Length: 3\r\n\r\nabc' "$G" 2>&1 || true)
  check "POST: 200, or the 503 as received (never sent twice), then a GET" "yes" \
    "$(echo "$got" | awk 'NR==1 && !/^(200 64|503 )/{bad=1} NR==2 && $0!="200 64"{bad=1} END{print (bad||NR!=3)?"no":"yes"}')"
  requests=$((requests + 2)); forwarded=$((forwarded + 2))
  post5xx=$(echo "$got" | head -1 | grep -c '^503' || true)

  run "a bad request: 400, closed" "400 12"$'\n'closed 'GARBAGE\r\n\r\n'
  long=$(printf 'X-Long: %020000d\\r\\n' 0)
  run "a head over --max-head: 431, closed" "431 32"$'\n'closed "GET / HTTP/1.1\\r\\nHost: smoke\\r\\n$long\\r\\n"
  requests=$((requests + 2))

  metrics=$("$CLIENT" "$P" --body-to "$tmp/metrics.txt" \
    'GET /metrics HTTP/1.1\r\nHost: smoke\r\nConnection: close\r\n\r\n' 2>&1 || true)
  check "/metrics answered by the proxy" "yes" "$(echo "$metrics" | head -1 | grep -q '^200 [0-9]' && echo yes || echo no)"
  check "/metrics: strix's figures too (each upstream's circuit, the shards' pools, the budget)" \
    "yes yes yes" "$(grep -q "^strix_circuit_state{circuit=\"127.0.0.1:${ports[2]}\",strix_circuit_state=\"open\"} [01]\$" \
      "$tmp/metrics.txt" && echo yes || echo no) $(grep -q '^strix_pool_workers{pool="shard0"} ' \
      "$tmp/metrics.txt" && echo yes || echo no) $(grep -q '^strix_retry_budget_tokens{budget="retries"} ' \
      "$tmp/metrics.txt" && echo yes || echo no)"
  requests=$((requests + 1))

  # ---- the end and the counts ------------------------------------------------------------------------
  stop_pid "$ppid"
  check "SIGTERM: exit status 0" 0 "$STATUS"
  for pid in "${upids[@]}"; do stop_pid "$pid"; done

  S=$(tr -d '\n' < "$tmp/stats.json" 2>/dev/null || true)
  num() {  # num KEY [N]: the N-th (1-based) number after "KEY": in the stats
    echo "$S" | grep -o "\"$1\": [0-9]*" | sed -n "${2:-1}p" | grep -o '[0-9]*$' || echo -1
  }
  fivexx=$((big5xx + post5xx))
  check "stats: requests" "$requests" "$(num requests)"
  check "stats: responses 2xx / 4xx / 5xx, none unanswered" \
    "$((requests - 2 - fivexx)) 2 $fivexx 0" "$(num 2xx) $(num 4xx) $(num 5xx) $(num unanswered)"
  check "stats: attempts = forwarded requests + retries" "$((forwarded + $(num retries)))" "$(num attempts)"
  check "stats: attempts = the upstreams' attempts" "$(num attempts)" \
    "$(($(num attempts 2) + $(num attempts 3) + $(num attempts 4)))"
  check "stats: the down upstream's attempts all failed, as connects" "yes" \
    "$([ "$(num attempts 4)" = "$(num failures 3)" ] && [ "$(num connect)" -ge "$(num failures 3)" ] &&
      [ "$(num failures 3)" -gt 0 ] && echo yes || echo no)"
  check "stats: retries happened, none refused" "yes 0" \
    "$([ "$(num retries)" -gt 0 ] && echo yes || echo no) $(num retries_refused)"
  up_received=$(( $(grep -o '"requests": [0-9]*' "$tmp/up1.json" | grep -o '[0-9]*$') + \
    $(grep -o '"requests": [0-9]*' "$tmp/up2.json" | grep -o '[0-9]*$') ))
  check "the upstreams received every attempt that connected" \
    "$(($(num attempts) - $(num connect)))" "$up_received"
  check "the upstreams saw no bad request (framing kept)" "0 0" \
    "$(grep -o '"bad": [0-9]*' "$tmp/up1.json" | grep -o '[0-9]*$') $(grep -o '"bad": [0-9]*' \
      "$tmp/up2.json" | grep -o '[0-9]*$')"
  if [ "$fail" -gt "$failed_before" ]; then
    echo "--- proxy log"; cat "$tmp/proxy.log"
    echo "--- stats"; cat "$tmp/stats.json" 2>/dev/null || true
  fi
  rm -f "$tmp"/*
}

# The per-client rate limit: a burst of 3 per client address and 1 request/s after it. Within a
# second, a fourth request from 127.0.0.1 gets 429 (the connection stays open), while another
# client address (127.0.0.2, loopback too) has its own burst; a global --rate-limit far above
# stays out of the way.
limits() {
  "$UPSTREAM" --port 0 --ready-file "$tmp/up.port" --duration-s 60 > "$tmp/up.log" 2>&1 &
  LIVE[$!]="upstream"
  local upid=$!
  wait_file "$tmp/up.port" || { echo "check-proxy: the upstream did not start" >&2; exit 1; }
  "$PROXY" --listen 127.0.0.1:0 --upstream "127.0.0.1:$(cat "$tmp/up.port")" --workers 2 \
    --rate-limit 100000 --client-rate-limit 1 --client-rate-burst 3 --ready-file "$tmp/proxy.port" \
    --stats "$tmp/stats.json" --duration-s 60 > "$tmp/proxy.log" 2>&1 &
  ppid=$!
  LIVE[$ppid]=proxy
  wait_file "$tmp/proxy.port" ||
    { echo "check-proxy: the proxy did not start" >&2; cat "$tmp/proxy.log" >&2; exit 1; }
  P=$(cat "$tmp/proxy.port")
  G='GET / HTTP/1.1\r\nHost: smoke\r\n\r\n'
  check "per client: a burst of 3, then 429 on the same connection" \
    "$(printf '200 64\n200 64\n200 64\n429 ')" \
    "$("$CLIENT" "$P" "$G" "$G" "$G" "$G" 2>&1 | head -4 | sed 's/^429 .*/429 /')"
  check "per client: another address has its own burst" "$(printf '200 64\n200 64\nopen')" \
    "$("$CLIENT" "$P" --from 127.0.0.2 "$G" "$G" 2>&1 || true)"
  check "per client: the first address is still limited on a new connection" "429" \
    "$("$CLIENT" "$P" "$G" 2>&1 | head -1 | cut -d' ' -f1)"
  "$CLIENT" "$P" --body-to "$tmp/metrics.txt" \
    'GET /metrics HTTP/1.1\r\nHost: smoke\r\nConnection: close\r\n\r\n' > /dev/null 2>&1 || true
  check "per client: /metrics counts the limiters' refusals and the client addresses held" \
    "2 2 0" "$(grep '^strix_ratelimit_keyed_refused_total{limiter="per-client"} ' "$tmp/metrics.txt" |
      cut -d' ' -f2) $(grep '^strix_ratelimit_keyed_keys{limiter="per-client"} ' "$tmp/metrics.txt" |
      cut -d' ' -f2) $(grep '^strix_ratelimit_refused_total{limiter="admission"} ' "$tmp/metrics.txt" |
      cut -d' ' -f2)"
  stop_pid "$ppid"
  check "per client: SIGTERM: exit status 0" 0 "$STATUS"
  stop_pid "$upid"
  S=$(tr -d '\n' < "$tmp/stats.json" 2>/dev/null || true)
  check "per client: stats count 2 refused by the client limit, none by the global one" \
    "2 0" "$(echo "$S" | grep -o '"client_limited": [0-9]*' | grep -o '[0-9]*$') \
$(echo "$S" | grep -o '"rate_limited": [0-9]*' | grep -o '[0-9]*$')"
  rm -f "$tmp"/*
}

for shards in 2 1; do
  echo "check-proxy: the proxy with --workers 2 --shards $shards"
  failed_before=$fail
  smoke --shards "$shards"
done
echo "check-proxy: the per-client rate limit"
limits
echo "check-proxy: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
