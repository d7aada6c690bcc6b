"""The supervisor with real (tiny) processes: order, probes, one-shots, restarts, shutdown."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import psutil
import pytest

from devstack_cli import engine, lifeline, supervisor
from devstack_cli.plan import Plan, Probe, ProcessSpec
from devstack_cli.settings import Settings
from devstack_cli.supervisor import Supervisor
from tests.support import wait_for, wait_for_sync


def spec(tmp: Path, name: str, script: str, **extra: object) -> ProcessSpec:
    fields = {"name": name, "service": name, "command": ("sh", "-c", script)}
    return ProcessSpec.model_validate({**fields, "log_file": str(tmp / f"{name}.log"), **extra})


async def wait_for_state(sup: Supervisor, name: str, state: str, timeout: float = 10) -> None:
    async def reached() -> bool:
        return sup.procs[name].state == state

    await wait_for(reached, timeout, f"{name} to be {state}", interval=0.02)


def lines_in(path: Path) -> int:
    return len(path.read_text().split()) if path.exists() else 0


@pytest.fixture
def tmp() -> Iterator[Path]:
    # Unix socket paths are short: keep the folder near the root.
    folder = Path(tempfile.mkdtemp(prefix="sv-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@asynccontextmanager
async def supervising(plan: Plan, sock: Path) -> AsyncIterator[Supervisor]:
    """A supervisor serving `plan`, shut down (its processes stopped) however the test ends."""
    sup = Supervisor(plan, sock)
    serving = asyncio.create_task(sup.serve())
    try:
        yield sup
    finally:
        sup.shutting_down.set()
        await serving


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
    async with supervising(plan, tmp / "s.sock") as sup:
        await wait_for_state(sup, "b", "healthy")
        assert marker.exists()
        assert sup.procs["setup"].state == "completed"
        assert "setup-ran" in (tmp / "setup.log").read_text()
        status = await asyncio.to_thread(supervisor.request, tmp / "s.sock", {"cmd": "status"})
        assert [p["state"] for p in status["processes"]] == ["healthy", "completed", "healthy"]
        pids = [sup.procs[n].pid for n in ("a", "b")]
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
    async with supervising(plan, tmp / "s.sock") as sup:
        await wait_for_state(sup, "setup", "failed")
        assert sup.procs["setup"].exit_code == 3
        assert sup.procs["b"].state == "pending"
        assert "waiting for setup" in sup.procs["b"].reason
        assert "broken" in (tmp / "setup.log").read_text()


async def test_a_crashed_server_is_restarted(tmp: Path) -> None:
    counter = tmp / "starts"
    plan = Plan(
        profile="t", processes=(spec(tmp, "flaky", f"echo x >> {counter}; sleep 0.2; exit 1"),)
    )
    async with supervising(plan, tmp / "s.sock") as sup:

        async def started_twice() -> bool:
            return lines_in(counter) >= 2

        await wait_for(started_twice, 10, "flaky to be started a second time", interval=0.05)
        assert sup.procs["flaky"].restarts >= 1


async def test_stop_and_start_one_process(tmp: Path) -> None:
    plan = Plan(profile="t", processes=(spec(tmp, "a", "exec sleep 60"),))
    sock = tmp / "s.sock"
    async with supervising(plan, sock) as sup:
        await wait_for_state(sup, "a", "healthy")
        first = sup.procs["a"].pid
        await asyncio.to_thread(supervisor.request, sock, {"cmd": "stop", "name": "a"})
        assert sup.procs["a"].state == "stopped"
        await asyncio.to_thread(supervisor.request, sock, {"cmd": "start", "name": "a"})
        await wait_for_state(sup, "a", "healthy")
        assert sup.procs["a"].pid != first
        with pytest.raises(RuntimeError, match="unknown process 'zz'"):
            await asyncio.to_thread(supervisor.request, sock, {"cmd": "stop", "name": "zz"})


def test_the_client_says_when_nothing_runs(tmp: Path) -> None:
    with pytest.raises(supervisor.SupervisorUnavailable, match="not running"):
        supervisor.request(tmp / "absent.sock", {"cmd": "status"})


# -- nothing outlives the supervisor, nothing that is not ours is signalled (issue 9: 1-3) --


def run_detached(script: str) -> subprocess.Popen[bytes]:
    """A process in a session of its own, like an unrelated program of the user's."""
    return subprocess.Popen(["sh", "-c", script], start_new_session=True)


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_a_killed_supervisor_takes_its_processes_along(tmp: Path) -> None:
    """SIGKILL leaves the supervisor no chance to stop anything: the kernel must."""
    settings = Settings(state_dir=tmp, port_offset=0)
    plan = Plan(
        profile="t",
        processes=(
            spec(tmp, "a", "exec sleep 60"),
            # A process that ignores SIGTERM: the parent-death signal is its stop signal.
            spec(tmp, "b", "trap '' TERM; exec sleep 60", stop_signal="SIGINT"),
        ),
    )
    settings.state.run.mkdir(parents=True)
    settings.state.plan_file.write_text(plan.model_dump_json())
    env = {**os.environ, "DEVSTACK_STATE_DIR": str(tmp), "DEVSTACK_PORT_OFFSET": "0"}
    daemon = subprocess.Popen(
        [sys.executable, "-m", "devstack_cli", "_supervise", str(settings.state.plan_file)],
        env=env,
        start_new_session=True,
    )
    try:
        wait_for_sync(
            lambda: len(lifeline.read_records(settings.state.children_file)) == 2,
            20,
            "the supervisor to record its two children",
            interval=0.05,
        )
        assert engine.supervisor_pid(settings) == daemon.pid
        children = [r["pid"] for r in lifeline.read_records(settings.state.children_file).values()]
        daemon.kill()
        daemon.wait()
        wait_for_sync(
            lambda: all(gone(pid) for pid in children),
            20,
            "every child to die with the supervisor (one outlived it)",
            interval=0.05,
        )
        assert engine.supervisor_pid(settings) is None
        assert engine.orphans(settings) == {}
    finally:
        daemon.kill()
        daemon.wait()
        engine.stop(settings, timeout=5)  # any child the test saw outlive it (its start time)


