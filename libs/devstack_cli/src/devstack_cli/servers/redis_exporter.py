"""The Redis exporter (Debian's prometheus-redis-exporter 1.45): one process for the cluster.

One exporter, each node a target of its own: Prometheus asks `/scrape?target=rediss://...` once
per node, so every node has its own `up` and its own series (labelled by node), as with one
exporter per node, for one process instead of three (the nodes share a password and a CA).
It connects over TLS (the nodes' TLS ports) verified against the stack's CA. The password is
in the exporter's password file (JSON, target -> password, mode 0600), never in a URL, an
argument or the environment.

The nodes have one account (the default user, `secret/redis`); a monitoring ACL user of its own
is the next step (docs/observability.md), so this exporter's AppRole reads `secret/redis`.
"""

from __future__ import annotations

import json

from devstack_cli.plan import Probe, ProcessSpec
from devstack_cli.servers.base import Exec, Launch, PlanContext
from devstack_cli.servers.observability import program
from devstack_cli.settings import Settings, write_private
from devstack_cli.stack import stack


def processes(ctx: PlanContext) -> list[ProcessSpec]:
    probe = Probe(http=f"http://127.0.0.1:{ctx.port('http')}/health")
    return [ctx.process("redis_exporter", probe, ctx.after())]


def targets(settings: Settings) -> list[str]:
    """The URL of every node's TLS port, as Prometheus names them to the exporter."""
    redis = stack().service("redis")
    return [
        f"rediss://127.0.0.1:{settings.port(redis.ports['tls'] + i)}"
        for i in range(redis.instances)
    ]


def launch(ctx: Launch) -> Exec:
    password = ctx.secret("redis")["password"]
    password_file = ctx.dir / "passwords.json"
    write_private(password_file, json.dumps({t: password for t in targets(ctx.settings)}))
    return Exec(
        [
            program("prometheus-redis-exporter"),
            f"-web.listen-address=127.0.0.1:{ctx.port('http')}",
            "-redis.addr=",
            f"-redis.password-file={password_file}",
            f"-tls-ca-cert-file={ctx.settings.state.ca_chain}",
            "-log-format=json",
        ]
    )
