"""Redis Cluster: three masters (ports 6379-6381, TLS 6390-6392), created once, checked on every up.

Every node requires the password from `secret/redis`; the cluster bus runs over TLS, so the
cluster announces its TLS ports. Each node also has the exporter's monitoring ACL user
(`secret/redis_exporter`, `MONITOR_ACL`: the read-only commands redis_exporter sends, no key,
no channel, no CONFIG GET), declared in its configuration by its password's SHA-256.

The plain ports (6379-6381) are a documented choice, on 127.0.0.1 only and behind the
password: for redis-cli and tools built without TLS, and the supervisor's probe (PING answered
"-NOAUTH"); the stack's own clients use the TLS ports, which the cluster announces. The
`redis-cluster` process creates the cluster the first time and then waits for
`cluster_state:ok` on every node, on every `up`.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Callable

from devstack_cli.plan import Condition, Probe, ProcessSpec
from devstack_cli.servers.base import Exec, Launch, PlanContext
from devstack_cli.settings import write_private
from devstack_cli.tools import require

CLUSTER_TIMEOUT = 60.0

# What redis_exporter 1.45 sends (checked against each node's ACL LOG while it scrapes): INFO,
# PING, CLIENT SETNAME, CLUSTER INFO, LATENCY LATEST, SLOWLOG LEN/GET. Not CONFIG GET: it would
# hand the monitoring user `requirepass`, the nodes' own password (the exporter runs with
# `-config-command=-`, so it does not ask).
MONITOR_ACL = (
    "resetkeys resetchannels -@all +ping +info +client|setname +cluster|info +latency|latest "
    "+slowlog|len +slowlog|get"
)


def monitor_user(monitor: dict[str, str]) -> str:
    """The exporter's ACL user, as a redis.conf line: its password only as a SHA-256 hash."""
    digest = hashlib.sha256(monitor["password"].encode()).hexdigest()
    return f"user {monitor['user']} on #{digest} {MONITOR_ACL}"


def processes(ctx: PlanContext) -> list[ProcessSpec]:
    nodes = [
        ctx.process(
            f"redis-{i + 1}",
            # PING on the plain port: "-NOAUTH" is an answer (the password is not the probe's).
            Probe(tcp=(ctx.port("redis", i),), send=b"PING\r\n".hex()),
            ctx.after(),
            instance=i,
        )
        for i in range(ctx.service.instances)
    ]
    ready: dict[str, Condition] = {node.name: "healthy" for node in nodes}
    cluster = ctx.process(
        "redis-cluster",
        None,
        ready,
        command=(sys.executable, "-m", "devstack_cli", "_redis_cluster"),
        one_shot=True,
    )
    return [*nodes, cluster]


def launch(ctx: Launch) -> Exec:
    node_dir = ctx.instance_dir
    password = ctx.secret()["password"]
    monitor = ctx.secret("redis_exporter")
    tls = ctx.tls()
    config = node_dir / "redis.conf"
    write_private(
        config,
        f"""bind 127.0.0.1
port {ctx.port("redis")}
tls-port {ctx.port("tls")}
cluster-port {ctx.port("bus")}
tls-cert-file {tls.cert}
tls-key-file {tls.key}
tls-ca-cert-file {tls.ca}
tls-auth-clients no
tls-cluster yes
tls-replication yes
cluster-enabled yes
cluster-config-file {node_dir / "nodes.conf"}
cluster-node-timeout 5000
# Background work (expiry, cluster pings) 4 times a second, not 10: what an idle node costs.
hz 4
requirepass {password}
masterauth {password}
{monitor_user(monitor)}
dir {node_dir}
appendonly yes
protected-mode no
daemonize no
logfile ""
""",
    )
    return Exec([require("redis-server"), str(config)])


def redis_cli(ctx: Launch, port: int, *args: str) -> str:
    """Run redis-cli over TLS; the password goes through the environment, never the arguments."""
    argv = [
        require("redis-cli"),
        "--tls",
        "--cacert",
        str(ctx.settings.state.ca_chain),
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        *args,
    ]
    env = {**os.environ, "REDISCLI_AUTH": ctx.secret()["password"]}
    result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)
    if result.returncode:
        raise RuntimeError(f"redis-cli {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def loaded_cluster_info(ask: Callable[[], str], node: str, deadline: float) -> dict[str, str]:
    """The fields of CLUSTER INFO, as `ask()` gets its reply from `node`.

    A node still loading its data set (after a restart, its AOF) answers `LOADING ...` instead,
    and redis-cli exits 0 on such an error reply: asked again until `deadline`. Read as an
    answer, it would look like a node without slots. Any other error reply is raised."""
    while True:
        reply = ask()
        info = dict(line.strip().split(":", 1) for line in reply.splitlines() if ":" in line)
        if "cluster_state" in info:
            return info
        if not reply.startswith("LOADING"):
            raise RuntimeError(f"{node} answered CLUSTER INFO with: {reply.strip()}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{node} was still loading its data after {CLUSTER_TIMEOUT:.0f}s")
        time.sleep(0.2)


def cluster_info(ctx: Launch, port: int, deadline: float) -> dict[str, str]:
    """CLUSTER INFO of the node on TLS port `port`, once it has loaded its data."""
    return loaded_cluster_info(
        lambda: redis_cli(ctx, port, "cluster", "info"), f"the node on port {port}", deadline
    )


def ensure_cluster(ctx: Launch) -> None:
    """Create the cluster if no node has slots yet; then wait for cluster_state:ok everywhere."""
    ports = [ctx.port("tls", i) for i in range(ctx.service.instances)]
    deadline = time.monotonic() + CLUSTER_TIMEOUT
    infos = [cluster_info(ctx, port, deadline) for port in ports]
    assigned = [int(info.get("cluster_slots_assigned", "0")) for info in infos]
    if not any(assigned):
        print(f"creating the cluster on TLS ports {ports}", flush=True)
        redis_cli(
            ctx,
            ports[0],
            "--cluster",
            "create",
            *(f"127.0.0.1:{p}" for p in ports),
            "--cluster-yes",
        )
    elif not all(n == 16384 for n in assigned):
        raise RuntimeError(
            f"the cluster is partly configured (slots per node: {assigned}); "
            "run `devstack reset --yes` to start from scratch"
        )
    deadline = time.monotonic() + CLUSTER_TIMEOUT
    while True:
        states = [cluster_info(ctx, port, deadline).get("cluster_state") for port in ports]
        if all(state == "ok" for state in states):
            print("cluster_state:ok on every node", flush=True)
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"cluster states after {CLUSTER_TIMEOUT:.0f}s: {states}")
        time.sleep(0.2)
