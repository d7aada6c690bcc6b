"""Fixtures for the integration tests: `apps`, one plain-HTTP client per implementation of the
session's stack (the two FastAPI apps and the polyglot ones), for the feature proofs every
implementation must pass (tests/integration/apps, tests/integration/implementations)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.parity.implementations import STACK_APPS, app_url
from tests.support import StackUnderTest, app_client


@pytest.fixture(scope="module")
async def apps(stack: StackUnderTest) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    """One plain-HTTP client per implementation the stack runs."""
    opened = {app: app_client(app_url(stack, app)) for app in STACK_APPS}
    try:
        yield opened
    finally:
        for client in opened.values():
            await client.aclose()
