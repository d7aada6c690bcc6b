"""compose.yaml is generated from the service table, current, and safe by construction; bad input
to the compose engine is one line and the CLI's exit code."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from devstack_cli import compose
from devstack_cli.engine import render_plan
from devstack_cli.plan import ProcessSpec
from devstack_cli.settings import Settings
from devstack_cli.stack import stack as service_table
from tests.integration.compose.support import ComposeStack

MODEL = compose.model()
SERVICES = MODEL["services"]


def test_the_committed_compose_yaml_is_current() -> None:
    assert compose.compose_path().read_text() == compose.render(), (
        "compose.yaml is stale: run `./devstack compose render` and commit it"
    )


def test_a_stale_file_is_detected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stale = tmp_path / "compose.yaml"
    stale.write_text(compose.render().replace("service_healthy", "service_started", 1))
    monkeypatch.setattr(compose, "compose_path", lambda: stale)
    assert compose.is_stale()
    with pytest.raises(compose.ComposeError, match="stale") as raised:
        compose.up(Settings(state_dir=tmp_path / "state"), "standard", print, 1)
    assert raised.value.code == 3


def test_every_process_of_every_profile_is_a_compose_service() -> None:
    with compose._programs_in_the_image():
        for profile in service_table().profiles:
            plan = render_plan(Settings(state_dir=Path("/state")), profile)
            for process in plan.processes:
                entry = SERVICES[process.name]
                assert profile in entry["profiles"], (process.name, profile)
                # The bootstrap stays up to unseal Vault after a restart (compose.BOOTSTRAP):
                # what waits for it to complete waits for it to be healthy.
                wanted = {
                    d: compose.CONDITIONS["healthy" if d == compose.BOOTSTRAP else c]
                    for d, c in process.depends_on.items()
                }
                got = {d: v["condition"] for d, v in entry.get("depends_on", {}).items()}
                assert got == wanted, process.name
                checked = process.probe is not None or process.name == compose.BOOTSTRAP
                assert ("healthcheck" in entry) == checked, process.name
                restarted = not process.one_shot or process.name == compose.BOOTSTRAP
                assert ("restart" in entry) == restarted, process.name


def test_every_service_of_the_table_is_in_compose() -> None:
    commands = [entry["command"] for entry in SERVICES.values()]
    services = {c[c.index("_serve") + 1] for c in commands if "_serve" in c}
    assert services >= set(service_table().services)  # the five APIs included


def test_host_network_and_nothing_published() -> None:
    for name, entry in SERVICES.items():
        assert entry["network_mode"] == "host", name
        assert "ports" not in entry, name


def test_the_root_token_volume_is_the_bootstrap_s_alone() -> None:
    mounting = [
        n
        for n, e in SERVICES.items()
        if any(v.startswith("vault-init:") for v in e.get("volumes", []))
    ]
    assert mounting == ["vault-bootstrap"]


def test_each_service_mounts_only_its_own_approle_read_only() -> None:
    for name, entry in SERVICES.items():
        if name == "vault-bootstrap":
            continue
        owner = next(p.service for p in render_plan_all() if p.name == name)
        for volume in entry.get("volumes", []):
            if volume.startswith("approle-"):
                assert volume == f"approle-{owner}:/state/approle/{owner}:ro", (name, volume)


def test_no_secret_in_any_environment() -> None:
    for name, entry in SERVICES.items():
        assert set(entry["environment"]) == {"DEVSTACK_PORT_OFFSET"}, name


def render_plan_all() -> list[ProcessSpec]:
    with compose._programs_in_the_image():
        plan = render_plan(Settings(state_dir=Path("/state")), "+".join(service_table().profiles))
    return list(plan.processes)


# -- bad input ---------------------------------------------------------------------------


def devstack(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "devstack_cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_an_unknown_engine_is_exit_2(tmp_path: Path) -> None:
    env = {**os.environ, "DEVSTACK_STATE_DIR": str(tmp_path)}
    result = devstack(env, "up", "--engine", "podman-ish")
    assert result.returncode == 2
    assert "unknown engine" in one_line(result)


def test_a_profile_expression_is_exit_2_on_compose(tmp_path: Path) -> None:
    env = {**os.environ, "DEVSTACK_STATE_DIR": str(tmp_path)}
    result = devstack(env, "up", "--engine", "compose", "--profile", "standard+golang")
    assert result.returncode == 2
    assert "profile" in one_line(result)


def test_a_native_only_profile_is_exit_2_on_compose(tmp_path: Path) -> None:
    env = {**os.environ, "DEVSTACK_STATE_DIR": str(tmp_path)}
    result = devstack(env, "up", "--engine", "compose", "--profile", "observability")
    assert result.returncode == 2
    assert "native engine only" in one_line(result)


def test_no_engine_is_one_line_exit_3(tmp_path: Path) -> None:
    env = {**os.environ, "DEVSTACK_STATE_DIR": str(tmp_path), "PATH": str(tmp_path)}
    result = devstack(env, "up", "--engine", "compose")
    assert result.returncode == 3
    assert "no container engine" in one_line(result)


def test_an_engine_that_is_not_running_is_one_line_exit_3(tmp_path: Path) -> None:
    if compose.docker_program() is None:
        pytest.skip("no docker command here")
    env = {
        **os.environ,
        "DEVSTACK_STATE_DIR": str(tmp_path),
        "DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock",
    }
    result = devstack(env, "up", "--engine", "compose")
    assert result.returncode == 3
    assert "not running" in one_line(result)


def test_a_taken_port_is_one_line_exit_3(compose_stack: ComposeStack, tmp_path: Path) -> None:
    offset = compose_stack.port_offset + 50  # a stack that is not running: only its port check
    port = Settings(port_offset=offset).port(service_table().service("vault").ports["api"])
    env = {**os.environ, "DEVSTACK_STATE_DIR": str(tmp_path), "DEVSTACK_PORT_OFFSET": str(offset)}
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        result = devstack(env, "up", "--engine", "compose")
    assert result.returncode == 3
    assert "is already in use" in one_line(result)
