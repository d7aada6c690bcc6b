"""The Redis exporter (Debian's prometheus-redis-exporter 1.45): one process for the cluster.

One exporter, each node a target of its own: Prometheus asks `/scrape?target=rediss://...` once
per node, so every node has its own `up` and its own series (labelled by node), as with one
exporter per node, for one process instead of three (the nodes share a password and a CA).
It connects over TLS (the nodes' TLS ports) verified against the stack's CA.

It logs in as its own ACL user (`secret/redis_exporter`, read with its own AppRole, which reads
nothing else; Redis's launcher declares the user on every node with the commands of
`servers.redis.MONITOR_ACL` only). The user name is an argument (not a secret); the password is
in the exporter's password file (JSON, target -> password, mode 0600), never in a URL, an
argument or the environment. `-config-command=-`: the exporter does not send CONFIG GET, which
the user may not run (it would reveal the nodes' own password).
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
    secret = ctx.secret()
    password = secret["password"]
    password_file = ctx.dir / "passwords.json"
    write_private(password_file, json.dumps({t: password for t in targets(ctx.settings)}))
    return Exec(
        [
            program("prometheus-redis-exporter"),
            f"-web.listen-address=127.0.0.1:{ctx.port('http')}",
            "-redis.addr=",
            f"-redis.user={secret['user']}",
            "-config-command=-",
            f"-redis.password-file={password_file}",
            f"-tls-ca-cert-file={ctx.settings.state.ca_chain}",
            "-log-format=json",
        ]
    )
