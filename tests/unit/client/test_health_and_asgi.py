"""Health aggregation and timeouts; the ASGI request-id and metrics middleware."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from typing import Any

import pytest
import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from devstack_client import (
    CheckOutcome,
    DependencyUnavailable,
    HealthChecker,
    Metrics,
    MetricsMiddleware,
    RequestIdMiddleware,
    aggregate,
    current_request_id,
)
from devstack_client.asgi import new_request_id
from tests.support import wait_for


def test_aggregate() -> None:
    """The worst status wins, as the contract's HealthReport says."""
    assert aggregate(["healthy", "healthy"]) == "healthy"
    assert aggregate(["healthy", "degraded"]) == "degraded"
    assert aggregate(["degraded", "unhealthy", "healthy"]) == "unhealthy"


async def test_probes_run_concurrently_each_within_its_timeout() -> None:
    async def slow() -> CheckOutcome:
        await asyncio.sleep(0.2)  # a probe that takes its time: the pace is what is measured
        return CheckOutcome()

    async def hung() -> CheckOutcome:
        await asyncio.sleep(10)  # never answers within the checker's timeout
        return CheckOutcome()

    async def down() -> CheckOutcome:
        raise DependencyUnavailable("mysql", "connection refused")

    metrics = Metrics()
    checker = HealthChecker(
        {"a": slow, "b": slow, "c": slow, "hung": hung, "down": down}, timeout=0.3, metrics=metrics
    )
    started = time.perf_counter()
    report = await checker.check()
    elapsed = time.perf_counter() - started
    assert elapsed < 0.45, "concurrent: the slowest probe (bounded by the timeout) sets the pace"
    assert report.status == "unhealthy"
    assert report.http_status == 503
    assert report.checks["a"].status == "healthy"
    assert report.checks["a"].latency_ms >= 200
    assert report.checks["a"].error is None
    assert report.checks["hung"].reason == "timed out after 0.3s"
    assert report.checks["hung"].error == "timeout"
    assert report.checks["down"].reason == "mysql: connection refused"
    assert report.checks["down"].error == "unavailable"
    body = report.model_dump(mode="json")
    assert set(body) == {"status", "checks"}, "serialised exactly as the contract's HealthReport"
    assert set(body["checks"]["down"]) == {"status", "latency_ms", "error"}
    assert metrics.registry.get_sample_value(
        "devstack_dependency_health", {"dependency": "down"}
    ) == pytest.approx(0.0)


async def test_concurrent_checks_share_one_probe_in_flight() -> None:
    """Single flight: 100 concurrent health checks make one probe per dependency, all see its
    result, a cancelled caller does not cancel it, and the next check probes again."""
    calls = 0
    release = asyncio.Event()

    async def counted() -> CheckOutcome:
        nonlocal calls
        calls += 1
        await release.wait()
        return CheckOutcome("degraded", f"probe {calls}")

    checker = HealthChecker({"x": counted}, timeout=30)
    callers = [asyncio.create_task(checker.check()) for _ in range(100)]
    await asyncio.sleep(0)  # every caller is waiting on the probe now
    callers[0].cancel()
    await asyncio.sleep(0)  # the cancellation is delivered
    release.set()
    reports = await asyncio.gather(*callers[1:])
    assert calls == 1
    assert {r.checks["x"].reason for r in reports} == {"probe 1"}
    assert (await checker.check()).checks["x"].reason == "probe 2"


async def test_a_reason_never_carries_a_secret() -> None:
    from devstack_client.redaction import redactor

    redactor.add("Pw-known-to-the-library")

    async def leaky() -> CheckOutcome:
        return CheckOutcome("unhealthy", "failed for Pw-known-to-the-library")

    report = await HealthChecker({"x": leaky}, timeout=1).check()
    assert "Pw-known" not in (report.checks["x"].reason or "")


# -- ASGI ---------------------------------------------------------------------------------


class Route:
    def __init__(self, path: str) -> None:
        self.path = path


