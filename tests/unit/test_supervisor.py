"""The supervisor with real (tiny) processes: order, probes, one-shots, restarts, shutdown."""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

import pytest

from devstack_cli import supervisor
from devstack_cli.plan import Plan, Probe, ProcessSpec
from devstack_cli.supervisor import Supervisor


def spec(tmp: Path, name: str, script: str, **extra: object) -> ProcessSpec:
    return ProcessSpec(
        name=name,
        service=name,
        command=("sh", "-c", script),
        log_file=str(tmp / f"{name}.log"),
        **extra,
    )  # type: ignore[arg-type]


async def wait_for(sup: Supervisor, name: str, state: str, timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while sup.procs[name].state != state:
            await asyncio.sleep(0.02)


@pytest.fixture
def tmp() -> Path:
    # Unix socket paths are short: keep the folder near the root.
    return Path(tempfile.mkdtemp(prefix="sv-"))


async def test_dependencies_probes_and_shutdown(tmp: Path) -> None:
    marker = tmp / "ready"
    plan = Plan(
        profile="t",
        processes=(
            # "a" becomes healthy only once it has written its marker file.
            spec(
                tmp,
                "a",
                f"sleep 0.3; touch {marker}; exec sleep 60",
                probe=Probe(exec=("test", "-e", str(marker))),
            ),
            spec(tmp, "setup", "echo setup-ran", one_shot=True, depends_on={"a": "healthy"}),
            spec(tmp, "b", "exec sleep 60", depends_on={"setup": "completed"}),
        ),
    )
    sup = Supervisor(plan, tmp / "s.sock")
    serving = asyncio.create_task(sup.serve())
    await wait_for(sup, "b", "healthy")
    assert marker.exists() and sup.procs["setup"].state == "completed"
    assert "setup-ran" in (tmp / "setup.log").read_text()
    status = await asyncio.to_thread(supervisor.request, tmp / "s.sock", {"cmd": "status"})
    assert [p["state"] for p in status["processes"]] == ["healthy", "completed", "healthy"]
    pids = [sup.procs[n].pid for n in ("a", "b")]
    sup.shutting_down.set()
    await serving
    for pid in pids:
        assert pid is not None
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert {p.state for p in sup.procs.values()} == {"stopped", "completed"}


async def test_a_failing_one_shot_blocks_its_dependents(tmp: Path) -> None:
    plan = Plan(
        profile="t",
        processes=(
            spec(tmp, "setup", "echo broken >&2; exit 3", one_shot=True),
            spec(tmp, "b", "exec sleep 60", depends_on={"setup": "completed"}),
        ),
    )
    sup = Supervisor(plan, tmp / "s.sock")
    serving = asyncio.create_task(sup.serve())
    await wait_for(sup, "setup", "failed")
    assert sup.procs["setup"].exit_code == 3
    assert sup.procs["b"].state == "pending" and "waiting for setup" in sup.procs["b"].reason
    assert "broken" in (tmp / "setup.log").read_text()
    sup.shutting_down.set()
    await serving


async def test_a_crashed_server_is_restarted(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    counter = tmp / "starts"
    plan = Plan(
        profile="t", processes=(spec(tmp, "flaky", f"echo x >> {counter}; sleep 0.2; exit 1"),)
    )
    sup = Supervisor(plan, tmp / "s.sock")
    serving = asyncio.create_task(sup.serve())
    async with asyncio.timeout(10):
        while not counter.exists() or len(counter.read_text().split()) < 2:
            await asyncio.sleep(0.05)
    assert sup.procs["flaky"].restarts >= 1
    sup.shutting_down.set()
    await serving


async def test_stop_and_start_one_process(tmp: Path) -> None:
    plan = Plan(profile="t", processes=(spec(tmp, "a", "exec sleep 60"),))
    sup = Supervisor(plan, tmp / "s.sock")
    serving = asyncio.create_task(sup.serve())
    await wait_for(sup, "a", "healthy")
    first = sup.procs["a"].pid
    sock = tmp / "s.sock"
    await asyncio.to_thread(supervisor.request, sock, {"cmd": "stop", "name": "a"})
    assert sup.procs["a"].state == "stopped"
    await asyncio.to_thread(supervisor.request, sock, {"cmd": "start", "name": "a"})
    await wait_for(sup, "a", "healthy")
    assert sup.procs["a"].pid != first
    with pytest.raises(RuntimeError, match="unknown process 'zz'"):
        await asyncio.to_thread(supervisor.request, sock, {"cmd": "stop", "name": "zz"})
    sup.shutting_down.set()
    await serving


def test_the_client_says_when_nothing_runs(tmp: Path) -> None:
    with pytest.raises(supervisor.SupervisorUnavailable, match="not running"):
        supervisor.request(tmp / "absent.sock", {"cmd": "status"})
    assert sys.executable  # the supervisor runs under the same interpreter as the CLI
