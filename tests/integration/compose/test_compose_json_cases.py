"""The contract's JSON corner cases, unchanged, against the APIs in containers (see
test_compose_suites.py)."""

from __future__ import annotations

from tests.contract.test_json_corner_cases import *  # noqa: F403
