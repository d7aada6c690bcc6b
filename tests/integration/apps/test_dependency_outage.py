"""MySQL stopped under both apps: its routes and health answer 503 with Retry-After, the rest keeps
working; MySQL started again, both apps recover by themselves."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.conftest import StackUnderTest, wait_for
from tests.parity.compare import assert_problem, describe, schema_errors

pytestmark = pytest.mark.integration


def assert_health_503(response: httpx.Response, dependency: str, whole: bool) -> None:
    assert response.status_code == 503, describe(response)
    assert response.headers["content-type"].startswith("application/json"), describe(response)
    assert int(response.headers["retry-after"]) >= 1, describe(response)
    report = response.json()
    assert not schema_errors(report, "HealthReport"), schema_errors(report, "HealthReport")
    assert report["status"] == "unhealthy"
    check = report["checks"][dependency]
    assert check["status"] == "unhealthy" and check["error"] in ("unavailable", "timeout")
    if whole:
        others = {k: v["status"] for k, v in report["checks"].items() if k != dependency}
        assert set(others.values()) == {"healthy"}, others
    else:
        assert set(report["checks"]) == {dependency}


async def test_mysql_down_then_back(
    apps: dict[str, httpx.AsyncClient], stack: StackUnderTest
) -> None:
    for client in apps.values():
        assert (await client.get("/health/mysql")).status_code == 200
    stopped = await asyncio.to_thread(stack.cli, "stop", "mysql")
    assert stopped.returncode == 0, stopped.stderr
    try:
        for name, client in apps.items():
            routes = [
                ("GET", "/examples/mysql/query", None),
                ("GET", "/examples/mysql/items", None),
                ("POST", "/examples/mysql/items", {"name": "during the outage"}),
                ("GET", "/examples/mysql/items/00000000-0000-4000-8000-000000000000", None),
                ("DELETE", "/examples/mysql/items/00000000-0000-4000-8000-000000000000", None),
            ]
            for method, path, body in routes:
                response = await client.request(method, path, json=body)
                problem = assert_problem(response, 503, path)
                assert problem["dependency"] == "mysql", (name, problem)
                assert "Traceback" not in response.text and "pymysql" not in response.text.lower()
            assert_health_503(await client.get("/health/mysql"), "mysql", whole=False)
            assert_health_503(await client.get("/health/all"), "mysql", whole=True)
            # Liveness never depends on a dependency; other features keep working.
            assert (await client.get("/health")).status_code == 200
            assert (await client.get("/health/postgres")).status_code == 200
            created = await client.post("/examples/postgres/items", json={"name": "still up"})
            assert created.status_code == 201, describe(created)
            assert (await client.delete(created.headers["location"])).status_code == 204
            put = await client.put("/examples/cache/outage-probe", json={"value": name})
            assert put.status_code in (200, 201), describe(put)
            assert (await client.get("/examples/mongodb/query")).status_code == 200
    finally:
        started = await asyncio.to_thread(stack.cli, "start", "mysql")
        assert started.returncode == 0, started.stderr

        async def stack_healthy() -> bool:
            status = await asyncio.to_thread(stack.status)
            return bool(status["services"]["mysql"]["state"] == "healthy")

        await wait_for(stack_healthy, 90, "mysql to be healthy again")

    async def apps_recovered() -> bool:
        for client in apps.values():
            if (await client.get("/health/all")).status_code != 200:
                return False
            if (await client.get("/examples/mysql/query")).status_code != 200:
                return False
        return True

    await wait_for(apps_recovered, 30, "both apps to serve mysql again without a restart")
    for client in apps.values():
        created = await client.post("/examples/mysql/items", json={"name": "after the outage"})
        assert created.status_code == 201, describe(created)
        assert (await client.delete(created.headers["location"])).status_code == 204
    await apps["code_first"].delete("/examples/cache/outage-probe")
