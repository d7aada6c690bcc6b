"""MariaDB 10.11 (the MySQL server): TLS only (`require_secure_transport`), with a Vault-issued
certificate; no account without a password.

Users and passwords are brought in line with Vault on every start by an init file (mode 0600)
that the server runs before it accepts connections.
"""

from __future__ import annotations

import socket
import subprocess

from devstack_cli.plan import Probe, ProcessSpec
from devstack_cli.servers.base import Exec, Launch, PlanContext
from devstack_cli.settings import write_private
from devstack_cli.tools import require


def processes(ctx: PlanContext) -> list[ProcessSpec]:
    # The server speaks first (its handshake packet): a bare TCP probe that reads it.
    return [ctx.process("mysql", Probe(tcp=(ctx.port("mysql"),)), ctx.after())]


def sql_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def init_sql(
    app: dict[str, str],
    admin: dict[str, str],
    hostname: str = "localhost",
    monitor: dict[str, str] | None = None,
) -> str:
    """`monitor`: the exporter's account (secret/mysqld_exporter), TLS only, from 127.0.0.1,
    with what the exporter reads (PROCESS, REPLICATION CLIENT, performance_schema) alone."""
    user, database = sql_string(app["user"]), app["database"].replace("`", "``")
    password, admin_password = sql_string(app["password"]), sql_string(admin["password"])
    host = sql_string(hostname)
    return "\n".join(
        [
            # mariadb-install-db also creates root@::1 and root@<hostname> with no password,
            # and anonymous accounts on some versions: none of them may exist.
            "DROP USER IF EXISTS 'root'@'::1';",
            f"DROP USER IF EXISTS 'root'@{host};",
            "DROP USER IF EXISTS ''@'localhost';",
            f"DROP USER IF EXISTS ''@{host};",
            f"ALTER USER 'root'@'localhost' IDENTIFIED BY {admin_password};",
            f"CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY {admin_password};",
            f"ALTER USER 'root'@'127.0.0.1' IDENTIFIED BY {admin_password};",
            "GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;",
            f"CREATE USER IF NOT EXISTS {user}@'%' IDENTIFIED BY {password};",
            f"ALTER USER {user}@'%' IDENTIFIED BY {password};",
            f"CREATE DATABASE IF NOT EXISTS `{database}`;",
            f"GRANT ALL PRIVILEGES ON `{database}`.* TO {user}@'%';",
            *monitor_sql(monitor),
            "",
        ]
    )


def monitor_sql(monitor: dict[str, str] | None) -> list[str]:
    if monitor is None:
        return []
    user, password = f"{sql_string(monitor['user'])}@'127.0.0.1'", sql_string(monitor["password"])
    return [
        f"CREATE USER IF NOT EXISTS {user} IDENTIFIED BY {password} REQUIRE SSL;",
        f"ALTER USER {user} IDENTIFIED BY {password} REQUIRE SSL;",
        f"GRANT PROCESS, REPLICATION CLIENT ON *.* TO {user};",
        f"GRANT SELECT ON performance_schema.* TO {user};",
    ]


def launch(ctx: Launch) -> Exec:
    app, admin = ctx.secret(), ctx.admin_secret()
    monitor = ctx.secret("mysqld_exporter")
    tls = ctx.tls()
    data = ctx.dir / "data"
    if not (data / "mysql").exists():
        result = subprocess.run(
            [
                require("mariadb-install-db"),
                "--no-defaults",
                f"--datadir={data}",
                "--user=root",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--skip-name-resolve",
            ],
            capture_output=True,
            text=True,
        )
        print(result.stdout + result.stderr, flush=True)
        if result.returncode:
            raise RuntimeError(f"mariadb-install-db failed with exit code {result.returncode}")
    init_file = ctx.dir / "init.sql"
    write_private(init_file, init_sql(app, admin, socket.gethostname(), monitor))
    return Exec(
        [
            require("mariadbd"),
            "--no-defaults",
            f"--datadir={data}",
            "--user=root",
            "--bind-address=127.0.0.1",
            f"--port={ctx.port('mysql')}",
            f"--socket={ctx.dir / 'mysqld.sock'}",
            f"--pid-file={ctx.dir / 'mysqld.pid'}",
            f"--init-file={init_file}",
            f"--ssl-ca={tls.ca}",
            f"--ssl-cert={tls.cert}",
            f"--ssl-key={tls.key}",
            "--skip-name-resolve",
            "--require-secure-transport=ON",  # plaintext TCP is refused, whatever the password
            "--innodb-buffer-pool-size=64M",
            "--log-error=",
        ]
    )
