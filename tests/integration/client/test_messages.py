"""Messages: what cannot be delivered is refused at publish time, reported (never silently
dropped, never in the way of good messages) at consume time, and nothing is acknowledged before
the caller settles it."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

import pytest

from devstack_client import DevStackClient, InvalidInput
from tests.support import (
    DEEP,
    UNDELIVERABLE,
    StackUnderTest,
    client_settings,
    publish_raw,
    wait_for,
)


@pytest.fixture
async def queue(client: DevStackClient) -> AsyncIterator[str]:
    name = f"devstack.client.messages.{uuid.uuid4().hex[:8]}"
    try:
        yield name
    finally:
        await client.queues.delete(name)


@pytest.mark.parametrize(
    ("payload", "where"),
    [
        ({"bad": "\ud800"}, "/bad"),
        ({"nested": {"\udfff": 1}}, "/nested"),
        ({"huge": float("inf")}, "/huge"),
        ({"deep": json.loads(DEEP)}, ""),
    ],
)
async def test_publish_refuses_what_no_consumer_could_be_given(
    client: DevStackClient, queue: str, payload: dict[str, object], where: str
) -> None:
    await client.queues.publish(queue, {"first": True})
    with pytest.raises(InvalidInput, match=f"the message{' at ' + where if where else ''} "):
        await client.queues.publish(queue, payload)
    assert (await client.queues.inspect(queue)).message_count == 1


async def test_undeliverable_messages_are_reported_and_the_good_ones_delivered(
    client: DevStackClient, queue: str
) -> None:
    await client.queues.publish(queue, {"n": 0})
    for n, body in enumerate(UNDELIVERABLE, start=1):
        await publish_raw(client, queue, body)
        await client.queues.publish(queue, {"n": n})
    result = await client.queues.consume(queue, max_messages=100)
    assert [m.payload for m in result.messages] == [{"n": n} for n in range(len(UNDELIVERABLE) + 1)]
    assert result.rejected == len(UNDELIVERABLE)
    assert (await client.queues.inspect(queue)).message_count == 0


async def test_taken_messages_stay_unacknowledged_until_settled(
    client: DevStackClient, queue: str
) -> None:
    for n in range(3):
        await client.queues.publish(queue, {"n": n})
    pending = await client.queues.take(queue, max_messages=10)
    assert [m.payload["n"] for m in pending.result.messages] == [0, 1, 2]
    assert (await client.queues.inspect(queue)).message_count == 0  # taken, not ready
    await pending.release()
    again = await client.queues.take(queue, max_messages=10)
    assert [m.payload["n"] for m in again.result.messages] == [0, 1, 2]
    assert all(m.redelivered for m in again.result.messages)
    await again.ack()
    assert (await client.queues.consume(queue)).messages == []


async def test_messages_never_settled_go_back_to_the_queue(
    stack: StackUnderTest, client: DevStackClient, queue: str
) -> None:
    await client.queues.publish(queue, {"kept": True})
    async with DevStackClient(client_settings(stack, operation_timeout=1.0)) as forgetful:
        pending = await forgetful.queues.take(queue, max_messages=10)
        assert len(pending.result.messages) == 1
        # Neither acked nor released (an answer that was never sent): given back in time.

        async def back() -> bool:
            return (await client.queues.inspect(queue)).message_count == 1

        await wait_for(back, 30, "the unsettled message to return to the queue")
        assert pending.settled
    [message] = (await client.queues.consume(queue)).messages
    assert message.payload == {"kept": True}
    assert message.redelivered
