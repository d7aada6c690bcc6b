"""Schemathesis against every running implementation: openapi/devstack.yaml is the oracle.

Every operation of the contract is generated (its examples, the coverage phase's boundary and
negative cases, then a few fuzzed examples), sent to the live app, and the response checked:
no server error, a documented status code, the documented content type and headers (X-Request-ID
everywhere, Location, Retry-After...), a body that matches its schema; invalid input rejected,
valid input accepted; an undefined method is 405 with Allow. A 503 or 504, documented everywhere
for a dependency outage, is accepted only when the app's own /health/all agrees that a
dependency is down: on a healthy stack it is a defect like any other.

Deterministic: a fixed seed, derandomised Hypothesis, no example database.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from tests.parity.implementations import IMPLEMENTATIONS, SPEC_PATH, base_urls
from tests.support import StackUnderTest

pytestmark = pytest.mark.integration

MAX_EXAMPLES = 50  # fuzzed examples per operation and implementation, on top of the coverage phase

CONFIG = SchemathesisConfig.from_dict(
    {
        "seed": 20261127,
        # No crash cache in the working tree: each run is the same, from the seed.
        "cache": {"enabled": False},
        "generation": {
            "max-examples": MAX_EXAMPLES,
            "deterministic": True,
            "database": "none",
            "no-shrink": True,
        },
        "request-timeout": 20,
        "checks": {
            # Documented for outages only; checked against /health/all below.
            "not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", "503", "504"]},
            "max_response_time": 10,
            # Nothing in this API authenticates a caller, and no header is required.
            "ignored_auth": {"enabled": False},
            "object_level_authorization": {"enabled": False},
            "missing_required_header": {"enabled": False},
        },
    }
)
schema = schemathesis.openapi.from_path(SPEC_PATH, config=CONFIG)


@pytest.fixture(scope="module")
def http() -> Iterator[requests.Session]:
    session = requests.Session()
    try:
        yield session
    finally:
        session.close()


@pytest.fixture(scope="module")
def urls(stack: StackUnderTest) -> dict[str, str]:
    return base_urls(stack)


def assert_outage_is_real(
    http: requests.Session, base_url: str, response: schemathesis.Response
) -> None:
    health = http.get(f"{base_url}/health/all", timeout=20)
    assert health.status_code == 503, (
        f"{response.request.method} {response.request.url} answered {response.status_code} "
        f"({response.content[:300]!r}) while /health/all says every dependency is healthy"
    )


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@schema.parametrize()
@settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_contract(
    case: schemathesis.Case[Any],  # generic in its operation's four parameter types
    implementation: str,
    urls: dict[str, str],
    http: requests.Session,
) -> None:
    base_url = urls[implementation]
    response = case.call_and_validate(base_url=base_url, session=http)
    if response.status_code in (503, 504):
        assert_outage_is_real(http, base_url, response)
