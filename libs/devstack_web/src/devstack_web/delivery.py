"""Messages acknowledged once the answer that carries them is sent, not before.

`consume_response` takes messages from a queue without acknowledging them, builds the answer
(any failure gives them all back to the queue), and acknowledges them in a background task that
Starlette runs after the response body was handed to the server. If the answer is never sent,
the library's timer gives them back to the queue (devstack_client.PendingConsume).
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.background import BackgroundTask

from devstack_client import ConsumeResult, DevStackClient


async def consume_response(
    stack: DevStackClient,
    queue: str,
    max_messages: int,
    shape: Callable[[ConsumeResult], BaseModel],
) -> JSONResponse:
    """The consume answer (`shape` makes the app's model of it), acknowledged after sending."""
    pending = await stack.queues.take(queue, max_messages=max_messages)
    try:
        response = JSONResponse(
            shape(pending.result).model_dump(mode="json"),
            background=BackgroundTask(pending.ack),
        )
    except BaseException:
        await pending.release()
        raise
    return response
