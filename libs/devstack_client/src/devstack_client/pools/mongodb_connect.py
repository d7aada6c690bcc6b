"""PyMongo's async connect, with the socket of a cancelled attempt closed.

PyMongo 4.20 (`pymongo.pool_shared._async_create_connection`) closes the socket of a failed
connection attempt on `OSError` and `TimeoutError` only. When the task is cancelled while the TCP
connect is pending (an operation's deadline, or `AsyncMongoClient.close()` stopping a server
monitor), the socket is left to the garbage collector, which closes it with a `ResourceWarning`
at a random later moment, in whatever code runs then (PYTHON-5867, still open in 4.20.1).

`install()`, called by the MongoDB pool before it builds a client, wraps that function: the
attempt runs shielded from the caller's cancellation, the caller is cancelled at once as before,
and the attempt, which ends by itself within the connect timeout, has its socket closed when it
succeeds. The wrapper relies only on the function's
contract (address and options in, a connected socket out), not on how PyMongo connects. One case
stays open: an event loop that stops within the connect timeout of such an attempt cancels it too.
Remove this when PyMongo closes the socket itself (the unit test of this module says when).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Coroutine
from typing import Any

from pymongo import pool_shared
from pymongo.pool_options import PoolOptions

Address = tuple[str, int | None]
Connect = Callable[[Address, PoolOptions], Coroutine[Any, Any, socket.socket]]

# Attempts whose caller was cancelled, kept referenced until they end (the loop holds tasks weakly).
_abandoned: set[asyncio.Task[socket.socket]] = set()


def closing_on_cancel(connect: Connect) -> Connect:
    """`connect`, with the socket of an attempt whose caller was cancelled closed when it ends."""

    async def connect_closing_on_cancel(address: Address, options: PoolOptions) -> socket.socket:
        """`connect(address, options)`, shielded; a cancelled caller leaves it to finish."""
        attempt = asyncio.ensure_future(connect(address, options))
        try:
            return await asyncio.shield(attempt)
        except asyncio.CancelledError:
            _abandoned.add(attempt)
            attempt.add_done_callback(_close_abandoned)
            raise

    connect_closing_on_cancel.wrapped = connect  # type: ignore[attr-defined]
    return connect_closing_on_cancel


def _close_abandoned(attempt: asyncio.Task[socket.socket]) -> None:
    _abandoned.discard(attempt)
    if not attempt.cancelled() and attempt.exception() is None:
        attempt.result().close()


def install() -> None:
    """Wrap PyMongo's async connect (once)."""
    current = pool_shared._async_create_connection
    if not hasattr(current, "wrapped"):
        pool_shared._async_create_connection = closing_on_cancel(current)  # type: ignore[assignment]
