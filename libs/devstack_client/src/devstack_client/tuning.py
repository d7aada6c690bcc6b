"""Memory tuning: measures an application opts into, once, at start-up.

Importing devstack_client, or starting a `DevStackClient`, changes nothing global: without
`tune_process()` every driver keeps its own defaults. (One fix is not opt-in, being one every
user needs: building the MongoDB pool makes PyMongo close the socket of a cancelled connect,
`pools/mongodb_connect.py`.) An application that wants the measures
below calls it once, before it starts its client (both reference apps do, in their `main`):

```python
from devstack_client import tune_process

tune_process()  # before DevStackClient.start(); applies to the whole process
```

The measures, and what each saves (figures in docs/apps.md):

- TLS read buffer: asyncio gives every TLS connection of the process a zero-filled read buffer
  of `SSLProtocol.max_size` (256 KiB), resident for the connection's life; tuned, it is
  `tls_read_buffer` (16 KiB: one TLS record, the payloads here are small). About 240 KiB per
  TLS connection: 7-8 MB for the 30-odd connections an app's pools hold.
- Source cache: PyMongo formats the stack of each client's creation (for its debug output),
  which loads the source of every file on that stack into the process-wide `linecache`; tuned,
  the cache is cleared after each MongoDB client is built (the formatted text is kept). About
  0.7 MB, held for the life of the process otherwise.
- One Redis TLS context: redis-py (8.1) builds an SSL context per connection, each loading a CA
  store; tuned, the Redis pool's connections share the client's one context, set where
  redis-py's cluster keeps its connection class and arguments (it has no option for it;
  tests/integration/client pins it). About 1 MB per Redis connection, up to 20 MB for a pool
  of 21.

Each measure relies on a private detail of another library (asyncio, PyMongo, redis-py), which
is why they are opt-in and in this one module: an upgrade that breaks one breaks it here.
`tuned()` says whether `tune_process()` ran; `reset_process_tuning()` undoes it (for tests).
"""

from __future__ import annotations

import asyncio.sslproto
import linecache
import ssl
from dataclasses import dataclass
from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import RedisSSLContext, SSLConnection

DEFAULT_TLS_READ_BUFFER = 16 * 1024  # one TLS record
_ASYNCIO_TLS_READ_BUFFER = asyncio.sslproto.SSLProtocol.max_size  # asyncio's own (256 KiB)


@dataclass(frozen=True)
class Tuning:
    """What `tune_process()` applied."""

    tls_read_buffer: int


_applied: Tuning | None = None


def tune_process(tls_read_buffer: int = DEFAULT_TLS_READ_BUFFER) -> Tuning:
    """Apply every measure of this module to the whole process (idempotent; a second call with
    another size changes the size). Call it before the client opens connections: a TLS
    connection keeps the buffer it was opened with."""
    global _applied
    if not 16 * 1024 <= tls_read_buffer <= _ASYNCIO_TLS_READ_BUFFER:
        raise ValueError(
            "tls_read_buffer must be from 16 KiB (one TLS record; less only costs reads) "
            f"to asyncio's own {_ASYNCIO_TLS_READ_BUFFER} bytes"
        )
    asyncio.sslproto.SSLProtocol.max_size = tls_read_buffer
    _applied = Tuning(tls_read_buffer=tls_read_buffer)
    return _applied


def tuned() -> Tuning | None:
    """The tuning applied to this process, or None when `tune_process()` was not called."""
    return _applied


def reset_process_tuning() -> None:
    """Put back what `tune_process()` changed (connections opened meanwhile keep theirs)."""
    global _applied
    asyncio.sslproto.SSLProtocol.max_size = _ASYNCIO_TLS_READ_BUFFER
    _applied = None


# -- the hooks the pools call: each a no-op unless the process is tuned ------------------------


def after_mongo_client_built() -> None:
    """Drop the source lines PyMongo's client creation loaded into `linecache`."""
    if _applied is not None:
        linecache.clearcache()


class SharedContextSSLConnection(SSLConnection):
    """A redis-py TLS connection that uses the one SSL context given to it."""

    def __init__(self, *, ssl_shared_context: RedisSSLContext, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ssl_context = ssl_shared_context


def share_one_ssl_context(cluster: RedisCluster, context: ssl.SSLContext) -> bool:
    """Make every connection of `cluster` (the startup nodes' and those it discovers) use
    `context`, when the process is tuned; returns whether it did."""
    if _applied is None:
        return False
    shared = RedisSSLContext(cert_reqs="required", check_hostname=True)
    shared.context = context
    extra = {"ssl_shared_context": shared}
    cluster.nodes_manager.connection_kwargs.update(
        connection_class=SharedContextSSLConnection, **extra
    )
    for node in cluster.nodes_manager.startup_nodes.values():
        node.connection_class = SharedContextSSLConnection
        node.connection_kwargs.update(extra)
    return True
