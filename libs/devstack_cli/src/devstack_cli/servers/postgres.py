"""PostgreSQL 15: initdb into the state folder, TLS with a Vault-issued certificate.

PostgreSQL refuses to run as root, so when `devstack` runs as root the server runs as the
`postgres` account (created by the Debian package), from a folder that account can reach (see
`Launch.reachable_by`: outside a state folder in a home of mode 0700). Roles and passwords are
brought in line with Vault in single-user mode before each start, so the server never needs an
admin session to be provisioned.
"""

from __future__ import annotations

import subprocess

from devstack_cli.plan import Probe, ProcessSpec
from devstack_cli.servers.base import (
    Exec,
    Launch,
    PlanContext,
    chown,
    unprivileged_user,
)
from devstack_cli.settings import write_private
from devstack_cli.tools import require


def processes(ctx: PlanContext) -> list[ProcessSpec]:
    port = ctx.port("postgres")
    return [ctx.process("postgres", Probe(postgres=port), ctx.after(), stop_signal="SIGINT")]


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def quote_ident(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


def provisioning_sql(
    app: dict[str, str], admin: dict[str, str], monitor: dict[str, str] | None = None
) -> str:
    """One statement per line, as single-user mode reads them. `monitor`: the exporter's
    account (secret/postgres_exporter), given pg_monitor and nothing else."""
    user, admin_user = quote_ident(app["user"]), quote_ident(admin["user"])
    lines = [
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = "
        f"{quote_literal(app['user'])}) THEN CREATE ROLE {user} LOGIN; END IF; END $$;",
        f"ALTER ROLE {user} WITH LOGIN PASSWORD {quote_literal(app['password'])};",
        f"ALTER ROLE {admin_user} WITH PASSWORD {quote_literal(admin['password'])};",
    ]
    if monitor is not None:
        name = quote_ident(monitor["user"])
        lines += [
            "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = "
            f"{quote_literal(monitor['user'])}) THEN CREATE ROLE {name} LOGIN; END IF; END $$;",
            f"ALTER ROLE {name} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE "
            f"PASSWORD {quote_literal(monitor['password'])};",
            f"GRANT pg_monitor TO {name};",
        ]
    return "\n".join([*lines, ""])


def launch(ctx: Launch) -> Exec:
    user = unprivileged_user("postgres")
    ctx.reachable_by(user)
    app, admin = ctx.secret(), ctx.admin_secret()
    monitor = ctx.secret("postgres_exporter")
    tls = ctx.tls(owner=user)
    data = ctx.dir / "data"
    postgres = require("postgres")
    chown(ctx.dir, user)

    def run_as(argv: list[str], stdin: str | None = None) -> None:
        result = subprocess.run(
            argv, input=stdin, text=True, user=user, capture_output=True, cwd=ctx.dir
        )
        print(result.stdout + result.stderr, flush=True)
        if result.returncode:
            raise RuntimeError(f"{argv[0]} failed with exit code {result.returncode}")

    fresh = not (data / "PG_VERSION").exists()
    if fresh:
        pwfile = ctx.dir / ".pwfile"
        write_private(pwfile, admin["password"] + "\n")
        chown(pwfile, user)
        try:
            run_as(
                [
                    require("initdb"),
                    "-D",
                    str(data),
                    "-U",
                    admin["user"],
                    f"--pwfile={pwfile}",
                    "--auth=scram-sha-256",
                    "--encoding=UTF8",
                    "--no-locale",
                ]
            )
        finally:
            pwfile.unlink()

    hba = ctx.dir / "pg_hba.conf"
    hba.write_text(
        "# TYPE    DATABASE USER ADDRESS       METHOD\n"
        "# TLS only: no `host` line, so a plaintext connection matches nothing and is refused.\n"
        "hostssl   all      all  127.0.0.1/32  scram-sha-256\n"
        "hostssl   all      all  ::1/128       scram-sha-256\n"
    )
    chown(hba, user)
    settings = {
        "listen_addresses": "127.0.0.1",
        "port": str(ctx.port("postgres")),
        "unix_socket_directories": "",
        "hba_file": str(hba),
        "ssl": "on",
        "ssl_cert_file": str(tls.cert),
        "ssl_key_file": str(tls.key),
        "ssl_ca_file": str(tls.ca),
        "password_encryption": "scram-sha-256",
        "shared_buffers": "64MB",
        "logging_collector": "off",
    }
    options = [arg for key, value in settings.items() for arg in ("-c", f"{key}={value}")]
    single = [postgres, "--single", "-D", str(data), *options, "postgres"]
    run_as(single, provisioning_sql(app, admin, monitor))
    if fresh:
        database = quote_ident(app["database"])
        run_as(single, f"CREATE DATABASE {database} OWNER {quote_ident(app['user'])};\n")
    return Exec([postgres, "-D", str(data), *options], user=user)
