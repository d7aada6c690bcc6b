"""The compose tests' helpers: which profile and ports their stack uses, and the StackUnderTest
that also speaks to the container engine. The fixtures that start it are in conftest.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from devstack_cli import compose
from devstack_cli.stack import stack as service_table
from tests.parity.implementations import STACK_APPS
from tests.support import StackUnderTest

COMPOSE_PORT_OFFSET = int(os.environ.get("DEVSTACK_TEST_COMPOSE_PORT_OFFSET", "1400"))
# Every service, the five APIs included, by default; DEVSTACK_TEST_COMPOSE_PROFILE=standard for
# a quicker run while developing.
COMPOSE_PROFILE = os.environ.get("DEVSTACK_TEST_COMPOSE_PROFILE", "full")
# Implementations of the session's stack that the compose stack's profile does not start.
NOT_IN_COMPOSE = set(STACK_APPS) - {s.name for s in service_table().in_profile(COMPOSE_PROFILE)}


class ComposeStack(StackUnderTest):
    """The session's StackUnderTest, for the compose stack (same CLI, same state folder)."""

    def docker(self, *args: str) -> subprocess.CompletedProcess[str]:
        engine = compose.find_engine()
        return engine.run(*args, timeout=120)

    def containers(self) -> list[dict[str, Any]]:
        return compose.containers(compose.find_engine(), self.settings)

    def root_token(self) -> str:
        """Read from the bootstrap's volume (the only place it is), through the engine."""
        bootstrap = next(
            c
            for c in self.containers()
            if c["Config"]["Labels"]["com.docker.compose.service"] == "vault-bootstrap"
        )
        with tempfile.TemporaryDirectory() as tmp:
            self.docker("cp", f"{bootstrap['Id']}:/state/vault/init.json", tmp)
            token: str = json.loads((Path(tmp) / "init.json").read_text())["root_token"]
        return token


def devstack(stack: StackUnderTest, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    # However loaded the machine, `up` waits for health (no test depends on its speed).
    return subprocess.run(
        [sys.executable, "-m", "devstack_cli", *args],
        env={**stack.env, "DEVSTACK_UP_TIMEOUT": str(timeout - 60)},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
