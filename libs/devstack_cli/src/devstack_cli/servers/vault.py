"""OpenBao in server mode: raft storage in the state folder, listening on loopback.

Its own process, `vault-bootstrap`, initialises it on the first start (5 key shares, threshold 3),
unseals it on every start and runs the idempotent bootstrap (see `devstack_cli.bootstrap`).
"""

from __future__ import annotations

import sys

from devstack_cli.plan import Probe, ProcessSpec
from devstack_cli.servers.base import BOOTSTRAP, Exec, Launch, PlanContext
from devstack_cli.tools import require


def processes(ctx: PlanContext) -> list[ProcessSpec]:
    api = ctx.port("api")
    return [
        ctx.process("vault", Probe(http=f"http://127.0.0.1:{api}/v1/sys/health"), {}),
        ctx.process(
            BOOTSTRAP,
            None,
            {"vault": "started"},
            command=(sys.executable, "-m", "devstack_cli", "_bootstrap"),
            one_shot=True,
        ),
    ]


def launch(ctx: Launch) -> Exec:
    data = ctx.dir / "data"
    data.mkdir(parents=True, exist_ok=True)
    api, cluster = ctx.port("api"), ctx.port("cluster")
    config = ctx.dir / "config.hcl"
    config.write_text(
        f"""storage "raft" {{
  path    = "{data}"
  node_id = "devstack"
}}

listener "tcp" {{
  address         = "127.0.0.1:{api}"
  cluster_address = "127.0.0.1:{cluster}"
  tls_disable     = true
}}

api_addr     = "http://127.0.0.1:{api}"
cluster_addr = "http://127.0.0.1:{cluster}"
ui           = false
log_level    = "info"

# /v1/sys/metrics in Prometheus's format (read by Prometheus with its own AppRole's token).
telemetry {{
  prometheus_retention_time = "24h"
  disable_hostname          = true
}}

# Every request and response, with secret values HMAC'd (never in clear): how requests are
# counted (bench/client) and what an operator reads after an incident. OpenBao only accepts
# audit devices declared here, not through its API.
audit "file" "file" {{
  description = "all requests, values HMAC'd"
  options {{
    file_path = "{ctx.dir / "audit.log"}"
  }}
}}
"""
    )
    return Exec([require("bao"), "server", f"-config={config}"])
