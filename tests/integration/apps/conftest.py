"""Fixtures for the feature proofs of the two FastAPI apps, on the session's shared stack."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.conftest import StackUnderTest
from tests.parity.implementations import PYTHON_APPS, app_url


@pytest.fixture(scope="module")
async def apps(stack: StackUnderTest) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    """One plain-HTTP client per app of the stack."""
    opened = {
        app: httpx.AsyncClient(base_url=app_url(stack, app), timeout=30.0) for app in PYTHON_APPS
    }
    try:
        yield opened
    finally:
        for client in opened.values():
            await client.aclose()
