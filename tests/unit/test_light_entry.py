"""`status`, `health` and the server launchers import only what they use (issue 9, item 9).

Start-up time is measured in docs/performance.md, not asserted here (no test depends on the
machine's speed); what is asserted is the cause: the CLI framework, the settings library, an
HTTP library and an X.509 parser are not imported on these paths.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("typer", "click", "pydantic_settings", "httpx", "cryptography")


def imported_modules(args: list[str], env: dict[str, str]) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )
    names = set()
    for line in result.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip())
    assert names, result.stderr
    return names


def modules_loaded_by(code: str, env: dict[str, str]) -> set[str]:
    """Every module in `sys.modules` after `code` ran (`module_for` imports with importlib,
    which -X importtime did not list here)."""
    result = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys; print(' '.join(sys.modules))\n"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return set(result.stdout.split())


@pytest.mark.parametrize("command", [["status"], ["status", "--json"], ["health"]])
def test_status_and_health_skip_the_cli_framework(tmp_path: Path, command: list[str]) -> None:
    env = {"DEVSTACK_STATE_DIR": str(tmp_path), "DEVSTACK_PORT_OFFSET": "0"}
    modules = imported_modules(["-m", "devstack_cli", *command], env)
    assert "devstack_cli.report" in modules
    assert [m for m in modules if m.split(".")[0] in HEAVY] == []
    if command == ["status", "--json"]:
        assert not any(m.startswith("rich") for m in modules)


def test_a_launcher_imports_only_its_own_server(tmp_path: Path) -> None:
    """What `devstack _serve redis` imports before it execs the server (without running it)."""
    code = (
        "from devstack_cli.servers import module_for\n"
        "from devstack_cli.servers.base import Launch, exec_server\n"
        "from devstack_cli.stack import stack\n"
        "from devstack_cli.settings import Settings\n"
        "module_for('redis'); stack().service('redis'); Settings()\n"
    )
    modules = modules_loaded_by(code, {"DEVSTACK_STATE_DIR": str(tmp_path)})
    assert "devstack_cli.servers.redis" in modules
    assert "devstack_cli.servers.postgres" not in modules
    assert [m for m in modules if m.split(".")[0] in HEAVY] == []


def test_a_launcher_that_never_calls_vault_does_not_import_hvac(tmp_path: Path) -> None:
    """hvac and requests cost a launcher about 0.2 s to import (docs/architecture.md): only the
    launchers that log in to Vault pay it."""
    code = (
        "from devstack_cli.servers import module_for\n"
        "from devstack_cli.servers.base import Launch, exec_server\n"
        "module_for('vault'); module_for('victorialogs')\n"
    )
    modules = modules_loaded_by(code, {"DEVSTACK_STATE_DIR": str(tmp_path)})
    assert "devstack_cli.servers.vault" in modules
    assert not {"hvac", "requests", "devstack_cli.vault"} & modules


def test_other_commands_still_reach_the_full_command_line(tmp_path: Path) -> None:
    env = {**os.environ, "DEVSTACK_STATE_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "devstack_cli", "status", "--bogus"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "No such option" in result.stderr
