"""The supervisor's PostgreSQL probe asks what pg_isready asks, in process: a server that is
starting up (57P03) is not ready; an authentication request, or any other error, means it
accepts connections. The real server is asked in tests/integration/test_probes.py."""

from __future__ import annotations

import asyncio
import datetime
import ssl
import struct
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

import pytest

from devstack_cli.supervisor import postgres_accepts
from tests.support import self_signed


def error_response(code: str) -> bytes:
    fields = b"SFATAL\0C" + code.encode() + b"\0Mno\0\0"
    return b"E" + struct.pack("!i", 4 + len(fields)) + fields


@pytest.fixture
def server_tls(tmp_path: Path) -> ssl.SSLContext:
    now = datetime.datetime.now(datetime.UTC)
    cert, key = self_signed(
        "localhost", now - datetime.timedelta(minutes=1), now + datetime.timedelta(hours=1)
    )
    (tmp_path / "cert.pem").write_bytes(cert)
    (tmp_path / "key.pem").write_bytes(key)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    return context


class StartFake(Protocol):
    async def __call__(self, ssl_answer: bytes, after_startup: bytes = b"") -> int: ...


@pytest.fixture
async def fake_postgres(server_tls: ssl.SSLContext) -> AsyncIterator[StartFake]:
    servers: list[asyncio.Server] = []

    async def start(ssl_answer: bytes, after_startup: bytes = b"") -> int:
        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            assert await reader.readexactly(8) == bytes.fromhex("0000000804d2162f")
            writer.write(ssl_answer)
            await writer.drain()
            if ssl_answer == b"S":
                await writer.start_tls(server_tls)
                (length,) = struct.unpack("!i", await reader.readexactly(4))
                startup = await reader.readexactly(length - 4)
                assert startup.startswith(struct.pack("!i", 196608))  # protocol 3.0
                writer.write(after_startup)
                await writer.drain()
            await reader.read()
            writer.close()

        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


async def test_an_authentication_request_means_ready(fake_postgres: StartFake) -> None:
    port = await fake_postgres(b"S", b"R" + struct.pack("!ii", 8, 10))
    assert await postgres_accepts(port) is True


async def test_starting_up_is_not_ready(fake_postgres: StartFake) -> None:
    port = await fake_postgres(b"S", error_response("57P03"))
    assert await postgres_accepts(port) is False


async def test_another_error_means_the_server_accepts_connections(
    fake_postgres: StartFake,
) -> None:
    port = await fake_postgres(b"S", error_response("28000"))
    assert await postgres_accepts(port) is True


async def test_a_server_without_tls_is_not_ready(fake_postgres: StartFake) -> None:
    port = await fake_postgres(b"N")
    assert await postgres_accepts(port) is False
