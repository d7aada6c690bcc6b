"""The compose engine reports its containers in the native supervisor's status model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from devstack_cli import compose
from devstack_cli.settings import Settings
from devstack_cli.states import ProcessState, ServiceState, StackStatus


def container(service: str, status: str, health: str | None = None, code: int = 0) -> Any:
    state: dict[str, Any] = {"Status": status, "Pid": 42 if status == "running" else 0}
    if health is not None:
        state["Health"] = {"Status": health, "Log": [{"Output": "probe said no\n"}]}
    state["ExitCode"] = code
    labels = {"com.docker.compose.service": service}
    return {"Name": f"/devstack_{service}", "Config": {"Labels": labels}, "State": state}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path, port_offset=0)


def snapshot(monkeypatch: pytest.MonkeyPatch, settings: Settings, found: list[Any]) -> StackStatus:
    monkeypatch.setattr(compose, "containers", lambda _engine, _settings: found)
    engine = compose.Engine("docker", ("docker", "compose"), {})
    return compose.snapshot(engine, settings, "minimal")


def test_containers_map_onto_process_states(
    monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    found = [
        container("vault", "running", "healthy"),
        container("vault-bootstrap", "running", "healthy"),  # done, and watching
        container("postgres", "running", "unhealthy"),
        container("pgbouncer", "restarting"),
        container("redis-1", "exited", code=137),
        container("redis-cluster", "exited", code=0),
    ]
    snap = snapshot(monkeypatch, settings, found)
    by_name = {p.name: p for p in snap.processes}
    states = {name: p.state for name, p in by_name.items()}
    assert states["vault"] == ProcessState.HEALTHY
    assert states["vault-bootstrap"] == ProcessState.COMPLETED
    assert states["postgres"] == ProcessState.UNHEALTHY
    assert states["pgbouncer"] == ProcessState.EXITED
    assert states["redis-1"] == ProcessState.FAILED
    assert states["redis-cluster"] == ProcessState.COMPLETED
    assert states["redis-2"] == ProcessState.PENDING  # no container yet
    assert by_name["postgres"].reason == "probe said no"
    assert by_name["redis-2"].container == ""
    assert by_name["vault"].container == "devstack_vault"
    assert snap.engine == "compose"


def test_the_services_add_up_as_natively(
    monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    found = [
        container("vault", "running", "healthy"),
        container("vault-bootstrap", "running", "healthy"),
        container("postgres", "running", "starting"),
    ]
    services = {s.name: s.state for s in snapshot(monkeypatch, settings, found).services()}
    assert services["vault"] == ServiceState.HEALTHY
    assert services["postgres"] == ServiceState.STARTING
    assert services["redis"] == ServiceState.STARTING
