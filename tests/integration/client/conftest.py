"""Fixtures for the devstack_client integration tests, on the session's shared stack.

- `captured_logs`: every log line the library (and the libraries under it) writes during these
  tests, captured through `configure_logging`; when they end, its finaliser fails the run if
  one holds a secret value or a Vault token (whichever test ran last).
- `short_ttl_approle` creates an AppRole with the `code_first` policy and a short token TTL
  (with the root token: test setup only), and deletes it afterwards.
The helpers these tests share (`client_settings`, `approle_settings`, ...) are in tests/support.py.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator

import pytest
import structlog

from devstack_client import DevStackClient, configure_logging, tune_process
from tests.support import (
    VAULT_TOKEN,
    AppRole,
    LogCapture,
    StackUnderTest,
    client_settings,
    secret_values,
    temporary_approle,
)


@pytest.fixture(scope="package", autouse=True)
def captured_logs(stack: StackUnderTest) -> Iterator[LogCapture]:
    capture = LogCapture()
    handler = configure_logging("DEBUG", stream=capture.stream)
    try:
        yield capture
    finally:
        logging.getLogger().removeHandler(handler)
        logging.getLogger().setLevel(logging.WARNING)
        structlog.reset_defaults()
    # After the last client test, whichever it was: nothing the library logged holds a secret.
    text = capture.stream.getvalue()
    assert "vault login" in text, "the capture must have seen the library's logs"
    values = [*secret_values(stack), *(value for value in capture.extra_secrets if value)]
    leaked = sum(1 for value in dict.fromkeys(values) if value in text)
    assert leaked == 0, f"{leaked} secret value(s) in the library's logs"
    assert not VAULT_TOKEN.search(text), "a Vault token was logged"


@pytest.fixture(scope="package", autouse=True)
def tuned() -> None:
    """The library's memory measures, as the apps apply them (their `main`), before any client
    of these tests connects: the tests hold the tuned pools to them."""
    tune_process()


@pytest.fixture(scope="module")
async def client(stack: StackUnderTest) -> AsyncIterator[DevStackClient]:
    async with DevStackClient(client_settings(stack)) as devstack:
        yield devstack


@pytest.fixture
def short_ttl_approle(
    stack: StackUnderTest, request: pytest.FixtureRequest, captured_logs: LogCapture
) -> Iterator[AppRole]:
    ttl, max_ttl = getattr(request, "param", ("3s", "12s"))
    with temporary_approle(stack, "code_first", ttl, max_ttl) as role:
        captured_logs.extra_secrets.append(role.secret_id)
        yield role
