"""Faults injected with real signals into the test stack, for every process of the table (so
none is forgotten): a server killed is replaced by a new one and leaves nothing behind; Vault
killed comes back unsealed; a frozen server is reported unhealthy, and healthy again once it
runs. Each test ends with the whole stack healthy again."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from devstack_cli.engine import render_plan
from devstack_cli.settings import Settings
from devstack_cli.stack import stack as service_table
from tests.support import TEST_PORT_OFFSET, StackUnderTest, free_port, wait_for_sync

PLAN = render_plan(Settings(state_dir=Path("/nonexistent"), port_offset=0), "standard")
LONG_RUNNING = [p.name for p in PLAN.processes if not p.one_shot]
SHELLS = {"sh", "dash", "bash", "zsh"}
RECOVERY_TIMEOUT = 180.0  # generous: a loaded 2-core machine; no figure depends on it


def wait_until(condition: Callable[[], object], what: str) -> None:
    wait_for_sync(condition, RECOVERY_TIMEOUT, what)


def all_healthy(stack: StackUnderTest) -> bool:
    report = stack.status()
    return report["running"] and all(s["state"] == "healthy" for s in report["services"].values())


def alive(pid: int, started: float) -> bool:
    try:
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE and abs(proc.create_time() - started) < 0.05
    except psutil.NoSuchProcess:
        return False


def test_the_table_gives_every_long_running_process() -> None:
    assert TEST_PORT_OFFSET >= 0
    services = {p.service for p in PLAN.processes if not p.one_shot}
    assert services == set(
        n for n, s in service_table().services.items() if "standard" in s.profiles
    )
    assert {"vault", "postgres", "rabbitmq", "rabbitmq-epmd", "redis-3"} <= set(LONG_RUNNING)


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_killing_the_real_process_replaces_it_and_orphans_nothing(
    stack: StackUnderTest, name: str
) -> None:
    wait_until(lambda: all_healthy(stack), "the stack to be healthy before the fault")
    before = stack.processes()[name]
    pid = before["pid"]
    server = psutil.Process(pid)
    kind = service_table().service(before["service"]).kind
    # The supervisor tracks the server itself, not a shell or a launcher in front of it.
    assert server.name() not in SHELLS, f"{name} is supervised through a shell ({pid})"
    if kind == "server":
        assert not server.name().startswith("python"), f"{name}'s launcher did not exec"
    family = [(p.pid, p.create_time()) for p in [server, *server.children(recursive=True)]]
    family += [
        (p.pid, p.create_time())
        for p in psutil.process_iter()
        if p.pid != pid and _session(p.pid) == pid and (p.pid, p.create_time()) not in family
    ]
    os.kill(pid, signal.SIGKILL)

    def replaced() -> bool:
        now = stack.processes()[name]
        return now["pid"] not in (None, pid) and now["state"] == "healthy"

    wait_until(replaced, f"{name} to be replaced by a healthy process")
    assert stack.processes()[name]["restarts"] == before["restarts"] + 1
    if name == "rabbitmq-epmd":
        # The broker must not have started an epmd of its own on the port meanwhile (it would
        # outlive the stack, and the supervised one could never bind again).
        port = stack.port("rabbitmq", "epmd")
        listeners = {
            c.pid
            for c in psutil.net_connections("tcp")
            if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port
        }
        assert listeners == {stack.processes()[name]["pid"]}, listeners
    left = [p for p, started in family if alive(p, started)]
    assert left == [], f"killing {name} ({pid}) left its processes {left} running"
    wait_until(lambda: all_healthy(stack), "the whole stack to be healthy again")


def test_the_broker_s_epmd_monitor_cannot_start_an_epmd_of_its_own(
    stack: StackUnderTest, tmp_path: Path
) -> None:
    """When the supervised epmd dies, RabbitMQ's epmd monitor runs `erl ... -s erlang halt`,
    which starts a daemon epmd unless told not to: the race the kill test above can lose. Here
    that `erl`, run with the broker's own environment, is pointed at a free port: no epmd may
    appear there."""
    broker = psutil.Process(stack.processes()["rabbitmq"]["pid"])
    port = free_port()
    env = {**broker.environ(), "ERL_EPMD_PORT": str(port), "HOME": str(tmp_path)}
    erl = shutil.which("erl")
    assert erl is not None
    starter = [erl, "-boot", "no_dot_erlang", "-sname", "epmd-starter-test", "-noinput"]
    subprocess.run([*starter, "-s", "erlang", "halt"], env=env, capture_output=True, timeout=120)
    started = sorted(
        {
            c.pid
            for c in psutil.net_connections("tcp")
            if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid
        }
    )
    for pid in started:  # not left behind, whatever the outcome
        os.kill(pid, signal.SIGKILL)
    assert started == [], f"an epmd ({started}) was started on port {port}"


def _session(pid: int) -> int | None:
    try:
        return os.getsid(pid)
    except (ProcessLookupError, PermissionError):
        return None


def test_vault_killed_comes_back_unsealed(stack: StackUnderTest) -> None:
    """The test above has killed Vault too; here what a client sees: unsealed, secrets there."""
    wait_until(lambda: all_healthy(stack), "the stack to be healthy")
    pid = stack.processes()["vault"]["pid"]
    os.kill(pid, signal.SIGKILL)
    wait_until(
        lambda: stack.processes()["vault"]["pid"] != pid and all_healthy(stack),
        "Vault to be replaced, unsealed and healthy",
    )
    status = stack.cli("vault", "status")
    assert status.returncode == 0
    assert "sealed       False" in status.stdout
    assert stack.creds("postgres")["password"]
    log = stack.settings.state.log_file("vault-bootstrap").read_text()
    assert log.count("unsealing Vault") >= 2


def test_a_frozen_process_is_unhealthy_until_it_runs_again(stack: StackUnderTest) -> None:
    """SIGSTOP every long-running process at once: the kernel still completes TCP handshakes
    for them, so only a probe that waits for an answer (and times out) sees it."""
    wait_until(lambda: all_healthy(stack), "the stack to be healthy")
    frozen = {name: p["pid"] for name, p in stack.processes().items() if name in LONG_RUNNING}
    try:
        for pid in frozen.values():
            os.kill(pid, signal.SIGSTOP)

        def all_unhealthy() -> bool:
            now = stack.processes()
            return all(now[name]["state"] == "unhealthy" for name in frozen)

        wait_until(all_unhealthy, "every frozen process to be reported unhealthy")
        health = stack.cli("health")
        assert health.returncode == 1
        assert all(p["pid"] == frozen[n] for n, p in stack.processes().items() if n in frozen)
    finally:
        for pid in frozen.values():
            os.kill(pid, signal.SIGCONT)
    wait_until(lambda: all_healthy(stack), "every process healthy again after SIGCONT")
