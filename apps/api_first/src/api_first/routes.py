"""The routes, built from the contract's operation table and the handlers, by operationId.

For each operation of `api_first.generated.operations` (in the contract's path order), the
handler registered under its operationId becomes a route with the contract's method, path,
success status, response model and error responses; each of the handler's parameters named
after a contract parameter gets that parameter's location and constraints (pattern, length,
bounds, default). An operation without a handler, a handler without an operation, or a handler
whose parameters or body disagree with the contract stops the app from being built.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query
from fastapi.responses import PlainTextResponse, Response
from pydantic import AfterValidator, BaseModel

from api_first.contract import Operation, Parameter
from api_first.generated import models
from api_first.generated.operations import OPERATIONS
from api_first.handlers import HANDLERS, Handler
from devstack_web import PROBLEM_MEDIA_TYPE, contract_router

# Handler parameters that are not contract parameters: the client, the response (for a status
# or a header), and the request body.
STACK, RESPONSE, BODY = "stack", "response", "body"
# Handled for every route by devstack_web's middleware, not by the handlers.
MIDDLEWARE_HEADERS = frozenset({"X-Request-ID"})


class ContractMismatch(Exception):
    """The handlers do not implement the contract's operations exactly."""


def model(name: str) -> type[BaseModel]:
    found = getattr(models, name, None)
    if not (isinstance(found, type) and issubclass(found, BaseModel)):
        raise ContractMismatch(f"no generated model named {name!r}")
    return found


def _marker(parameter: Parameter) -> Any:
    constraints: dict[str, Any] = {
        "description": parameter.description,
        "pattern": parameter.pattern,
        "min_length": parameter.min_length,
        "max_length": parameter.max_length,
        "ge": parameter.minimum,
        "le": parameter.maximum,
    }
    kwargs = {k: v for k, v in constraints.items() if v is not None}
    return Path(**kwargs) if parameter.location == "path" else Query(**kwargs)


def _refusal(parameter: Parameter) -> Callable[[str], str]:
    """A validator for the schema's `not`: the value must match none of its branches."""
    patterns = [re.compile(p) for p in parameter.not_patterns]

    def check(value: str) -> str:
        if value in parameter.not_enum or any(p.search(value) for p in patterns):
            raise ValueError(f"{parameter.name} may not be {value!r}")
        return value

    return check


def _signature(operation: Operation, handler: Handler) -> inspect.Signature:
    """The handler's signature with each contract parameter annotated with its location and
    constraints, and the body marked as the JSON body."""
    signature = inspect.signature(handler, eval_str=True)
    declared = {
        p.name: p
        for p in operation.parameters
        if not (p.location == "header" and p.name in MIDDLEWARE_HEADERS)
    }
    own = set(signature.parameters) - {STACK, RESPONSE, BODY}
    if own != set(declared):
        raise ContractMismatch(
            f"{operation.operation_id}: the handler takes {sorted(own)}, "
            f"the contract declares {sorted(declared)}"
        )
    has_body = BODY in signature.parameters
    if has_body != (operation.request_body is not None):
        raise ContractMismatch(
            f"{operation.operation_id}: request body in the contract: "
            f"{operation.request_body}; in the handler: {has_body}"
        )
    parameters: list[inspect.Parameter] = []
    for name, param in signature.parameters.items():
        if name in declared:
            spec = declared[name]
            default = inspect.Parameter.empty if spec.required else spec.default
            if default is None and not spec.required:
                raise ContractMismatch(f"{operation.operation_id}: {name} has no default")
            markers: list[Any] = [_marker(spec)]
            if spec.not_enum or spec.not_patterns:
                markers.append(AfterValidator(_refusal(spec)))
            annotation: Any = Annotated[(param.annotation, *markers)]
            param = param.replace(annotation=annotation, default=default)
        elif name == BODY:
            if getattr(param.annotation, "__name__", None) != operation.request_body:
                raise ContractMismatch(
                    f"{operation.operation_id}: the body is {operation.request_body} in the "
                    f"contract, {param.annotation!r} in the handler"
                )
            param = param.replace(annotation=Annotated[param.annotation, Body()])
        parameters.append(param.replace(kind=inspect.Parameter.KEYWORD_ONLY))
    return signature.replace(parameters=parameters)


def endpoint(operation: Operation, handler: Handler) -> Handler:
    """The handler, as FastAPI sees it: the contract's parameters on its own signature."""
    signature = _signature(operation, handler)

    @functools.wraps(handler)
    async def call(**kwargs: Any) -> Any:
        return await handler(**kwargs)

    call.__signature__ = signature  # type: ignore[attr-defined]
    return call


def _responses(
    operation: Operation, problems: Mapping[int | str, dict[str, Any]]
) -> dict[int | str, dict[str, Any]]:
    declared: dict[int | str, dict[str, Any]] = {}
    for response in operation.responses:
        if response.status == operation.default_status:
            continue
        if response.media_type == PROBLEM_MEDIA_TYPE and response.status in problems:
            declared[response.status] = problems[response.status]
        elif response.schema is not None:
            declared[response.status] = {
                "model": model(response.schema),
                "description": response.description,
            }
        else:
            declared[response.status] = {"description": response.description}
    return declared


def build_router(
    operations: Iterable[Operation] = OPERATIONS,
    handlers: Mapping[str, Handler] = HANDLERS,
    *,
    problems: Mapping[int | str, dict[str, Any]] | None = None,
) -> APIRouter:
    """One route per operation, in the contract's order (`/health/all` before
    `/health/{service}`). `problems`: the OpenAPI declaration of each error status."""
    operations = tuple(operations)
    ids = [op.operation_id for op in operations]
    missing = sorted(set(ids) - set(handlers))
    extra = sorted(set(handlers) - set(ids))
    if missing or extra:
        raise ContractMismatch(
            f"operations without a handler: {missing}; handlers without an operation: {extra}"
        )
    router = contract_router()
    for op in operations:
        default = next(r for r in op.responses if r.status == op.default_status)
        options: dict[str, Any] = {}
        if default.media_type is None:  # 204: no body, so no Content-Type either
            options["response_class"] = Response
        elif default.media_type.startswith("text/"):
            options["response_class"] = PlainTextResponse
        router.add_api_route(
            op.path,
            endpoint(op, handlers[op.operation_id]),
            methods=[op.method],
            operation_id=op.operation_id,
            tags=[op.tag],
            summary=op.summary,
            description=op.description or "",
            status_code=op.default_status,
            response_model=None if default.schema is None else model(default.schema),
            responses=_responses(op, problems or {}),
            **options,
        )
    return router
