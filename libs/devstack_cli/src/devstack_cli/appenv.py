"""Each Python API runs from an environment of its own, holding only what its package declares.

The workspace's `.venv` holds everything at once: the CLI (typer, rich, cryptography) and the
test tools. Libraries import optional packages when they find them (structlog and httpx import
rich and pygments, redis-py imports cryptography), so an app started from `.venv` would load
about 11 MB it never uses, and would not notice a dependency it forgot to declare.
`uv sync --locked --package <app> --no-dev` into `<state>/envs/<app>` gives the app what a
deployment gives it: its locked dependencies and nothing else. The workspace members are
installed editable, so the app runs the checkout's code.

The app runs optimized: `-OO` (no docstrings, no asserts: about 4 MB less) and
`-X no_debug_ranges` (no column table in code objects, so tracebacks point at lines, not
columns: 0.5 MB less); docs/apps.md has the figures. Its bytecode, third-party and the
checkout's, is compiled that way when the environment is synced, so the process does not compile
at import (and hold the compiler's garbage). Nothing of the apps may depend on a docstring: the
contract's descriptions are configuration (a test compares the OpenAPI documents served with
and without -OO).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

from uv import find_uv_bin

from devstack_cli.settings import Settings, repo_root
from devstack_cli.stack import stack


def environment_dir(settings: Settings, app: str) -> Path:
    return settings.state.root / "envs" / app


def python(settings: Settings, app: str) -> Path:
    return environment_dir(settings, app) / "bin" / "python"


OPTIMIZED = ("-OO", "-X", "no_debug_ranges")

# Each dependency's variable, as every implementation reads it (docs/client.md), and the port of
# the service table it names: (variable, service, port name).
DEPENDENCY_PORTS: tuple[tuple[str, str, str], ...] = (
    ("DEVSTACK_POSTGRES_PORT", "postgres", "postgres"),
    ("DEVSTACK_MYSQL_PORT", "mysql", "mysql"),
    ("DEVSTACK_MONGODB_PORT", "mongodb", "mongodb"),
    ("DEVSTACK_REDIS_PORT", "redis", "redis"),
    ("DEVSTACK_REDIS_TLS_PORT", "redis", "tls"),
    ("DEVSTACK_RABBITMQ_PORT", "rabbitmq", "amqp"),
    ("DEVSTACK_RABBITMQ_TLS_PORT", "rabbitmq", "amqps"),
)


def dependency_env(settings: Settings) -> dict[str, str]:
    """Where every dependency of an API listens, from the service table and the port offset: the
    launcher passes these to each app (in every language), so an app's own table of base ports
    is only a fallback for use outside the stack. Vault's address is one of them."""
    table = stack()
    env = {
        variable: str(settings.port(table.service(service).ports[port]))
        for variable, service, port in DEPENDENCY_PORTS
    }
    env["DEVSTACK_VAULT_ADDR"] = (
        f"http://127.0.0.1:{settings.port(table.service('vault').ports['api'])}"
    )
    return env


def command(settings: Settings, app: str) -> list[str]:
    """How the app is started: its environment's Python, optimized, running its package."""
    return [str(python(settings, app)), *OPTIMIZED, "-m", app]


# Run by the environment's Python, optimized: compiles what the app imports from outside the
# base installation (whose standard library ships its bytecode): site-packages and the
# checkout's folders its .pth files add.
_COMPILE = """
import compileall, sys
folders = [p for p in sys.path if p and not p.startswith(sys.base_prefix)]
print("compiling (optimized):", *folders, flush=True)
compiled = [compileall.compile_dir(p, quiet=1, optimize=2, workers=0) for p in folders]
sys.exit(0 if all(compiled) else 1)
"""


def project_name(app: str) -> str:
    """The package name of a service: code_first is the workspace member `code-first`."""
    return app.replace("_", "-")


def inputs_digest() -> str:
    """What an app environment is made from: the lock, the workspace's project files, and the
    name, size and modification time of each source file of the checkout it compiles."""
    root = repo_root()
    digest = hashlib.sha256()
    for path in (
        root / "uv.lock",
        root / "pyproject.toml",
        *sorted(root.glob("*/*/pyproject.toml")),
    ):
        digest.update(path.read_bytes())
    for path in sorted(root.glob("*/*/src/**/*.py")):
        stat = path.stat()
        digest.update(f"{path.relative_to(root)} {stat.st_size} {stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def sync(settings: Settings, app: str, log_file: Path) -> Path:
    """Create or update the app's environment from uv.lock, and compile it; nothing to do (not
    even running uv) when nothing it is made from changed since the last time."""
    target = environment_dir(settings, app)
    stamp = target / ".devstack-synced"
    digest = inputs_digest()
    if python(settings, app).exists() and stamp.exists() and stamp.read_text() == digest:
        return python(settings, app)
    argv = [
        find_uv_bin(),
        "sync",
        "--locked",
        "--package",
        project_name(app),
        "--no-dev",
        "--quiet",
        "--project",
        str(repo_root()),
    ]
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(target), "UV_PYTHON_DOWNLOADS": "never"}
    env.pop("VIRTUAL_ENV", None)  # uv warns when an active environment is not the target
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        for step in (argv, [str(python(settings, app)), *OPTIMIZED, "-c", _COMPILE]):
            log.write(f"$ UV_PROJECT_ENVIRONMENT={target} {' '.join(step)}\n".encode())
            log.flush()
            done = subprocess.run(step, stdout=log, stderr=subprocess.STDOUT, env=env, check=False)
            if done.returncode != 0:
                raise RuntimeError(f"could not prepare the {app} environment; see {log_file}")
    stamp.write_text(digest)
    return python(settings, app)
