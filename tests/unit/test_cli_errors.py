"""Bad input: one line on stderr naming what to fix, exit code 2; no traceback, no servers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def devstack(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "devstack_cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "DEVSTACK_STATE_DIR": str(tmp_path / "state"), **env},
    )


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (
            ("up", "--profile", "huge"),
            {},
            "unknown profile 'huge'; choose one of: full, minimal, observability, standard",
        ),
        (
            ("up", "--profile", "standard+nosuch"),
            {},
            "unknown profile 'nosuch'; choose one of: full, minimal, observability, standard",
        ),
        (("up", "--fast"), {}, "No such option '--fast'"),
        (("logs", "nosuch"), {}, "unknown service 'nosuch'"),
        (("vault", "creds", "nosuch"), {}, "unknown service 'nosuch'"),
        (("vault", "creds", "code_first"), {}, "code_first has no secret of its own"),
        (("frobnicate",), {}, "No such command 'frobnicate'"),
        (("status",), {"DEVSTACK_PORT_OFFSET": "lots"}, "DEVSTACK_PORT_OFFSET"),
        (("status",), {"DEVSTACK_PORT_OFFSET": "-5"}, "DEVSTACK_PORT_OFFSET"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    tmp_path: Path, args: tuple[str, ...], env: dict[str, str], message: str
) -> None:
    result = devstack(tmp_path, *args, **env)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.stderr


def test_commands_on_a_stopped_stack_say_how_to_start_it(tmp_path: Path) -> None:
    health = devstack(tmp_path, "health")
    assert health.returncode == 1
    assert "./devstack up" in health.stderr
    status = devstack(tmp_path, "status")
    assert status.returncode == 0
    assert "not running" in status.stdout
    down = devstack(tmp_path, "down")
    assert down.returncode == 0
    assert "not running" in down.stdout
