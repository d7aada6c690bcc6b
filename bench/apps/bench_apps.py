"""Reference API figures, against a running stack (`./devstack up`, profile standard):

For each app (code_first and api_first by default; any implementation of the service table by
name, e.g. `--apps golang`, or `--apps all` for every one the running stack has), one after the
other: a warm-up, then `--requests` mixed
HTTP requests (`--concurrency` at a time) over the contract's operations, and:

(a) Vault requests per API request at steady state, counted by Vault itself: the request lines
    its audit log (`<state>/vault/audit.log`) gains during the run, each with its time, AppRole
    and path. Those of the app under test are split into the library's refresh timer (all five
    secrets re-read in the same second, every SECRET_TTL / 2 whatever the load) and the rest,
    driven by requests (target 0);
(b) the app's resident memory (VmRSS of the pid `devstack status --json` reports) before and
    after the run (target <= 80 MB);
(c) latency percentiles per operation and overall, throughput, and every status seen.

Usage:
    .venv/bin/python bench/apps/bench_apps.py [--state-dir .devstack] [--port-offset 0]
        [--requests 10000] [--concurrency 16] [--apps code_first,api_first|all] [--json out.json]

Exits non-zero when a target is missed or a request got an undocumented answer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from devstack_cli.bench import rss_mb
from devstack_cli.stack import stack

DEFAULT_APPS = "code_first,api_first"
RSS_TARGET_MB = 80.0


def implementations() -> list[str]:
    """Every implementation of the contract the service table knows (kind "api")."""
    return [s.name for s in stack().services.values() if s.kind == "api"]


def http_port(app: str, port_offset: int) -> int:
    return stack().service(app).ports["http"] + port_offset


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def audited_requests(audit_log: Path) -> list[dict[str, str]]:
    """The requests Vault has recorded in its audit log, in order: when, who (AppRole), what."""
    found = []
    with audit_log.open("rb") as f:
        for line in f:
            if b'"type":"request"' not in line:
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                found.append({"time": "?", "role": "?", "path": "?"})
                continue
            role = ((entry.get("auth") or {}).get("metadata") or {}).get("role_name") or "-"
            found.append(
                {
                    "time": entry.get("time", "?")[:19],
                    "role": role,
                    "path": entry.get("request", {}).get("path", "?"),
                }
            )
    return found


def stack_status(state_dir: Path, port_offset: int) -> dict[str, Any]:
    env = {
        **os.environ,
        "DEVSTACK_STATE_DIR": str(state_dir),
        "DEVSTACK_PORT_OFFSET": str(port_offset),
    }
    result = subprocess.run(
        [sys.executable, "-m", "devstack_cli", "status", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    status: dict[str, Any] = json.loads(result.stdout)
    return status


def app_pid(status: dict[str, Any], app: str) -> int:
    service = status["services"].get(app)
    if service is None or service["state"] != "healthy":
        raise SystemExit(f"{app} is not running healthy in this stack: {service}")
    pids = [p["pid"] for p in service["processes"] if p.get("pid")]
    if len(pids) != 1:
        raise SystemExit(f"expected one process for {app}, got {service['processes']}")
    pid: int = pids[0]
    if not Path(f"/proc/{pid}").exists():
        raise SystemExit(f"pid {pid} of {app} is not running")
    return pid


def refresh_bursts(requests: list[dict[str, str]], secrets: int = 5) -> list[dict[str, str]]:
    """The secret re-reads of the library's refresh timer (every SECRET_TTL / 2, whatever the
    load): all `secrets` application secrets read within the same second."""
    by_second: dict[str, list[dict[str, str]]] = {}
    for r in requests:
        if r["path"].startswith("secret/data/"):
            by_second.setdefault(r["time"], []).append(r)
    return [
        r
        for burst in by_second.values()
        if len({r["path"] for r in burst}) >= secrets
        for r in burst
    ]


Op = Callable[[httpx.AsyncClient, int], Awaitable[list[httpx.Response]]]


def single(method: str, path: str, body: Any = None) -> Op:
    async def run(client: httpx.AsyncClient, i: int) -> list[httpx.Response]:
        return [await client.request(method, path.format(i=i % 100), json=body)]

    return run


async def item_round_trip(client: httpx.AsyncClient, i: int) -> list[httpx.Response]:
    created = await client.post("/examples/postgres/items", json={"name": f"bench {i}"})
    if created.status_code != 201:
        return [created]
    return [created, await client.delete(created.headers["location"])]


def queue_round_trip(queue: str) -> Op:
    async def run(client: httpx.AsyncClient, i: int) -> list[httpx.Response]:
        path = f"/examples/messaging/queues/{queue}/messages"
        published = await client.post(path, json={"i": i})
        return [published, await client.get(path, params={"max": "1"})]

    return run


# name -> (operation, the statuses the contract documents as success for it here)
def mix(queue: str) -> list[tuple[str, Op, set[int]]]:
    return [
        ("serviceInfo", single("GET", "/"), {200}),
        ("healthAll", single("GET", "/health/all"), {200}),
        ("postgresQuery", single("GET", "/examples/postgres/query"), {200}),
        ("mysqlQuery", single("GET", "/examples/mysql/query"), {200}),
        ("mongodbQuery", single("GET", "/examples/mongodb/query"), {200}),
        ("mysqlListItems", single("GET", "/examples/mysql/items", None), {200}),
        (
            "cachePut",
            single("PUT", "/examples/cache/bench:{i}", {"value": "v", "ttl_seconds": 300}),
            {200, 201},
        ),
        ("cacheGet", single("GET", "/examples/cache/bench:{i}"), {200, 404}),
        ("vaultGetSecret", single("GET", "/examples/vault/secret/postgres"), {200}),
        ("vaultGetSecretKey", single("GET", "/examples/vault/secret/mysql/user"), {200}),
        ("postgresCreate+Delete", item_round_trip, {201, 204}),
        ("messagingPublish+Consume", queue_round_trip(queue), {200, 202}),
        ("redisClusterInfo", single("GET", "/examples/redis/cluster/info"), {200}),
    ]


async def drive(
    client: httpx.AsyncClient, requests: int, concurrency: int, queue: str
) -> dict[str, Any]:
    """Send at least `requests` HTTP requests over the mix, `concurrency` operations at a time."""
    ops = mix(queue)
    latencies: dict[str, list[float]] = {name: [] for name, _, _ in ops}
    statuses: dict[str, Counter[int]] = {name: Counter() for name, _, _ in ops}
    transport_errors: dict[str, Counter[str]] = {name: Counter() for name, _, _ in ops}
    unexpected: list[str] = []
    sent = 0
    counter = iter(range(10**9))

    async def worker() -> None:
        nonlocal sent
        for i in counter:
            if sent >= requests:
                return
            name, run, ok = ops[i % len(ops)]
            started = time.perf_counter()
            try:
                responses = await run(client, i)
            except httpx.TransportError as exc:  # no answer at all: a failure, counted
                transport_errors[name][type(exc).__name__] += 1
                if len(unexpected) < 5:
                    unexpected.append(f"{name}: {type(exc).__name__} {exc}".strip())
                continue
            elapsed = time.perf_counter() - started
            sent += len(responses)
            latencies[name].append(elapsed / len(responses))
            for response in responses:
                statuses[name][response.status_code] += 1
                if response.status_code not in ok and len(unexpected) < 5:
                    unexpected.append(
                        f"{response.request.method} {response.request.url.path} -> "
                        f"{response.status_code} {response.text[:200]}"
                    )

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    every = [v for values in latencies.values() for v in values]
    bad = sum(n for name, _, ok in ops for s, n in statuses[name].items() if s not in ok)
    bad += sum(sum(c.values()) for c in transport_errors.values())
    return {
        "requests": sent,
        "concurrency": concurrency,
        "seconds": round(elapsed, 2),
        "requests_per_second": round(sent / elapsed),
        "latency_ms": {
            "p50": round(percentile(every, 50) * 1000, 2),
            "p90": round(percentile(every, 90) * 1000, 2),
            "p99": round(percentile(every, 99) * 1000, 2),
            "max": round(max(every) * 1000, 2),
        },
        "p50_ms_by_operation": {
            name: round(percentile(v, 50) * 1000, 2) for name, v in latencies.items() if v
        },
        "p99_ms_by_operation": {
            name: round(percentile(v, 99) * 1000, 2) for name, v in latencies.items() if v
        },
        "statuses": {name: dict(sorted(c.items())) for name, c in statuses.items()},
        "transport_errors": {name: dict(c) for name, c in transport_errors.items() if c},
        "undocumented_or_failed": bad,
        "first_failures": unexpected,
    }


async def bench_app(args: argparse.Namespace, app: str, pid: int) -> dict[str, Any]:
    url = f"http://127.0.0.1:{http_port(app, args.port_offset)}"
    queue = f"bench.apps.{app}.{uuid.uuid4().hex[:8]}"
    limits = httpx.Limits(
        max_connections=args.concurrency, max_keepalive_connections=args.concurrency
    )
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
        info = (await client.get("/")).json()
        if info.get("implementation") != app:
            raise SystemExit(f"{url} is {info}, not {app}")
        rss_before = rss_mb(pid)
        await drive(client, 300, args.concurrency, queue)  # warm up every pool and cache
        audit_before = await asyncio.to_thread(audited_requests, args.audit_log)
        run = await drive(client, args.requests, args.concurrency, queue)
        audit_after = await asyncio.to_thread(audited_requests, args.audit_log)
        rss_after = rss_mb(pid)
        await client.get(f"/examples/messaging/queues/{queue}/messages", params={"max": "100"})
    during = audit_after[len(audit_before) :]
    by_app = [r for r in during if r["role"] == app]
    refresh = refresh_bursts(by_app)
    return {
        "url": url,
        "pid": pid,
        "vault_requests": {
            "in_audit_log_during_run": len(during),
            "per_api_request": round(len(during) / run["requests"], 6),
            "by_this_app_during_run": len(by_app),
            "by_this_app_per_api_request": round(len(by_app) / run["requests"], 6),
            "by_this_app_periodic_refresh": len(refresh),
            "by_this_app_driven_by_requests": len(by_app) - len(refresh),
            # Each entry: when, which AppRole, which path (a secret re-read every SECRET_TTL/2
            # by every app, whatever the load, shows up here as a burst of secret/data/*).
            "during_run": [f"{r['time']} {r['role']} {r['path']}" for r in during],
            # Proof that the audit log is being written: everything the stack ever asked.
            "in_audit_log_total": len(audit_after),
        },
        "rss_mb": {"before_warm_up": rss_before, "after_run": rss_after},
        "run": run,
    }


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    status = await asyncio.to_thread(stack_status, args.state_dir, args.port_offset)
    if args.apps == ["all"]:
        args.apps = [a for a in implementations() if a in status["services"]]
    results = {}
    for app in args.apps:
        results[app] = await bench_app(args, app, app_pid(status, app))
    return {
        "apps": results,
        "targets": {"vault_requests_per_api_request": 0, "rss_mb_after_run": RSS_TARGET_MB},
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "date": time.strftime("%Y-%m-%d"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--state-dir", default=os.environ.get("DEVSTACK_STATE_DIR", ".devstack"))
    parser.add_argument(
        "--port-offset", type=int, default=int(os.environ.get("DEVSTACK_PORT_OFFSET", "0"))
    )
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--apps",
        default=DEFAULT_APPS,
        help="comma-separated implementations of the service table, or `all` (every one the "
        f"running stack has); default {DEFAULT_APPS}",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    args.state_dir = Path(args.state_dir).resolve()
    args.audit_log = args.state_dir / "vault" / "audit.log"
    args.apps = [a.strip() for a in args.apps.split(",") if a.strip()]
    if args.apps != ["all"]:
        unknown = set(args.apps) - set(implementations())
        if unknown:
            parser.error(f"unknown apps: {sorted(unknown)}; choose from {implementations()}")

    result = asyncio.run(measure(args))
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    ok = all(
        r["vault_requests"]["by_this_app_driven_by_requests"] == 0
        and r["rss_mb"]["after_run"] <= RSS_TARGET_MB
        and r["run"]["undocumented_or_failed"] == 0
        for r in result["apps"].values()
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
