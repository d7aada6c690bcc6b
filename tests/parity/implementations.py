"""Where each implementation of the contract answers, for the parity, contract and app tests.

Every API of the session stack's profile (tests/conftest.py: `full` unless DEVSTACK_TEST_PROFILE
says otherwise) is tested, from the service table. An implementation running elsewhere joins by
URL: `DEVSTACK_PARITY_URLS="name=url,..."`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from devstack_cli.stack import stack as service_table
from tests.support import TEST_PROFILE, StackUnderTest

PYTHON_APPS = ("code_first", "api_first")
SPEC_PATH = Path(__file__).resolve().parents[2] / "openapi" / "devstack.yaml"
# Every API the session's stack runs, in the table's order.
STACK_APPS: tuple[str, ...] = tuple(
    s.name for s in service_table().in_profile(TEST_PROFILE) if s.kind == "api"
)


def extra_urls() -> dict[str, str]:
    """`name=url` pairs from DEVSTACK_PARITY_URLS (comma-separated), in their order."""
    found: dict[str, str] = {}
    for item in os.environ.get("DEVSTACK_PARITY_URLS", "").split(","):
        if not item.strip():
            continue
        name, sep, url = item.partition("=")
        if not sep or not name.strip() or not url.strip():
            raise ValueError(f"DEVSTACK_PARITY_URLS: expected name=url, got {item!r}")
        found[name.strip()] = url.strip().rstrip("/")
    return found


# Known at collection time, so that test ids name the implementations.
IMPLEMENTATIONS: tuple[str, ...] = (*STACK_APPS, *(n for n in extra_urls() if n not in STACK_APPS))


def app_url(stack: StackUnderTest, app: str, scheme: str = "http") -> str:
    port = stack.port(app, "http" if scheme == "http" else "https")
    return f"{scheme}://127.0.0.1:{port}"


def base_urls(stack: StackUnderTest) -> dict[str, str]:
    return {**{app: app_url(stack, app) for app in STACK_APPS}, **extra_urls()}


def load_spec() -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load(SPEC_PATH.read_text())
    return spec


def operations(spec: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(method, path, operationId) of every operation in the contract."""
    found = []
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if method in {"get", "put", "post", "delete", "patch", "head", "options"}:
                found.append((method.upper(), path, op["operationId"]))
    return found


# Behaviours docs/api.md gained late in this round that an implementation does not have yet.
# Each is an open item of that implementation's issue, written down there; a test of such a
# behaviour runs for every other implementation and names the gap it skips (see `having`).
# Remove an entry as soon as the implementation has the behaviour.
# None today: every implementation has every behaviour.
GAPS: dict[str, frozenset[str]] = {}


def implementations_with(behaviour: str) -> tuple[str, ...]:
    """The implementations of the session's stack that have `behaviour` (see GAPS)."""
    return tuple(name for name in STACK_APPS if behaviour not in GAPS.get(name, frozenset()))


def having(clients: dict[str, Any], behaviour: str) -> dict[str, Any]:
    """The clients of the implementations that have `behaviour` (see GAPS)."""
    with_it = implementations_with(behaviour)
    return {name: client for name, client in clients.items() if name in with_it}
