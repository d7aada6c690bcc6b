"""The api_first application: the contract's routes (built from the generated operation table
and the handlers) on devstack_web's shared machinery."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from api_first.generated.operations import CONTRACT_VERSION, OPERATIONS, SCHEMA_DESCRIPTIONS
from api_first.handlers import IMPLEMENTATION
from api_first.routes import build_router
from devstack_web import PROBLEM_MEDIA_TYPE, problem_responses
from devstack_web import create_app as create_web_app


def create_app(**kwargs: Any) -> FastAPI:
    """The app; `kwargs` go to devstack_web.create_app (settings, client_factory, ...)."""
    errors = {
        r.status for op in OPERATIONS for r in op.responses if r.media_type == PROBLEM_MEDIA_TYPE
    }
    router = build_router(problems=problem_responses(sorted(errors)))
    return create_web_app(
        implementation=IMPLEMENTATION,
        routers=[router],
        version=CONTRACT_VERSION,
        schema_descriptions=SCHEMA_DESCRIPTIONS,
        **kwargs,
    )
