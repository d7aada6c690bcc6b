"""Publish, consume and inspect RabbitMQ queues (JSON objects, confirmed publishes)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import uuid
from typing import Any

import aio_pika
import aio_pika.exceptions
import aiormq.abc
import aiormq.exceptions
import structlog

from devstack_client.errors import (
    InvalidInput,
    MessageUnroutable,
    NotFound,
)
from devstack_client.jsonrules import MAX_DEPTH, check_json, first_violation, nesting_depth
from devstack_client.models import (
    ConsumedMessage,
    ConsumeResult,
    PublishResult,
    QueueInfo,
)
from devstack_client.pools import (
    RabbitHandle,
    RabbitPool,
)

log = structlog.get_logger("devstack_client.usecases")


_QUEUE_NAME = re.compile(r"[A-Za-z0-9._\-]{1,200}")
MAX_CONSUME = 100
DEFAULT_CONSUME = 10


def _decode(body: bytes) -> dict[str, Any] | None:
    """A message body as the JSON object it must be, or None when it cannot be delivered."""
    if nesting_depth(body) > MAX_DEPTH:
        return None
    try:
        payload = json.loads(body.decode("utf-8"), parse_constant=_not_json)
    except (ValueError, RecursionError):
        return None
    if not isinstance(payload, dict) or first_violation(payload) is not None:
        return None
    return payload


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


async def _close_channel(channel: aiormq.abc.AbstractChannel) -> None:
    with contextlib.suppress(Exception):
        async with asyncio.timeout(2):
            await channel.close()


class PendingConsume:
    """Messages taken from a queue and not acknowledged yet (`QueueService.take`).

    `ack()` acknowledges them all, `release()` puts them back; either closes their channel, and
    so does the timer after `hold` seconds if neither came (the broker then requeues them)."""

    def __init__(
        self,
        result: ConsumeResult,
        channel: aiormq.abc.AbstractChannel | None,
        last_tag: int | None,
        pool: RabbitPool,
        handle: RabbitHandle | None,
        *,
        hold: float,
    ) -> None:
        self.result = result
        self._channel = channel
        self._last_tag = last_tag
        self._pool = pool
        self._handle = handle
        self._settled = False
        self._timer = asyncio.get_running_loop().call_later(hold, self._expire) if channel else None
        self._expiry: asyncio.Task[None] | None = None

    @property
    def settled(self) -> bool:
        """Whether the messages were acknowledged or given back."""
        return self._settled

    async def ack(self) -> None:
        """Acknowledge every message of the result (one `basic.ack`, multiple)."""
        await self._settle(ack=True)

    async def release(self) -> None:
        """Give the messages back to the queue (redelivered later, marked `redelivered`)."""
        await self._settle(ack=False)

    async def _settle(self, *, ack: bool) -> None:
        if self._settled:
            return
        self._settled = True
        if self._timer is not None:
            self._timer.cancel()
        channel, self._channel = self._channel, None
        if channel is None:
            return
        settled = False
        try:
            if self._last_tag is not None:
                async with self._pool.operation("acknowledge") as _:
                    if ack:
                        await channel.basic_ack(self._last_tag, multiple=True)
                    else:
                        await channel.basic_nack(self._last_tag, multiple=True, requeue=True)
            settled = True
        finally:
            if settled and self._handle is not None:
                await self._handle.give_back(channel)  # reused by the next consume
            else:
                await _close_channel(channel)  # the broker requeues what is unacknowledged

    def _expire(self) -> None:
        if not self._settled:
            log.warning("messages not settled in time: given back", queue=self.result.queue)
            self._expiry = asyncio.ensure_future(self.release())


def _check_queue(name: str) -> None:
    if not _QUEUE_NAME.fullmatch(name) or name in (".", "..") or name.startswith("amq."):
        raise InvalidInput("a queue name is 1-200 of A-Z a-z 0-9 . _ - (not amq.*, . or ..)")


class QueueService:
    """Publish JSON objects (confirmed; unroutable raises), consume, inspect a queue."""

    def __init__(self, pool: RabbitPool) -> None:
        self._pool = pool

    async def publish(
        self, queue: str, payload: dict[str, Any], *, declare: bool = True
    ) -> PublishResult:
        """Declare `queue` (durable) unless `declare` is False, publish `payload` persistent,
        and return once the broker confirmed it. A message no queue receives raises
        MessageUnroutable."""
        _check_queue(queue)
        if not isinstance(payload, dict):
            raise InvalidInput("a message is a JSON object")
        # What a consumer could not decode or answer with is refused now, not lost later.
        check_json(payload, "the message")
        message_id = str(uuid.uuid4())
        message = aio_pika.Message(
            json.dumps(payload, separators=(",", ":")).encode(),
            message_id=message_id,
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        async with self._pool.channel("publish") as channel:
            if declare:
                # Declared on the underlying channel: aio-pika's robust channel keeps every queue
                # object declared through it (to redeclare after a reconnect), one more per
                # publish, never freed. The queue is durable: the broker keeps it anyway.
                underlay = await channel.get_underlay_channel()
                await underlay.queue_declare(queue, durable=True)
            try:
                await channel.default_exchange.publish(message, routing_key=queue, mandatory=True)
            except aio_pika.exceptions.DeliveryError as exc:
                raise MessageUnroutable(f"no queue {queue!r} received the message") from exc
        return PublishResult(queue=queue, message_id=message_id)

    async def consume(self, queue: str, *, max_messages: int = DEFAULT_CONSUME) -> ConsumeResult:
        """Up to `max_messages` messages waiting now, acknowledged once all were taken (see
        `take`, which leaves the acknowledgement to the caller)."""
        pending = await self.take(queue, max_messages=max_messages)
        await pending.ack()
        return pending.result

    async def take(self, queue: str, *, max_messages: int = DEFAULT_CONSUME) -> PendingConsume:
        """Up to `max_messages` messages waiting now (never waits for more), not acknowledged
        yet: the caller acks them once it has delivered them (an API: once its answer is sent),
        or releases them back to the queue. Unsettled after `operation_timeout`, they go back
        to the queue by themselves (their channel is closed), redelivered later.

        A message a client could not be given (not UTF-8 JSON, not an object, or a value the
        JSON rules refuse: devstack_client.jsonrules) is rejected without requeue at once, and
        counted in `rejected` and logged: reported, never silently dropped, and never in the
        way of the good messages after it."""
        _check_queue(queue)
        if not 1 <= max_messages <= MAX_CONSUME:
            raise InvalidInput(f"max must be between 1 and {MAX_CONSUME}")
        taken: list[ConsumedMessage] = []
        rejected = 0
        last_tag: int | None = None
        channel: aiormq.abc.AbstractChannel | None = None
        handle: RabbitHandle | None = None
        try:
            async with self._pool.operation("consume") as handle:
                # A channel held alone: the messages stay unacknowledged on it until settled,
                # and closing it gives back whatever was not acknowledged.
                channel = await handle.raw_channel()
                try:
                    await channel.queue_declare(queue, passive=True)
                except aiormq.exceptions.ChannelNotFoundEntity as exc:
                    raise NotFound(f"queue {queue!r} does not exist") from exc
                for _ in range(max_messages):
                    incoming = await channel.basic_get(queue, no_ack=False)
                    tag = getattr(incoming.delivery, "delivery_tag", None)
                    if tag is None:  # Basic.GetEmpty
                        break
                    payload = _decode(incoming.body)
                    if payload is None:
                        await channel.basic_reject(tag, requeue=False)
                        rejected += 1
                        log.warning(
                            "rejected a message that cannot be delivered as JSON",
                            queue=queue,
                            message_id=incoming.header.properties.message_id,
                        )
                        continue
                    last_tag = tag
                    taken.append(
                        ConsumedMessage(
                            message_id=incoming.header.properties.message_id,
                            payload=payload,
                            redelivered=bool(getattr(incoming.delivery, "redelivered", False)),
                        )
                    )
        except BaseException:
            if channel is not None:
                await _close_channel(channel)  # nothing was acknowledged: all go back
            raise
        result = ConsumeResult(queue=queue, messages=taken, rejected=rejected)
        return PendingConsume(
            result, channel, last_tag, self._pool, handle, hold=self._pool.operation_timeout
        )

    async def inspect(self, queue: str) -> QueueInfo:
        """The message and consumer counts of `queue`; NotFound when it does not exist."""
        _check_queue(queue)
        async with self._pool.channel("inspect queue") as channel:
            # aio-pika's passive declare_queue() does not expose fresh counts: ask the broker.
            underlay = await channel.get_underlay_channel()
            try:
                result = await underlay.queue_declare(queue, passive=True)
            except aiormq.exceptions.ChannelNotFoundEntity as exc:
                raise NotFound(f"queue {queue!r} does not exist") from exc
        return QueueInfo(
            queue=queue,
            message_count=int(result.message_count or 0),
            consumer_count=int(result.consumer_count or 0),
        )

    async def delete(self, queue: str) -> None:
        """Delete `queue` (with its messages)."""
        _check_queue(queue)
        async with self._pool.channel("delete queue") as channel:
            await channel.queue_delete(queue)
