"""Every implementation with a 3 s token TTL and a 12 s max TTL, for three max TTLs: no request
fails, and Vault's audit log shows each one renewing its token and logging in again on time.

Each implementation runs as its launcher would start it, but with an AppRole of the test's own
(the implementation's policy, short TTLs) and secrets re-read every second, so every second
needs a live token.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.parity.implementations import STACK_APPS
from tests.support import Running, StackUnderTest, running_implementation, temporary_approle

pytestmark = pytest.mark.integration

RUN_FOR = 36.0  # seconds: three max TTLs


def audited_auth(audit_log: Path, role: str) -> Counter[str]:
    """How many logins and renewals Vault granted to tokens of `role`, from its audit log."""
    seen: Counter[str] = Counter()
    for line in audit_log.read_text(errors="replace").splitlines():
        if '"type":"response"' not in line or role not in line:
            continue
        entry = json.loads(line)
        auth = entry.get("auth") or {}
        if (auth.get("metadata") or {}).get("role_name") != role or entry.get("error"):
            continue
        seen[entry.get("request", {}).get("path", "?")] += 1
    return seen


async def keep_busy(app: Running, until: float) -> list[str]:
    """A secret read, a database query and a cache write every quarter second; the failures."""
    failures = []
    key = f"/examples/cache/token-lifecycle-{app.name}"
    while time.monotonic() < until:
        for method, path, body in (
            ("GET", "/examples/vault/secret/postgres", None),
            ("GET", "/examples/postgres/query", None),
            ("PUT", key, {"value": "ok", "ttl_seconds": 10}),
        ):
            response = await app.client.request(method, path, json=body)
            if response.status_code >= 300:
                failures.append(f"{method} {path}: {response.status_code} {response.text[:200]}")
        await asyncio.sleep(0.25)  # a steady pace for RUN_FOR seconds: the tokens must expire
    return failures


async def test_short_ttl_tokens_never_fail_a_request(stack: StackUnderTest) -> None:
    audit_log = stack.settings.state.service_dir("vault") / "audit.log"
    async with contextlib.AsyncExitStack() as running:
        apps: dict[str, Running] = {}  # role name -> the implementation running with it
        for name in STACK_APPS:
            role = running.enter_context(temporary_approle(stack, name, "3s", "12s"))
            apps[role.name] = await running.enter_async_context(
                running_implementation(stack, name, role, secret_ttl="2")
            )
        until = time.monotonic() + RUN_FOR
        failures = await asyncio.gather(*(keep_busy(app, until) for app in apps.values()))
        for (role_name, app), failed in zip(apps.items(), failures, strict=True):
            assert failed == [], f"{app.name}: {len(failed)} failed, first {failed[:3]}"
            health = (await app.client.get("/health/vault")).json()
            assert health["checks"]["vault"]["status"] == "healthy", (app.name, health)
            granted = audited_auth(audit_log, role_name)
            # A token lives 12 s at most: 36 s need a login at the start and two more at least.
            assert granted["auth/approle/login"] >= 3, (app.name, granted, app.log_tail())
            # Renewed at 2/3 of each 3 s lease, between logins.
            assert granted["auth/token/renew-self"] >= 3, (app.name, granted, app.log_tail())
