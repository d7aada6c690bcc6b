"""The scan the session stack runs on its logs when the session ends (tests/conftest.py) finds a
secret and a Vault token wherever a process wrote one."""

from __future__ import annotations

from tests.support import StackUnderTest, leaks_in_logs, secret_values


def test_the_log_scan_finds_what_leaks(stack: StackUnderTest) -> None:
    values = secret_values(stack)
    assert stack.creds("postgres")["password"] in values
    assert stack.root_token() in values
    assert leaks_in_logs(stack) == []
    planted = stack.settings.state.logs / "planted-by-a-test.log"
    try:
        planted.write_text(f"connecting with password={stack.creds('redis')['password']}\n")
        assert leaks_in_logs(stack) == ["planted-by-a-test.log: 1 secret value(s)"]
        planted.write_text("token hvs.CAESIJ0123456789abcdefghijklmnop\n")
        assert leaks_in_logs(stack) == ["planted-by-a-test.log: a Vault token"]
    finally:
        planted.unlink(missing_ok=True)
