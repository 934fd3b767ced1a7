#!/usr/bin/env python3
"""Load N token revocations into a veto node through /v1/revocations/batch.

usage: load.py URL ADMIN_TOKEN N [--prefix jti-] [--batch 10000]
Prints the number of records and the durable ingest rate.
"""
import argparse
import json
import time
import urllib.request


def main():
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("token")
    p.add_argument("n", type=int)
    p.add_argument("--prefix", default="jti-")
    p.add_argument("--iss", default="https://idp.example")
    p.add_argument("--batch", type=int, default=10_000)
    p.add_argument("--pad", type=int, default=12, help="zero-pad ids to this width (redis-benchmark's __rand_int__ is 12 digits)")
    a = p.parse_args()
    sent = 0
    busy = 0.0
    start = time.monotonic()
    while sent < a.n:
        k = min(a.batch, a.n - sent)
        body = json.dumps([
            {"scope": "token", "iss": a.iss, "jti": f"{a.prefix}{i:0{a.pad}d}"}
            for i in range(sent, sent + k)
        ]).encode()
        req = urllib.request.Request(
            a.url.rstrip("/") + "/v1/revocations/batch", data=body, method="POST",
            headers={"Authorization": f"Bearer {a.token}", "Content-Type": "application/json"})
        t0 = time.monotonic()
        with urllib.request.urlopen(req, timeout=120) as r:
            r.read()
            if r.status != 201:
                raise SystemExit(f"batch failed: {r.status}")
        busy += time.monotonic() - t0
        sent += k
    total = time.monotonic() - start
    print(json.dumps({"records": sent, "seconds": round(total, 3),
                      "records_per_sec_wall": round(sent / total),
                      "records_per_sec_server": round(sent / busy)}))


if __name__ == "__main__":
    main()
