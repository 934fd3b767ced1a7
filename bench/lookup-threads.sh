#!/usr/bin/env bash
# The check path's tail against how the node's and the load generator's
# threads share the cores: one node (N token ids, --lookup-rate 0), restarted
# with TOKIO_WORKER_THREADS=2 and =1, each measured with wrk -t2 and -t1
# (50 connections, DUR-second rounds; half the lookups hit).
#
# usage: bench/lookup-threads.sh   (N=1000000 DUR=10 ROUNDS=3 by default)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
N=${N:-1000000}
DUR=${DUR:-10}
ROUNDS=${ROUNDS:-3}
HTTP_PORT=${HTTP_PORT:-17400}

build_veto
tmp=$(mktemp -d)
cleanup() {
  [ -n "${veto_pid:-}" ] && kill "$veto_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

start_veto() {
  VETO_ADMIN_TOKEN=$ADMIN RUST_LOG=warn TOKIO_WORKER_THREADS=$1 "$VETO" serve --data-dir "$tmp/veto" \
    --listen "127.0.0.1:$HTTP_PORT" --gossip-listen 127.0.0.1:0 --lookup-rate 0 &
  veto_pid=$!
  wait_ready "http://127.0.0.1:$HTTP_PORT"
}
restart_veto() {
  kill "$veto_pid"; wait "$veto_pid" 2>/dev/null || true
  start_veto "$1"
}

start_veto 2
python3 "$ROOT/bench/load.py" "http://127.0.0.1:$HTTP_PORT" "$ADMIN" "$N" >&2
write_check_lua "$tmp/check.lua" "$N"

# run WRK_THREADS LABEL: one round, one line.
run() {
  wrk -t"$1" -c50 -d"${DUR}s" --latency -s "$tmp/check.lua" "http://127.0.0.1:$HTTP_PORT" > "$tmp/wrk.out"
  echo "$2 wrk -t$1: $(awk '/Requests\/sec/ {print $2}' "$tmp/wrk.out") req/s," \
    "p50 $(awk '$1=="50%" {print $2}' "$tmp/wrk.out")" \
    "p90 $(awk '$1=="90%" {print $2}' "$tmp/wrk.out")" \
    "p99 $(awk '$1=="99%" {print $2}' "$tmp/wrk.out")"
}

echo "lookup-threads, $(date -u +%F), $(machine), N=$N, 50 connections, rounds of ${DUR}s"
for _ in $(seq 1 "$ROUNDS"); do
  restart_veto 2
  run 2 "workers=2"; run 1 "workers=2"
  restart_veto 1
  run 1 "workers=1"; run 2 "workers=1"
done
