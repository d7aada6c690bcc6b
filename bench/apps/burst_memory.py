"""Does an app give back the memory a burst of connections took? Against a running stack.

For each app (code_first and api_first by default): a warm-up (wrk, 16 connections, cache GETs),
its resident memory then (the figure before the burst), a burst of `--connections` (default 500)
for `--duration` seconds (default 20) on the same cache GETs, the peak seen during it (sampled
every 0.5 s), and its memory `--settle` seconds after the burst ended (default 10). Target
(issue 15): after the burst, within 10 MB of the figure before it.

Usage:
    .venv/bin/python bench/apps/burst_memory.py [--state-dir .devstack] [--port-offset 0]
        [--apps code_first,api_first] [--connections 500] [--duration 20] [--settle 10]

wrk is the load generator, as for `./devstack bench` (one thread; its own file-descriptor limit
is raised to the connections needed). Exits non-zero when an app misses the target, or when the
burst got an answer other than 200 (the benchmark's wrk script counts them).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_apps import app_pid, stack_status  # a script beside this one

from devstack_cli.bench import SCENARIOS, rss_mb, run_wrk

RETURN_TARGET_MB = 10.0
KEY = "burst-memory"


def wrk(base: str, connections: int, seconds: int) -> dict[str, int]:
    """Cache GETs of KEY: requests, answers other than 2xx and socket errors, from the
    benchmark's own wrk run (`devstack_cli.bench.run_wrk`)."""
    path = f"/examples/cache/{KEY}"
    raw = run_wrk(base, SCENARIOS["cache_get"], [path], connections, seconds, None)
    statuses = {int(k): int(v) for k, v in raw["statuses"].items()}
    return {
        "requests": int(raw["requests"]),
        "non_2xx": sum(v for k, v in statuses.items() if not 200 <= k < 300),
        "socket_errors": sum(int(v) for k, v in raw["socket_errors"].items() if k != "status"),
    }


def measure(app: str, port: int, pid: int, args: argparse.Namespace) -> dict[str, Any]:
    base = f"http://127.0.0.1:{port}"
    put = httpx.put(f"{base}/examples/cache/{KEY}", json={"value": "x" * 64}, timeout=10)
    if put.status_code not in (200, 201):
        raise SystemExit(f"{app}: PUT /examples/cache/{KEY} answered {put.status_code}")
    warm = wrk(base, 16, 5)
    before = rss_mb(pid)
    peak = before
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.wait(0.5):
            peak = max(peak, rss_mb(pid))

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        burst = wrk(base, args.connections, args.duration)
    finally:
        stop.set()
        sampler.join()
    time.sleep(args.settle)
    after = rss_mb(pid)
    return {
        "app": app,
        "rss_before_mb": before,
        "rss_peak_mb": peak,
        "rss_after_mb": after,
        "returned_within_mb": round(after - before, 1),
        "warm_up": warm,
        "burst": burst,
        "met": after - before <= RETURN_TARGET_MB and burst["non_2xx"] == 0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", type=Path, default=Path(".devstack"))
    parser.add_argument("--port-offset", type=int, default=0)
    parser.add_argument("--apps", default="code_first,api_first")
    parser.add_argument("--connections", type=int, default=500)
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--settle", type=int, default=10)
    args = parser.parse_args()
    if args.connections < 1 or args.duration < 1 or args.settle < 0:
        parser.error("--connections and --duration must be at least 1, --settle at least 0")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = args.connections + 64
    if soft < wanted:
        if hard != resource.RLIM_INFINITY and hard < wanted:
            raise SystemExit(
                f"{args.connections} connections need {wanted} open files; the limit is {hard}"
            )
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    status = stack_status(args.state_dir, args.port_offset)
    results = []
    for app in args.apps.split(","):
        service = status["services"].get(app)
        if service is None or "http" not in service["ports"]:
            raise SystemExit(f"{app!r} is not an API of this stack")
        result = measure(app, service["ports"]["http"], app_pid(status, app), args)
        results.append(result)
        print(json.dumps(result), flush=True)
    return 0 if all(r["met"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
