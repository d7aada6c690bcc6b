"""Runs last in this folder: nothing the library logged during these tests holds a secret."""

from __future__ import annotations

import re

from tests.conftest import StackUnderTest
from tests.integration.client.conftest import LogCapture, root_vault

TOKEN = re.compile(r"\b(?:hv[sbr]|[sbr])\.[A-Za-z0-9_\-]{20,}")


def test_captured_logs_hold_no_secret(stack: StackUnderTest, captured_logs: LogCapture) -> None:
    text = captured_logs.stream.getvalue()
    assert len(text.splitlines()) > 100, "the capture must have seen the library's logs"
    assert "vault login" in text
    secrets: list[str] = list(captured_logs.extra_secrets)
    with root_vault(stack) as vault:
        for service in ("postgres", "mysql", "mongodb", "redis", "rabbitmq"):
            for path in (service, f"admin/{service}"):
                data = vault.kv_get(path)
                if data and "password" in data:
                    secrets.append(data["password"])
    for name in ("code_first",):
        secrets.append(stack.settings.state.secret_id_file(name).read_text().strip())
    secrets.append(stack.root_token())
    leaked = [s[:4] + "..." for s in secrets if s and s in text]
    assert not leaked, f"secret values found in the logs: {leaked}"
    assert not TOKEN.search(text), "a Vault token was logged"
