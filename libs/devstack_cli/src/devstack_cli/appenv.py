"""Each Python API runs from an environment of its own, holding only what its package declares.

The workspace's `.venv` holds everything at once: the CLI (typer, rich, cryptography) and the
test tools. Libraries import optional packages when they find them (structlog and httpx import
rich and pygments, redis-py imports cryptography), so an app started from `.venv` would load
about 11 MB it never uses, and would not notice a dependency it forgot to declare.
`uv sync --locked --package <app> --no-dev` into `<state>/envs/<app>` gives the app what a
deployment gives it: its locked dependencies and nothing else. The workspace members are
installed editable, so the app runs the checkout's code; third-party bytecode is compiled at
install time (a process compiling at import holds the compiler's garbage).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from uv import find_uv_bin

from devstack_cli.settings import Settings, repo_root


def environment_dir(settings: Settings, app: str) -> Path:
    return settings.state.root / "envs" / app


def python(settings: Settings, app: str) -> Path:
    return environment_dir(settings, app) / "bin" / "python"


def project_name(app: str) -> str:
    """The package name of a service: code_first is the workspace member `code-first`."""
    return app.replace("_", "-")


def sync(settings: Settings, app: str, log_file: Path) -> Path:
    """Create or update the app's environment from uv.lock (a no-op when it is current)."""
    target = environment_dir(settings, app)
    argv = [
        find_uv_bin(),
        "sync",
        "--locked",
        "--package",
        project_name(app),
        "--no-dev",
        "--compile-bytecode",
        "--quiet",
        "--project",
        str(repo_root()),
    ]
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(target), "UV_PYTHON_DOWNLOADS": "never"}
    env.pop("VIRTUAL_ENV", None)  # uv warns when an active environment is not the target
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        log.write(f"$ UV_PROJECT_ENVIRONMENT={target} {' '.join(argv)}\n".encode())
        log.flush()
        done = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"could not prepare the {app} environment; see {log_file}")
    return python(settings, app)
