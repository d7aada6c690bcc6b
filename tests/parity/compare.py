"""Comparing what implementations answer: normalisation of volatile fields, contract checks."""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

import httpx
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tests.parity.implementations import load_spec

# Fields whose values legitimately differ between two answers to the same request.
ALWAYS_VOLATILE = frozenset({"request_id", "latency_ms", "server_time", "implementation"})
ITEM_VOLATILE = frozenset({"id", "created_at"})
NODE_INFO_VOLATILE = frozenset({"uptime_seconds", "connected_clients", "used_memory_bytes", "keys"})

REASON = {
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


@cache
def _registry() -> Registry:
    resource = Resource.from_contents(load_spec(), default_specification=DRAFT202012)
    registry: Registry = Registry().with_resource("urn:devstack", resource)
    return registry


def schema_errors(instance: Any, schema_name: str) -> list[str]:
    """Every way `instance` breaks `#/components/schemas/<schema_name>` of the contract."""
    validator = Draft202012Validator(
        {"$ref": f"urn:devstack#/components/schemas/{schema_name}"},
        registry=_registry(),
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(instance)]


def normalise(value: Any, volatile: frozenset[str], replace: dict[str, str]) -> Any:
    """`value` with volatile members set to a marker and known volatile strings replaced."""
    if isinstance(value, dict):
        return {
            k: (f"<{k}>" if k in volatile else normalise(v, volatile, replace))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [normalise(v, volatile, replace) for v in value]
    if isinstance(value, str):
        for old, new in replace.items():
            value = value.replace(old, new)
    return value


def media_type(response: httpx.Response) -> str:
    content_type: str = response.headers.get("content-type", "")
    return content_type.split(";")[0].strip().lower()


def body_of(response: httpx.Response) -> Any:
    if media_type(response) in {"application/json", "application/problem+json"}:
        return response.json()
    return response.text


def describe(response: httpx.Response) -> str:
    request = response.request
    return (
        f"{request.method} {request.url} -> {response.status_code} "
        f"{response.headers.get('content-type')}: {response.text[:600]}"
    )


def problem_shape(body: Any) -> Any:
    """A problem document with its human text set aside: `detail` is written by each
    implementation ("for a human", says the contract), so only its presence is compared; the
    `errors` are compared as a set of (location, field), each with a detail."""
    if not isinstance(body, dict) or "type" not in body or "status" not in body:
        return body
    shaped = dict(body)
    if isinstance(shaped.get("detail"), str) and shaped["detail"]:
        shaped["detail"] = "<detail>"
    if isinstance(shaped.get("errors"), list):
        shaped["errors"] = sorted(
            {
                (e.get("location"), e.get("field"), bool(e.get("detail")))
                for e in shaped["errors"]
                if isinstance(e, dict)
            },
            key=repr,
        )
    return shaped


def comparable(
    response: httpx.Response,
    volatile: frozenset[str] = ALWAYS_VOLATILE,
    replace: dict[str, str] | None = None,
) -> dict[str, Any]:
    """What must be identical between implementations: status, media type, body, key headers."""
    replace = replace or {}
    headers = {
        name: normalise(response.headers[name], volatile, replace)
        for name in ("location", "retry-after", "allow")
        if name in response.headers
    }
    return {
        "status": response.status_code,
        "media_type": media_type(response),
        "body": normalise(problem_shape(body_of(response)), volatile, replace),
        "headers": headers,
    }


def assert_same(
    responses: dict[str, httpx.Response],
    volatile: frozenset[str] = ALWAYS_VOLATILE,
    replace: dict[str, dict[str, str]] | None = None,
) -> None:
    """Every implementation answered like the first one (after normalisation), in full."""
    replace = replace or {}
    names = list(responses)
    reference = comparable(responses[names[0]], volatile, replace.get(names[0]))
    for name in names[1:]:
        other = comparable(responses[name], volatile, replace.get(name))
        assert other == reference, (
            f"{name} differs from {names[0]}:\n"
            f"  {names[0]}: {json.dumps(reference, sort_keys=True)}\n"
            f"  {name}: {json.dumps(other, sort_keys=True)}"
        )


def assert_request_id(response: httpx.Response, sent: str | None = None) -> str:
    request_id: str | None = response.headers.get("x-request-id")
    assert request_id, f"no X-Request-ID: {describe(response)}"
    if sent is not None:
        assert request_id == sent, f"sane X-Request-ID {sent!r} not echoed: {request_id!r}"
    return request_id


def assert_problem(
    response: httpx.Response, status: int, instance: str | None = None
) -> dict[str, Any]:
    """`response` is the contract's problem document for `status`."""
    assert response.status_code == status, describe(response)
    assert media_type(response) == "application/problem+json", describe(response)
    problem: dict[str, Any] = response.json()
    assert not schema_errors(problem, "Problem"), (schema_errors(problem, "Problem"), problem)
    assert problem["type"] == "about:blank"
    assert problem["title"] == REASON[status], problem
    assert problem["status"] == status, problem
    assert problem["request_id"] == assert_request_id(response), problem
    if instance is not None:
        assert problem["instance"] == instance, problem
    assert ("errors" in problem) == (status == 422), problem
    assert ("dependency" in problem) == (status in {503, 504}), problem
    if status in {429, 503}:
        assert response.headers.get("retry-after", "").isdigit(), describe(response)
        assert int(response.headers["retry-after"]) >= 1
    return problem
