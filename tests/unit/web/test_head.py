"""HEAD on a GET route answers like GET, without the body; elsewhere it is 404 or 405 as GET
would be, and Allow names HEAD wherever GET is allowed."""

from __future__ import annotations

import httpx
from fastapi import FastAPI


async def test_head_is_get_without_the_body(client: httpx.AsyncClient) -> None:
    get = await client.get("/examples/things/abc?limit=3")
    head = await client.head("/examples/things/abc?limit=3")
    assert (get.status_code, head.status_code) == (200, 200)
    assert head.content == b""
    assert head.headers["content-length"] == get.headers["content-length"] != "0"
    assert head.headers["content-type"] == get.headers["content-type"]
    assert head.headers["x-request-id"]


async def test_head_errors_are_gets_errors_without_the_body(client: httpx.AsyncClient) -> None:
    missing = await client.head("/nowhere")
    assert missing.status_code == 404
    assert missing.content == b""
    assert missing.headers["content-type"] == "application/problem+json"
    invalid = await client.head("/examples/things/abc?limit=x")
    assert invalid.status_code == 422
    assert invalid.content == b""
    post_only = await client.head("/examples/things")
    assert post_only.status_code == 405
    assert post_only.content == b""
    assert post_only.headers["allow"] == "POST"


async def test_head_runs_the_route_once(client: httpx.AsyncClient, app: FastAPI) -> None:
    await client.head("/examples/ok")
    assert app.state.stack.calls == ["ok"]
