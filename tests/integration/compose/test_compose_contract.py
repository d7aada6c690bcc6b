"""The contract suite (schemathesis), unchanged, against the stack in containers.

Each name imported here is collected again in this folder, where `stack` is the compose stack
(conftest.py): the parity suite (every implementation against every other, cross-implementation
round trips), the contract suites (schemathesis and the JSON corner cases) and the servers' TLS,
credentials and foreign-CA checks all run against the containerised servers and APIs.
"""

from __future__ import annotations

from tests.contract.test_schemathesis import *  # noqa: F403
