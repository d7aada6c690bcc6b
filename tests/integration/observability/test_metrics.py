"""Issue 17, metrics: every scrape target up, API requests counted by route template, and each
exporter reading only its own credentials, none of them in a command line or an environment."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from redis.exceptions import NoPermissionError

from devstack_cli.servers.prometheus import SCRAPE_INTERVAL, check_config, config
from devstack_cli.settings import Settings
from devstack_cli.stack import stack as service_table
from devstack_cli.vault import VaultError
from tests.integration.observability.support import PROFILE, ObservedStack
from tests.support import can_read, wait_for, wait_for_sync

TABLE = service_table()
APIS = [s.name for s in TABLE.in_profile(PROFILE) if s.kind == "api"]
EXPORTERS = ("postgres_exporter", "mysqld_exporter", "redis_exporter")
# What each observability service's AppRole may read: each exporter its own monitoring account.
OWN_SECRETS = {
    "postgres_exporter": {"postgres_exporter"},
    "mysqld_exporter": {"mysqld_exporter"},
    "redis_exporter": {"redis_exporter"},
    "prometheus": set(),
}
ALL_SECRETS = sorted(
    [s.secret_path for s in TABLE.services.values() if s.secret is not None]
    + [s.admin_path for s in TABLE.services.values() if s.admin is not None]
)
INTERVAL = float(SCRAPE_INTERVAL.rstrip("s"))


def targets(observed: ObservedStack) -> list[dict[str, Any]]:
    active: list[dict[str, Any]] = observed.api("targets", state="active")["activeTargets"]
    return active


def test_every_scrape_target_is_up_within_30s_of_up(observed: ObservedStack) -> None:
    down: list[str] = []

    def every_target_up() -> list[dict[str, Any]]:
        nonlocal down
        active = targets(observed)
        down = [
            f"{t['labels']['job']} {t['scrapeUrl']}: {t['lastError']}"
            for t in active
            if t["health"] != "up"
        ]
        return active if not down else []

    # 30 s from when `up` returned, not from when this test started.
    left = max(0.0, observed.up_returned + 30 - time.monotonic())
    active = wait_for_sync(
        every_target_up, left, "every scrape target up, 30 s after `up`", detail=lambda: down
    )
    jobs = {t["labels"]["job"] for t in active}
    wanted = {*APIS, "prometheus", "mongodb", "postgres_exporter", "mysqld_exporter"}
    wanted |= {"redis", "redis_exporter"}
    assert wanted <= jobs, f"missing jobs: {wanted - jobs}"
    redis_nodes = [t for t in active if t["labels"]["job"] == "redis"]
    assert len(redis_nodes) == TABLE.service("redis").instances  # one target per node
    # The exporters reach their servers (an exporter answers even when its server does not).
    for expr in ("pg_up", "mysql_up", "redis_up"):
        values = [r["value"][1] for r in observed.query(expr)]
        assert values, expr
        assert all(v == "1" for v in values), (expr, values)


def test_promtool_accepts_the_rendered_configuration_and_refuses_a_bad_one(
    observed: ObservedStack, tmp_path: Path
) -> None:
    """Here, not in the unit lane: promtool comes with Debian's prometheus package, which the
    `observed` fixture installs; a unit test skipped it on every new machine."""
    settings = Settings(state_dir=tmp_path, port_offset=observed.stack.port_offset)
    token = settings.state.service_dir("prometheus") / "vault-token"
    token.parent.mkdir()
    token.write_text("not-a-token\n")  # promtool checks that the credentials file exists
    path = tmp_path / "prometheus.yml"
    path.write_text(json.dumps(config(settings, TABLE.in_profile(PROFILE))))
    check_config(path)
    path.write_text('{"scrape_configs": [{"job_name": "x", "unknown_field": 1}]}')
    with pytest.raises(RuntimeError, match="not a valid Prometheus configuration"):
        check_config(path)


def test_vault_and_rabbitmq_are_scraped(observed: ObservedStack) -> None:
    jobs = {t["labels"]["job"] for t in targets(observed)}
    assert {"vault", "rabbitmq"} <= jobs


@pytest.mark.parametrize("api", APIS)
async def test_a_request_is_counted_by_route_template_within_two_scrapes(
    observed: ObservedStack, api: str
) -> None:
    route, path = "/health/{service}", "/health/postgres"
    selector = f"devstack_http_requests_total{{job='{api}',route='{route}'}}"

    def count() -> float:
        return sum(float(r["value"][1]) for r in observed.query(f"sum({selector})"))

    before = count()
    base = f"http://127.0.0.1:{observed.stack.port(api, 'http')}"
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        response = await client.get(path)
    assert response.status_code in (200, 503), response.text

    async def counted() -> bool:
        return count() >= before + 1

    await wait_for(counted, 2 * INTERVAL, f"{api}: {path} counted under {route}", 0.25)
    raw = observed.query(f"devstack_http_requests_total{{job='{api}',route='{path}'}}")
    assert raw == [], "a raw path is a label"


@pytest.mark.parametrize("role", sorted(OWN_SECRETS))
def test_each_observability_approle_reads_only_its_own_secret(
    observed: ObservedStack, role: str
) -> None:
    with observed.stack.login(role) as vault:
        readable = {path for path in ALL_SECRETS if can_read(vault, path)}
        assert readable == OWN_SECRETS[role]
        assert readable == set(TABLE.service(role).readable_secrets())
        # Vault's metrics: Prometheus's token alone reads them.
        if role == "prometheus":
            vault.call("GET", "sys/metrics")
        else:
            with pytest.raises(VaultError) as denied:
                vault.call("GET", "sys/metrics")
            assert denied.value.status == 403


def exporter_pids(observed: ObservedStack) -> dict[str, int]:
    services = observed.stack.status()["services"]
    return {
        name: next(p["pid"] for p in services[name]["processes"])
        for name in (*EXPORTERS, "prometheus")
    }


def test_no_exporter_holds_a_password_in_its_arguments_or_environment(
    observed: ObservedStack,
) -> None:
    stack = observed.stack
    # Every exporter's own password, and the servers' own ones (which none of them reads).
    passwords = [
        stack.creds(name)["password"].encode()
        for name in (*EXPORTERS, "postgres", "mysql", "redis")
    ]
    token = (stack.settings.state.service_dir("prometheus") / "vault-token").read_bytes().strip()
    for name, pid in exporter_pids(observed).items():
        proc = Path("/proc") / str(pid)
        cmdline, environ = (proc / "cmdline").read_bytes(), (proc / "environ").read_bytes()
        assert b"\0" in cmdline, f"{name}: pid {pid} is not the exporter itself"
        for secret in [*passwords, token]:
            assert secret not in cmdline, f"{name} has a credential in its arguments"
            assert secret not in environ, f"{name} has a credential in its environment"
    for path in (
        stack.settings.state.service_dir("postgres_exporter") / "password",
        stack.settings.state.service_dir("mysqld_exporter") / "my.cnf",
        stack.settings.state.service_dir("redis_exporter") / "passwords.json",
        stack.settings.state.service_dir("prometheus") / "vault-token",
    ):
        assert path.stat().st_mode & 0o777 == 0o600, path


async def test_the_postgres_monitoring_account_has_pg_monitor_and_nothing_more(
    observed: ObservedStack,
) -> None:
    creds = observed.stack.creds("postgres_exporter")
    connection = await observed.stack.postgres(creds=creds, database="postgres")
    try:
        row = await connection.fetchrow(
            "SELECT rolsuper, rolcreatedb, rolcreaterole, pg_has_role('pg_monitor', 'member') AS "
            "monitor FROM pg_roles WHERE rolname = current_user"
        )
    finally:
        await connection.close()
    assert row is not None
    assert dict(row) == {
        "rolsuper": False,
        "rolcreatedb": False,
        "rolcreaterole": False,
        "monitor": True,
    }


async def test_the_redis_monitoring_user_runs_only_what_the_exporter_needs(
    observed: ObservedStack,
) -> None:
    """The exporter's ACL user on every node: INFO and the cluster's state, no key, no CONFIG."""
    stack = observed.stack
    creds, admin = stack.creds("redis_exporter"), stack.creds("redis")
    for node in range(TABLE.service("redis").instances):
        port = stack.port("redis", "tls", node)
        # The exporter has scraped every node for the whole session by now: none of its commands
        # was refused (its user allows all it sends), read from the node's ACL LOG.
        root = Redis(
            host="127.0.0.1",
            port=port,
            password=admin["password"],
            ssl=True,
            ssl_ca_certs=stack.ca_file,
            decode_responses=True,
        )
        try:
            refused = [e for e in await root.acl_log() if e["username"] == creds["user"]]
        finally:
            await root.aclose()
        assert refused == [], f"node {node}: the exporter was refused {refused}"
        client = Redis(
            host="127.0.0.1",
            port=port,
            username=creds["user"],
            password=creds["password"],
            ssl=True,
            ssl_ca_certs=stack.ca_file,
        )
        try:
            assert await client.ping()
            assert "redis_version" in await client.info()
            assert (await client.cluster("INFO"))["cluster_state"] == "ok"
            await client.slowlog_get(1)
            # Refused (NOPERM): CONFIG GET would hand over the nodes' own password.
            with pytest.raises(NoPermissionError):
                await client.config_get("requirepass")
            with pytest.raises(NoPermissionError):
                await client.set("devstack:monitor", "1")
            with pytest.raises(NoPermissionError):
                await client.get("devstack:monitor")
            with pytest.raises(NoPermissionError):
                await client.keys("*")
            with pytest.raises(NoPermissionError):
                await client.flushall()
            with pytest.raises(NoPermissionError):
                await client.acl_list()
        finally:
            await client.aclose()
