"""The supervisor's HTTP probes share one client (issue 15: building one, with its TLS context,
every 5 s per probe was most of the idle supervisor's CPU), and still connect anew each time."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from devstack_cli import supervisor
from devstack_cli.plan import Probe


async def test_http_probes_reuse_one_client_and_connect_each_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built: list[httpx.AsyncClient] = []

    class Counted(httpx.AsyncClient):
        def __init__(self, *args: Any, **kwargs: Any) -> None:  # httpx.AsyncClient's own
            super().__init__(*args, **kwargs)
            built.append(self)

    monkeypatch.setattr(httpx, "AsyncClient", Counted)
    connections = 0
    statuses = iter([b"200 OK", b"200 OK", b"503 Service Unavailable"])

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 " + next(statuses) + b"\r\ncontent-length: 0\r\n\r\n")
        await writer.drain()
        await reader.read()  # the client closes: no connection kept between probes
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    probe = Probe(http=f"http://127.0.0.1:{port}/health")
    try:
        assert await supervisor.run_probe(probe) is None
        assert await supervisor.run_probe(probe) is None
        assert await supervisor.run_probe(probe) == "HTTP 503"
    finally:
        await supervisor.close_probe_client()
        server.close()
        await server.wait_closed()
    assert len(built) == 1
    assert connections == 3
