"""HTTP at the edges, against the running apps: HEAD on every GET operation of the contract is
GET without the body; a request the HTTP parser refuses is a 400 problem document."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest

from tests.parity.compare import schema_errors
from tests.parity.implementations import having, load_spec
from tests.support import StackUnderTest

pytestmark = pytest.mark.integration

VALUES = {
    "service": "postgres",
    "key": "user",
    "item_id": "00000000-0000-4000-8000-000000000000",
    "queue": "devstack.head",
    "node": "127.0.0.1:1",
}
GET_PATHS = [
    re.sub(r"\{(\w+)\}", lambda m: VALUES[m.group(1)], path)
    for path, item in load_spec()["paths"].items()
    if "get" in item
]


@pytest.mark.parametrize("path", GET_PATHS)
async def test_head_is_get_without_the_body(apps: dict[str, httpx.AsyncClient], path: str) -> None:
    for name, client in apps.items():
        get = await client.get(path)
        head = await client.head(path)
        assert head.status_code == get.status_code, (name, path, head.status_code)
        assert head.content == b"", (name, path)
        assert head.headers["content-type"] == get.headers["content-type"], (name, path)
        if get.status_code != 200:
            # A problem's length varies only with its request id (always a UUID here).
            assert head.headers["content-length"] == get.headers["content-length"], (name, path)
        assert head.headers["x-request-id"], (name, path)


async def raw_exchange(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 30)  # the server closes the connection
    finally:
        writer.close()


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GARBAGE\r\n\r\n",
        b"GET /\xff HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",
    ],
)
async def test_a_request_the_parser_refuses_is_a_problem(
    stack: StackUnderTest, apps: dict[str, httpx.AsyncClient], request_bytes: bytes
) -> None:
    for name in having(apps, "parser-problem"):
        answer = await raw_exchange(stack.port(name, "http"), request_bytes)
        head, _, body = answer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        assert lines[0].startswith("HTTP/1.1 400"), (name, answer[:300])
        headers = dict(line.split(": ", 1) for line in lines[1:])
        headers = {k.lower(): v for k, v in headers.items()}
        assert headers["content-type"] == "application/problem+json", (name, headers)
        problem = httpx.Response(400, content=body).json()
        assert not schema_errors(problem, "Problem"), (name, problem)
        assert problem["status"] == 400
        assert problem["request_id"] == headers["x-request-id"]