def make_app(route: str | None, seen: dict[str, Any]) -> ASGIApp:
    async def app(scope: Scope, _receive: Receive, send: Send) -> None:
        if route is not None:
            scope["route"] = Route(route)  # what a router does once it matched
        seen["request_id"] = current_request_id()
        seen["bound"] = structlog.contextvars.get_contextvars().get("request_id")
        await send({"type": "http.response.start", "status": 200 if route else 404, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


async def call(app: ASGIApp, path: str, headers: list[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": path, "headers": headers}
    await app(scope, receive, send)
    return dict(sent[0]["headers"])


async def test_a_sane_request_id_is_kept_bound_and_returned() -> None:
    seen: dict[str, Any] = {}
    app = RequestIdMiddleware(make_app("/items/{item_id}", seen))
    headers = await call(app, "/items/1", [(b"x-request-id", b"abc-123")])
    assert headers[b"x-request-id"] == b"abc-123"
    assert seen == {"request_id": "abc-123", "bound": "abc-123"}
    assert current_request_id() is None, "unbound after the request"


@pytest.mark.parametrize(
    "bad", [b"", b"a b", b"x" * 129, b"<script>", "é".encode(), b"abc\n", b"a;b"]
)
async def test_an_insane_request_id_is_replaced_by_a_uuid4(bad: bytes) -> None:
    seen: dict[str, Any] = {}
    app = RequestIdMiddleware(make_app("/", seen))
    headers = await call(app, "/", [(b"x-request-id", bad)])
    generated = headers[b"x-request-id"].decode()
    assert uuid.UUID(generated).version == 4
    assert generated == generated.lower()
    assert seen["request_id"] == generated


def test_generated_request_ids_are_uuid4_strings_unique_across_batches() -> None:
    ids = [new_request_id() for _ in range(3 * 256 + 7)]  # more than three urandom batches
    assert len(set(ids)) == len(ids)
    for generated in ids:
        parsed = uuid.UUID(generated)
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
        assert str(parsed) == generated  # lowercase, hyphenated, as str(uuid4()) writes it


def test_a_forked_child_never_repeats_its_parent_s_request_ids() -> None:
    new_request_id()  # a batch is read: without the fork hook, the child would inherit it
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, to the parent
        try:
            os.write(write_end, ",".join(new_request_id() for _ in range(8)).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        child = set(pipe.read().split(","))
    os.waitpid(pid, 0)
    parent = {new_request_id() for _ in range(8)}
    assert len(child) == 8
    assert not child & parent


async def test_request_ids_with_base64_characters_are_sane() -> None:
    seen: dict[str, Any] = {}
    app = RequestIdMiddleware(make_app("/", seen))
    headers = await call(app, "/", [(b"X-Request-ID", b"a+b/c==:1.2_3-4")])
    assert headers[b"x-request-id"] == b"a+b/c==:1.2_3-4"


async def test_metrics_are_labelled_by_route_template_never_raw_path() -> None:
    metrics = Metrics()
    seen: dict[str, Any] = {}
    app = MetricsMiddleware(make_app("/items/{item_id}", seen), metrics)
    for item in ("1", "2", "3"):
        await call(app, f"/items/{item}", [])
    unmatched = MetricsMiddleware(make_app(None, seen), metrics)
    await call(unmatched, "/no/such/path", [])
    get = metrics.registry.get_sample_value
    labels = {"method": "GET", "route": "/items/{item_id}", "status": "200"}
    assert get("devstack_http_requests_total", labels) == 3
    assert (
        get(
            "devstack_http_requests_total",
            {"method": "GET", "route": "<unmatched>", "status": "404"},
        )
        == 1
    )
    assert (
        get(
            "devstack_http_request_duration_seconds_count",
            {"method": "GET", "route": "/items/{item_id}"},
        )
        == 3
    )
    assert (
        get("devstack_http_requests_in_flight", {"method": "GET", "route": "/items/{item_id}"}) == 0
    )
    text = metrics.render()[0].decode()
    assert "/items/1" not in text


async def test_each_label_set_s_children_are_looked_up_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """prometheus_client checks the arguments and takes a lock on every `labels()`; a request
    looks up four children, the same ones for every request of its route and status."""
    metrics = Metrics()
    looked_up: list[tuple[str, tuple[object, ...]]] = []
    for name in ("http_requests", "http_duration", "http_in_flight"):
        metric = getattr(metrics, name)

        def spy(*labels: object, _labels: Any = metric.labels, _name: str = name) -> Any:
            looked_up.append((_name, labels))
            return _labels(*labels)

        monkeypatch.setattr(metric, "labels", spy)
    app = MetricsMiddleware(make_app("/items/{item_id}", {}), metrics)
    for item in ("1", "2", "3"):
        await call(app, f"/items/{item}", [])
    assert sorted(looked_up) == [
        ("http_duration", ("GET", "/items/{item_id}")),
        ("http_in_flight", ("GET", "/items/{item_id}")),
        ("http_requests", ("GET", "/items/{item_id}", "200")),
    ]
    labels = {"method": "GET", "route": "/items/{item_id}", "status": "200"}
    assert metrics.registry.get_sample_value("devstack_http_requests_total", labels) == 3


async def test_in_flight_counts_a_request_while_it_is_served() -> None:
    metrics = Metrics()
    release = asyncio.Event()
    observed: list[float | None] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        scope["route"] = Route("/slow")
        await receive()
        observed.append(
            metrics.registry.get_sample_value(
                "devstack_http_requests_in_flight", {"method": "GET", "route": "/slow"}
            )
        )
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    task = asyncio.create_task(call(MetricsMiddleware(app, metrics), "/slow", []))

    async def being_served() -> bool:
        return bool(observed)

    await wait_for(being_served, 5, "the request to reach the app", interval=0.01)
    release.set()
    await task
    assert observed == [1.0]
