#!/usr/bin/env bash
# GET /v1/check latency during a revoke storm held at the write rate limit,
# next to the same lookups with no storm, side by side in one run.
#
# One release node on loopback holds N token revocations and a low write
# limit (--write-rate RATE --write-burst RATE). The storm is one wrk client
# revoking as fast as it can with the one admin token (STORM_CONNS
# connections, a new jti per request): RATE/s are stored, the rest answered
# 429. The lookups are wrk at modest concurrency (CHECK_CONNS connections,
# each pausing PACE_MS between requests, so the node is not saturated by the
# lookups themselves), uniformly over 2N ids (half hit). Rounds alternate:
# lookups alone, then lookups while the storm runs; the figures are medians
# over ROUNDS. Everything shares the machine's cores: the storm's own client
# takes CPU from the node too, which is part of what a storm costs.
#
# The lookup limit is off (--lookup-rate 0) so that only the write storm
# differs between the two runs.
#
# usage: bench/revoke-storm.sh   (N=100000 RATE=100 DUR=10 ROUNDS=5
#                                 CHECK_CONNS=10 STORM_CONNS=4 PACE_MS=1)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
# lib.sh's build goes where cargo puts it: follow CARGO_TARGET_DIR too.
VETO="${CARGO_TARGET_DIR:-$ROOT/target}/release/veto"
N=${N:-100000}
RATE=${RATE:-100}
DUR=${DUR:-10}
ROUNDS=${ROUNDS:-5}
CHECK_CONNS=${CHECK_CONNS:-10}
STORM_CONNS=${STORM_CONNS:-4}
PACE_MS=${PACE_MS:-1}
HTTP_PORT=${HTTP_PORT:-17450}
URL="http://127.0.0.1:$HTTP_PORT"

build_veto
tmp=$(mktemp -d)
cleanup() {
  [ -n "${storm_pid:-}" ] && kill "$storm_pid" 2>/dev/null || true
  [ -n "${veto_pid:-}" ] && kill "$veto_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

VETO_ADMIN_TOKEN=$ADMIN RUST_LOG=warn "$VETO" serve --data-dir "$tmp/veto" \
  --listen "127.0.0.1:$HTTP_PORT" --gossip-listen 127.0.0.1:0 \
  --write-rate "$RATE" --write-burst "$RATE" --lookup-rate 0 &
veto_pid=$!
wait_ready "$URL"
# The preload is one token's writes too: batches count once each.
python3 "$ROOT/bench/load.py" "$URL" "$ADMIN" "$N" >&2

cat > "$tmp/check.lua" <<LUA
local n = $((2 * N))
request = function()
  return wrk.format("GET", string.format("/v1/check?iss=https%%3A%%2F%%2Fidp.example&jti=jti-%012d", math.random(0, n - 1)))
end
delay = function()
  return $PACE_MS
end
LUA
cat > "$tmp/storm.lua" <<LUA
local n = 0
local run = math.random(0, 1000000000)
local headers = {["Authorization"] = "Bearer $ADMIN", ["Content-Type"] = "application/json"}
request = function()
  n = n + 1
  local body = string.format('{"scope":"token","iss":"https://idp.example","jti":"storm-%d-%d"}', run, n)
  return wrk.format("POST", "/v1/revocations", headers, body)
end
LUA

CHECK_CMD="wrk -t1 -c$CHECK_CONNS -d${DUR}s --latency -s check.lua $URL"
STORM_CMD="wrk -t1 -c$STORM_CONNS -d$((DUR + 2))s -s storm.lua $URL"

# check OUT: runs the lookups; prints "req/s p50_ms p99_ms".
check() {
  (cd "$tmp" && $CHECK_CMD) > "$1"
  local errors
  errors=$(awk '/Non-2xx|Socket errors/ {print}' "$1")
  [ -z "$errors" ] || { echo "lookups saw errors: $errors" >&2; exit 1; }
  echo "$(awk '/Requests\/sec/ {print $2}' "$1")" \
    "$(to_ms "$(awk '$1=="50%" {print $2}' "$1")")" \
    "$(to_ms "$(awk '$1=="99%" {print $2}' "$1")")"
}

: > "$tmp/alone.txt"; : > "$tmp/storm.txt"; : > "$tmp/writes.txt"
for r in $(seq 1 "$ROUNDS"); do
  check "$tmp/alone.out" >> "$tmp/alone.txt"
  (cd "$tmp" && $STORM_CMD) > "$tmp/storm.out" &
  storm_pid=$!
  sleep 1
  check "$tmp/during.out" >> "$tmp/storm.txt"
  wait "$storm_pid"
  storm_pid=
  # The storm: requests/s, stored/s (2xx), and the share answered 429.
  total=$(awk '/requests in/ {print $1}' "$tmp/storm.out")
  limited=$(awk '/Non-2xx/ {print $5}' "$tmp/storm.out")
  limited=${limited:-0}
  secs=$(awk '/requests in/ {sub(/s,$/, "", $4); print $4}' "$tmp/storm.out")
  awk -v t="$total" -v l="$limited" -v s="$secs" \
    'BEGIN {printf "%.0f %.1f %.4f\n", t/s, (t-l)/s, l/t}' >> "$tmp/writes.txt"
  echo "round $r: alone $(tail -1 "$tmp/alone.txt") | storm $(tail -1 "$tmp/storm.txt") (req/s p50_ms p99_ms) | writes $(tail -1 "$tmp/writes.txt") (req/s stored/s share_429)" >&2
done

col() { awk -v c="$2" '{print $c}' "$1" | median; }
echo
echo "revoke-storm, $(date -u +%F), $(machine), N=$N, --write-rate $RATE --write-burst $RATE --lookup-rate 0, $ROUNDS rounds of ${DUR}s, medians"
echo "lookups: $CHECK_CMD (delay ${PACE_MS} ms per request)"
echo "storm:   $STORM_CMD (POST /v1/revocations, one bearer token)"
echo "| lookups | req/s | p50 ms | p99 ms |"
echo "|---|---:|---:|---:|"
echo "| alone | $(col "$tmp/alone.txt" 1) | $(col "$tmp/alone.txt" 2) | $(col "$tmp/alone.txt" 3) |"
echo "| during the storm | $(col "$tmp/storm.txt" 1) | $(col "$tmp/storm.txt" 2) | $(col "$tmp/storm.txt" 3) |"
echo "storm: $(col "$tmp/writes.txt" 1) req/s, $(col "$tmp/writes.txt" 2) stored/s, share answered 429 $(col "$tmp/writes.txt" 3)"
