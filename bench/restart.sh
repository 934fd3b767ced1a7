#!/usr/bin/env bash
# Restart time at scale, from the index checkpoint and without one:
#  - a data dir with N token revocations (made through /v1/revocations/batch
#    unless DATA names one made before);
#  - the node writes its checkpoint; then, ROUNDS times: kill -9, start, time
#    until /readyz answers and a check is answered ("with checkpoint");
#  - the same with the checkpoint file deleted before each start ("without");
#  - then SINCE more records (N/4 by default; 0 skips it) are stored with
#    no checkpoint after them, and the starts are timed again ("stale"): the
#    case of a kill soon after a bulk ingest, when the restart reads what
#    came after the checkpoint from the store.
# Prints medians and the resident memory after the last restart of each kind.
#
# usage: bench/restart.sh                     (N=10000000, ROUNDS=3)
#        DATA=/path/to/data-dir bench/restart.sh   (it gains the SINCE records)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
N=${N:-10000000}
ROUNDS=${ROUNDS:-3}
SINCE=${SINCE:-$((N / 4))}
HTTP_PORT=${HTTP_PORT:-17510}
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
  VETO_ADMIN_TOKEN=$ADMIN RUST_LOG=warn "$VETO" serve --data-dir "$DATA" \
    --listen "127.0.0.1:$HTTP_PORT" --gossip-listen 127.0.0.1:0 \
    --checkpoint-interval "${1:-1}" >/dev/null &
  veto_pid=$!
}
metric() { curl -fs "$URL/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
stop_veto() { kill -9 "$veto_pid"; wait "$veto_pid" 2>/dev/null || true; }

# One timed start: sets `took` to the seconds until ready and a check answered.
timed_start() {
  local t0 t1
  t0=$(date +%s.%N)
  start_veto "$1"
  wait_ready "$URL"
  curl -fs "$URL/v1/check?iss=https://idp.example&jti=jti-000000000000" | grep -q '"revoked":true'
  t1=$(date +%s.%N)
  took=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b-a}')
}

# A checkpoint written afresh, so that its write time is measured too.
rm -f "$DATA/index.checkpoint"
start_veto
wait_ready "$URL"
load_to "$URL" "$N"
N=$(revocation_count "$URL")
for _ in $(seq 1 600); do
  [ "$(metric veto_checkpoint_records)" = "$N" ] && break
  sleep 1
done
[ "$(metric veto_checkpoint_records)" = "$N" ] || { echo "no checkpoint of $N records" >&2; exit 1; }
ckpt_bytes=$(stat -c %s "$DATA/index.checkpoint")
ckpt_write=$(metric veto_checkpoint_write_seconds)
stop_veto

with=()
for _ in $(seq 1 "$ROUNDS"); do
  timed_start 3600
  with+=("$took")
  used=$(curl -fs "$URL/metrics" | grep -c 'veto_checkpoint_loads_total{result="used"} 1' || true)
  [ "$used" = 1 ] || { echo "the checkpoint was not used" >&2; exit 1; }
  with_kb=$(rss_kb "$veto_pid")
  with_peak_kb=$(awk '/VmHWM/ {print $2}' "/proc/$veto_pid/status")
  stop_veto
done
saved="$tmp/saved.checkpoint"
cp "$DATA/index.checkpoint" "$saved"
without=()
for _ in $(seq 1 "$ROUNDS"); do
  rm -f "$DATA/index.checkpoint"
  timed_start 3600
  without+=("$took")
  without_kb=$(rss_kb "$veto_pid")
  without_peak_kb=$(awk '/VmHWM/ {print $2}' "/proc/$veto_pid/status")
  stop_veto
done
cp "$saved" "$DATA/index.checkpoint"

stale=()
if [ "$SINCE" -gt 0 ]; then
  # The writer's first tick comes before the index is loaded, the next an
  # hour later: nothing below writes a checkpoint.
  start_veto 3600
  wait_ready "$URL"
  python3 "$ROOT/bench/load.py" "$URL" "$ADMIN" "$SINCE" --prefix since- >/dev/null
  stop_veto
  for _ in $(seq 1 "$ROUNDS"); do
    timed_start 3600
    stale+=("$took")
    used=$(curl -fs "$URL/metrics" | grep -c 'veto_checkpoint_loads_total{result="used"} 1' || true)
    [ "$used" = 1 ] || { echo "the stale checkpoint was not used" >&2; exit 1; }
    [ -z "$(metric 'veto_checkpoint_writes_total{result="ok"}')" ] \
      || { echo "a checkpoint was written during the stale rounds" >&2; exit 1; }
    stale_kb=$(rss_kb "$veto_pid")
    stop_veto
  done
fi

per() { awk -v kb="$1" -v n="${2:-$N}" 'BEGIN {printf "%.1f", kb*1024/n}'; }
echo
echo "restart, $(date -u +%F), $(machine), N=$N token revocations"
echo "checkpoint: $ckpt_bytes bytes ($(awk -v b="$ckpt_bytes" -v n="$N" 'BEGIN {printf "%.1f", b/n}') per record), last write ${ckpt_write} s"
echo "| start after kill -9 | rounds (s) | median s | RSS bytes per revocation | peak RSS MiB |"
echo "|---|---|---|---|---|"
echo "| from the checkpoint | ${with[*]} | $(printf '%s\n' "${with[@]}" | median) | $(per "$with_kb") | $((with_peak_kb / 1024)) |"
echo "| reading every record | ${without[*]} | $(printf '%s\n' "${without[@]}" | median) | $(per "$without_kb") | $((without_peak_kb / 1024)) |"
if [ "$SINCE" -gt 0 ]; then
  echo "| from the checkpoint, $SINCE records stored after it | ${stale[*]} | $(printf '%s\n' "${stale[@]}" | median) | $(per "$stale_kb" $((N + SINCE))) | |"
fi
