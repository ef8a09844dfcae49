"""A load generator in a process of its own: N keep-alive connections on loopback, each
sending valid analytics requests in a loop for a bounded time, and a JSON line per
request (start, end, status or failure) written to --out.

    python -m tests.reliability.load --url http://127.0.0.1:PORT --plan plan.json \
        --connections 64 --seconds 15 --out requests.jsonl

A request that meets a connection the server had already closed (a keep-alive race, or a
worker that went away) is sent once more on a new connection, as HTTP clients and load
balancers do for requests that never reached an application; it is recorded as retried.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import threading
import time
from urllib.parse import urlsplit


def worker(url: str, plan: list[dict], deadline: float, seed: int, out: list) -> None:
    address = urlsplit(url)
    rng = random.Random(seed)
    conn: http.client.HTTPConnection | None = None
    while time.time() < deadline:
        request = rng.choice(plan)
        began = time.time()
        outcome: dict = {"start": began, "kind": request["kind"]}
        for attempt in (1, 2):
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(address.hostname, address.port, timeout=15)
                conn.request(
                    "POST", request["path"], body=request["body"], headers=request["headers"]
                )
                response = conn.getresponse()
                body = response.read()
                outcome["status"] = response.status
                outcome["problem"] = (
                    response.getheader("Content-Type") == "application/problem+json"
                )
                if response.status >= 400:
                    outcome["code"] = json.loads(body).get("code")
                if response.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
                break
            except (ConnectionError, http.client.HTTPException, OSError) as failure:
                if conn is not None:
                    conn.close()
                conn = None
                if attempt == 2 or isinstance(failure, TimeoutError):
                    outcome["status"] = None
                    outcome["error"] = type(failure).__name__
                else:
                    outcome["retried"] = True
        outcome["end"] = time.time()
        out.append(outcome)
    if conn is not None:
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--plan", required=True)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    with open(args.plan) as f:
        plan = json.load(f)
    deadline = time.time() + args.seconds
    results: list[dict] = []
    threads = [
        threading.Thread(target=worker, args=(args.url, plan, deadline, n, results), daemon=True)
        for n in range(args.connections)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=args.seconds + 30)
    with open(args.out, "w") as f:
        for outcome in results:
            f.write(json.dumps(outcome) + "\n")


if __name__ == "__main__":
    main()
