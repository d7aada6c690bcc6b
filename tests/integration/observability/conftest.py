"""The observability tests' own stack: profile `observability`, started through `devstack up`.

It runs beside the session's main stack (tests/conftest.py), in its own state folder and on
ports moved by DEVSTACK_TEST_OBSERVABILITY_PORT_OFFSET (default 950), so the main stack keeps
its profile and its figures. Started once per session, on first use; stopped at the end, when
no log of it may hold a secret.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator

import pytest

from devstack_cli.servers import victorialogs
from tests.integration.observability.support import (
    OBSERVABILITY_PORT_OFFSET,
    PROFILE,
    ObservedStack,
    install_missing_programs,
)
from tests.support import StackUnderTest, leaks_in_logs, new_state_dir


@pytest.fixture(scope="session")
def observed() -> Iterator[ObservedStack]:
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
