"""Request bodies past the syntax: nesting deeper than 64 levels, lone surrogates and numbers out
of a double's range are 422 problems naming the member, before the schema (never a 500, never a
400 for a body that is well-formed JSON)."""

from __future__ import annotations

import httpx
import pytest

from tests.support import check_problem

URL = "/examples/things"
JSON = {"content-type": "application/json"}


def nested(levels: int) -> str:
    return "[" * levels + "]" * levels


@pytest.mark.parametrize(
    ("body", "field", "detail"),
    [
        (b'{"name": "\\ud800"}', "/name", "lone surrogate"),
        (b'{"name": "ab", "count": 1e400}', "/count", "out of range"),
        (b'{"name": "ab", "count": -1e400}', "/count", "out of range"),
        (b'{"\\udfff": 1}', "", "member name with a lone surrogate"),
        (f'{{"name": {nested(65)}}}'.encode(), "", "deeper than 64 levels"),
        (nested(100_000).encode(), "", "deeper than 64 levels"),  # past Python's parser
    ],
)
async def test_values_json_cannot_carry_further_are_422(
    client: httpx.AsyncClient, body: bytes, field: str, detail: str
) -> None:
    problem = check_problem(await client.post(URL, content=body, headers=JSON), 422)
    assert problem["detail"] == "The request is invalid; see errors."
    [error] = problem["errors"]
    assert error["location"] == "body", error
    assert error["field"] == field, error
    assert detail in error["detail"], error


async def test_nesting_up_to_64_levels_reaches_the_schema(client: httpx.AsyncClient) -> None:
    problem = check_problem(
        await client.post(URL, content=f'{{"name": {nested(63)}}}'.encode(), headers=JSON), 422
    )
    assert problem["errors"][0]["field"] == "/name"
    assert "deeper" not in problem["errors"][0]["detail"]


async def test_a_surrogate_pair_is_a_character_like_any_other(client: httpx.AsyncClient) -> None:
    response = await client.post(URL, content=b'{"name": "\\ud83d\\ude00"}', headers=JSON)
    assert response.status_code == 201
    assert response.json()["name"] == "\U0001f600"


async def test_syntax_is_still_400(client: httpx.AsyncClient) -> None:
    check_problem(await client.post(URL, content=b'{"name": "\\ud800"', headers=JSON), 400)
    check_problem(await client.post(URL, content=b'{"name": NaN}', headers=JSON), 400)