def test_a_stale_pid_file_never_signals_another_process(tmp: Path) -> None:
    """supervisor.pid names a live process that is not ours (an old format, and a forged
    record with its real start time): `down` signals nothing and says nothing ran."""
    settings = Settings(state_dir=tmp, port_offset=0)
    settings.state.run.mkdir(parents=True)
    stranger = run_detached("exec sleep 60")
    try:
        for content in (f"{stranger.pid}\n", json.dumps(lifeline.record(stranger.pid))):
            settings.state.supervisor_pid.write_text(content)
            assert engine.supervisor_pid(settings) is None
            assert engine.stop(settings, timeout=1) is False
            assert not gone(stranger.pid)
    finally:
        stranger.kill()
        stranger.wait()


def test_orphans_are_stopped_only_when_their_start_time_matches(tmp: Path) -> None:
    settings = Settings(state_dir=tmp, port_offset=0)
    ours, stranger = run_detached("exec sleep 60"), run_detached("exec sleep 60")
    try:
        records = {
            "ours": {**lifeline.record(ours.pid), "stop_signal": "SIGTERM"},
            # The PID of a process that started later than the one recorded: reused, not ours.
            "reused": {"pid": stranger.pid, "started": time.time() - 3600},
        }
        settings.state.run.mkdir(parents=True)
        settings.state.children_file.write_text(json.dumps(records))
        assert set(engine.orphans(settings)) == {"ours"}
        assert engine.stop(settings) is True  # no supervisor, but something was left: stopped
        ours.wait(timeout=10)
        assert not gone(stranger.pid)
        assert engine.orphans(settings) == {}
    finally:
        for proc in (ours, stranger):
            proc.kill()
            proc.wait()


def test_one_up_per_state_folder(tmp: Path) -> None:
    settings = Settings(state_dir=tmp, port_offset=0)
    held = engine.lock_up(settings)
    try:
        probe = subprocess.run(
            [
                sys.executable,
                "-c",
                "from devstack_cli import engine; from devstack_cli.settings import Settings;"
                f"engine.lock_up(Settings(state_dir={str(tmp)!r}))",
            ],
            capture_output=True,
            text=True,
        )
        assert probe.returncode != 0
        assert f"another `devstack up` (pid {os.getpid()})" in probe.stderr
    finally:
        os.close(held)
    engine.lock_up(settings)  # free again once its holder let go


def test_a_second_supervisor_on_one_folder_is_refused(tmp: Path) -> None:
    held = supervisor.hold_lock(tmp / "supervisor.pid")
    try:
        with pytest.raises(supervisor.AlreadyRunning):
            supervisor.hold_lock(tmp / "supervisor.pid")
    finally:
        os.close(held)


async def test_a_one_shot_after_a_start_runs_again_when_that_process_restarts(tmp: Path) -> None:
    """Vault comes back sealed after a crash: its unseal step must run after every start."""
    runs = tmp / "runs"
    plan = Plan(
        profile="t",
        processes=(
            spec(tmp, "server", "exec sleep 60"),
            spec(
                tmp, "unseal", f"echo x >> {runs}", one_shot=True, depends_on={"server": "started"}
            ),
        ),
    )
    async with supervising(plan, tmp / "s.sock") as sup:
        await wait_for_state(sup, "unseal", "completed")
        first = sup.procs["server"].pid
        assert first is not None
        os.kill(first, 9)

        async def ran_twice() -> bool:
            return lines_in(runs) >= 2

        await wait_for(ran_twice, 10, "unseal to run again after the restart", interval=0.05)
        await wait_for_state(sup, "unseal", "completed")
        assert sup.procs["server"].pid != first
        assert sup.procs["server"].restarts == 1
