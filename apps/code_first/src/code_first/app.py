"""The code_first application: the contract's routes, written in code, on devstack_web."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from code_first.routes import IMPLEMENTATION, ROUTERS
from devstack_web import create_app as create_web_app


def create_app(**kwargs: Any) -> FastAPI:
    """The app; `kwargs` go to devstack_web.create_app (settings, client_factory, ...)."""
    return create_web_app(implementation=IMPLEMENTATION, routers=ROUTERS, **kwargs)
