#!/usr/bin/env bash
# Restart from a stale checkpoint, two builds side by side: alternating
# starts on one data dir whose checkpoint is behind the store (as
# bench/restart.sh leaves it after its SINCE arm), `kill -9` between them.
# Each start is timed until /readyz answers and a check of a revoked token
# is answered; nodes run with --checkpoint-interval 3600, so nothing
# rewrites the checkpoint between starts. Prints each start and the medians.
#
# usage: DATA=<data dir> A=<veto binary> B=<veto binary> [ROUNDS=3] bench/restart-stale.sh
set -euo pipefail
source "$(dirname "$0")/lib.sh"
: "${DATA:?a data dir with a checkpoint behind its store}" "${A:?a veto binary}" "${B:?another}"
ROUNDS=${ROUNDS:-3}
HTTP_PORT=${HTTP_PORT:-17510}
URL="http://127.0.0.1:$HTTP_PORT"
trap '[ -n "${pid:-}" ] && kill -9 "$pid" 2>/dev/null || true' EXIT

declare -A took
for round in $(seq 1 "$ROUNDS"); do
  for arm in A B; do
    t0=$(date +%s.%N)
    VETO_ADMIN_TOKEN=$ADMIN RUST_LOG=warn "${!arm}" serve --data-dir "$DATA" \
      --listen "127.0.0.1:$HTTP_PORT" --gossip-listen 127.0.0.1:0 \
      --checkpoint-interval 3600 >/dev/null 2>&1 &
    pid=$!
    wait_ready "$URL"
    curl -fs "$URL/v1/check?iss=https://idp.example&jti=jti-000000000000" | grep -q '"revoked":true'
    t1=$(date +%s.%N)
    used=$(curl -fs "$URL/metrics" | grep -c 'veto_checkpoint_loads_total{result="used"} 1' || true)
    [ "$used" = 1 ] || { echo "$arm did not use the checkpoint" >&2; exit 1; }
    s=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b-a}')
    echo "round $round $arm: $s s, $(revocation_count "$URL") records"
    took[$arm]="${took[$arm]:-} $s"
    kill -9 "$pid"; wait "$pid" 2>/dev/null || true
    pid=
  done
done
echo
echo "restart from a stale checkpoint, $(date -u +%F), $(machine)"
for arm in A B; do
  echo "$arm (${!arm}):${took[$arm]}; median $(printf '%s\n' ${took[$arm]} | median) s"
done
