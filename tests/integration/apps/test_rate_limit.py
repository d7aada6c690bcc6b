"""The rate limit, on real processes: two extra app instances (one of each app) share one budget
per client address through the Redis Cluster; probes are never limited; the stack's own apps,
started without a limit, never answer 429."""

from __future__ import annotations

import asyncio
import os
import random
import re
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from devstack_cli import appenv
from tests.conftest import StackUnderTest
from tests.parity.compare import assert_problem, describe
from tests.parity.implementations import PYTHON_APPS

pytestmark = pytest.mark.integration

LIMIT = 5
WINDOW = 30
POLICY = f'"default";q={LIMIT};w={WINDOW}'
REMAINING = re.compile(r'^"default";r=([0-9]+);t=([0-9]+)$')
LIMITED_PATH = "/examples/redis/cluster/info"  # cheap, and under /examples/**


def tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def app_process(
    stack: StackUnderTest, app: str, log: Path, **env: str
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`python -m <app>` on a free port, configured as the stack's launcher would, then stopped."""
    port = free_port()
    state = stack.settings.state
    # What devstack_cli/servers/api.py gives the stack's apps (without HTTPS), plus `env`.
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DEVSTACK_")}
    environment.update(
        DEVSTACK_VAULT_ROLE_ID_FILE=str(state.role_id_file(app)),
        DEVSTACK_VAULT_SECRET_ID_FILE=str(state.secret_id_file(app)),
        DEVSTACK_CA_FILE=stack.ca_file,
        DEVSTACK_PORT_OFFSET=str(stack.port_offset),
        DEVSTACK_API_HTTP_PORT=str(port),
        DEVSTACK_API_HTTPS_PORT=str(free_port()),
        **env,
    )
    with log.open("wb") as out:
        process = subprocess.Popen(
            appenv.command(stack.settings, app),
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield f"http://127.0.0.1:{port}", process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


async def wait_until_serving(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient(timeout=2) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"{url} exited with {process.returncode}:\n{tail(log)}")
            try:
                if (await client.get(f"{url}/health")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.3)
    pytest.fail(f"{url} did not serve within 60 s:\n{tail(log)}")


@pytest.fixture(scope="module")
async def limited(
    stack: StackUnderTest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[dict[str, str]]:
    """Both apps, one extra process each, with DEVSTACK_API_RATE_LIMIT=5 per 30 s."""
    folder = tmp_path_factory.mktemp("rate-limited-apps")
    env = {
        "DEVSTACK_API_RATE_LIMIT": str(LIMIT),
        "DEVSTACK_API_RATE_WINDOW_SECONDS": str(WINDOW),
    }
    logs = {app: folder / f"{app}.log" for app in PYTHON_APPS}
    with (
        app_process(stack, "code_first", logs["code_first"], **env) as (first, p1),
        app_process(stack, "api_first", logs["api_first"], **env) as (second, p2),
    ):
        await wait_until_serving(first, p1, logs["code_first"])
        await wait_until_serving(second, p2, logs["api_first"])
        yield {"code_first": first, "api_first": second}


def client_from(address: str) -> httpx.AsyncClient:
    """A client whose requests come from `address` (any of 127.0.0.0/8): its own quota."""
    transport = httpx.AsyncHTTPTransport(local_address=address)
    return httpx.AsyncClient(transport=transport, timeout=30)


async def fresh_window_margin(seconds: float = 8) -> None:
    """The limit counts per fixed window: start with at least `seconds` left in the current one."""
    left = WINDOW - time.time() % WINDOW
    if left < seconds:
        await asyncio.sleep(left + 0.2)


def assert_too_many(response: httpx.Response) -> None:
    assert_problem(response, 429, LIMITED_PATH)
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= WINDOW, describe(response)
    assert response.headers.get("ratelimit-policy") == POLICY, describe(response)
    remaining = REMAINING.match(response.headers.get("ratelimit", ""))
    assert remaining, describe(response)
    assert int(remaining.group(1)) == 0
    assert int(remaining.group(2)) == retry_after, "on a 429, t equals Retry-After"


async def test_shared_budget_across_both_apps(limited: dict[str, str]) -> None:
    first, second = limited["code_first"], limited["api_first"]
    a, b = (f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{i}" for i in (7, 8))  # noqa: S311
    async with client_from(a) as spender, client_from(b) as bystander:
        await fresh_window_margin()
        # The budget of 5 is spent across both processes: 3 on one, 2 on the other.
        for url in (first, second, first, second, first):
            response = await spender.get(url + LIMITED_PATH)
            assert response.status_code == 200, describe(response)
        for url in (second, first, second):
            assert_too_many(await spender.get(url + LIMITED_PATH))
        # Every /examples/** route counts, not only the one spent on.
        other_route = await spender.get(second + "/examples/postgres/query")
        assert_problem(other_route, 429, "/examples/postgres/query")
        # Probes, service info and metrics are never limited.
        for url in (first, second):
            for path in ("/health", "/", "/metrics", "/health/all", "/health/redis"):
                response = await spender.get(url + path)
                assert response.status_code == 200, describe(response)
        # The quota is per client address: another address still has its own.
        response = await bystander.get(first + LIMITED_PATH)
        assert response.status_code == 200, describe(response)


async def test_stack_apps_never_limit(stack: StackUnderTest) -> None:
    """The stack's apps run without DEVSTACK_API_RATE_LIMIT: 150 requests, no 429, no quota."""
    async with httpx.AsyncClient(timeout=30) as client:
        for app in PYTHON_APPS:
            url = f"http://127.0.0.1:{stack.port(app, 'http')}{LIMITED_PATH}"
            responses = []
            for _ in range(15):
                responses += await asyncio.gather(*(client.get(url) for _ in range(10)))
            assert 429 not in {r.status_code for r in responses}, app
            assert not any("ratelimit" in r.headers for r in responses), app
            assert not any("ratelimit-policy" in r.headers for r in responses), app
