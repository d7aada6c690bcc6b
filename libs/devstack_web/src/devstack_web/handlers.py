"""Exception handlers: the library's exception tree, validation and routing errors, as problems.

| raised | status | detail |
|---|---|---|
| `NotFound` (incl. `MessageUnroutable`) | 404 | the library's message (no server text) |
| `InvalidInput` | 422 | the library's message |
| `DependencyUnavailable` (`VaultError`) | 503 + Retry-After | "<dependency> is unavailable." |
| `DependencyTimeout` | 504 | "<dependency> did not answer in time." |
| any other `DevStackError` or exception | 500 | a fixed sentence |
| `RequestValidationError` | 422 (400: JSON syntax) | "The request is invalid; see errors." |
| Starlette `HTTPException` (404, 405) | its status | a fixed sentence per status |

Raw exception text never reaches a client; each error is logged with its cause instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match

from devstack_client import (
    DependencyError,
    DependencyTimeout,
    DependencyUnavailable,
    DevStackError,
    InvalidInput,
    NotFound,
)
from devstack_web.problems import FieldError, problem_response, sentence

log = structlog.get_logger("devstack_web")

GENERIC_DETAIL = "The server could not complete the request."
INVALID_DETAIL = "The request is invalid; see errors."
BAD_JSON_DETAIL = "The request body is not valid JSON."
_HTTP_DETAILS = {
    404: "No resource exists at this path.",
    405: "This method is not allowed on this path.",
}


class BodyRejected(StarletteHTTPException):
    """A request body refused before validation (413, 415, 400, 422); `detail` is ours to show,
    `errors` the field errors of a 422. An HTTPException, so FastAPI's body reading lets it
    through unchanged."""

    def __init__(
        self, status_code: int, detail: str, *, errors: Sequence[FieldError] | None = None
    ) -> None:
        super().__init__(status_code, detail)
        self.errors = list(errors or ())


def _pointer(parts: Sequence[Any]) -> str:
    """A JSON Pointer (RFC 6901) to a body member; "" for the body as a whole."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def _member_path(loc: Sequence[Any], body: Any) -> list[Any]:
    """The part of a body error's location that names members of the body.

    Pydantic adds steps that are not members (union branches such as `constrained-int` or
    `none`, validator names); the contract wants one pointer per field, so the path follows the
    body's own members (and names a missing one) and stops there.
    """
    path: list[Any] = []
    node = body
    for step in loc:
        if isinstance(node, dict) and isinstance(step, str):
            path.append(step)
            if step not in node:
                break  # a missing member
            node = node[step]
        elif isinstance(node, list) and isinstance(step, int) and 0 <= step < len(node):
            path.append(step)
            node = node[step]
        else:
            break
    return path


def field_errors(errors: Sequence[Any], body: Any = None) -> list[FieldError]:
    """One error per (location, field), in the order they were found."""
    found: dict[tuple[str, str], FieldError] = {}
    for error in errors:
        loc = tuple(error.get("loc", ()))
        where = str(loc[0]) if loc else "body"
        message = str(error.get("msg") or "is invalid")
        if where == "body":
            field = _pointer(_member_path(loc[1:], body))
            entry = FieldError(location="body", field=field, detail=message)
        elif where in ("path", "query", "header"):
            name = str(loc[1]) if len(loc) > 1 else ""
            entry = FieldError(location=where, field=name, detail=message)  # type: ignore[arg-type]
        else:  # a cookie, or anything FastAPI adds later: report it against the request
            entry = FieldError(location="header", field=where, detail=message)
        found.setdefault((entry.location, entry.field), entry)
    return list(found.values())


async def validation_error(request: Request, exc: Exception) -> Response:
    """A request FastAPI could not validate: 422 with every field error."""
    if not isinstance(exc, RequestValidationError):  # registered for that class only
        raise exc
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return problem_response(400, BAD_JSON_DETAIL, request.url.path)
    return problem_response(
        422, INVALID_DETAIL, request.url.path, errors=field_errors(errors, exc.body) or None
    )


def dependency_problem(exc: DependencyError, path: str) -> Response:
    """A dependency's failure: 503 (with Retry-After) or 504, naming it."""
    if isinstance(exc, DependencyTimeout):
        return problem_response(
            504, f"{exc.dependency} did not answer in time.", path, dependency=exc.dependency
        )
    retry_after = max(1, int(exc.retry_after or 1))
    return problem_response(
        503,
        f"{exc.dependency} is unavailable.",
        path,
        dependency=exc.dependency,
        headers={"Retry-After": str(retry_after)},
    )


async def library_error(request: Request, exc: Exception) -> Response:
    """Any other library error, as its status says."""
    path = request.url.path
    if isinstance(exc, DependencyUnavailable | DependencyTimeout):
        log.warning("dependency failed", error=str(exc), dependency=exc.dependency, path=path)
        return dependency_problem(exc, path)
    if isinstance(exc, NotFound):
        return problem_response(404, sentence(exc.message), path)
    if isinstance(exc, InvalidInput):
        return problem_response(422, sentence(exc.message), path)
    log.error("request failed", path=path, exc_info=exc)
    return problem_response(500, GENERIC_DETAIL, path)


async def http_error(request: Request, exc: Exception) -> Response:
    """An HTTPException (a refused body, 404, 405), as a problem document."""
    if not isinstance(exc, StarletteHTTPException):  # registered for that class only
        raise exc
    status = exc.status_code
    if isinstance(exc, BodyRejected):
        detail = str(exc.detail)
    else:
        detail = _HTTP_DETAILS.get(status, "The request cannot be served.")
    headers = dict(exc.headers or {})
    if isinstance(exc, BodyRejected) and exc.errors:
        return problem_response(status, detail, request.url.path, errors=exc.errors)
    if status == 405:
        # One route per method: Starlette's Allow names only the first route that matched.
        headers["Allow"] = ", ".join(allowed_methods(request))
    return problem_response(status, detail, request.url.path, headers=headers)


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves on this request's path (asked of the routes themselves)."""
    methods = set()
    for method in ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"):
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] == Match.FULL for route in request.app.router.routes):
            methods.add(method)
    if "GET" in methods:
        methods.add("HEAD")  # HeadMiddleware serves it wherever GET is
    return sorted(methods)


def install_handlers(app: FastAPI) -> None:
    """Answer the library's exceptions and validation errors as problem documents."""
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(DevStackError, library_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
