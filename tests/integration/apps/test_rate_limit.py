"""The rate limit, on real processes: an extra instance of every implementation, all sharing one
budget per client address through the Redis Cluster (the same keys and algorithm in every
language); probes are never limited; the stack's own apps, started without a limit, never answer
429."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import re
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.parity.compare import assert_problem, describe
from tests.parity.implementations import STACK_APPS
from tests.support import AppRole, StackUnderTest, running_implementation

pytestmark = pytest.mark.integration

LIMIT = 5
WINDOW = 30
POLICY = f'"default";q={LIMIT};w={WINDOW}'
REMAINING = re.compile(r'^"default";r=([0-9]+);t=([0-9]+)$')
LIMITED_PATH = "/examples/redis/cluster/info"  # cheap, and under /examples/**


@pytest.fixture(scope="module")
async def limited(stack: StackUnderTest) -> AsyncIterator[dict[str, str]]:
    """Every implementation, one extra process each, with DEVSTACK_API_RATE_LIMIT=5 per 30 s."""
    async with contextlib.AsyncExitStack() as running:
        urls = {}
        for name in STACK_APPS:
            state = stack.settings.state
            own = AppRole(name, state.role_id_file(name), state.secret_id_file(name), "")
            app = await running.enter_async_context(
                running_implementation(
                    stack, name, own, api_rate_limit=str(LIMIT), api_rate_window_seconds=str(WINDOW)
                )
            )
            urls[name] = str(app.client.base_url).rstrip("/")
        yield urls


def client_from(address: str) -> httpx.AsyncClient:
    """A client whose requests come from `address` (any of 127.0.0.0/8): its own quota."""
    transport = httpx.AsyncHTTPTransport(local_address=address)
    return httpx.AsyncClient(transport=transport, timeout=30)


async def fresh_window_margin(seconds: float = 8) -> None:
    """The limit counts per fixed window: start with at least `seconds` left in the current one."""
    left = WINDOW - time.time() % WINDOW
    if left < seconds:
        await asyncio.sleep(left + 0.2)  # time must pass: the next window starts on the clock


def assert_too_many(response: httpx.Response) -> None:
    assert_problem(response, 429, LIMITED_PATH)
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= WINDOW, describe(response)
    assert response.headers.get("ratelimit-policy") == POLICY, describe(response)
    remaining = REMAINING.match(response.headers.get("ratelimit", ""))
    assert remaining, describe(response)
    assert int(remaining.group(1)) == 0
    assert int(remaining.group(2)) == retry_after, "on a 429, t equals Retry-After"


async def test_one_budget_shared_by_every_implementation(limited: dict[str, str]) -> None:
    urls = list(limited.values())
    a, b = (f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{i}" for i in (7, 8))  # noqa: S311
    async with client_from(a) as spender, client_from(b) as bystander:
        await fresh_window_margin()
        # The budget of 5 is spent across the processes, in turn.
        for url in itertools.islice(itertools.cycle(urls), LIMIT):
            response = await spender.get(url + LIMITED_PATH)
            assert response.status_code == 200, describe(response)
        for url in urls:  # every implementation sees the budget spent
            assert_too_many(await spender.get(url + LIMITED_PATH))
        # Every /examples/** route counts, not only the one spent on.
        other_route = await spender.get(urls[-1] + "/examples/postgres/query")
        assert_problem(other_route, 429, "/examples/postgres/query")
        # Probes, service info and metrics are never limited.
        for url in urls:
            for path in ("/health", "/", "/metrics", "/health/all", "/health/redis"):
                response = await spender.get(url + path)
                assert response.status_code == 200, describe(response)
        # The quota is per client address: another address still has its own.
        response = await bystander.get(urls[0] + LIMITED_PATH)
        assert response.status_code == 200, describe(response)


async def test_stack_apps_never_limit(stack: StackUnderTest) -> None:
    """The stack's apps run without DEVSTACK_API_RATE_LIMIT: 150 requests, no 429, no quota."""
    async with httpx.AsyncClient(timeout=30) as client:
        for app in STACK_APPS:
            url = f"http://127.0.0.1:{stack.port(app, 'http')}{LIMITED_PATH}"
            responses = []
            for _ in range(15):
                responses += await asyncio.gather(*(client.get(url) for _ in range(10)))
            assert 429 not in {r.status_code for r in responses}, app
            assert not any("ratelimit" in r.headers for r in responses), app
            assert not any("ratelimit-policy" in r.headers for r in responses), app
