"""The shape of the contract's operation table (`api_first.generated.operations`).

`apps/api_first/generate.py` writes that table from openapi/devstack.yaml: one `Operation` per
path and method, with its parameters and status codes. The app builds its routes from it, so
the paths, methods, operationIds, parameter constraints and success statuses come from the
contract alone; the handlers only say what each operation does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ParameterLocation = Literal["path", "query", "header"]


@dataclass(frozen=True, kw_only=True)
class Parameter:
    """A path, query or header parameter, with the constraints of its schema."""

    name: str
    location: ParameterLocation
    required: bool
    type: Literal["string", "integer"]
    description: str | None = None
    pattern: str | None = None
    min_length: int | None = None
    max_length: int | None = None
    minimum: int | None = None
    maximum: int | None = None
    default: int | str | None = None
    # The schema's `not`: values and patterns it refuses (no lookaround in Go or Rust regexes).
    not_enum: tuple[str, ...] = ()
    not_patterns: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Response:
    status: int
    description: str
    media_type: str | None  # None for a response without a body (204)
    schema: str | None  # the components/schemas name of its body, when it has one
    headers: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Operation:
    operation_id: str
    method: Literal["GET", "PUT", "POST", "PATCH", "DELETE"]
    path: str
    tag: str
    summary: str
    description: str | None
    parameters: tuple[Parameter, ...]
    request_body: str | None  # the components/schemas name of the body, when there is one
    responses: tuple[Response, ...]

    @property
    def success(self) -> tuple[int, ...]:
        return tuple(r.status for r in self.responses if 200 <= r.status < 300)

    @property
    def default_status(self) -> int:
        """The status of the usual answer: the lowest success status."""
        return min(self.success)
