"""vlagent (VictoriaLogs's own agent, Apache-2.0): ships every process's log to VictoriaLogs.

The supervisor writes each process's output to `<state>/logs/<process>.log`; vlagent tails each
of those files (one glob per process of the running plan, with its checkpoints in the state
folder) and sends the lines to VictoriaLogs, labelled with the stream fields `service` and
`process`. A line that is JSON (the APIs' request logs, Prometheus's, the exporters') keeps its
fields, so `request_id` is searchable as it is: `service:code_first request_id:"..."`.
"""

from __future__ import annotations

import json

from devstack_cli.plan import Plan, Probe, ProcessSpec
from devstack_cli.servers.base import Exec, Launch, PlanContext
from devstack_cli.servers.victorialogs import binary, build
from devstack_cli.settings import Settings
from devstack_cli.stack import stack


def processes(ctx: PlanContext) -> list[ProcessSpec]:
    probe = Probe(http=f"http://127.0.0.1:{ctx.port('http')}/health")
    return [ctx.process("vlagent", probe, ctx.after())]


def collected(settings: Settings) -> list[tuple[str, dict[str, str]]]:
    """(log file, its fields) for every process of the running plan."""
    plan = Plan.model_validate_json(settings.state.plan_file.read_text())
    files = [(p.log_file, {"service": p.service, "process": p.name}) for p in plan.processes]
    files.append(
        (str(settings.state.supervisor_log), {"service": "devstack", "process": "supervisor"})
    )
    return files


def launch(ctx: Launch) -> Exec:
    build(ctx.settings.state.logs / "setup.log")
    store = ctx.settings.port(stack().service("victorialogs").ports["http"])
    argv = [
        str(binary("vlagent")),
        f"-httpListenAddr=127.0.0.1:{ctx.port('http')}",
        f"-tmpDataPath={ctx.dir / 'data'}",
        f"-remoteWrite.url=http://127.0.0.1:{store}/internal/insert",
        "-fileCollector.streamFields=service,process",
        "-fileCollector.msgField=message,msg,log,event",
        "-fileCollector.hostnameField=",
        "-fileCollector.refreshInterval=2s",
        "-loggerFormat=json",
        "-loggerOutput=stdout",
    ]
    for path, fields in collected(ctx.settings):
        argv += [f"-fileCollector.glob={path}", f"-fileCollector.extraFields={json.dumps(fields)}"]
    return Exec(argv)
