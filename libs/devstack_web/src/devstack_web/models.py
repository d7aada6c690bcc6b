"""The base of both apps' request and response models: the contract's JSON Schema semantics.

JSON Schema's `integer` is a JSON number with no fractional part (`3` and `3.0`), never a
string or a boolean. Pydantic's lax mode would turn `"3"` into 3 and `true` into 1, and its
strict mode would refuse `3.0`; so the lax mode is kept and strings and booleans given to an
integer field are refused before it sees them, at the field's own location.
"""

from __future__ import annotations

import functools
import types
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, model_validator

__all__ = ["ContractModel"]


class _NotANumber:
    """Stands in for a refused value, so that the field itself reports "a valid integer"."""

    def __repr__(self) -> str:
        return "not a JSON number"


NOT_A_NUMBER = _NotANumber()


def _types(annotation: Any) -> set[Any]:
    """The plain types an annotation accepts (through Annotated, Optional and unions)."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _types(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return {t for arg in get_args(annotation) for t in _types(arg)}
    return {annotation}


@functools.cache
def _integer_fields(model: type[BaseModel]) -> tuple[tuple[str, bool], ...]:
    """(key, whether a string is accepted too) of each field that accepts an integer: worked
    out once per model, not on every validation (every response model is validated)."""
    found = []
    for name, field in model.model_fields.items():
        accepted = _types(field.annotation)
        if int in accepted:
            found.append((field.alias or name, str in accepted))
    return tuple(found)


class ContractModel(BaseModel):
    """A model with JSON Schema's integers: strings and booleans refused (see the module)."""

    @model_validator(mode="before")
    @classmethod
    def _json_integers(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        refused = {}
        for key, takes_strings in _integer_fields(cls):
            value = data.get(key)
            if isinstance(value, bool) or (isinstance(value, str) and not takes_strings):
                refused[key] = NOT_A_NUMBER
        return {**data, **refused} if refused else data
