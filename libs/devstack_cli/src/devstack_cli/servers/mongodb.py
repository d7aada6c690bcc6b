"""The MongoDB wire protocol: FerretDB on SQLite, with SCRAM authentication and TLS.

FerretDB is built from its Go module by `up` (see `devstack_cli.tools`). Its setup user is
passed through the environment, never the arguments.

Ports: the wire protocol listens on TLS only (27017, no plaintext listener). The debug port
(27090: /debug/livez, /debug/readyz, metrics and pprof) has no authentication, so it binds to
127.0.0.1 only; the supervisor's readiness probe is its one user.
"""

from __future__ import annotations

from devstack_cli.plan import Probe, ProcessSpec
from devstack_cli.servers.base import Exec, Launch, PlanContext
from devstack_cli.tools import ferretdb_binary


def processes(ctx: PlanContext) -> list[ProcessSpec]:
    probe = Probe(http=f"http://127.0.0.1:{ctx.port('debug')}/debug/readyz")
    return [ctx.process("mongodb", probe, ctx.after())]


def launch(ctx: Launch) -> Exec:
    app = ctx.secret()
    tls = ctx.tls()
    data = ctx.dir / "data"
    data.mkdir(parents=True, exist_ok=True)
    return Exec(
        [
            str(ferretdb_binary()),
            "--handler=sqlite",
            f"--sqlite-url=file:{data}/",
            "--listen-addr=",
            f"--listen-tls=127.0.0.1:{ctx.port('mongodb')}",
            f"--listen-tls-cert-file={tls.cert}",
            f"--listen-tls-key-file={tls.key}",
            f"--debug-addr=127.0.0.1:{ctx.port('debug')}",
            "--test-enable-new-auth",
            "--log-format=text",
        ],
        env={
            "FERRETDB_TELEMETRY": "disable",
            "FERRETDB_SETUP_DATABASE": app["database"],
            "FERRETDB_SETUP_USERNAME": app["user"],
            "FERRETDB_SETUP_PASSWORD": app["password"],
        },
    )
