"""A cancelled MongoDB connection attempt leaves no socket open (pools/mongodb_connect.py).

The server here is a real listening socket whose accept queue is full, so a TCP connect to it
stays pending (the kernel drops the SYN), the moment where PyMongo 4.20 loses the socket when the
attempt is cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
import warnings
from collections.abc import Iterator
from typing import cast

import pymongo
import pytest
from pymongo import AsyncMongoClient, pool_shared
from pymongo.pool_options import PoolOptions

from devstack_client.pools import mongodb_connect
from devstack_client.pools.mongodb import MongoPool
from devstack_client.secretstore import SecretStore
from devstack_client.tls import TrustStore
from devstack_client.vault import VaultSecret
from tests.support import fake_vault_settings, wait_for

# What the MongoDB pool does before it builds its client (idempotent).
mongodb_connect.install()


@pytest.fixture
def unanswered_port() -> Iterator[int]:
    """A port that takes no more connections: a connect to it hangs until its timeout."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port: int = server.getsockname()[1]
    fillers = []
    for _ in range(4):  # an accept queue of 0 holds one or two; the rest make sure it is full
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    yield port
    for filler in fillers:
        filler.close()
    server.close()


@contextlib.contextmanager
def unclosed_sockets() -> Iterator[list[str]]:
    """The ResourceWarnings of sockets the garbage collector had to close, within the block (and
    at a collection at its end)."""
    found: list[str] = []
    gc.collect()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        yield found
        gc.collect()
    found.extend(str(w.message) for w in caught if "unclosed <socket" in str(w.message))


async def test_an_operation_cancelled_while_connecting_leaves_no_socket_open(
    unanswered_port: int,
) -> None:
    with unclosed_sockets() as unclosed:
        client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(
            host="127.0.0.1",
            port=unanswered_port,
            directConnection=True,
            connectTimeoutMS=500,
            serverSelectionTimeoutMS=5000,
        )
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await client.admin.command("ping")
        await client.close()  # stops the server monitor while its own connect is pending
        del client  # what still holds a lost socket, for the collection at the block's end

        async def attempts_ended() -> bool:
            return not mongodb_connect._abandoned

        await wait_for(attempts_ended, timeout=30, what="the abandoned connects", interval=0.1)
    assert unclosed == []


async def test_an_attempt_that_connects_after_its_caller_left_is_closed() -> None:
    opened: list[socket.socket] = []
    gate = asyncio.Event()

    async def connect(_address: mongodb_connect.Address, _options: PoolOptions) -> socket.socket:
        sock = socket.socket()
        opened.append(sock)
        await gate.wait()
        return sock

    caller = asyncio.create_task(
        mongodb_connect.closing_on_cancel(connect)(("h", 1), PoolOptions())
    )

    async def attempt_started() -> bool:
        return bool(opened)

    await wait_for(attempt_started, timeout=10, what="the attempt to start", interval=0.01)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert opened[0].fileno() != -1, "the attempt goes on by itself"
    gate.set()

    async def closed() -> bool:
        return opened[0].fileno() == -1

    await wait_for(closed, timeout=10, what="the late socket to be closed", interval=0.01)


async def test_pymongo_itself_still_loses_the_socket_of_a_cancelled_connect(
    unanswered_port: int,
) -> None:
    # The day this fails, PyMongo closes the socket itself: delete mongodb_connect.py.
    wrapped = pool_shared._async_create_connection
    assert hasattr(wrapped, "wrapped"), "mongodb_connect.install() ran"
    pymongo_connect = wrapped.wrapped
    with unclosed_sockets() as unclosed:
        attempt = asyncio.create_task(
            pymongo_connect(("127.0.0.1", unanswered_port), PoolOptions(connect_timeout=5))
        )
        await asyncio.sleep(0.2)
        attempt.cancel()
        await asyncio.wait([attempt])
        del attempt  # with it the frame that held the socket
    assert unclosed, f"PyMongo {pymongo.version} closes it now"


async def test_the_mongodb_pool_installs_the_wrapper_before_it_builds_a_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    unwrapped = getattr(pool_shared._async_create_connection, "wrapped", None)
    assert unwrapped is not None
    monkeypatch.setattr(pool_shared, "_async_create_connection", unwrapped)  # as PyMongo ships
    pool = MongoPool(fake_vault_settings(), cast(SecretStore, None), cast(TrustStore, None))
    data = {"user": "u", "password": "p", "database": "d", "tls_enabled": False}
    handle = await pool._build(VaultSecret(path="mongodb", data=data, version=1))
    try:
        assert hasattr(pool_shared._async_create_connection, "wrapped")
    finally:
        await handle.client.close()
