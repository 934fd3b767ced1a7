# Shared helpers for the benchmark scripts. Source it; do not run it.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# VETO may name another build, for a side-by-side comparison.
VETO=${VETO:-"$ROOT/target/release/veto"}
ADMIN=bench-admin-token

build_veto() {
  (cd "$ROOT" && cargo build --release --quiet)
}

# wait_ready URL: until /readyz answers 200.
wait_ready() {
  for _ in $(seq 1 600); do
    if curl -fs "$1/readyz" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "node at $1 never became ready" >&2
  return 1
}

# median of the numbers on stdin.
median() {
  sort -g | awk '{a[NR]=$1} END {if (NR==0) exit 1; if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'
}

# to_ms "1.23ms" | "850.00us" | "1.2s" -> milliseconds.
to_ms() {
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); print v/1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); print v+0 }
    else if (v ~ /s$/) { sub(/s$/, "", v); print v*1000 }
    else print v }'
}

machine() {
  echo "$(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -sr)"
}

# rss_kb PID: resident set size in KiB.
rss_kb() {
  awk '/VmRSS/ {print $2}' "/proc/$1/status"
}

# revocation_count URL: how many records the node holds (/v1/status).
revocation_count() {
  curl -fs "$1/v1/status" | python3 -c 'import json,sys; print(json.load(sys.stdin)["revocations"])'
}

# load_to URL N: token revocations through bench/load.py until the node holds N.
load_to() {
  local have
  have=$(revocation_count "$1")
  if [ "$have" -lt "$2" ]; then
    python3 "$ROOT/bench/load.py" "$1" "$ADMIN" "$(($2 - have))" >/dev/null
  fi
}

# write_check_lua FILE N: a wrk script of GET /v1/check for the ids bench/load.py
# made (jti-0 .. jti-N-1), drawn uniformly from 2N ids so that half hit.
write_check_lua() {
  cat > "$1" <<LUA
local n = $((2 * $2))
request = function()
  return wrk.format("GET", string.format("/v1/check?iss=https%%3A%%2F%%2Fidp.example&jti=jti-%012d", math.random(0, n - 1)))
end
LUA
}
