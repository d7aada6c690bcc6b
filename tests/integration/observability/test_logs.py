"""Issue 17, logs: every process's log is in VictoriaLogs, labelled by service, and a line an API
wrote for a request is found there by its request id."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from devstack_cli.stack import stack as service_table
from tests.integration.observability.support import PROFILE, ObservedStack
from tests.support import wait_for_sync

APIS = [s.name for s in service_table().in_profile(PROFILE) if s.kind == "api"]


def logsql(observed: ObservedStack, query: str) -> list[dict[str, Any]]:
    port = observed.stack.port("victorialogs", "http")
    response = httpx.post(
        f"http://127.0.0.1:{port}/select/logsql/query", data={"query": query}, timeout=30
    )
    assert response.status_code == 200, response.text
    return [json.loads(line) for line in response.text.splitlines() if line.strip()]


def wait_for_lines(
    observed: ObservedStack, query: str, timeout: float = 30
) -> list[dict[str, Any]]:
    return wait_for_sync(lambda: logsql(observed, query), timeout, f"{query!r} in VictoriaLogs")


@pytest.mark.parametrize("api", APIS)
def test_an_api_log_line_is_found_by_its_request_id(observed: ObservedStack, api: str) -> None:
    request_id = f"obs-{uuid.uuid4()}"
    port = observed.stack.port(api, "http")
    response = httpx.get(
        f"http://127.0.0.1:{port}/health", headers={"X-Request-ID": request_id}, timeout=30
    )
    assert response.headers["x-request-id"] == request_id
    lines = wait_for_lines(observed, f'request_id:"{request_id}"')
    assert {line["service"] for line in lines} == {api}
    assert all(line["process"] == api for line in lines)
    assert lines[0]["path"] == "/health"  # the JSON line's own fields are kept


def test_every_process_of_the_plan_is_shipped_labelled_by_service(observed: ObservedStack) -> None:
    wanted = set(observed.stack.status()["services"])
    services: set[str] = set()

    def every_service_shipped() -> bool:
        nonlocal services
        found = logsql(observed, "* | stats by (service) count() hits")
        services = {row["service"] for row in found}
        return wanted <= services

    wait_for_sync(
        every_service_shipped,
        30,
        "a log line in VictoriaLogs from every service",
        1,
        lambda: f"none yet from {sorted(wanted - services)}",
    )
