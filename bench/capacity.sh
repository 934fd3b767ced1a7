#!/usr/bin/env bash
# Ingest, memory and restart at scale, with Redis alongside for memory:
#  - ingest: N durable token revocations through /v1/revocations/batch (10,000 per batch);
#  - memory: resident bytes per revocation of the veto process with N loaded,
#    next to a Redis set holding the same N ids;
#  - restart: kill -9, restart on the same data dir, time until /readyz (index loaded),
#    and until every hit's details are back in memory (read after /readyz, in the background).
#
# usage: bench/capacity.sh          (N=10000000 by default)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
N=${N:-10000000}
HTTP_PORT=${HTTP_PORT:-17500}
REDIS_PORT=${REDIS_PORT:-16380}

build_veto
tmp=$(mktemp -d)
cleanup() {
  [ -n "${veto_pid:-}" ] && kill -9 "$veto_pid" 2>/dev/null || true
  [ -n "${redis_pid:-}" ] && kill "$redis_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

start_veto() {
  VETO_ADMIN_TOKEN=$ADMIN RUST_LOG=warn "$VETO" serve --data-dir "$tmp/veto" \
    --listen "127.0.0.1:$HTTP_PORT" --gossip-listen 127.0.0.1:0 &
  veto_pid=$!
}

start_veto
wait_ready "http://127.0.0.1:$HTTP_PORT"
base_kb=$(rss_kb "$veto_pid")
ingest=$(python3 "$ROOT/bench/load.py" "http://127.0.0.1:$HTTP_PORT" "$ADMIN" "$N")
# The node gives freed heap back within two 5 s ticks of the last write.
sleep 12
veto_kb=$(rss_kb "$veto_pid")
disk=$(du -sb "$tmp/veto" | awk '{print $1}')

kill -9 "$veto_pid"; wait "$veto_pid" 2>/dev/null || true
# A kill during a checkpoint write leaves the file written aside.
mid_write=no; [ -e "$tmp/veto/index.checkpoint.tmp" ] && mid_write=yes
t0=$(date +%s.%N)
start_veto
wait_ready "http://127.0.0.1:$HTTP_PORT"
t1=$(date +%s.%N)
restart_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b-a}')
metrics=$(curl -fs "http://127.0.0.1:$HTTP_PORT/metrics")
checkpoint=$(awk '/^veto_checkpoint_loads_total/ {sub(/.*result="/, ""); sub(/".*/, ""); print}' <<< "$metrics")
checkpoint_records=$(awk '$1=="veto_checkpoint_records" {printf "%d", $2}' <<< "$metrics")
curl -fs "http://127.0.0.1:$HTTP_PORT/v1/check?iss=https://idp.example&jti=jti-000000000000" | grep -q '"revoked":true'
# Memory once the node has read every record's hit details back (in the
# background, after it serves): its steady state.
details_s=
for i in $(seq 1 1200); do
  noted=$(curl -fs "http://127.0.0.1:$HTTP_PORT/metrics" | awk '$1=="veto_hit_details_records" {print $2}')
  if [ "${noted%.*}" = "$N" ]; then details_s=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b-a}'); break; fi
  sleep 0.1
done
[ -n "$details_s" ] || { echo "the hit details were never all read back" >&2; exit 1; }
restart_kb=$(rss_kb "$veto_pid")

redis-server --port "$REDIS_PORT" --save '' --appendonly no --loglevel warning &
redis_pid=$!
for _ in $(seq 1 100); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
redis_base_kb=$(rss_kb "$redis_pid")
python3 - "$N" <<'PY' | redis-cli -p "$REDIS_PORT" --pipe >/dev/null
import sys
n = int(sys.argv[1])
out = sys.stdout.buffer
for start in range(0, n, 1000):
    parts = [b"SADD", b"revoked"] + [b"jti-%012d" % i for i in range(start, min(n, start + 1000))]
    out.write(b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts))
PY
redis_kb=$(rss_kb "$redis_pid")
redis_used=$(redis-cli -p "$REDIS_PORT" info memory | awk -F: '/^used_memory:/ {print $2}' | tr -d '\r')

per() { awk -v kb="$1" -v base="$2" -v n="$N" 'BEGIN {printf "%.1f", (kb-base)*1024/n}'; }
echo
echo "capacity, $(date -u +%F), $(machine), N=$N token revocations"
echo "ingest through /v1/revocations/batch (10,000 per batch, durable): $ingest"
echo "| | resident bytes per revocation | RSS MiB |"
echo "|---|---|---|"
echo "| veto after ingest | $(per "$veto_kb" "$base_kb") | $((veto_kb / 1024)) |"
echo "| veto after restart | $(per "$restart_kb" "$base_kb") | $((restart_kb / 1024)) |"
echo "| Redis set (SADD) | $(per "$redis_kb" "$redis_base_kb") | $((redis_kb / 1024)) |"
echo "Redis used_memory: $redis_used bytes ($(awk -v u="$redis_used" -v n="$N" 'BEGIN {printf "%.1f", u/n}') per id); veto data dir on disk: $disk bytes"
echo "restart (kill -9, then serving checks): ${restart_s} s; every hit's details in memory after ${details_s} s"
echo "the kill landed during a checkpoint write: $mid_write; the restart's checkpoint: ${checkpoint:-none}, of ${checkpoint_records:-0} records (the rest read from the store)"
