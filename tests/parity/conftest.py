"""Fixtures for the parity suite: one HTTP client per implementation, on the session's stack."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.parity.implementations import base_urls
from tests.support import StackUnderTest, app_client


@pytest.fixture(scope="module")
async def clients(stack: StackUnderTest) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    opened = {name: app_client(url) for name, url in base_urls(stack).items()}
    try:
        yield opened
    finally:
        for client in opened.values():
            await client.aclose()
