"""A dependency that is down when an implementation starts: the implementation starts anyway
(it connects lazily), answers 503 for that dependency's routes and health, and serves them as
soon as the dependency is back, without a restart. (In a compose stack an API can start before
a server it follows listens; Node.js never reconnected to MongoDB when that happened.)"""

from __future__ import annotations

import asyncio
import contextlib

import httpx
import pytest

from tests.parity.compare import describe
from tests.parity.implementations import STACK_APPS
from tests.support import (
    Running,
    StackUnderTest,
    running_implementation,
    temporary_approle,
    wait_for,
)

pytestmark = pytest.mark.integration

BACK_WITHIN = 60.0  # generous: a loaded 2-core machine; no figure depends on it
ROUTES = {"mongodb": "/examples/mongodb/items", "mysql": "/examples/mysql/items"}


@pytest.mark.parametrize("dependency", sorted(ROUTES))
async def test_a_dependency_down_at_start_is_served_once_it_is_back(
    stack: StackUnderTest, dependency: str
) -> None:
    stopped = await asyncio.to_thread(stack.cli, "stop", dependency)
    assert stopped.returncode == 0, stopped.stderr
    started_again = False
    try:
        with contextlib.ExitStack() as roles:
            async with contextlib.AsyncExitStack() as running:
                apps: dict[str, Running] = {}
                for name in STACK_APPS:
                    role = roles.enter_context(temporary_approle(stack, name, "1h", "24h"))
                    apps[name] = await running.enter_async_context(
                        running_implementation(stack, name, role)
                    )
                for name, app in apps.items():
                    down = await app.client.get(f"/health/{dependency}")
                    assert down.status_code == 503, (name, describe(down))
                    refused = await app.client.get(ROUTES[dependency])
                    assert refused.status_code in (503, 504), (name, describe(refused))
                back = await asyncio.to_thread(stack.cli, "start", dependency)
                assert back.returncode == 0, back.stderr
                started_again = True
                for name, app in apps.items():

                    async def serves(client: httpx.AsyncClient = app.client) -> bool:
                        health = await client.get(f"/health/{dependency}")
                        listed = await client.get(ROUTES[dependency])
                        return health.status_code == 200 and listed.status_code == 200

                    await wait_for(serves, BACK_WITHIN, f"{name} to serve {dependency} again")
    finally:
        if not started_again:
            await asyncio.to_thread(stack.cli, "start", dependency)
