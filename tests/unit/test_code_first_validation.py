"""code_first's request checks, without servers: JSON integers only, one error per field."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from code_first.app import create_app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app()
    app.state.stack = object()  # validation answers before any handler uses the client
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


@pytest.mark.parametrize("quantity", ["3", True, False, 1.5, None, "x"])
async def test_a_quantity_must_be_a_json_integer(client: httpx.AsyncClient, quantity: Any) -> None:
    response = await client.post("/examples/mysql/items", json={"name": "n", "quantity": quantity})
    assert response.status_code == 422
    assert [(e["location"], e["field"]) for e in response.json()["errors"]] == [
        ("body", "/quantity")
    ]


@pytest.mark.parametrize("ttl", [0, 86401, "60", None])
async def test_a_bad_ttl_is_one_error_on_its_pointer(client: httpx.AsyncClient, ttl: Any) -> None:
    response = await client.put("/examples/cache/p", json={"value": "v", "ttl_seconds": ttl})
    assert response.status_code == 422
    assert [(e["location"], e["field"]) for e in response.json()["errors"]] == [
        ("body", "/ttl_seconds")
    ]


async def test_a_missing_member_is_named(client: httpx.AsyncClient) -> None:
    response = await client.post("/examples/postgres/items", json={"quantity": 1})
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["/name"]
