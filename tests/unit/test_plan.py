"""What `up` would run: the plan rendered from the table, without starting anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack_cli.engine import render_plan, service_ports
from devstack_cli.plan import Condition, Plan, Probe, ProcessSpec
from devstack_cli.settings import Settings
from devstack_cli.stack import stack


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path, port_offset=1000)


def test_standard_plan_orders_everything_after_the_vault_bootstrap(settings: Settings) -> None:
    plan = render_plan(settings, "standard")
    names = [p.name for p in plan.processes]
    assert names[:2] == ["vault", "vault-bootstrap"]
    assert {
        "postgres",
        "pgbouncer",
        "redis-1",
        "redis-2",
        "redis-3",
        "redis-cluster",
        "mysql",
        "mongodb",
        "rabbitmq-epmd",
        "rabbitmq",
        "code_first",
        "api_first",
    } <= set(names)
    for process in plan.processes:
        if process.name not in ("vault", "vault-bootstrap", "rabbitmq-epmd", "redis-cluster"):
            assert process.depends_on.get("vault-bootstrap") == "completed", process.name
    assert plan.process("vault-bootstrap").depends_on == {"vault": "started"}
    assert plan.process("pgbouncer").depends_on["postgres"] == "healthy"
    cluster = plan.process("redis-cluster")
    assert cluster.one_shot
    assert set(cluster.depends_on) == {"redis-1", "redis-2", "redis-3"}
    assert plan.process("postgres").stop_signal == "SIGINT"
    for app in ("code_first", "api_first"):
        # the APIs start once every data service has started (they connect lazily) and the
        # one-shot steps are done; servers wait for what they come after to be healthy
        assert plan.process(app).depends_on == {
            "vault-bootstrap": "completed",
            "postgres": "started",
            "pgbouncer": "started",
            "mysql": "started",
            "mongodb": "started",
            "redis-cluster": "completed",
            "rabbitmq": "started",
        }
        assert plan.process(app).command[-2:] == ("_serve", app)


def probe_of(plan: Plan, name: str) -> Probe:
    probe = plan.process(name).probe
    assert probe is not None, f"{name} has no probe"
    return probe


def test_probes_and_ports_carry_the_offset(settings: Settings) -> None:
    plan = render_plan(settings, "standard")
    assert probe_of(plan, "vault").http == "http://127.0.0.1:9200/v1/sys/health"
    assert probe_of(plan, "redis-2").tcp == (7380,)
    assert probe_of(plan, "code_first").http == "http://127.0.0.1:9000/health"
    assert probe_of(plan, "api_first").http == "http://127.0.0.1:9001/health"
    assert service_ports(settings, stack().service("redis"))["tls-3"] == 7392


def test_minimal_plan_has_no_standard_only_server(settings: Settings) -> None:
    names = {p.service for p in render_plan(settings, "minimal").processes}
    assert names == {"vault", "postgres", "pgbouncer", "redis"}


def test_no_secret_reaches_the_plan(settings: Settings) -> None:
    """The plan is saved in the state folder: it holds commands, never credentials."""
    text = render_plan(settings, "standard").model_dump_json()
    assert "password" not in text.lower()
    assert "token" not in text.lower()


def spec(name: str, **deps: Condition) -> ProcessSpec:
    return ProcessSpec(
        name=name, service=name, command=("true",), depends_on=deps, log_file="/dev/null"
    )


def test_levels_and_cycles() -> None:
    plan = Plan(
        profile="x",
        processes=(spec("a"), spec("b", a="healthy"), spec("c", a="started", b="completed")),
    )
    assert plan.levels() == {"a": 0, "b": 1, "c": 2}
    with pytest.raises(ValueError, match="dependency cycle"):
        Plan(profile="x", processes=(spec("a", b="healthy"), spec("b", a="healthy")))
    with pytest.raises(ValueError, match="unknown process 'z'"):
        Plan(profile="x", processes=(spec("a", z="healthy"),))
