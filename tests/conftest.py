"""The integration, contract and parity tests share one stack, started through `devstack up`.

It runs in a fresh state folder and on ports moved by DEVSTACK_TEST_PORT_OFFSET (default 100),
so it never touches a developer's stack, with the profile DEVSTACK_TEST_PROFILE (default `full`:
every implementation of the contract). One stack serves the whole session; tests that stop or
wipe a stack start their own (see test_lifecycle.py). When the session ends, no log file of the
stack may hold a secret.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import (
    TEST_PORT_OFFSET,
    TEST_PROFILE,
    StackUnderTest,
    leaks_in_logs,
    new_state_dir,
    self_signed,
)

TESTS = Path(__file__).resolve().parent
# Every test under these folders uses the real stack; everything else is a unit test, which
# `./devstack test --unit` (pytest -m "not integration") runs without starting any server.
INTEGRATION_FOLDERS = ("integration", "parity", "contract")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.relative_to(TESTS).parts[0] in INTEGRATION_FOLDERS:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def stack() -> Iterator[StackUnderTest]:
    under_test = StackUnderTest(new_state_dir("it"), TEST_PORT_OFFSET)
    leaks: list[str] = []
    try:
        under_test.up("--profile", TEST_PROFILE)
        yield under_test
        # After every test of the session: no process of the stack logged a secret.
        leaks = leaks_in_logs(under_test)
    finally:
        under_test.cli("down")
        shutil.rmtree(under_test.state_dir, ignore_errors=True)
    assert not leaks, f"secrets in the stack's logs: {leaks}"


@pytest.fixture(scope="session")
def foreign_ca_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A CA that signed nothing here: a client trusting only it must be refused everywhere."""
    now = dt.datetime.now(dt.UTC)
    cert, _ = self_signed(
        "Not Our CA", now - dt.timedelta(days=1), now + dt.timedelta(days=30), ca=True
    )
    path = tmp_path_factory.mktemp("foreign-ca") / "foreign-ca.pem"
    path.write_bytes(cert)
    return str(path)
