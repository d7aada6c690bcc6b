"""RabbitMQ through aio-pika: a connection and a pool of confirming channels."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import aio_pika
import aio_pika.abc
import aio_pika.exceptions
import aio_pika.pool
import aiormq.abc
import aiormq.exceptions

from devstack_client.health import CheckOutcome
from devstack_client.pools.base import ManagedPool, tls_enabled
from devstack_client.vault import VaultSecret

IDLE_RAW_CHANNELS = 4  # raw channels kept open for reuse (opening one per consume costs memory)


@dataclass
class RabbitHandle:
    """The connection, its pool of confirming channels, and idle raw channels."""

    connection: aio_pika.abc.AbstractConnection
    channels: aio_pika.pool.Pool[aio_pika.abc.AbstractChannel]
    idle: list[aiormq.abc.AbstractChannel] = field(default_factory=list)

    async def raw_channel(self) -> aiormq.abc.AbstractChannel:
        """A channel of the connection (aiormq's), outside the pool, without confirms, for
        one holder at a time: a reused one (`give_back`) or a new one."""
        while self.idle:
            channel = self.idle.pop()
            if not channel.is_closed:
                return channel
        transport = self.connection.transport
        if transport is None:
            raise aiormq.exceptions.ChannelInvalidStateError("the connection is closed")
        with _connection_gone():
            return await transport.connection.channel(publisher_confirms=False)

    async def give_back(self, channel: aiormq.abc.AbstractChannel) -> None:
        """A raw channel its holder is done with (nothing left unacknowledged on it)."""
        if channel.is_closed:
            return
        if len(self.idle) < IDLE_RAW_CHANNELS:
            self.idle.append(channel)
            return
        with contextlib.suppress(Exception):
            await channel.close()


class RabbitPool(ManagedPool[RabbitHandle]):
    """A connection and a pool of confirming channels: publisher confirms on, and `mandatory`
    publishes that nobody can receive raise.

    Not aio-pika's robust connection: while it reconnects by itself, its channels fail with
    errors of their own (ChannelInvalidStateError, a RuntimeError) and it retries on its own
    schedule (5 s), seconds after the broker is back. A closed connection is instead replaced
    by the pool at the next operation, like any broken client (see ManagedPool)."""

    name = "rabbitmq"
    errors = (
        aio_pika.exceptions.AMQPException,
        aiormq.exceptions.AMQPError,
        # "No active transport in channel": the connection died under the channel.
        aiormq.exceptions.ChannelInvalidStateError,
        aio_pika.pool.PoolInvalidStateError,
        OSError,
    )

    async def _build(self, secret: VaultSecret) -> RabbitHandle:
        tls = tls_enabled(secret)
        host, port = self._settings.endpoint(self.name, tls=tls)
        connection = await aio_pika.connect(
            host=host,
            port=port,
            login=secret.data["user"],
            password=secret.data["password"],
            virtualhost=secret.data.get("vhost", "/"),
            ssl=tls,
            ssl_context=self._trust.ssl_context() if tls else None,
            timeout=self._settings.connect_timeout,
            client_properties={"connection_name": "devstack_client"},
        )

        async def new_channel() -> aio_pika.abc.AbstractChannel:
            return await connection.channel(publisher_confirms=True, on_return_raises=True)

        channels: aio_pika.pool.Pool[aio_pika.abc.AbstractChannel] = aio_pika.pool.Pool(
            new_channel, max_size=self._settings.channel_pool_size
        )
        return RabbitHandle(connection, channels)

    async def warm_up(self) -> None:
        """Connect and open a channel."""
        async with self.channel("warm-up"):
            pass

    async def _close_client(self, client: RabbitHandle) -> None:
        await client.channels.close()
        await client.connection.close()

    def _stats(self, client: RabbitHandle) -> dict[str, int]:
        return {
            "connections": 0 if client.connection.is_closed else 1,
            "channels_max": self._settings.channel_pool_size,
        }

    def _is_auth_error(self, exc: BaseException) -> bool:
        return isinstance(exc, aiormq.exceptions.ProbableAuthenticationError) or (
            "ACCESS_REFUSED" in str(exc)
        )

    def _is_broken(self, client: RabbitHandle) -> bool:
        # aio-pika's own flag is set by close() only; aiormq's says when the broker went away.
        transport = client.connection.transport
        return bool(
            client.connection.is_closed or transport is None or transport.connection.is_closed
        )

    async def probe(self, within: float) -> CheckOutcome:
        """A round trip in the app's vhost on a pooled channel: what a publish goes through."""
        async with self.channel("health", within=within) as channel:
            underlay = await channel.get_underlay_channel()
            await underlay.exchange_declare("amq.direct", passive=True)
        return CheckOutcome(details={"pool": self.stats()})

    @contextlib.asynccontextmanager
    async def channel(
        self, what: str, *, within: float | None = None
    ) -> AsyncIterator[aio_pika.abc.AbstractChannel]:
        """A channel from the pool; one closed by a broker error is reopened before reuse."""
        async with (
            self.operation(what, within=within) as handle,
            handle.channels.acquire() as channel,
        ):
            if channel.is_closed:
                with _connection_gone():
                    await channel.reopen()
            yield channel


@contextlib.contextmanager
def _connection_gone() -> Iterator[None]:
    """aiormq's plain RuntimeError for a channel of a closed connection, as the error it is."""
    try:
        yield
    except aiormq.exceptions.ChannelInvalidStateError:
        raise
    except RuntimeError as exc:
        raise aiormq.exceptions.ChannelInvalidStateError(str(exc)) from exc
