"""The library's exceptions, validation and routing errors, as the contract's problem documents."""

from __future__ import annotations

import uuid

import httpx
import pytest

from devstack_web import reason
from tests.support import check_problem


def test_reason_phrases_are_rfc_9110() -> None:
    assert reason(413) == "Content Too Large"
    assert reason(422) == "Unprocessable Content"
    assert reason(503) == "Service Unavailable"
    assert reason(504) == "Gateway Timeout"
    assert reason(429) == "Too Many Requests"


async def test_not_found(client: httpx.AsyncClient) -> None:
    body = check_problem(await client.get("/examples/raise/missing"), 404)
    assert body["detail"] == "No postgres item has this id."
    assert "dependency" not in body
    assert "errors" not in body


async def test_dependency_unavailable_is_503_with_retry_after_and_no_raw_text(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/examples/raise/down")
    body = check_problem(response, 503)
    assert response.headers["retry-after"] == "1"  # whole seconds, at least 1
    assert body["dependency"] == "postgres"
    assert body["detail"] == "postgres is unavailable."
    assert "hunter2" not in response.text
    assert "password" not in response.text


async def test_dependency_timeout_is_504(client: httpx.AsyncClient) -> None:
    response = await client.get("/examples/raise/slow")
    body = check_problem(response, 504)
    assert body["dependency"] == "redis"
    assert "retry-after" not in response.headers


async def test_invalid_input_is_422(client: httpx.AsyncClient) -> None:
    check_problem(await client.get("/examples/raise/invalid"), 422)


@pytest.mark.parametrize("what", ["config", "bug"])
async def test_anything_else_is_a_generic_problem(client: httpx.AsyncClient, what: str) -> None:
    response = await client.get(f"/examples/raise/{what}")
    body = check_problem(response, 500)
    assert body["detail"] == "The server could not complete the request."
    assert "boom" not in response.text
    assert "secret" not in response.text


async def test_unknown_route_and_method(client: httpx.AsyncClient) -> None:
    check_problem(await client.get("/nowhere"), 404)
    response = await client.delete("/examples/ok")
    check_problem(response, 405)
    assert "GET" in response.headers["allow"]


async def test_405_allows_every_method_of_the_path(client: httpx.AsyncClient) -> None:
    """One route per method: the Allow header still names them all."""
    response = await client.patch("/examples/things/x")
    check_problem(response, 405)
    assert response.headers["allow"] == "DELETE, GET, HEAD"  # HEAD wherever GET is


async def test_instance_is_a_valid_uri_reference(client: httpx.AsyncClient) -> None:
    body = check_problem(await client.get("/nowhere/\u00e9 x"), 404)
    assert body["instance"] == "/nowhere/%C3%A9%20x"


async def test_parameter_errors_are_422_with_errors(client: httpx.AsyncClient) -> None:
    body = check_problem(await client.get("/examples/things/x", params={"limit": "many"}), 422)
    assert body["errors"] == [
        {"location": "query", "field": "limit", "detail": body["errors"][0]["detail"]}
    ]


async def test_request_id_is_honoured_when_sane(client: httpx.AsyncClient) -> None:
    sane = "abc-123_x:y+z/=."
    response = await client.get("/examples/raise/missing", headers={"X-Request-ID": sane})
    assert response.headers["x-request-id"] == sane
    assert response.json()["request_id"] == sane


@pytest.mark.parametrize("insane", ["", "a b", "x" * 129, "é", "<script>"])
async def test_request_id_is_replaced_when_odd(client: httpx.AsyncClient, insane: str) -> None:
    response = await client.get("/examples/ok", headers={b"X-Request-ID": insane.encode("utf-8")})
    assert response.status_code == 200
    generated = response.headers["x-request-id"]
    assert str(uuid.UUID(generated)) == generated
    assert uuid.UUID(generated).version == 4
