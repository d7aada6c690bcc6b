"""The observability profile's configuration, rendered without starting anything (issue 17)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from devstack_cli.bootstrap import render_policy
from devstack_cli.servers.mysql import init_sql
from devstack_cli.servers.mysqld_exporter import my_cnf
from devstack_cli.servers.postgres import provisioning_sql
from devstack_cli.servers.prometheus import config
from devstack_cli.servers.redis import monitor_user
from devstack_cli.settings import Settings
from devstack_cli.stack import stack

TABLE = stack()
SETTINGS = Settings(state_dir=Path("/state"), port_offset=950)


def jobs(profile: str, vault_metrics: bool = True) -> dict[str, dict[str, Any]]:
    rendered = config(SETTINGS, TABLE.in_profile(profile), vault_metrics)
    return {job["job_name"]: job for job in rendered["scrape_configs"]}


def test_the_default_profiles_are_unchanged() -> None:
    for profile in ("minimal", "standard", "full"):
        names = {s.name for s in TABLE.in_profile(profile)}
        assert not names & {
            "prometheus",
            "postgres_exporter",
            "mysqld_exporter",
            "redis_exporter",
            "victorialogs",
            "vlagent",
        }
    observability = [s.name for s in TABLE.in_profile("observability")]
    assert observability[: len(TABLE.in_profile("standard"))] == [
        s.name for s in TABLE.in_profile("standard")
    ]


def test_prometheus_scrapes_every_api_and_server_of_the_profile_on_loopback() -> None:
    found = jobs("observability")
    assert {"code_first", "api_first", "vault", "mongodb", "postgres_exporter"} <= set(found)
    assert {"mysqld_exporter", "redis", "redis_exporter", "prometheus"} <= set(found)
    assert {"victorialogs", "vlagent"} <= set(found)
    for job in found.values():
        for group in job["static_configs"]:
            for target in group["targets"]:
                assert "127.0.0.1:" in target, target
    assert found["code_first"]["static_configs"][0]["targets"] == ["127.0.0.1:8950"]
    assert "golang" in jobs("observability+golang")
    assert "vault" not in jobs("observability", vault_metrics=False)


def test_vault_is_scraped_with_a_token_file_never_a_token() -> None:
    vault = jobs("observability")["vault"]
    assert vault["authorization"] == {"credentials_file": "/state/prometheus/vault-token"}
    assert "hvs." not in json.dumps(vault)
    assert "s." not in json.dumps(vault["authorization"])


def test_redis_nodes_are_targets_of_one_exporter() -> None:
    redis = jobs("observability")["redis"]
    targets = redis["static_configs"][0]["targets"]
    assert targets == [f"rediss://127.0.0.1:{6390 + 950 + i}" for i in range(3)]
    assert {"target_label": "__address__", "replacement": "127.0.0.1:10071"} in redis[
        "relabel_configs"
    ]


def test_each_exporter_policy_reads_its_own_secret_and_prometheus_reads_metrics() -> None:
    for name in ("postgres_exporter", "mysqld_exporter", "redis_exporter"):
        policy = render_policy(TABLE.service(name))
        assert policy.count('path "secret/data/') == 1
        assert f'path "secret/data/{name}"' in policy
        assert "sys/metrics" not in policy
    prometheus = render_policy(TABLE.service("prometheus"))
    assert 'path "sys/metrics"' in prometheus
    assert "secret/data" not in prometheus


def test_the_monitoring_accounts_get_only_monitoring_grants() -> None:
    monitor = {"user": "devstack_monitor", "password": "p'w"}
    sql = provisioning_sql(
        {"user": "app", "password": "a"}, {"user": "adm", "password": "x"}, monitor
    )
    assert 'GRANT pg_monitor TO "devstack_monitor";' in sql
    assert "NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD 'p''w'" in sql
    assert all(line.endswith(";") for line in sql.strip().splitlines())
    my = init_sql(
        {"user": "app", "password": "a", "database": "db"},
        {"user": "root", "password": "r"},
        monitor=monitor,
    )
    assert "GRANT PROCESS, REPLICATION CLIENT ON *.* TO 'devstack_monitor'@'127.0.0.1';" in my
    assert "GRANT SELECT ON performance_schema.* TO 'devstack_monitor'@'127.0.0.1';" in my
    assert "REQUIRE SSL" in my
    assert "ssl-ca=/ca.pem" in my_cnf("u", "p", 3306, "/ca.pem")


def test_the_redis_monitoring_user_is_declared_by_hash_with_read_only_commands() -> None:
    line = monitor_user({"user": "devstack_monitor", "password": "s3cret-pw"})
    assert line.startswith("user devstack_monitor on #")
    assert "s3cret-pw" not in line
    rules = line.split()
    assert {"-@all", "resetkeys", "resetchannels"} <= set(rules)
    granted = {rule[1:] for rule in rules if rule.startswith("+")}
    assert granted == {
        "ping",
        "info",
        "client|setname",
        "cluster|info",
        "latency|latest",
        "slowlog|len",
        "slowlog|get",
    }
    # Redis reads the exporter's secret to declare the user; the exporter reads nothing else.
    assert "redis_exporter" in TABLE.service("redis").readable_secrets()
    assert TABLE.service("redis_exporter").readable_secrets() == ("redis_exporter",)


def test_vlagent_ships_every_process_log_labelled_by_service(tmp_path: Path) -> None:
    from devstack_cli.engine import render_plan
    from devstack_cli.servers.vlagent import collected

    settings = Settings(state_dir=tmp_path, port_offset=950)
    plan = render_plan(settings, "observability")
    settings.state.plan_file.parent.mkdir(parents=True)
    settings.state.plan_file.write_text(plan.model_dump_json())
    files = dict(collected(settings))
    for process in plan.processes:
        assert files[process.log_file] == {"service": process.service, "process": process.name}
    assert files[str(settings.state.supervisor_log)]["process"] == "supervisor"
