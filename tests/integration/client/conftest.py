"""Fixtures for the devstack_client integration tests, on the session's shared stack.

- Every log line the library (and the libraries under it) writes during these tests is captured
  through `configure_logging`, and the last test here checks that none holds a secret value.
- `short_ttl_approle` creates an AppRole with the `code_first` policy and a short token TTL
  (with the root token: test setup only), and deletes it afterwards.
"""

from __future__ import annotations

import io
import logging
import os
import secrets
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import structlog

from devstack_cli.vault import Vault
from devstack_client import ClientSettings, DevStackClient, configure_logging, tune_process
from tests.conftest import StackUnderTest


@dataclass
class LogCapture:
    stream: io.StringIO = field(default_factory=io.StringIO)
    extra_secrets: list[str] = field(default_factory=list)  # values set during the tests


_capture = LogCapture()


@pytest.fixture(scope="package", autouse=True)
def captured_logs() -> Iterator[LogCapture]:
    handler = configure_logging("DEBUG", stream=_capture.stream)
    try:
        yield _capture
    finally:
        logging.getLogger().removeHandler(handler)
        logging.getLogger().setLevel(logging.WARNING)
        structlog.reset_defaults()


def client_settings(stack: StackUnderTest, **extra: Any) -> ClientSettings:
    return ClientSettings.for_stack(stack.state_dir, stack.port_offset, "code_first", **extra)


@pytest.fixture(scope="package", autouse=True)
def tuned() -> None:
    """The library's memory measures, as the apps apply them (their `main`), before any client
    of these tests connects: the tests hold the tuned pools to them."""
    tune_process()


@pytest.fixture(scope="module")
async def client(stack: StackUnderTest) -> AsyncIterator[DevStackClient]:
    async with DevStackClient(client_settings(stack)) as devstack:
        yield devstack


def root_vault(stack: StackUnderTest) -> Vault:
    return Vault.for_settings(stack.settings, stack.root_token())


@dataclass
class AppRole:
    name: str
    role_id_file: Path
    secret_id_file: Path


@pytest.fixture
def short_ttl_approle(stack: StackUnderTest, request: pytest.FixtureRequest) -> Iterator[AppRole]:
    ttl, max_ttl = getattr(request, "param", ("3s", "12s"))
    name = f"client-test-{secrets.token_hex(4)}"
    folder = Path(tempfile.mkdtemp(prefix="devstack-client-approle-"))
    with root_vault(stack) as vault:
        vault.write(
            f"auth/approle/role/{name}",
            {"token_policies": ["code_first"], "token_ttl": ttl, "token_max_ttl": max_ttl},
        )
        role_id = vault.call("GET", f"auth/approle/role/{name}/role-id")["data"]["role_id"]  # type: ignore[index]
        secret_id = vault.write(f"auth/approle/role/{name}/secret-id", {})["data"]["secret_id"]
    _capture.extra_secrets.append(secret_id)
    role_file, secret_file = folder / "role-id", folder / "secret-id"
    for path, value in ((role_file, role_id), (secret_file, secret_id)):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, value.encode())
        os.close(fd)
    try:
        yield AppRole(name, role_file, secret_file)
    finally:
        with root_vault(stack) as vault:
            vault.wait_until_active(timeout=60)  # a test may just have restarted it
            vault.call("DELETE", f"auth/approle/role/{name}")
        for path in (role_file, secret_file):
            path.unlink(missing_ok=True)
        folder.rmdir()


def approle_settings(stack: StackUnderTest, role: AppRole, **extra: Any) -> ClientSettings:
    return ClientSettings(
        vault_addr=f"http://127.0.0.1:{stack.port('vault', 'api')}",
        vault_role_id_file=role.role_id_file,
        vault_secret_id_file=role.secret_id_file,
        ca_file=Path(stack.ca_file),
        port_offset=stack.port_offset,
        **extra,
    )
