"""Each app runs from its own environment, holding only what its package declares.

`devstack up` syncs `<state>/envs/<app>` from uv.lock and compiles its bytecode optimized
(devstack_cli.appenv); the launcher execs the app with that environment's Python, optimized.
The workspace's tools (typer, rich, cryptography,
pytest, schemathesis) are not there, so the app neither loads them (structlog, httpx and redis-py
import them when they find them) nor depends on them without declaring it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from devstack_cli import appenv
from tests.parity.implementations import PYTHON_APPS
from tests.support import StackUnderTest

pytestmark = pytest.mark.integration

WORKSPACE_ONLY = ("typer", "rich", "pygments", "cryptography", "pytest", "schemathesis", "uv")


def app_pid(stack: StackUnderTest, app: str) -> int:
    processes = stack.status()["services"][app]["processes"]
    pid: int = processes[0]["pid"]
    return pid


@pytest.mark.parametrize("app", PYTHON_APPS)
def test_the_app_runs_from_its_own_environment(stack: StackUnderTest, app: str) -> None:
    pid = app_pid(stack, app)
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert [a.decode() for a in argv[:-1]] == appenv.command(stack.settings, app)
    assert argv[1:4] == [b"-OO", b"-X", b"no_debug_ranges"]
    environment = str(appenv.environment_dir(stack.settings, app))
    mapped = {
        line.split()[-1]
        for line in Path(f"/proc/{pid}/maps").read_text().splitlines()
        if "site-packages" in line
    }
    assert mapped, "no extension module mapped: is this the app?"
    assert all(path.startswith(environment) for path in mapped), mapped
    assert not [path for path in mapped if "cryptography" in path]


@pytest.mark.parametrize("app", PYTHON_APPS)
def test_the_environment_holds_no_workspace_tool(stack: StackUnderTest, app: str) -> None:
    python = appenv.python(stack.settings, app)
    probe = (
        "import importlib.util, sys; "
        "print(' '.join(m for m in sys.argv[1:] if importlib.util.find_spec(m)))"
    )
    found = subprocess.run(
        [str(python), "-c", probe, *WORKSPACE_ONLY, "fastapi", "asyncmy", app],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.split()
    assert found == ["fastapi", "asyncmy", app]


@pytest.mark.parametrize("app", PYTHON_APPS)
def test_the_environment_holds_bytecode_compiled_for_minus_oo(
    stack: StackUnderTest, app: str
) -> None:
    """Third-party and the checkout's modules alike: the app never compiles at import."""
    probe = (
        "import importlib.util as u, os, sys; "
        "print(' '.join(m for m in sys.argv[1:] "
        "if not os.path.exists(u.cache_from_source(u.find_spec(m).origin))))"
    )
    modules = ["fastapi.routing", "pydantic.main", "redis.commands.core", "devstack_client.pools"]
    missing = subprocess.run(
        [*appenv.command(stack.settings, app)[:-2], "-c", probe, *modules, f"{app}.app"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.split()
    assert missing == []
