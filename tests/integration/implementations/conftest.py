"""Fixtures for the tests every implementation of the contract must pass, on the session stack."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.conftest import StackUnderTest
from tests.parity.implementations import STACK_APPS, app_url


@pytest.fixture(scope="module")
async def implementations(stack: StackUnderTest) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    """One plain-HTTP client per implementation the session's stack runs."""
    opened = {
        name: httpx.AsyncClient(base_url=app_url(stack, name), timeout=30.0) for name in STACK_APPS
    }
    try:
        yield opened
    finally:
        for client in opened.values():
            await client.aclose()
