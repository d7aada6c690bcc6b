"""The stack's life cycle through the CLI, on a stack of its own (profile minimal, own ports):
up, up again (a no-op), data kept across down and up, nothing left running after down, a taken
port and an unknown profile refused with their documented exit codes, reset removing it all."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.support import TEST_PORT_OFFSET, StackUnderTest, new_state_dir, wait_for

MINIMAL = {"vault", "postgres", "pgbouncer", "redis"}


@pytest.fixture(scope="module")
def own_stack() -> Iterator[StackUnderTest]:
    under_test = StackUnderTest(new_state_dir("life"), TEST_PORT_OFFSET + 100)
    try:
        yield under_test
    finally:
        under_test.cli("reset", "--yes")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def write_and_read(s: StackUnderTest, value: str | None) -> str:
    """Write `value` (when given) to PostgreSQL and Redis; return what both hold."""
    conn = await s.postgres()
    cluster = s.redis_cluster()
    try:
        await conn.execute("CREATE TABLE IF NOT EXISTS kept (value text)")
        if value is not None:
            await conn.execute("INSERT INTO kept VALUES ($1)", value)
            await cluster.set("kept", value)
        in_postgres = await conn.fetchval("SELECT value FROM kept LIMIT 1")
        in_redis = await cluster.get("kept")
        assert isinstance(in_redis, bytes)  # the cluster client does not decode replies
        assert in_redis.decode() == in_postgres
        return str(in_postgres)
    finally:
        await conn.close()
        await cluster.aclose()


async def test_lifecycle(own_stack: StackUnderTest) -> None:
    s = own_stack
    first = s.up("--profile", "minimal")
    assert "services healthy" in first.stdout
    assert set(s.status()["services"]) == MINIMAL

    await write_and_read(s, "survives a restart")

    again = s.cli("up", "--profile", "minimal")
    assert again.returncode == 0
    assert "already running" in again.stdout
    assert "nothing to do" in again.stdout
    bigger = s.cli("up", "--profile", "standard")  # asks for services the running stack lacks
    assert bigger.returncode == 2, bigger.stdout + bigger.stderr
    assert "without" in bigger.stderr, bigger.stderr
    assert "devstack down" in bigger.stderr, bigger.stderr

    pids = [
        p["pid"]
        for svc in s.status()["services"].values()
        for p in svc["processes"]
        if p["pid"] is not None
    ]
    ports = [port for svc in s.status()["services"].values() for port in svc["ports"].values()]
    down = s.cli("down")
    assert down.returncode == 0
    assert "stopped" in down.stdout
    assert s.status()["running"] is False

    async def all_exited() -> bool:
        return not [pid for pid in pids if pid_alive(pid)]

    await wait_for(all_exited, 0.5, "every process of the stack to be gone after down", 0.1)
    for port in ports:
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still answers"

    s.up("--profile", "minimal")
    assert await write_and_read(s, None) == "survives a restart"
    s.cli("down")


def test_a_taken_port_is_named_and_refused(own_stack: StackUnderTest) -> None:
    s = own_stack
    port = s.port("pgbouncer", "pgbouncer")
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        result = s.cli("up", "--profile", "minimal")
    assert result.returncode == 3
    assert f"port {port} (pgbouncer pgbouncer) is already in use" in result.stderr
    assert s.status()["running"] is False


def test_an_unknown_profile_is_refused(own_stack: StackUnderTest) -> None:
    result = own_stack.cli("up", "--profile", "huge")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: unknown profile 'huge'; choose one of: full, minimal, observability, standard "
        "(or join profiles and services with '+', e.g. standard+golang)"
    )


def test_reset_removes_all_state(own_stack: StackUnderTest) -> None:
    s = own_stack
    s.state_dir.mkdir(exist_ok=True)
    refused = s.cli("reset")  # no terminal to confirm on
    assert refused.returncode == 2
    assert "--yes" in refused.stderr
    assert s.state_dir.exists()
    result = s.cli("reset", "--yes")
    assert result.returncode == 0
    assert not s.state_dir.exists()


def test_a_server_that_cannot_start_is_named_with_its_log() -> None:
    """A broken data folder: `up` exits 1 naming postgres, shows its log, and stops the rest."""
    broken = StackUnderTest(new_state_dir("broken"), TEST_PORT_OFFSET + 150)
    data = broken.state_dir / "postgres" / "data"
    data.mkdir(parents=True)
    (data / "PG_VERSION").write_text("99\n")  # a data folder from a server that does not exist
    try:
        result = broken.cli("up", "--profile", "minimal")
        assert result.returncode == 1
        first_error = result.stderr.splitlines()[0]
        assert first_error.startswith("error: postgres failed to start"), result.stderr
        assert f"last lines of {broken.state_dir}/logs/postgres.log" in result.stderr
        assert "stopping the stack" in result.stderr
        assert broken.status()["running"] is False
    finally:
        broken.cli("reset", "--yes")


# -- a killed supervisor, a stale PID file, two `up` at once (issue 9: 1-3) -----------------


def stack_processes(s: StackUnderTest) -> list[tuple[int, float]]:
    """(pid, start time) of every long-running process of the stack, from `status`."""
    found = []
    for svc in s.status()["services"].values():
        for p in svc["processes"]:
            if p["pid"] is not None and not p["one_shot"]:
                with contextlib.suppress(psutil.NoSuchProcess):
                    found.append((p["pid"], psutil.Process(p["pid"]).create_time()))
    return found


def still_running(found: list[tuple[int, float]]) -> list[int]:
    running = []
    for pid, started in found:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc = psutil.Process(pid)
            if proc.create_time() == started and proc.status() != psutil.STATUS_ZOMBIE:
                running.append(pid)
    return running


async def wait_until_gone(found: list[tuple[int, float]], timeout: float = 120) -> None:
    async def gone() -> bool:
        return still_running(found) == []

    await wait_for(gone, timeout, "the processes to exit after their supervisor", 0.2)


async def test_a_killed_supervisor_leaves_nothing_running(own_stack: StackUnderTest) -> None:
    s = own_stack
    s.up("--profile", "minimal")
    found = stack_processes(s)
    assert len(found) >= 6
    supervisor = json.loads(s.settings.state.supervisor_pid.read_text())["pid"]
    os.kill(supervisor, signal.SIGKILL)
    await wait_until_gone(found)
    report = s.status()
    assert report["running"] is False
    assert report["orphans"] == []
    assert s.cli("down").stdout.strip() == "the stack is not running"
    again = s.up("--profile", "minimal")  # no port is held by what the dead supervisor ran
    assert "services healthy" in again.stdout
    s.cli("down")


def test_down_never_signals_the_process_a_stale_pid_file_names(
    own_stack: StackUnderTest,
) -> None:
    s = own_stack
    s.settings.state.run.mkdir(parents=True, exist_ok=True)
    stranger = subprocess.Popen(["sleep", "120"], start_new_session=True)
    try:
        s.settings.state.supervisor_pid.write_text(f"{stranger.pid}\n")
        result = s.cli("down", timeout=60)
        assert result.returncode == 0
        assert "not running" in result.stdout
        assert stranger.poll() is None, "down signalled a process that is not the stack's"
    finally:
        stranger.kill()
        stranger.wait()
        s.settings.state.supervisor_pid.unlink(missing_ok=True)


def test_two_ups_at_once_one_wins_and_nothing_is_invisible(
    own_stack: StackUnderTest,
) -> None:
    s = own_stack
    argv = [sys.executable, "-m", "devstack_cli", "up", "--profile", "minimal"]
    racers = [
        subprocess.Popen(argv, env=s.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    results = [(r.wait(timeout=300), *r.communicate()) for r in racers]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 1], results
    loser = next(err for code, _, err in results if code == 1)
    assert "another `devstack up`" in loser
    report = s.status()
    assert report["running"] is True
    found = stack_processes(s)
    assert s.cli("down").returncode == 0
    assert still_running(found) == []
    assert s.status()["running"] is False
    assert s.status()["orphans"] == []


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs PostgreSQL under another account")
def test_up_works_from_a_folder_other_accounts_cannot_enter() -> None:
    """A checkout in root's home (mode 0700 on Debian): PostgreSQL and PgBouncer run as the
    postgres account, which cannot enter it; their folders live where it can, and reset
    removes those too."""
    home = Path(tempfile.mkdtemp(prefix="devstack-home-"))
    home.chmod(0o700)
    private = StackUnderTest(home / "checkout" / ".devstack", TEST_PORT_OFFSET + 150)
    try:
        private.up("--profile", "minimal")
        link = private.state_dir / "postgres"
        assert link.is_symlink()
        outside = link.resolve()
        assert not outside.is_relative_to(home)
        assert (outside / "data" / "PG_VERSION").exists()
        assert private.status()["services"]["pgbouncer"]["state"] == "healthy"
        result = private.cli("reset", "--yes")
        assert result.returncode == 0, result.stderr
        assert not private.state_dir.exists()
        assert not outside.exists()
    finally:
        private.cli("reset", "--yes")
        shutil.rmtree(home, ignore_errors=True)
