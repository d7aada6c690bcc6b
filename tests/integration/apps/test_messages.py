"""Messages through the apps: a body no consumer could be given is 422 at publish time; a queue
holding undeliverable messages (put there by another publisher) still answers consume with 200,
every good message delivered once and the others counted in `rejected`."""

from __future__ import annotations

import uuid

import httpx
import pytest

from devstack_client import ClientSettings, DevStackClient
from tests.parity.compare import assert_problem, describe, schema_errors
from tests.parity.implementations import having
from tests.support import UNDELIVERABLE, StackUnderTest, publish_raw

pytestmark = pytest.mark.integration

JSON = {"content-type": "application/json"}
DEEP = "[" * 65 + "]" * 65


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"bad": "\\ud800"}', "/bad"),
        (b'{"ok": 1, "list": ["x", "\\udc00"]}', "/list/1"),
        (b'{"\\ud800": 1}', ""),
        (b'{"huge": 1e400}', "/huge"),
        (f'{{"deep": {DEEP}}}'.encode(), ""),
        (("[" * 100_000 + "]" * 100_000).encode(), ""),
    ],
)
async def test_publish_refuses_what_no_consumer_could_be_given(
    apps: dict[str, httpx.AsyncClient], body: bytes, field: str
) -> None:
    for name, client in apps.items():
        queue = f"devstack.apps.refused.{name}"
        path = f"/examples/messaging/queues/{queue}/messages"
        assert (await client.post(path, json={"first": True})).status_code == 202
        try:
            response = await client.post(path, content=body, headers=JSON)
            problem = assert_problem(response, 422, path)
            assert [e["field"] for e in problem["errors"]] == [field], (name, problem)
            info = await client.get(f"/examples/messaging/queues/{queue}")
            assert info.json()["message_count"] == 1, (name, describe(info))
        finally:
            await client.get(f"{path}?max=100")


async def test_consume_delivers_the_good_messages_and_reports_the_others(
    apps: dict[str, httpx.AsyncClient], stack: StackUnderTest
) -> None:
    settings = ClientSettings.for_stack(stack.state_dir, stack.port_offset, "code_first")
    async with DevStackClient(settings) as publisher:
        for name, client in having(apps, "consume-delivery").items():
            queue = f"devstack.apps.mixed.{uuid.uuid4().hex[:8]}"
            path = f"/examples/messaging/queues/{queue}/messages"
            try:
                assert (await client.post(path, json={"n": 0})).status_code == 202
                for n, body in enumerate(UNDELIVERABLE, start=1):
                    await publish_raw(publisher, queue, body)
                    assert (await client.post(path, json={"n": n})).status_code == 202
                response = await client.get(f"{path}?max=100")
                assert response.status_code == 200, (name, describe(response))
                result = response.json()
                assert not schema_errors(result, "ConsumeResult"), schema_errors(
                    result, "ConsumeResult"
                )
                payloads = [m["payload"] for m in result["messages"]]
                assert payloads == [{"n": n} for n in range(len(UNDELIVERABLE) + 1)], name
                assert result["rejected"] == len(UNDELIVERABLE), (name, result)
                again = await client.get(path)
                assert again.json()["messages"] == [], (name, again.json())
            finally:
                await publisher.queues.delete(queue)
