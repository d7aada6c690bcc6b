"""The stack's life cycle through the CLI, on a stack of its own (profile minimal, own ports):
up, up again (a no-op), data kept across down and up, nothing left running after down, a taken
port and an unknown profile refused with their documented exit codes, reset removing it all."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterator

import pytest

from tests.conftest import TEST_PORT_OFFSET, StackUnderTest, new_state_dir

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
        assert in_redis is not None and in_redis.decode() == in_postgres
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
    assert "already running" in again.stdout and "nothing to do" in again.stdout

    pids = [
        p["pid"]
        for svc in s.status()["services"].values()
        for p in svc["processes"]
        if p["pid"] is not None
    ]
    ports = [port for svc in s.status()["services"].values() for port in svc["ports"].values()]
    down = s.cli("down")
    assert down.returncode == 0 and "stopped" in down.stdout
    assert s.status()["running"] is False
    await asyncio.sleep(0.5)
    assert [pid for pid in pids if pid_alive(pid)] == []
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
        "error: unknown profile 'huge'; choose one of: full, minimal, standard "
        "(or join profiles and services with '+', e.g. standard+golang)"
    )


def test_reset_removes_all_state(own_stack: StackUnderTest) -> None:
    s = own_stack
    s.state_dir.mkdir(exist_ok=True)
    refused = s.cli("reset")  # no terminal to confirm on
    assert refused.returncode == 2 and "--yes" in refused.stderr
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
