"""The observability tests' own stack: profile `observability`, started through `devstack up`.

It runs beside the session's main stack (tests/conftest.py), in its own state folder and on
ports moved by DEVSTACK_TEST_OBSERVABILITY_PORT_OFFSET (default 950), so the main stack keeps
its profile and its figures. Started once per session, on first use; stopped at the end, when
no log of it may hold a secret.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack_cli import tools
from devstack_cli.servers import victorialogs
from devstack_cli.servers.observability import PACKAGES, program
from tests.conftest import StackUnderTest, new_state_dir

OBSERVABILITY_PORT_OFFSET = int(os.environ.get("DEVSTACK_TEST_OBSERVABILITY_PORT_OFFSET", "950"))
PROFILE = "observability"


@dataclass
class ObservedStack:
    stack: StackUnderTest
    up_returned: float  # time.monotonic() when `up` returned

    @property
    def prometheus(self) -> str:
        return f"http://127.0.0.1:{self.stack.port('prometheus', 'http')}"

    def api(self, path: str, **params: str) -> Any:
        """Prometheus's HTTP API: the `data` of the answer."""
        response = httpx.get(f"{self.prometheus}/api/v1/{path}", params=params, timeout=10)
        body = response.json()
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.api("query", query=expr)["result"]
        return result


def install_missing_programs(log: Path) -> None:
    """The observability programs are Debian packages that `up` does not install yet (see
    docs/observability.md): installed here with apt when the tests run as root on Debian."""
    missing = sorted({package for name, package in PACKAGES.items() if not found(name)})
    if missing and tools.can_use_apt():
        tools.apt_install(missing, log)


def found(name: str) -> bool:
    try:
        program(name)
    except FileNotFoundError:
        return False
    return True


@pytest.fixture(scope="session")
def observed() -> Iterator[ObservedStack]:
    from tests.support import leaks_in_logs

    under_test = StackUnderTest(new_state_dir("obs"), OBSERVABILITY_PORT_OFFSET, PROFILE)
    leaks: list[str] = []
    try:
        install_missing_programs(under_test.settings.state.logs / "setup.log")
        # Built once into the per-user cache (minutes on a cold machine): before `up`, so that
        # its launchers find it and `up`'s timeout is the stack's, not the build's.
        victorialogs.build(under_test.settings.state.logs / "setup.log")
        under_test.up("--profile", PROFILE)
        yield ObservedStack(under_test, time.monotonic())
        leaks = leaks_in_logs(under_test)
    finally:
        under_test.cli("down")
        shutil.rmtree(under_test.state_dir, ignore_errors=True)
    assert not leaks, f"secrets in the observability stack's logs: {leaks}"
