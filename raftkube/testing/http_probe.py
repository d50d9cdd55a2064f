"""A bounded HTTP client for data-path tests and benchmarks, run inside a namespace.

`python -m raftkube.testing.http_probe --url http://IP:PORT/path --count N
 [--timeout S] [--keepalive] [--concurrency C] [--host H] [--duration S]`

Prints one JSON object: ok, fail, pods (echo_http pod name -> count), statuses,
errors (first 10), elapsed_s, latencies_ms (sorted, successful requests only; left out
with --no-latencies). Each request opens a new connection unless --keepalive.
Stops after `count` requests or `duration` seconds, whichever comes first.
"""

from __future__ import annotations

import argparse
import http.client
import json
import threading
import time
from collections import Counter
from urllib.parse import urlsplit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=3.0)
    parser.add_argument("--keepalive", action="store_true")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--host", default="")
    parser.add_argument("--duration", type=float, default=0.0)
    parser.add_argument("--no-latencies", action="store_true")
    args = parser.parse_args()
    parts = urlsplit(args.url)
    host, port = parts.hostname or "", parts.port or 80
    path = parts.path or "/"
    lock = threading.Lock()
    pods: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    errors: list[str] = []
    latencies: list[float] = []
    state = {"issued": 0, "ok": 0, "fail": 0}
    deadline = time.monotonic() + args.duration if args.duration else None

    def take() -> bool:
        with lock:
            if state["issued"] >= args.count:
                return False
            if deadline is not None and time.monotonic() >= deadline:
                return False
            state["issued"] += 1
            return True

    def worker() -> None:
        conn: http.client.HTTPConnection | None = None
        while take():
            start = time.perf_counter()
            try:
                if conn is None or not args.keepalive:
                    if conn is not None:
                        conn.close()
                    conn = http.client.HTTPConnection(host, port, timeout=args.timeout)
                headers = {"Host": args.host} if args.host else {}
                conn.request("GET", path, headers=headers)
                resp = conn.getresponse()
                body = resp.read()
                elapsed = (time.perf_counter() - start) * 1000
                name = ""
                if resp.status == 200:
                    try:
                        name = json.loads(body).get("pod", "")
                    except ValueError:
                        name = ""
                with lock:
                    statuses[resp.status] += 1
                    if resp.status == 200:
                        state["ok"] += 1
                        pods[name] += 1
                        latencies.append(elapsed)
                    else:
                        state["fail"] += 1
                        if len(errors) < 10:
                            errors.append(f"HTTP {resp.status}: {body[:200]!r}")
                if resp.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as exc:
                with lock:
                    state["fail"] += 1
                    if len(errors) < 10:
                        errors.append(f"{type(exc).__name__}: {exc} after "
                                      f"{(time.perf_counter() - start) * 1000:.0f} ms")
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()

    began = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(max(1, args.concurrency))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out = {"ok": state["ok"], "fail": state["fail"], "pods": dict(pods),
           "statuses": {str(k): v for k, v in statuses.items()}, "errors": errors,
           "elapsed_s": time.perf_counter() - began}
    if not args.no_latencies:
        out["latencies_ms"] = sorted(latencies)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
