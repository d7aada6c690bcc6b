"""The supervisor's in-process readiness probes, asked of the real servers of the test stack."""

from __future__ import annotations

from devstack_cli.plan import Probe
from devstack_cli.supervisor import postgres_accepts, run_probe
from tests.support import StackUnderTest


async def test_postgres_probe_passes_on_the_running_server(stack: StackUnderTest) -> None:
    port = stack.port("postgres", "postgres")
    assert await postgres_accepts(port) is True
    assert await run_probe(Probe(postgres=port)) is None


async def test_postgres_probe_leaves_nothing_in_the_server_log(stack: StackUnderTest) -> None:
    """The probe closes at the authentication challenge, as pg_isready does: PostgreSQL logs
    nothing for it (a FATAL line every 10 s would bury the log)."""
    log = stack.state_dir / "logs" / "postgres.log"
    before = log.stat().st_size
    for _ in range(3):
        assert await postgres_accepts(stack.port("postgres", "postgres")) is True
    # A later connection flushes whatever the probes' backends wrote before it.
    conn = await stack.postgres()
    await conn.close()
    with log.open("rb") as lines:
        lines.seek(before)
        written = lines.read().decode(errors="replace")
    assert "devstack_probe" not in written
