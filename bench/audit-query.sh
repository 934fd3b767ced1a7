#!/usr/bin/env bash
# Filtered audit queries (GET /v1/revocations) at scale: each filter the
# index answers, timed against a node with N token revocations, and, when
# BASELINE names another veto binary, the same queries against it in the
# same run (for a before/after of the audit index).
#
# usage: DATA=/path/to/data-dir [BASELINE=/path/to/old/veto] bench/audit-query.sh
#        (without DATA, N token revocations are loaded first; N=10000000)
# The bench adds one session and one subject revocation to the data dir, so
# that the sparse scopes have something to find.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
N=${N:-10000000}
ROUNDS=${ROUNDS:-5}
HTTP_PORT=${HTTP_PORT:-17520}
URL="http://127.0.0.1:$HTTP_PORT"

build_veto
tmp=$(mktemp -d)
DATA=${DATA:-$tmp/veto}
cleanup() {
  [ -n "${veto_pid:-}" ] && kill -9 "$veto_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

start_veto() {
  VETO_ADMIN_TOKEN=$ADMIN RUST_LOG=warn "$1" serve --data-dir "$DATA" \
    --listen "127.0.0.1:$HTTP_PORT" --gossip-listen 127.0.0.1:0 >/dev/null &
  veto_pid=$!
  wait_ready "$URL"
}
stop_veto() { kill "$veto_pid"; wait "$veto_pid" 2>/dev/null || true; veto_pid=; }
auth=(-H "Authorization: Bearer $ADMIN")
count() { python3 -c 'import json,sys; print(len(json.load(sys.stdin)["records"]))'; }

start_veto "$VETO"
load_to "$URL" "$N"
if [ "$(curl -fs "${auth[@]}" "$URL/v1/revocations?scope=session&limit=1" | count)" = 0 ]; then
  curl -fs "${auth[@]}" -H 'Content-Type: application/json' "$URL/v1/revocations" \
    -d '{"scope": "session", "sid": "bench-session"}' >/dev/null
  curl -fs "${auth[@]}" -H 'Content-Type: application/json' "$URL/v1/revocations" \
    -d '{"scope": "subject", "iss": "https://idp.example", "sub": "bench-user", "before": 1700000000}' >/dev/null
fi
origin=$(curl -fs "${auth[@]}" "$URL/v1/revocations?scope=token&limit=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["records"][0]["origin"])')
N=$(revocation_count "$URL")
stop_veto

queries=(
  "key=jti-000004567890"
  "key=bench-session"
  "origin=$origin&limit=100"
  "scope=session"
  "scope=subject"
  "scope=token&limit=100"
  "key=https://idp.example&limit=100"
  "limit=100"
)

# time_queries BINARY: one line per query, "median_ms results rounds...".
time_queries() {
  start_veto "$1"
  for q in "${queries[@]}"; do
    local times=() n
    for _ in $(seq 1 "$ROUNDS"); do
      times+=("$(curl -fs -o /dev/null -w '%{time_total}' "${auth[@]}" "$URL/v1/revocations?$q" | awk '{printf "%.1f", $1*1000}')")
    done
    n=$(curl -fs "${auth[@]}" "$URL/v1/revocations?$q" | count)
    echo "$(printf '%s\n' "${times[@]}" | median) $n ${times[*]}"
  done
  stop_veto
}

mapfile -t after < <(time_queries "$VETO")
before=()
if [ -n "${BASELINE:-}" ]; then
  mapfile -t before < <(time_queries "$BASELINE")
fi

echo
echo "audit queries, $(date -u +%F), $(machine), N=$N records, medians of $ROUNDS"
echo "| query | results | indexed ms | scan ms (BASELINE) | ratio |"
echo "|---|---|---|---|---|"
for i in "${!queries[@]}"; do
  read -r a n _ <<<"${after[$i]}"
  b="-"; r="-"
  if [ ${#before[@]} -gt 0 ]; then
    read -r b _ <<<"${before[$i]}"
    r=$(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.4f", a/b}')
  fi
  echo "| \`${queries[$i]}\` | $n | $a | $b | $r |"
done
