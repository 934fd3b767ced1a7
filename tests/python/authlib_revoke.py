#!/usr/bin/env python3
"""Revokes tokens at veto's RFC 7009 endpoint with Authlib's OAuth 2.0 client.

usage: authlib_revoke.py ENDPOINT CLIENT_ID [CA_FILE] < requests.json

An https:// ENDPOINT is verified against CA_FILE (PEM) when given, as
requests' `verify=`, else against the system's roots.

stdin: a JSON array of {"token", "token_type_hint"?, "client_secret",
"auth_method"?} (auth_method is Authlib's revocation_endpoint_auth_method,
client_secret_basic by default). stdout: a JSON array of {"status", "body",
"cache_control"}, one per request, in order.

veto takes its admin token as the client secret: Authlib sends it as the HTTP
Basic password, which veto accepts as the admin credential.
"""
import json
import os
import sys

# A plain-HTTP endpoint on loopback is allowed too; Authlib wants HTTPS
# otherwise.
os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")

from authlib.integrations.requests_client import OAuth2Session  # noqa: E402


def revoke(endpoint, client_id, ca_file, req):
    session = OAuth2Session(
        client_id=client_id,
        client_secret=req["client_secret"],
        revocation_endpoint_auth_method=req.get("auth_method", "client_secret_basic"),
    )
    # Proxies from the environment must not intercept loopback requests.
    session.trust_env = False
    if ca_file:
        session.verify = ca_file
    resp = session.revoke_token(
        endpoint,
        token=req["token"],
        token_type_hint=req.get("token_type_hint"),
        timeout=10,
    )
    return {
        "status": resp.status_code,
        "body": resp.text,
        "cache_control": resp.headers.get("Cache-Control"),
    }


def main():
    endpoint, client_id = sys.argv[1], sys.argv[2]
    ca_file = sys.argv[3] if len(sys.argv) > 3 else None
    requests = json.load(sys.stdin)
    json.dump([revoke(endpoint, client_id, ca_file, r) for r in requests], sys.stdout)


if __name__ == "__main__":
    main()
