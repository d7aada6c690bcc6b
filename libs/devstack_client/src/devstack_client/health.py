"""Health: one probe per dependency, all run at once, each with its own timeout, and one at a
time per dependency (concurrent callers share the probe in flight).

The aggregate is the worst of the checks (healthy, then degraded, then unhealthy), as the
contract says; a web adapter answers 200 only when it is healthy. Each check reports its
status, its latency, an error class (unavailable, timeout, not_ready) and a short reason. The
probes live with the client (`DevStackClient.health()`): each one goes through the same pool as
the feature it stands for, and none makes an authenticated Vault call (the Vault check asks
`sys/health`, which needs no token and is not audited, then reads the client's own state).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from devstack_client.errors import DependencyTimeout, DevStackError, describe
from devstack_client.metrics import Metrics
from devstack_client.models import CheckError, CheckResult, HealthReport, Status
from devstack_client.redaction import Redactor
from devstack_client.redaction import redactor as default_redactor


@dataclass(frozen=True)
class CheckOutcome:
    """What a probe found; `error` defaults to `unavailable` for anything but healthy."""

    status: Status = "healthy"
    reason: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    error: CheckError | None = None


Probe = Callable[[], Awaitable[CheckOutcome | None]]


_ORDER: dict[Status, int] = {"healthy": 0, "degraded": 1, "unhealthy": 2}


def aggregate(statuses: Iterable[Status]) -> Status:
    """The worst of the statuses (healthy, then degraded, then unhealthy)."""
    return max(statuses, key=_ORDER.__getitem__, default="healthy")


class HealthChecker:
    """Runs the probes, each bounded by `timeout`, one in flight per dependency."""

    def __init__(
        self,
        probes: Mapping[str, Probe],
        *,
        timeout: float,
        metrics: Metrics | None = None,
        redactor: Redactor = default_redactor,
    ) -> None:
        self.probes = dict(probes)
        self.timeout = timeout
        self._metrics = metrics
        self._redactor = redactor
        # One probe per dependency at a time: concurrent callers share the one in flight.
        self._in_flight: dict[str, asyncio.Future[CheckResult]] = {}

    async def check(self, names: Iterable[str] | None = None) -> HealthReport:
        """Run the probes (all, or those named) concurrently; never raises."""
        selected = list(self.probes) if names is None else [n for n in names if n in self.probes]
        started = time.perf_counter()
        results = await asyncio.gather(*(self.check_one(n) for n in selected))
        checks = dict(zip(selected, results, strict=True))
        return HealthReport(
            status=aggregate(c.status for c in checks.values()),
            checks=checks,
            duration_ms=round((time.perf_counter() - started) * 1000, 3),
        )

    async def check_one(self, name: str) -> CheckResult:
        """One dependency's check. Single flight: a caller that arrives while the dependency's
        probe is running shares its result instead of starting another, so many concurrent
        health requests make one probe each (and none waits behind the others for a pool
        connection). A caller that is cancelled does not cancel the probe the others await."""
        running = self._in_flight.get(name)
        if running is None:
            running = asyncio.ensure_future(self._probe(name))
            self._in_flight[name] = running
            running.add_done_callback(lambda _: self._in_flight.pop(name, None))
        return await asyncio.shield(running)

    async def _probe(self, name: str) -> CheckResult:
        probe = self.probes[name]
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout):
                outcome = await probe() or CheckOutcome()
        except TimeoutError:
            outcome = CheckOutcome(
                "unhealthy", f"timed out after {self.timeout:g}s", error="timeout"
            )
        except DependencyTimeout as exc:
            outcome = CheckOutcome("unhealthy", exc.message, error="timeout")
        except DevStackError as exc:
            outcome = CheckOutcome("unhealthy", exc.message, error="unavailable")
        except Exception as exc:
            outcome = CheckOutcome("unhealthy", describe(exc), error="unavailable")
        elapsed = time.perf_counter() - started
        if self._metrics is not None:
            self._metrics.record_health(name, outcome.status, elapsed)
        reason = None if outcome.reason is None else self._redactor.redact_text(outcome.reason)
        error = None if outcome.status == "healthy" else (outcome.error or "unavailable")
        return CheckResult(
            status=outcome.status,
            latency_ms=round(elapsed * 1000, 3),
            error=error,
            reason=reason,
            details=self._redactor.redact(outcome.details),
        )
