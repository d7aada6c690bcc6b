"""JSON corner cases against every implementation, from the contract: what JSON's grammar allows
and nothing after it can carry (docs/api.md, "Values past the syntax").

For every operation with a JSON body, each string member gets a lone surrogate (`"\\ud800"`),
each number member `1e400` (no double holds it), and the body objects and arrays nested 65 and
100,000 levels deep: each is a 422 problem whose one error points at the member (the whole body
for nesting), and nothing is stored. Every string path and query parameter gets the percent-
encoded bytes of a lone surrogate (not UTF-8): 404 or 422, never 400 or 500.

The cases come from openapi/devstack.yaml, so a new operation or member is covered as it lands.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.parity.compare import assert_problem, describe
from tests.parity.implementations import IMPLEMENTATIONS, base_urls, load_spec
from tests.support import StackUnderTest

pytestmark = pytest.mark.integration

SPEC = load_spec()
JSON = {"content-type": "application/json"}
LONE = "\\ud800"  # as JSON text: the escape of a lone high surrogate
NOT_UTF8 = "%ED%A0%80"  # U+D800 encoded as if it were a character (CESU-8): not UTF-8
# Path parameters that name nothing that exists, so that a request stores nothing.
PATH_VALUES = {
    "key": "devstack-contract-json",
    "queue": "devstack.contract.json",
    "service": "postgres",
    "item_id": "00000000-0000-4000-8000-000000000000",
    "node": "127.0.0.1:1",
}


def resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        kind, name = node["$ref"].split("/")[-2:]
        node = SPEC["components"][kind][name]
    return node


def fill(path: str, values: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)


METHODS = ("get", "put", "post", "delete", "patch")


def body_operations() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in SPEC["paths"].items():
        for method, op in item.items():
            if method not in METHODS:
                continue
            content = resolve(op.get("requestBody", {})).get("content", {}).get("application/json")
            if content is not None:
                yield method.upper(), path, content


def base_body(content: dict[str, Any]) -> dict[str, Any]:
    schema = resolve(content["schema"])
    example = content.get("example", schema.get("example"))
    if example is not None:
        return dict(example)
    body: dict[str, Any] = {}
    for name in schema.get("required", []):
        member = resolve(schema["properties"][name])
        body[name] = "contract" if member.get("type") == "string" else member.get("minimum", 0)
    return body


def text_with(body: dict[str, Any], member: str, raw_value: str) -> bytes:
    """The body as JSON text, with `member` set to `raw_value` (JSON text, kept as written)."""
    marker = "\u0001replace-me\u0001"
    text = json.dumps({**body, member: marker})
    return text.replace(json.dumps(marker), raw_value).encode()


def body_cases() -> Iterator[Any]:
    deep = "[" * 65 + "]" * 65
    deeper = "[" * 100_000 + "]" * 100_000
    for method, path, content in body_operations():
        schema = resolve(content["schema"])
        body = base_body(content)
        properties = {n: resolve(s) for n, s in schema.get("properties", {}).items()}
        if schema.get("additionalProperties") not in (None, False):
            properties.setdefault("text", {"type": "string"})
            properties.setdefault("number", {"type": "number"})
        for name, member in properties.items():
            kind = member.get("type")
            kinds = set(kind) if isinstance(kind, list) else {kind}
            where = "/" + name
            if "string" in kinds:
                yield pytest.param(
                    method, path, text_with(body, name, f'"a{LONE}b"'), where,
                    id=f"{method} {path} {name}=lone surrogate",
                )  # fmt: skip
            if kinds & {"integer", "number"}:
                for value in ("1e400", "-1e400"):
                    yield pytest.param(
                        method, path, text_with(body, name, value), where,
                        id=f"{method} {path} {name}={value}",
                    )  # fmt: skip
        first = next(iter(properties))
        for levels, text in (("65", deep), ("100000", deeper)):
            yield pytest.param(
                method, path, text_with(body, first, text), "",
                id=f"{method} {path} {first} nested {levels} deep",
            )  # fmt: skip
        yield pytest.param(
            method, path, json.dumps(body).replace("{", '{"' + LONE + '": 1, ', 1).encode(), "",
            id=f"{method} {path} member name with a lone surrogate",
        )  # fmt: skip


@pytest.fixture(scope="module")
def urls(stack: StackUnderTest) -> dict[str, str]:
    return base_urls(stack)


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        yield client


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize(("method", "path", "body", "field"), list(body_cases()))
def test_a_body_json_cannot_carry_further_is_422(
    implementation: str,
    method: str,
    path: str,
    body: bytes,
    field: str,
    urls: dict[str, str],
    http: httpx.Client,
) -> None:
    values = {k: f"{v}.{implementation}" if k == "queue" else v for k, v in PATH_VALUES.items()}
    values["key"] = f"{PATH_VALUES['key']}-{implementation}"
    target = fill(path, values)
    response = http.request(method, urls[implementation] + target, content=body, headers=JSON)
    problem = assert_problem(response, 422, target)
    assert [(e["location"], e["field"]) for e in problem["errors"]] == [("body", field)], problem
    # Nothing was stored: the key was never written, the queue never declared.
    if "{key}" in path:
        assert http.get(urls[implementation] + target).status_code == 404
    if "{queue}" in path:
        queue = fill("/examples/messaging/queues/{queue}", values)
        assert http.get(urls[implementation] + queue).status_code == 404


def parameter_cases() -> Iterator[Any]:
    for path, item in SPEC["paths"].items():
        for method, op in item.items():
            if method not in METHODS:
                continue
            for parameter in map(resolve, [*item.get("parameters", []), *op.get("parameters", [])]):
                if parameter["in"] not in ("path", "query"):
                    continue
                name = parameter["name"]
                values = dict(PATH_VALUES)
                query = ""
                if parameter["in"] == "path":
                    values[name] = f"a{NOT_UTF8}b"
                else:
                    query = f"?{name}={NOT_UTF8}"
                yield pytest.param(
                    method.upper(), fill(path, values) + query,
                    id=f"{method.upper()} {path} {name}=not UTF-8",
                )  # fmt: skip


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize(("method", "target"), list(parameter_cases()))
def test_a_parameter_that_is_not_utf8_is_404_or_422(
    implementation: str, method: str, target: str, urls: dict[str, str], http: httpx.Client
) -> None:
    body = b'{"value": "x"}' if method in ("PUT", "POST") else None
    response = http.request(
        method, urls[implementation] + target, content=body, headers=JSON if body else None
    )
    assert response.status_code in (404, 422), describe(response)
    assert_problem(response, response.status_code)
