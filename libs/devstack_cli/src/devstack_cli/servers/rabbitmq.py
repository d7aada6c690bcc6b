"""RabbitMQ 3: AMQP 5672, AMQPS 5671, management 15672, vhost from `secret/rabbitmq`.

Plain ports, each a documented choice, on 127.0.0.1 only and behind a password: AMQP 5672 for
AMQP tools and clients without TLS (the stack's own clients use 5671), management 15672 (HTTP:
the UI and API; its probe is the supervisor's readiness check), Prometheus metrics 15692 (HTTP,
read by the observability profile's Prometheus). Erlang's port mapper and
distribution port (node-to-node, `rabbitmqctl`) bind to 127.0.0.1 too.

Users, the vhost and permissions are written as a definitions file (mode 0600, passwords as
salted SHA-256 hashes) that the broker imports at boot. Its Erlang port mapper runs as its own
supervised process on its own port, so stacks side by side do not share one, and `down` leaves
none behind.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets

from devstack_cli.plan import Probe, ProcessSpec
from devstack_cli.servers.base import Exec, Launch, PlanContext
from devstack_cli.settings import write_private
from devstack_cli.tools import require

EPMD_NAMES = "00016e"  # a NAMES_REQ: epmd answers with its port and the nodes it knows


def processes(ctx: PlanContext) -> list[ProcessSpec]:
    epmd = ctx.process(
        "rabbitmq-epmd",
        Probe(tcp=(ctx.port("epmd"),), send=EPMD_NAMES),
        {},
        command=(require("epmd"), "-port", str(ctx.port("epmd")), "-address", "127.0.0.1"),
    )
    # The management listener (plain HTTP, loopback) starts once the broker has booted, its
    # definitions loaded and its AMQP listeners open; a probe there logs nothing, unlike an
    # AMQP handshake left unfinished every few seconds.
    probe = Probe(http=f"http://127.0.0.1:{ctx.port('management')}/")
    broker = ctx.process("rabbitmq", probe, {**ctx.after(), "rabbitmq-epmd": "healthy"})
    return [epmd, broker]


def password_hash(password: str, salt: bytes | None = None) -> str:
    """RabbitMQ's rabbit_password_hashing_sha256: base64(salt + sha256(salt + password))."""
    salt = salt if salt is not None else secrets.token_bytes(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def definitions(app: dict[str, str], admin: dict[str, str]) -> dict[str, object]:
    vhost = app["vhost"]
    everything = {"configure": ".*", "write": ".*", "read": ".*"}
    return {
        "users": [
            {
                "name": admin["user"],
                "password_hash": password_hash(admin["password"]),
                "hashing_algorithm": "rabbit_password_hashing_sha256",
                "tags": ["administrator"],
            },
            {
                "name": app["user"],
                "password_hash": password_hash(app["password"]),
                "hashing_algorithm": "rabbit_password_hashing_sha256",
                "tags": ["management"],
            },
        ],
        "vhosts": [{"name": "/"}, {"name": vhost}],
        "permissions": [
            {"user": admin["user"], "vhost": "/", **everything},
            {"user": admin["user"], "vhost": vhost, **everything},
            {"user": app["user"], "vhost": vhost, **everything},
        ],
    }


def launch(ctx: Launch) -> Exec:
    app, admin = ctx.secret(), ctx.admin_secret()
    tls = ctx.tls()
    defs = ctx.dir / "definitions.json"
    write_private(defs, json.dumps(definitions(app, admin), indent=2))
    (ctx.dir / "enabled_plugins").write_text("[rabbitmq_management,rabbitmq_prometheus].\n")
    config = ctx.dir / "rabbitmq.conf"
    config.write_text(
        f"""listeners.tcp.default = 127.0.0.1:{ctx.port("amqp")}
listeners.ssl.default = 127.0.0.1:{ctx.port("amqps")}
ssl_options.cacertfile = {tls.ca}
ssl_options.certfile = {tls.cert}
ssl_options.keyfile = {tls.key}
ssl_options.verify = verify_none
ssl_options.fail_if_no_peer_cert = false
management.tcp.ip = 127.0.0.1
management.tcp.port = {ctx.port("management")}
prometheus.tcp.ip = 127.0.0.1
prometheus.tcp.port = {ctx.port("prometheus")}
load_definitions = {defs}
loopback_users = none
log.console = true
log.console.level = info
log.file = false
"""
    )
    # Erlang wants a cookie in $HOME; the broker gets a home of its own in the state folder.
    cookie = ctx.dir / ".erlang.cookie"
    if not cookie.exists():
        write_private(cookie, secrets.token_hex(20), mode=0o400)
    env = {
        "HOME": str(ctx.dir),
        "RABBITMQ_NODENAME": f"devstack{ctx.settings.port_offset}@localhost",
        "RABBITMQ_CONFIG_FILE": str(config),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(ctx.dir / "enabled_plugins"),
        "RABBITMQ_MNESIA_BASE": str(ctx.dir / "mnesia"),
        "RABBITMQ_LOG_BASE": str(ctx.dir / "log"),
        "RABBITMQ_PID_FILE": str(ctx.dir / "rabbitmq.pid"),
        "RABBITMQ_LOGS": "-",
        "ERL_EPMD_ADDRESS": "127.0.0.1",
        "ERL_EPMD_PORT": str(ctx.port("epmd")),
        # epmd is the supervisor's (rabbitmq-epmd). Without this, when that epmd dies, the
        # broker's epmd monitor runs an `erl` that starts a daemon epmd on the same port before
        # the supervisor can replace its own: the daemon outlives the stack, and the supervised
        # epmd can never bind again. The environment reaches that `erl` too; the broker
        # re-registers with the replaced epmd on its own.
        "ERL_FLAGS": "-start_epmd false",
        "RABBITMQ_DIST_PORT": str(ctx.port("dist")),
        # No wrapper shell stays around: with RABBITMQ_ALLOW_INPUT set, Debian's rabbitmq-server
        # script `exec`s erl, which `exec`s erlexec, which `exec`s beam.smp, so the process the
        # supervisor started (and signals, and probes) is the broker itself. The script then
        # leaves out -noinput: given back here, with the distribution port on loopback only.
        "RABBITMQ_ALLOW_INPUT": "1",
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": ERL_ARGS,
    }
    return Exec([require("rabbitmq-server")], env=env)


# No Erlang shell on stdin; Erlang distribution (node-to-node, rabbitmqctl) on 127.0.0.1 only;
# schedulers that sleep when idle instead of spinning (+sbwt none): on a shared 2-core machine
# the spinning takes CPU from everything else starting beside the broker.
ERL_ARGS = (
    "-noinput -kernel inet_dist_use_interface {127,0,0,1} +sbwt none +sbwtdcpu none +sbwtdio none"
)
