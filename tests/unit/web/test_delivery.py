"""consume_response: messages are acknowledged after the answer is sent, given back when the
answer cannot be built."""

from __future__ import annotations

from typing import cast

import pytest
from pydantic import BaseModel
from starlette.types import Message, Scope

from devstack_client import ConsumedMessage, ConsumeResult, DevStackClient
from devstack_web import consume_response


class FakePending:
    def __init__(self, result: ConsumeResult) -> None:
        self.result = result
        self.events: list[str] = []

    async def ack(self) -> None:
        self.events.append("ack")

    async def release(self) -> None:
        self.events.append("release")


class FakeQueues:
    def __init__(self, pending: FakePending) -> None:
        self.pending = pending

    async def take(self, queue: str, *, max_messages: int) -> FakePending:
        return self.pending


class FakeStack:
    def __init__(self, pending: FakePending) -> None:
        self.queues = FakeQueues(pending)


RESULT = ConsumeResult(
    queue="q",
    messages=[ConsumedMessage(message_id="m1", payload={"a": 1}, redelivered=False)],
    rejected=0,
)


class Shaped(BaseModel):
    queue: str
    count: int


def shape(result: ConsumeResult) -> Shaped:
    return Shaped(queue=result.queue, count=len(result.messages))


async def test_the_ack_waits_until_the_answer_is_sent() -> None:
    pending = FakePending(RESULT)
    stack = cast(DevStackClient, FakeStack(pending))
    response = await consume_response(stack, "q", 10, shape)
    assert pending.events == []  # built, not sent: nothing acknowledged yet
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)
        assert pending.events == []  # still not acknowledged while sending

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    scope: Scope = {"type": "http", "method": "GET", "path": "/", "headers": []}
    await response(scope, receive, send)
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert b'"count":1' in sent[1]["body"]
    assert pending.events == ["ack"]


async def test_an_answer_that_cannot_be_built_gives_the_messages_back() -> None:
    pending = FakePending(RESULT)
    stack = cast(DevStackClient, FakeStack(pending))

    def broken(_result: ConsumeResult) -> BaseModel:
        raise ValueError("cannot shape")

    with pytest.raises(ValueError, match="cannot shape"):
        await consume_response(stack, "q", 10, broken)
    assert pending.events == ["release"]
