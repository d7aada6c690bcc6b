"""The MariaDB exporter (Debian's prometheus-mysqld-exporter 0.14).

Its own monitoring account (`secret/mysqld_exporter`, read with its own AppRole; MariaDB's
launcher creates it with PROCESS, REPLICATION CLIENT and SELECT on performance_schema, and
REQUIRE SSL). Credentials and the CA are in the exporter's own `my.cnf` (mode 0600): with
`ssl-ca` set, the exporter verifies the server's certificate (its name: 127.0.0.1, an IP SAN of
every certificate here).
"""

from __future__ import annotations

from devstack_cli.plan import Probe, ProcessSpec
from devstack_cli.servers.base import Exec, Launch, PlanContext
from devstack_cli.servers.observability import program
from devstack_cli.settings import write_private
from devstack_cli.stack import stack


def processes(ctx: PlanContext) -> list[ProcessSpec]:
    probe = Probe(http=f"http://127.0.0.1:{ctx.port('http')}/")
    return [ctx.process("mysqld_exporter", probe, ctx.after())]


def my_cnf(user: str, password: str, port: int, ca: str) -> str:
    return f"[client]\nuser={user}\npassword={password}\nhost=127.0.0.1\nport={port}\nssl-ca={ca}\n"


def launch(ctx: Launch) -> Exec:
    secret = ctx.secret()
    config = ctx.dir / "my.cnf"
    mysql_port = ctx.settings.port(stack().service("mysql").ports["mysql"])
    write_private(
        config,
        my_cnf(secret["user"], secret["password"], mysql_port, str(ctx.settings.state.ca_chain)),
    )
    return Exec(
        [
            program("prometheus-mysqld-exporter"),
            f"--web.listen-address=127.0.0.1:{ctx.port('http')}",
            f"--config.my-cnf={config}",
        ]
    )
