"""PgBouncer in front of PostgreSQL: TLS to clients (required), verified TLS to the server.

It reads the application secret of `postgres` (its policy allows exactly that) to write its
auth file. Like PostgreSQL it refuses to run as root.
"""

from __future__ import annotations

from devstack_cli.plan import POSTGRES_SSL_REQUEST, Probe, ProcessSpec
from devstack_cli.servers.base import (
    Exec,
    Launch,
    PlanContext,
    chown,
    unprivileged_user,
)
from devstack_cli.settings import write_private
from devstack_cli.stack import stack
from devstack_cli.tools import require


def processes(ctx: PlanContext) -> list[ProcessSpec]:
    # PostgreSQL's SSLRequest: PgBouncer answers "S" (it speaks TLS) without logging a thing.
    probe = Probe(tcp=(ctx.port("pgbouncer"),), send=POSTGRES_SSL_REQUEST)
    return [ctx.process("pgbouncer", probe, ctx.after())]


def launch(ctx: Launch) -> Exec:
    user = unprivileged_user("postgres")
    ctx.reachable_by(user)
    app = ctx.secret("postgres")
    tls = ctx.tls(owner=user)
    postgres_port = ctx.settings.port(stack().service("postgres").ports["postgres"])
    userlist = ctx.dir / "userlist.txt"
    write_private(userlist, f'"{app["user"]}" "{app["password"]}"\n')
    ini = ctx.dir / "pgbouncer.ini"
    ini.write_text(
        f"""[databases]
{app["database"]} = host=127.0.0.1 port={postgres_port} dbname={app["database"]}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {ctx.port("pgbouncer")}
unix_socket_dir =
auth_type = scram-sha-256
auth_file = {userlist}
pool_mode = session
max_client_conn = 200
default_pool_size = 20
ignore_startup_parameters = extra_float_digits,options
client_tls_sslmode = require
client_tls_cert_file = {tls.cert}
client_tls_key_file = {tls.key}
client_tls_ca_file = {tls.ca}
server_tls_sslmode = verify-full
server_tls_ca_file = {tls.ca}
"""
    )
    for path in (ctx.dir, userlist, ini):
        chown(path, user)
    return Exec([require("pgbouncer"), str(ini)], user=user)
