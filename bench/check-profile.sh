#!/usr/bin/env bash
# Where the node's CPU goes on the check path: one node (N token ids,
# --lookup-rate 0) under wrk -t2 -c50 (half the lookups hit), sampled with
# `perf record -F 999 -g` for PROFILE seconds in the middle of the load;
# prints the shares by binary and the top symbols (self time).
#
# usage: bench/check-profile.sh   (N=1000000 PROFILE=10 TOP=15 by default;
#        needs perf, from Debian's linux-perf)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
N=${N:-1000000}
PROFILE=${PROFILE:-10}
TOP=${TOP:-15}
HTTP_PORT=${HTTP_PORT:-17400}

build_veto
tmp=$(mktemp -d)
cleanup() {
  [ -n "${wrk_pid:-}" ] && kill "$wrk_pid" 2>/dev/null || true
  [ -n "${veto_pid:-}" ] && kill "$veto_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

VETO_ADMIN_TOKEN=$ADMIN RUST_LOG=warn "$VETO" serve --data-dir "$tmp/veto" \
  --listen "127.0.0.1:$HTTP_PORT" --gossip-listen 127.0.0.1:0 --lookup-rate 0 &
veto_pid=$!
wait_ready "http://127.0.0.1:$HTTP_PORT"
python3 "$ROOT/bench/load.py" "http://127.0.0.1:$HTTP_PORT" "$ADMIN" "$N" >&2
write_check_lua "$tmp/check.lua" "$N"

wrk -t2 -c50 -d"$((PROFILE + 4))s" --latency -s "$tmp/check.lua" \
  "http://127.0.0.1:$HTTP_PORT" > "$tmp/wrk.out" &
wrk_pid=$!
sleep 2
perf record -F 999 -g -o "$tmp/perf.data" -p "$veto_pid" -- sleep "$PROFILE" 2> /dev/null
wait "$wrk_pid"
wrk_pid=

echo "check-profile, $(date -u +%F), $(machine), N=$N, wrk -t2 -c50," \
  "$(awk '/Requests\/sec/ {print $2}' "$tmp/wrk.out") req/s," \
  "p99 $(awk '$1=="99%" {print $2}' "$tmp/wrk.out")"
echo "by binary:"
perf report -i "$tmp/perf.data" --no-children --sort dso --stdio 2> /dev/null \
  | grep -E '^ +[0-9.]+%' | sed -E 's/ +$//' | head -6
echo "top symbols (self):"
perf report -i "$tmp/perf.data" --no-children --sort symbol --stdio -g none 2> /dev/null \
  | grep -E '^ +[0-9.]+%' | sed -E 's/[ -]+$//' | head -"$TOP"
