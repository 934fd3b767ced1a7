#!/usr/bin/env bash
# veto GET /v1/check over HTTP keep-alive against Redis SISMEMBER, side by side,
# on the same machine, at the same concurrency (50 connections, CLIENT_THREADS
# load-generator threads for both). Both hold the same N token ids; lookups
# draw uniformly from 2N ids (half hit).
#
# On a 2-core machine, two client threads and the server's threads share both
# cores, and the tail is then the kernel's scheduling tick (4 ms at HZ=250)
# rather than either server; CLIENT_THREADS=1 leaves the server a core, and
# favours single-threaded Redis.
#
# usage: bench/lookup-vs-redis.sh  (N=1000000 DUR=15 ROUNDS=3 CLIENT_THREADS=2 by default)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
N=${N:-1000000}
DUR=${DUR:-15}
ROUNDS=${ROUNDS:-3}
CONNS=50
CLIENT_THREADS=${CLIENT_THREADS:-2}
HTTP_PORT=${HTTP_PORT:-17400}
REDIS_PORT=${REDIS_PORT:-16379}

build_veto
tmp=$(mktemp -d)
cleanup() {
  [ -n "${veto_pid:-}" ] && kill "$veto_pid" 2>/dev/null || true
  [ -n "${redis_pid:-}" ] && kill "$redis_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

VETO_ADMIN_TOKEN=$ADMIN RUST_LOG=warn "$VETO" serve --data-dir "$tmp/veto" \
  --listen "127.0.0.1:$HTTP_PORT" --gossip-listen 127.0.0.1:0 &
veto_pid=$!
wait_ready "http://127.0.0.1:$HTTP_PORT"
python3 "$ROOT/bench/load.py" "http://127.0.0.1:$HTTP_PORT" "$ADMIN" "$N" >&2

redis-server --port "$REDIS_PORT" --save '' --appendonly no --loglevel warning &
redis_pid=$!
for _ in $(seq 1 100); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
python3 - "$N" <<'PY' | redis-cli -p "$REDIS_PORT" --pipe >/dev/null
import sys
n = int(sys.argv[1])
out = sys.stdout
for start in range(0, n, 1000):
    ids = [f"jti-{i:012d}" for i in range(start, min(n, start + 1000))]
    parts = [b"SADD", b"revoked"] + [x.encode() for x in ids]
    buf = b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)
    out.buffer.write(buf)
PY

write_check_lua "$tmp/check.lua" "$N"

: > "$tmp/veto.txt"; : > "$tmp/redis.txt"
for r in $(seq 1 "$ROUNDS"); do
  wrk -t"$CLIENT_THREADS" -c"$CONNS" -d"${DUR}s" --latency -s "$tmp/check.lua" "http://127.0.0.1:$HTTP_PORT" > "$tmp/wrk.out"
  rps=$(awk '/Requests\/sec/ {print $2}' "$tmp/wrk.out")
  p50=$(to_ms "$(awk '$1=="50%" {print $2}' "$tmp/wrk.out")")
  p99=$(to_ms "$(awk '$1=="99%" {print $2}' "$tmp/wrk.out")")
  errors=$(awk '/Non-2xx|Socket errors/ {print}' "$tmp/wrk.out")
  [ -z "$errors" ] || { echo "wrk saw errors: $errors" >&2; exit 1; }
  echo "$rps $p50 $p99" >> "$tmp/veto.txt"
  # redis-benchmark runs a fixed count: size it to about DUR seconds at ~70k/s.
  redis-benchmark -p "$REDIS_PORT" -c "$CONNS" --threads "$CLIENT_THREADS" -n $((70000 * DUR)) -r $((2 * N)) --csv \
    SISMEMBER revoked jti-__rand_int__ > "$tmp/rb.out"
  tail -1 "$tmp/rb.out" | tr -d '"' | awk -F, '{print $2, $5, $7}' >> "$tmp/redis.txt"
  echo "round $r: veto $(tail -1 "$tmp/veto.txt") | redis $(tail -1 "$tmp/redis.txt")  (req/s p50_ms p99_ms)" >&2
done

v_rps=$(awk '{print $1}' "$tmp/veto.txt" | median); v_p50=$(awk '{print $2}' "$tmp/veto.txt" | median); v_p99=$(awk '{print $3}' "$tmp/veto.txt" | median)
r_rps=$(awk '{print $1}' "$tmp/redis.txt" | median); r_p50=$(awk '{print $2}' "$tmp/redis.txt" | median); r_p99=$(awk '{print $3}' "$tmp/redis.txt" | median)
ratio=$(awk -v a="$v_rps" -v b="$r_rps" 'BEGIN {printf "%.2f", a/b}')
echo
echo "lookup-vs-redis, $(date -u +%F), $(machine), N=$N, $CONNS connections, $ROUNDS rounds of ${DUR}s, medians"
echo "| system | req/s | p50 ms | p99 ms |"
echo "|---|---|---|---|"
echo "| veto GET /v1/check (wrk -t$CLIENT_THREADS -c$CONNS) | $v_rps | $v_p50 | $v_p99 |"
echo "| Redis SISMEMBER (redis-benchmark --threads $CLIENT_THREADS -c $CONNS) | $r_rps | $r_p50 | $r_p99 |"
echo "| ratio veto/redis | $ratio | | |"
