"""VictoriaLogs (Apache-2.0): the log store, with its web UI (vmui) and LogsQL.

Built from its Go module (`github.com/VictoriaMetrics/VictoriaLogs`, the version below) into the
per-user cache, like FerretDB: `victoria-logs` (this service) and `vlagent` (the shipper, see
`servers/vlagent.py`). One process on 127.0.0.1, plain HTTP like the other local web UIs; its
data in the state folder, kept for `RETENTION`.
"""

from __future__ import annotations

from pathlib import Path

from devstack_cli.plan import Probe, ProcessSpec
from devstack_cli.servers.base import Exec, Launch, PlanContext
from devstack_cli.tools import GoModule, build_go_module

MODULE = "github.com/VictoriaMetrics/VictoriaLogs"
VERSION = "v1.52.1"
PROGRAMS = {"victoria-logs": "./app/victoria-logs", "vlagent": "./app/vlagent"}
GO_MODULE = GoModule(MODULE, VERSION, "victorialogs", PROGRAMS, "VictoriaLogs")
RETENTION = "7d"


def binary(name: str) -> Path:
    return GO_MODULE.binary(name)


def build(log: Path) -> None:
    """Build whichever of `victoria-logs` and `vlagent` is missing (a few minutes on 2 cores
    the first time; the Go build cache makes a second build quick)."""
    build_go_module(GO_MODULE, log)


def processes(ctx: PlanContext) -> list[ProcessSpec]:
    probe = Probe(http=f"http://127.0.0.1:{ctx.port('http')}/health")
    return [ctx.process("victorialogs", probe, ctx.after())]


def launch(ctx: Launch) -> Exec:
    build(ctx.settings.state.logs / "setup.log")
    return Exec(
        [
            str(binary("victoria-logs")),
            f"-httpListenAddr=127.0.0.1:{ctx.port('http')}",
            f"-storageDataPath={ctx.dir / 'data'}",
            f"-retentionPeriod={RETENTION}",
            "-loggerFormat=json",
            "-loggerOutput=stdout",
        ]
    )
