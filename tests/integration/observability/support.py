"""The observability tests' helpers: the profile and ports of their stack, what reads its
Prometheus, and the install of the programs `up` does not install yet. The fixture that starts
the stack is in conftest.py."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from devstack_cli import tools
from devstack_cli.servers.observability import PACKAGES, program
from tests.support import StackUnderTest

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
