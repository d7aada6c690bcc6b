"""The `devstack` entry point: the frequent commands first, without the CLI framework.

`status` and `health` are what people and scripts run most, and every server's launcher
(`_serve`, `_bootstrap`, `_redis_cluster`) runs at each start of the stack: they import only what
they use, here. Everything else (and any form these do not recognise, and `--help`) goes to the
full command line, `devstack_cli.cli`, which prints the same output for them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from devstack_cli.settings import Settings


def main() -> None:
    argv = sys.argv[1:]
    handler = _fast(argv)
    if handler is None:
        from devstack_cli.cli import main as full

        full()
        return
    from devstack_cli.settings import SettingsError

    try:
        code = handler()
    except SettingsError:
        code = None  # the full command line reports it, with exit code 2
    if code is None:
        from devstack_cli.cli import main as full

        full()
        return
    sys.exit(code)


def _fast(argv: list[str]) -> Callable[[], int | None] | None:
    """The handler of a command this module answers itself; None for the full command line.
    A handler may also return None: not for it after all (a compose stack's status)."""
    command, rest = (argv[0], argv[1:]) if argv else ("", [])
    if command == "status" and rest in ([], ["--json"]):
        return lambda: _status(json_output=bool(rest))
    if command == "health" and not rest:
        return _health
    if command == "_serve" and len(rest) in (1, 3) and (len(rest) == 1 or rest[1] == "--instance"):
        if len(rest) == 3 and not rest[2].isdigit():
            return None
        instance = int(rest[2]) if len(rest) == 3 else 0
        return lambda: _serve(rest[0], instance)
    if command == "_bootstrap" and not rest:
        return _bootstrap
    if command == "_redis_cluster" and not rest:
        return _redis_cluster
    return None


def _native(settings: Settings) -> bool:
    """The stack of this state folder runs on the native engine (not `up --engine compose`)."""
    try:
        from devstack_cli.compose import ENGINE_MARK
    except ImportError:  # a checkout without the compose engine
        return True
    mark = settings.state.root / ENGINE_MARK
    return not mark.exists() or mark.read_text().strip() != "compose"


def _status(json_output: bool) -> int | None:
    from devstack_cli import engine, report
    from devstack_cli.settings import Settings

    s = Settings()
    return report.status(s, engine.status(s), json_output) if _native(s) else None


def _health() -> int | None:
    from devstack_cli import engine, report
    from devstack_cli.settings import Settings

    s = Settings()
    return report.health(s, engine.status(s)) if _native(s) else None


def _serve(service: str, instance: int) -> int:
    from devstack_cli.servers import module_for
    from devstack_cli.servers.base import Launch, exec_server
    from devstack_cli.settings import Settings
    from devstack_cli.stack import stack

    ctx = Launch(Settings(), stack().service(service), instance)
    exec_server(ctx, module_for(service).launch(ctx))
    return 1  # not reached: exec_server replaces this process


def _bootstrap() -> int:
    from devstack_cli import bootstrap
    from devstack_cli.settings import Settings
    from devstack_cli.stack import stack

    s = Settings()

    def say(message: str) -> None:
        print(message, flush=True)

    root = bootstrap.init_or_unseal(s, say)
    bootstrap.bootstrap(s, stack(), root, say)
    say("bootstrap complete")
    return 0


def _redis_cluster() -> int:
    from devstack_cli.servers.base import Launch
    from devstack_cli.servers.redis import ensure_cluster
    from devstack_cli.settings import Settings
    from devstack_cli.stack import stack

    ensure_cluster(Launch(Settings(), stack().service("redis")))
    return 0
