#!/usr/bin/env bash
# Revoke-to-enforce latency on loopback: a real release `veto serve`, and a
# veto-client LocalCache following its watch stream in another process. Each
# of COUNT revocations is sent one after another; the figure is the time from
# sending POST /v1/revocations until the cache answers "revoked" (p50/p99),
# and, beside it, the time from the node's 201 to the same moment.
#
# usage: bench/watch-latency.sh      (COUNT=1000 PRELOAD=0 DATA=disk by default)
#   PRELOAD=N  load N token revocations first (the cache loads them too)
#   DATA=shm   keep the node's data on /dev/shm, to take the disk's fsync out
set -euo pipefail
source "$(dirname "$0")/lib.sh"
COUNT=${COUNT:-1000}
PRELOAD=${PRELOAD:-0}
DATA=${DATA:-disk}
HTTP_PORT=${HTTP_PORT:-17410}

(cd "$ROOT" && cargo build --release --quiet --bin veto && \
  cargo build --release --quiet -p veto-client --example watch_latency)
if [ "$DATA" = shm ]; then tmp=$(mktemp -d -p /dev/shm); else tmp=$(mktemp -d); fi
cleanup() {
  [ -n "${veto_pid:-}" ] && kill "$veto_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

VETO_ADMIN_TOKEN=$ADMIN RUST_LOG=warn "$VETO" serve --data-dir "$tmp/veto" \
  --listen "127.0.0.1:$HTTP_PORT" --gossip-listen 127.0.0.1:0 &
veto_pid=$!
wait_ready "http://127.0.0.1:$HTTP_PORT"
if [ "$PRELOAD" -gt 0 ]; then
  python3 "$ROOT/bench/load.py" "http://127.0.0.1:$HTTP_PORT" "$ADMIN" "$PRELOAD" >&2
fi
echo "# $(machine); COUNT=$COUNT PRELOAD=$PRELOAD DATA=$DATA"
"$ROOT/target/release/examples/watch_latency" "http://127.0.0.1:$HTTP_PORT" "$ADMIN" "$COUNT"
