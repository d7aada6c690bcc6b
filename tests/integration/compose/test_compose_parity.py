"""The parity suite, unchanged, against the APIs in containers (see test_compose_suites.py)."""

from __future__ import annotations

from tests.parity.test_parity import *  # noqa: F403
