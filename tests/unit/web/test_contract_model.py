"""ContractModel: JSON Schema's integer, not pydantic's lax or strict one."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import Field, ValidationError

from devstack_web import ContractModel


class Thing(ContractModel):
    count: int = Field(default=0, ge=0)
    ttl: int | None = None
    label: str | int = "x"
    flag: bool = False


@pytest.mark.parametrize(("value", "expected"), [(3, 3), (3.0, 3), (0, 0)])
def test_a_json_integer_is_accepted(value: Any, expected: int) -> None:
    assert Thing.model_validate({"count": value}).count == expected


@pytest.mark.parametrize("value", ["3", True, False, 1.5, "x"])
def test_strings_booleans_and_fractions_are_not_integers(value: Any) -> None:
    with pytest.raises(ValidationError) as refused:
        Thing.model_validate({"count": value, "ttl": value})
    assert {e["loc"][0] for e in refused.value.errors()} == {"count", "ttl"}


def test_other_fields_are_untouched() -> None:
    thing = Thing.model_validate({"label": "7", "flag": True})
    assert (thing.label, thing.flag) == ("7", True)
