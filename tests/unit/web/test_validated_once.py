"""A response is validated against the contract once, by the app's own model (docs/client.md,
"Who validates what"): the library's result models carry types, not the contract's constraints,
and FastAPI takes an instance of the route's response model as it is."""

from __future__ import annotations

import inspect

import httpx
from fastapi import FastAPI
from pydantic import BaseModel, field_validator

from devstack_client import models

INPUTS = {"ItemCreate"}  # the library checks what it is given: other code calls it too
RUNS: list[int] = []


class Answer(BaseModel):
    """A response model that counts its validations."""

    value: int

    @field_validator("value")
    @classmethod
    def _count(cls, value: int) -> int:
        RUNS.append(value)
        return value


def test_the_library_result_models_declare_no_constraint() -> None:
    results = [
        model
        for name, model in inspect.getmembers(models, inspect.isclass)
        if issubclass(model, BaseModel) and model.__module__ == models.__name__
        if not name.startswith("_") and name not in INPUTS
    ]
    assert len(results) > 15
    constrained = {
        f"{model.__name__}.{field}": info.metadata
        for model in results
        for field, info in model.model_fields.items()
        if info.metadata
    }
    assert constrained == {}
    assert all(not model.__pydantic_decorators__.field_validators for model in results)


async def test_fastapi_does_not_validate_a_returned_response_model_again() -> None:
    RUNS.clear()
    app = FastAPI()

    @app.get("/")
    async def answer() -> Answer:
        return Answer(value=1)

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.get("/")).json() == {"value": 1}
    assert RUNS == [1]  # the route's own construction only
