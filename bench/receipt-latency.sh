#!/usr/bin/env bash
# Time to a complete receipt: real release nodes on loopback, one origin
# (us-east) linked to every other region through a `veto-relay` that adds a
# one-way delay each way. For each of COUNT revocations at the origin, in one
# run: the time to a plain 201, and the time to a 201 of
# `?wait=all&timeout=10` (every region holds it durably and said so). The
# proof that a region holds a record has to come back to the origin, so the
# floor of the second is the slowest link's round trip plus that region's
# fsync.
#
# usage: bench/receipt-latency.sh             (DELAYS="40 90" COUNT=50)
#   DELAYS="20 40 70 90"  one-way delays in ms of the other regions (4: 5 regions)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
COUNT=${COUNT:-50}
DELAYS=${DELAYS:-40 90}
BASE=${BASE:-17500}

(cd "$ROOT" && cargo build --release --quiet --bin veto --bin veto-relay)
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

names=(us)
i=1
for _ in $DELAYS; do names+=("r$i"); i=$((i + 1)); done
"$VETO" cert ca --out "$tmp/certs" >/dev/null
for n in "${names[@]}"; do
  "$VETO" cert node --ca-dir "$tmp/certs" --name "$n" --out "$tmp/certs" >/dev/null
done
node() { # name index extra-args...
  local name=$1 idx=$2
  shift 2
  VETO_ADMIN_TOKEN=$ADMIN RUST_LOG=warn "$VETO" serve --data-dir "$tmp/$name" \
    --listen "127.0.0.1:$((BASE + idx))" --gossip-listen "127.0.0.1:$((BASE + 100 + idx))" \
    --name "$name" --region "region-$name" --tls-ca "$tmp/certs/ca.pem" \
    --tls-cert "$tmp/certs/$name.pem" --tls-key "$tmp/certs/$name.key" "$@" &
  pids+=($!)
}
relay() { # listen-port to-port control-port seed delay-ms
  "$ROOT/target/release/veto-relay" --listen "127.0.0.1:$1" \
    --to "127.0.0.1:$2" --control "127.0.0.1:$3" --seed "$4" &
  pids+=($!)
  sleep 0.3
  exec 3<>"/dev/tcp/127.0.0.1/$3"
  echo "delay $5" >&3
  read -r _reply <&3
  exec 3>&-
}
# Both ends of a link list each other (a node accepts a dial-in only from a
# peer it lists), each through its own relay with the link's delay.
peers=()
i=1
for d in $DELAYS; do
  relay $((BASE + 200 + i)) $((BASE + 100 + i)) $((BASE + 300 + i)) "$i" "$d"
  relay $((BASE + 400 + i)) $((BASE + 100)) $((BASE + 500 + i)) $((i + 100)) "$d"
  node "r$i" "$i" --peer "127.0.0.1:$((BASE + 400 + i))"
  peers+=(--peer "127.0.0.1:$((BASE + 200 + i))")
  i=$((i + 1))
done
node us 0 "${peers[@]}"
url="http://127.0.0.1:$BASE"
wait_ready "$url"
regions=$((${#names[@]}))
for _ in $(seq 1 300); do
  known=$(curl -fs "$url/v1/status" | python3 -c 'import json,sys; print(sum(1 for o in json.load(sys.stdin)["origins"] if o["complete_through"]))')
  [ "$known" = "$regions" ] && break
  sleep 0.1
done

revoke() { # query jti -> seconds
  curl -fs -o /dev/null -w '%{time_total}\n' -H "Authorization: Bearer $ADMIN" \
    -H 'Content-Type: application/json' -d "{\"scope\":\"token\",\"jti\":\"$2\"}" \
    "$url/v1/revocations$1"
}
plain=()
waited=()
for k in $(seq 1 "$COUNT"); do
  plain+=("$(revoke "" "plain-$k")")
  waited+=("$(revoke "?wait=all&timeout=10" "wait-$k")")
done
ms() { awk '{printf "%.1f\n", $1 * 1000}'; }
p50_plain=$(printf '%s\n' "${plain[@]}" | ms | median)
p50_wait=$(printf '%s\n' "${waited[@]}" | ms | median)
max=0
for d in $DELAYS; do [ "$d" -gt "$max" ] && max=$d; done
echo "# $(machine); $regions regions, one-way delays (ms) from the origin: $DELAYS; COUNT=$COUNT"
echo "median 201 (no wait)          ${p50_plain} ms"
echo "median 201 with wait=all      ${p50_wait} ms"
echo "slowest round trip            $((2 * max)) ms"
awk -v w="$p50_wait" -v r="$((2 * max))" 'BEGIN {printf "wait=all minus round trip     %.1f ms\n", w - r}'
