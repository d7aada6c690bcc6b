"""The conventions the engine relies on, checked where the table is loaded, with a clear error:
dependencies listed first in stack/services.toml, and each server module's last process the one
that says its service is ready. Every server module provides what `ServerModule` says."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack_cli import engine, servers
from devstack_cli.plan import ProcessSpec
from devstack_cli.servers import MODULE_NAMES, module_for, ready_process
from devstack_cli.settings import Settings
from devstack_cli.stack import load_stack, stack

TABLE = """
[profiles]
minimal = "x"

[services.vault]
description = "v"
kind = "server"
profiles = ["minimal"]
ports = { api = 8200 }
{first}
{second}
"""
POSTGRES = """
[services.postgres]
description = "p"
kind = "server"
profiles = ["minimal"]
ports = { postgres = 5432 }
after = ["vault"]
"""
PGBOUNCER = """
[services.pgbouncer]
description = "b"
kind = "server"
profiles = ["minimal"]
ports = { pgbouncer = 6432 }
after = ["postgres"]
"""


def write(tmp_path: Path, first: str, second: str) -> Path:
    path = tmp_path / "services.toml"
    path.write_text(TABLE.replace("{first}", first).replace("{second}", second))
    return path


def test_a_table_that_lists_dependencies_first_loads(tmp_path: Path) -> None:
    table = load_stack(write(tmp_path, POSTGRES, PGBOUNCER))
    assert [s.name for s in table.in_profile("minimal")] == ["vault", "postgres", "pgbouncer"]


def test_a_dependency_listed_later_is_refused_naming_the_service_and_the_rule(
    tmp_path: Path,
) -> None:
    with pytest.raises(ValueError, match="pgbouncer: 'after' names 'postgres'") as caught:
        load_stack(write(tmp_path, PGBOUNCER, POSTGRES))
    assert "dependencies are listed first" in str(caught.value)


def test_the_project_table_lists_dependencies_first() -> None:
    seen: set[str] = set()
    for service in stack().services.values():
        assert set(service.after) <= seen, service.name
        seen.add(service.name)


def spec(name: str, service: str = "redis", **depends_on: str) -> ProcessSpec:
    return ProcessSpec.model_validate(
        {
            "name": name,
            "service": service,
            "command": ("true",),
            "depends_on": depends_on,
            "log_file": f"/logs/{name}.log",
        }
    )


def test_the_ready_process_is_the_last_and_waits_for_the_others() -> None:
    nodes = [spec("redis-1", vault="healthy"), spec("redis-2", vault="healthy")]
    cluster = spec("redis-cluster", **{"redis-1": "healthy", "redis-2": "healthy"})
    assert ready_process("redis", [*nodes, cluster]) == cluster
    # Through another process of the service counts too (Prometheus: keeper, server, check).
    chain = [spec("a"), spec("b", a="healthy"), spec("c", b="healthy")]
    assert ready_process("redis", chain).name == "c"


def test_a_last_process_that_does_not_wait_for_the_others_is_refused() -> None:
    cluster = spec("redis-cluster", **{"redis-1": "healthy"})
    with pytest.raises(ValueError, match=r"^redis: the last process .*redis-cluster") as caught:
        ready_process("redis", [spec("redis-1"), spec("redis-2"), cluster])
    assert "does not wait for redis-2" in str(caught.value)
    assert "plan the ready process last" in str(caught.value)


def test_a_module_that_plans_nothing_or_another_service_is_refused() -> None:
    with pytest.raises(ValueError, match="redis: its server module plans no process"):
        ready_process("redis", [])
    with pytest.raises(ValueError, match=r"redis: .*another service: x"):
        ready_process("redis", [spec("x", service="vault")])


@pytest.mark.parametrize("profile", ["full", "observability"])
def test_every_server_module_follows_the_conventions(tmp_path: Path, profile: str) -> None:
    plan = engine.render_plan(Settings(state_dir=tmp_path, port_offset=0), profile)
    assert {p.service for p in plan.processes} == {s.name for s in stack().in_profile(profile)}


@pytest.mark.parametrize("service", sorted(MODULE_NAMES))
def test_every_server_module_provides_the_protocol(service: str) -> None:
    module = module_for(service)
    assert callable(module.processes)
    assert callable(module.launch)
    assert servers.MODULES[service] is module
