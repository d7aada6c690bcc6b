"""The PostgreSQL exporter (Debian's prometheus-postgres-exporter 0.11).

It logs in as its own monitoring account (`secret/postgres_exporter`, read with its own AppRole;
PostgreSQL's launcher creates the role with `pg_monitor` and nothing else), over TLS verified
against the stack's CA (`sslmode=verify-full`). The password is in a file of mode 0600
(`DATA_SOURCE_PASS_FILE`); the environment holds the file's name, never the password.
"""

from __future__ import annotations

from devstack_cli.plan import Probe, ProcessSpec
from devstack_cli.servers.base import Exec, Launch, PlanContext
from devstack_cli.servers.observability import program
from devstack_cli.settings import write_private
from devstack_cli.stack import stack


def processes(ctx: PlanContext) -> list[ProcessSpec]:
    probe = Probe(http=f"http://127.0.0.1:{ctx.port('http')}/")
    return [ctx.process("postgres_exporter", probe, ctx.after())]


def launch(ctx: Launch) -> Exec:
    secret = ctx.secret()
    password_file = ctx.dir / "password"
    write_private(password_file, secret["password"])
    postgres_port = ctx.settings.port(stack().service("postgres").ports["postgres"])
    ca = ctx.settings.state.ca_chain
    return Exec(
        [
            program("prometheus-postgres-exporter"),
            f"--web.listen-address=127.0.0.1:{ctx.port('http')}",
            "--log.format=logfmt",
        ],
        env={
            "DATA_SOURCE_URI": (
                f"127.0.0.1:{postgres_port}/postgres?sslmode=verify-full&sslrootcert={ca}"
            ),
            "DATA_SOURCE_USER": secret["user"],
            "DATA_SOURCE_PASS_FILE": str(password_file),
        },
    )
