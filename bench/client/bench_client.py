"""devstack_client figures, against a running stack (`./devstack up`):

1. Vault requests per operation at steady state: the client is warmed up, then 10,000 library
   operations run (queries on the three databases, cache put/get, secret reads, queue
   publish/consume, item inserts, health checks) while every HTTP request sent to Vault is
   counted three ways: by Vault itself (the requests its audit log records, `<state>/vault/
   audit.log`, declared in the server's configuration), on the wire (an httpx transport wrapped
   around the client's), and by the client's own counter.
2. Aggregate health latency: the p99 of `health()` against the p99 of its slowest probe.

Usage:
    .venv/bin/python bench/client/bench_client.py [--state-dir .devstack] [--port-offset 0]
        [--ops 10000] [--concurrency 8] [--health-samples 1000] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from devstack_client import ClientSettings, DevStackClient, ItemCreate


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


HEALTH_PATH = "/v1/sys/health"


class CountingTransport(httpx.AsyncBaseTransport):
    """Counts every HTTP request the client sends to Vault, on the wire, by path."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.count = 0  # every request but sys/health
        self.health_probes = 0
        self.paths: dict[str, int] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.paths[request.url.path] = self.paths.get(request.url.path, 0) + 1
        if request.url.path == HEALTH_PATH:
            self.health_probes += 1  # the Vault check's sys/health: no token, not audited
        else:
            self.count += 1
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def operations(client: DevStackClient, ops: int, concurrency: int) -> dict[str, Any]:
    """Run `ops` library operations, round-robin over the use cases, `concurrency` at a time."""
    kinds = [
        ("postgres.query", lambda i: client.items("postgres").query()),
        ("mysql.query", lambda i: client.items("mysql").query()),
        ("mongodb.query", lambda i: client.items("mongodb").query()),
        ("cache.put", lambda i: client.cache.put(f"bench:{i % 100}", "v", ttl_seconds=60)),
        ("cache.get", lambda i: client.cache.get("bench:0")),
        ("secret.read", lambda i: client.vault_secrets.read("postgres")),
        ("queue.publish", lambda i: client.queues.publish("devstack.bench", {"i": i})),
        ("queue.consume", lambda i: client.queues.consume("devstack.bench", max_messages=1)),
        ("postgres.item", lambda i: client.items("postgres").create(ItemCreate(name="bench"))),
        ("health", lambda i: client.health()),
    ]
    latencies: dict[str, list[float]] = {name: [] for name, _ in kinds}
    counter = iter(range(ops))

    async def worker() -> None:
        for i in counter:
            name, run = kinds[i % len(kinds)]
            started = time.perf_counter()
            await run(i)
            latencies[name].append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {
        "operations": ops,
        "concurrency": concurrency,
        "seconds": round(elapsed, 2),
        "ops_per_second": round(ops / elapsed),
        "p50_ms": {k: round(statistics.median(v) * 1000, 2) for k, v in latencies.items()},
    }


async def health_latency(client: DevStackClient, samples: int) -> dict[str, Any]:
    aggregate: list[float] = []
    per_probe: dict[str, list[float]] = {}
    ratios: list[float] = []
    for _ in range(samples):
        started = time.perf_counter()
        report = await client.health()
        total = (time.perf_counter() - started) * 1000
        aggregate.append(total)
        slowest = max(c.latency_ms for c in report.checks.values())
        ratios.append(total / slowest if slowest else 1.0)
        for name, check in report.checks.items():
            per_probe.setdefault(name, []).append(check.latency_ms)
        if report.status != "healthy":
            raise SystemExit(f"the stack is not healthy: {report}")
    probe_p99 = {name: round(percentile(v, 99), 3) for name, v in per_probe.items()}
    slowest_name = max(probe_p99, key=probe_p99.__getitem__)
    aggregate_p99 = percentile(aggregate, 99)
    return {
        "samples": samples,
        "aggregate_p50_ms": round(percentile(aggregate, 50), 3),
        "aggregate_p99_ms": round(aggregate_p99, 3),
        "probe_p99_ms": probe_p99,
        "slowest_probe": slowest_name,
        "aggregate_p99_over_slowest_probe_p99": round(aggregate_p99 / probe_p99[slowest_name], 3),
        "per_report_ratio_p99": round(percentile(ratios, 99), 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", default=os.environ.get("DEVSTACK_STATE_DIR", ".devstack"))
    parser.add_argument(
        "--port-offset", type=int, default=int(os.environ.get("DEVSTACK_PORT_OFFSET", "0"))
    )
    parser.add_argument("--approle", default="code_first")
    parser.add_argument("--ops", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--health-samples", type=int, default=1000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    state = Path(args.state_dir).resolve()
    args.audit_log = state / "vault" / "audit.log"
    settings = ClientSettings.for_stack(state, args.port_offset, args.approle)
    result = asyncio.run(measure(args, settings))
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    requests = result["vault_requests"]
    ok = requests["in_vault_audit_log_during_run"] == requests["on_the_wire_during_run"] == 0 and (
        result["health"]["aggregate_p99_over_slowest_probe_p99"] <= 1.5
    )
    return 0 if ok else 1


def audited_requests(audit_log: Path) -> int:
    """Requests Vault has recorded in its audit log (one JSON line per request and response)."""
    with audit_log.open("rb") as f:
        return sum(1 for line in f if b'"type":"request"' in line)


async def measure(args: argparse.Namespace, settings: ClientSettings) -> dict[str, Any]:
    wire = CountingTransport()
    audited_initial = await asyncio.to_thread(audited_requests, args.audit_log)
    async with DevStackClient(settings, vault_transport=wire) as client:
        await client.cache.put("bench:0", "v", ttl_seconds=3600)
        await operations(client, 200, args.concurrency)  # warm up every pool
        at_start = dict(wire.paths)
        wire_before, library_before = wire.count, client.vault.requests
        audited_before = await asyncio.to_thread(audited_requests, args.audit_log)
        run = await operations(client, args.ops, args.concurrency)
        audited_after = await asyncio.to_thread(audited_requests, args.audit_log)
        wire_after, library_after = wire.count, client.vault.requests
        probes_during_run = wire.health_probes
        health = await health_latency(client, args.health_samples)
        wire_after_health = wire.count
        await client.queues.delete("devstack.bench")
    return {
        "vault_requests": {
            "in_vault_audit_log_during_run": audited_after - audited_before,
            # Proof that the audit count sees the client: its start-up requests are there.
            "in_vault_audit_log_at_start_and_warm_up": audited_before - audited_initial,
            "on_the_wire_during_run": wire_after - wire_before,
            "library_counter_during_run": library_after - library_before,
            "per_operation": (wire_after - wire_before) / args.ops,
            "during_health_samples": wire_after_health - wire_after,
            # Each health check asks sys/health (concurrent ones share it): not authenticated,
            # not in the audit log, not counted above.
            "vault_health_probes_during_run": probes_during_run,
            "at_start_and_warm_up": at_start,
        },
        "run": run,
        "health": health,
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
    }


if __name__ == "__main__":
    sys.exit(main())
