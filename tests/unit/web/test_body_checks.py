"""A body is checked in the contract's order: size 413, media type 415, syntax 400, schema 422."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx

from tests.support import check_problem

URL = "/examples/things"
JSON = {"content-type": "application/json"}


async def test_a_good_body_passes(client: httpx.AsyncClient) -> None:
    response = await client.post(URL, json={"name": "ab"})
    assert response.status_code == 201
    assert response.json() == {"name": "ab", "count": 0}
    charset = {"content-type": "Application/JSON; charset=utf-8"}
    response = await client.post(URL, content=b'{"name": "ab"}', headers=charset)
    assert response.status_code == 201


async def test_too_large_wins_over_everything(client: httpx.AsyncClient) -> None:
    big = b"x" * (1_048_576 + 1)
    body = check_problem(
        await client.post(URL, content=big, headers={"content-type": "text/plain"}), 413
    )
    assert body["detail"] == "The request body is larger than 1048576 bytes."
    check_problem(await client.post(URL, content=big), 413)  # no content type at all


async def test_too_large_without_content_length(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b" " * 65_536

    response = await client.post(URL, content=chunks(), headers=JSON)
    assert "content-length" not in response.request.headers
    check_problem(response, 413)


async def test_exactly_the_limit_is_not_too_large(client: httpx.AsyncClient) -> None:
    payload = b'{"name": "ab"}'
    body = payload + b" " * (1_048_576 - len(payload))
    assert (await client.post(URL, content=body, headers=JSON)).status_code == 201


async def test_media_type(client: httpx.AsyncClient) -> None:
    body = check_problem(await client.post(URL, content=b'{"name": "ab"}'), 415)
    assert body["detail"] == "The request body must be application/json."
    for media in (
        "text/plain",
        "application/jsonx",
        "application/problem+json",
        "multipart/form-data",
    ):
        check_problem(await client.post(URL, content=b"{}", headers={"content-type": media}), 415)
    # wrong media type beats bad syntax
    check_problem(
        await client.post(URL, content=b"{oops", headers={"content-type": "text/plain"}), 415
    )


async def test_syntax(client: httpx.AsyncClient) -> None:
    for bad in (b"", b"   ", b"{oops", b'{"name": "ab"', b"\xff\xfe", b'{"n": NaN}'):
        check_problem(await client.post(URL, content=bad, headers=JSON), 400)
    # bad syntax beats a schema error
    check_problem(await client.post(URL, content=b'{"nam": ', headers=JSON), 400)


async def test_schema_errors_list_every_problem(client: httpx.AsyncClient) -> None:
    response = await client.post(URL, json={"name": "", "count": "x", "extra": 1})
    body = check_problem(response, 422)
    errors = body["errors"]
    assert isinstance(errors, list)
    fields = sorted((e["location"], e["field"]) for e in errors)
    assert fields == [("body", "/count"), ("body", "/extra"), ("body", "/name")]
    whole = check_problem(await client.post(URL, json=[1, 2]), 422)
    assert whole["errors"][0]["field"] == ""


async def test_checks_only_apply_to_routes_with_a_body(client: httpx.AsyncClient) -> None:
    # an unknown route stays 404 and a wrong method 405, whatever the body
    check_problem(await client.post("/nowhere", content=b"x" * 2_000_000), 404)
    check_problem(await client.post("/examples/ok", content=b"{oops"), 405)
