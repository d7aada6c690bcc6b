"""Problem documents (RFC 9457), exactly as the contract's `Problem` schema: built here only.

Neither app builds an error body itself: routes raise the library's exceptions, and the handlers
and middleware of this package answer with `problem_response(...)`.
"""

from __future__ import annotations

import http
from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi.encoders import jsonable_encoder
from fastapi.openapi.models import Schema
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema, models_json_schema

from devstack_client import current_request_id
from devstack_client.asgi import REQUEST_ID_PATTERN

PROBLEM_MEDIA_TYPE = "application/problem+json"

# RFC 9110's reason phrases, where Python's `http.HTTPStatus` still has the older RFC 7231 ones.
_REASONS = {413: "Content Too Large", 422: "Unprocessable Content"}

DependencyName = Literal["vault", "postgres", "mysql", "mongodb", "redis", "rabbitmq"]
DEPENDENCY_NAMES: frozenset[str] = frozenset(DependencyName.__args__)  # type: ignore[attr-defined]
Location = Literal["path", "query", "header", "body"]


def reason(status: int) -> str:
    """The RFC 9110 reason phrase of a status code (a problem document's `title`)."""
    if status in _REASONS:
        return _REASONS[status]
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class FieldError(BaseModel):
    # No docstring: pydantic would make it the schema's description, which the contract's
    # FieldError has none of (and -OO would drop it). interrogate skips this class by name.
    model_config = ConfigDict(extra="forbid")

    location: Location
    field: str = Field(
        description="The parameter's name, or for the body a JSON Pointer to the member."
    )
    detail: str = Field(min_length=1)


class Problem(BaseModel):
    """An RFC 9457 problem document (the schema's description is `json_schema_extra`'s)."""

    # The description is configuration, not a docstring: the apps run with -OO.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "description": (
                "An RFC 9457 problem document. Closed, so that every implementation sends the "
                "same members. `detail` is written by the implementation and never contains raw "
                "exception text or a secret value."
            )
        },
    )

    type: Literal["about:blank"]
    title: str = Field(min_length=1)
    status: int = Field(ge=400, le=599)
    detail: str = Field(min_length=1)
    instance: str = Field(json_schema_extra={"format": "uri-reference"})
    request_id: str = Field(pattern=REQUEST_ID_PATTERN)
    # Absent rather than null when they do not apply (SkipJsonSchema: the schema says so too).
    dependency: DependencyName | SkipJsonSchema[None] = None
    errors: Annotated[list[FieldError], Field(min_length=1)] | SkipJsonSchema[None] = None


def sentence(text: str) -> str:
    """A library message as a `detail`: capitalised, ending with a full stop."""
    text = text.strip() or "The request failed"
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


PATH_SAFE = "/!$&'()*+,;=:@-._~"  # RFC 3986 pchar and "/", kept as they are


def problem_body(
    status: int,
    detail: str,
    instance: str,
    request_id: str | None = None,
    *,
    dependency: str | None = None,
    errors: Sequence[FieldError] | None = None,
) -> dict[str, Any]:
    """A problem document as a dict, for `status`, `detail` and the request path."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": reason(status),
        "status": status,
        "detail": detail,
        # The decoded request path, percent-encoded again so it is a valid URI reference.
        "instance": quote(instance, safe=PATH_SAFE),
        "request_id": request_id or current_request_id() or "unknown",
    }
    if dependency is not None and dependency in DEPENDENCY_NAMES and status in (503, 504):
        body["dependency"] = dependency
    if errors and status == 422:
        body["errors"] = [e.model_dump() for e in errors]
    return body


def problem_response(
    status: int,
    detail: str,
    instance: str,
    *,
    request_id: str | None = None,
    dependency: str | None = None,
    errors: Sequence[FieldError] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """A problem+json response; `instance` is the request path (no query string)."""
    return JSONResponse(
        problem_body(status, detail, instance, request_id, dependency=dependency, errors=errors),
        status_code=status,
        headers=dict(headers or {}),
        media_type=PROBLEM_MEDIA_TYPE,
    )


# -- OpenAPI declarations ---------------------------------------------------------------------

_DESCRIPTIONS = {
    400: "The body is not well-formed JSON (an empty body included).",
    404: "The resource does not exist.",
    413: "The body is larger than 1 MiB (1 048 576 bytes); it was not read further.",
    415: "The body is not `application/json`, or has no Content-Type.",
    422: "A parameter or the body does not match the schema; `errors` lists every problem found.",
    429: "The client is over its quota (only when the rate limit is enabled by configuration).",
    503: "A dependency is down or refusing us; `dependency` names it. Retry after the delay given.",
    504: "A dependency did not answer in time; `dependency` names it.",
}

_INT_HEADER = {"schema": {"type": "integer", "minimum": 1}}
RETRY_AFTER_HEADER: dict[str, Any] = {
    "description": "Seconds to wait before trying again.",
    "required": True,
    **_INT_HEADER,
}
RATE_LIMIT_HEADERS: dict[str, Any] = {
    "Retry-After": RETRY_AFTER_HEADER,
    "RateLimit": {
        "description": "What is left: `r` requests remain, the window resets in `t` seconds.",
        "required": True,
        "schema": {"type": "string", "pattern": '^"default";r=[0-9]+;t=[0-9]+$'},
    },
    "RateLimit-Policy": {
        "description": "The quota: `q` requests per window of `w` seconds, per client address.",
        "required": True,
        "schema": {"type": "string", "pattern": '^"default";q=[0-9]+;w=[0-9]+$'},
    },
}


PROBLEM_SCHEMA_REF = "#/components/schemas/Problem"
_PROBLEM_CONTENT = {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": PROBLEM_SCHEMA_REF}}}


def problem_responses(statuses: Iterable[int]) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: each error status as a problem+json response, with its headers.

    The schema is a reference (`problem_schemas()` adds its target to the document), not
    `model: Problem`: FastAPI builds a validator and a serializer for every response model of
    every route, and these are documentation only (problem bodies are built by problem_body).
    """
    declared: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {
            "description": _DESCRIPTIONS.get(status, reason(status)),
            "content": _PROBLEM_CONTENT,
        }
        if status == 429:
            entry["headers"] = RATE_LIMIT_HEADERS
        elif status == 503:
            entry["headers"] = {"Retry-After": RETRY_AFTER_HEADER}
        declared[status] = entry
    return declared


def problem_schemas() -> dict[str, dict[str, Any]]:
    """`Problem` and the schemas it uses, as OpenAPI components, shaped as FastAPI shapes the
    ones it generates (through its OpenAPI model: no nulls, numbers as floats)."""
    _, definitions = models_json_schema(
        [(Problem, "serialization")], ref_template="#/components/schemas/{model}"
    )
    return {
        name: jsonable_encoder(Schema.model_validate(schema), by_alias=True, exclude_none=True)
        for name, schema in definitions["$defs"].items()
    }
