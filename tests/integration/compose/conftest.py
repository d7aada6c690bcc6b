"""The compose stack, brought up for real: every test in this folder runs against it.

The session fixture obtains an engine (the one `docker` answers, else, as root on Debian, a
private dockerd that `devstack compose engine start` runs), builds the image (`devstack compose
build`: a debootstrap base cached in ~/.cache/devstack on a machine without a registry), and
brings the stack up with `devstack up --engine compose` in a fresh state folder on its own ports
(DEVSTACK_TEST_COMPOSE_PORT_OFFSET, default 1400); DEVSTACK_TEST_COMPOSE_STATE_DIR names a
compose stack already up instead (while developing). It overrides `stack` for this folder, so the
parity, contract and server suites imported here run unchanged against the APIs and servers in
containers. Where no engine can be had, every test here is skipped with one line saying so.

At the end: `devstack reset --yes` (containers and volumes gone), the private engine stopped,
and the host's network (ip_forward, iptables, links) checked to be as it was before.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from devstack_cli import compose
from tests.integration.compose.support import (
    COMPOSE_PORT_OFFSET,
    COMPOSE_PROFILE,
    NOT_IN_COMPOSE,
    ComposeStack,
    devstack,
)
from tests.parity.implementations import base_urls
from tests.support import StackUnderTest, app_client, new_state_dir

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """An imported suite parametrised over an implementation the compose stack does not run:
    skipped, named."""
    for item in items:
        if HERE not in item.path.parents:
            continue
        params = getattr(item, "callspec", None)
        values = {str(v) for v in params.params.values()} if params else set()
        missing = sorted(values & NOT_IN_COMPOSE)
        if missing:
            reason = f"{missing[0]} is not in the compose profile {COMPOSE_PROFILE}"
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="module")
async def clients(stack: StackUnderTest) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    """The parity suite's clients (tests/parity/conftest.py), for the implementations the
    compose stack runs: a test comparing every implementation compares those."""
    opened = {
        name: app_client(url)
        for name, url in base_urls(stack).items()
        if name not in NOT_IN_COMPOSE
    }
    try:
        yield opened
    finally:
        for client in opened.values():
            await client.aclose()


SKIPPED: list[str] = []  # why the compose tests were skipped, said once at the end


FIGURES: list[str] = []  # what this session's compose stack took (docs/compose.md)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in SKIPPED[:1]:
        terminalreporter.write_line(line, yellow=True)
    if FIGURES:
        terminalreporter.write_line("compose: " + ", ".join(FIGURES))


def obtain_engine() -> bool:
    """True when this session started the private engine (and must stop it)."""
    try:
        compose.find_engine()
        return False
    except compose.ComposeError as exc:
        if not compose.can_run_private_engine():
            SKIPPED.append(f"compose: no container engine can be had here ({exc}); skipped")
            pytest.skip(SKIPPED[-1])
    compose.start_private_engine(lambda _line: None)
    return True


@pytest.fixture(scope="session")
def compose_stack() -> Iterator[ComposeStack]:
    running = os.environ.get("DEVSTACK_TEST_COMPOSE_STATE_DIR")
    if running:  # a compose stack already up (while developing): used, not started or reset
        yield ComposeStack(Path(running), COMPOSE_PORT_OFFSET, COMPOSE_PROFILE)
        return
    started_engine = obtain_engine()
    before = compose.network_state()
    under_test = ComposeStack(new_state_dir("compose"), COMPOSE_PORT_OFFSET, COMPOSE_PROFILE)
    try:
        started = time.monotonic()
        built = devstack(under_test, "compose", "build", timeout=3600)
        assert built.returncode == 0, f"devstack compose build:\n{built.stdout}\n{built.stderr}"
        FIGURES.append(f"image build {time.monotonic() - started:.0f} s")
        started = time.monotonic()
        up = devstack(
            under_test, "up", "--engine", "compose", "--profile", COMPOSE_PROFILE, timeout=1200
        )
        assert up.returncode == 0, f"devstack up --engine compose:\n{up.stdout}\n{up.stderr}"
        FIGURES.append(f"cold up healthy in {time.monotonic() - started:.0f} s")
        yield under_test
    finally:
        devstack(under_test, "reset", "--yes", timeout=300)
        shutil.rmtree(under_test.state_dir, ignore_errors=True)
        if started_engine:
            compose.stop_private_engine(lambda _line: None)
    after = compose.network_state()
    assert after == before, "the container engine left the host's network changed"


@pytest.fixture(scope="session")
def stack(compose_stack: ComposeStack) -> StackUnderTest:
    """Every suite imported into this folder runs against the compose stack."""
    return compose_stack
