"""The inspection commands against the running stack: what a developer reads must be true,
and a password is shown only when asked for."""

from __future__ import annotations

from tests.support import StackUnderTest


def test_vault_creds_masks_the_password_unless_revealed(stack: StackUnderTest) -> None:
    password = stack.creds("mysql")["password"]
    masked = stack.cli("vault", "creds", "mysql")
    assert masked.returncode == 0, masked.stderr
    assert password not in masked.stdout
    assert "********" in masked.stdout
    assert "devstack" in masked.stdout
    revealed = stack.cli("vault", "creds", "mysql", "--reveal")
    assert revealed.returncode == 0
    assert password in revealed.stdout


def test_vault_status_and_ca(stack: StackUnderTest) -> None:
    status = stack.cli("vault", "status")
    assert status.returncode == 0
    assert "sealed       False" in status.stdout
    ca = stack.cli("vault", "ca")
    assert ca.returncode == 0
    assert ca.stdout == stack.settings.state.ca_chain.read_text()
    assert ca.stdout.count("BEGIN CERTIFICATE") == 2


def test_vault_bootstrap_is_idempotent(stack: StackUnderTest) -> None:
    before = {name: stack.creds(name)["password"] for name in ("postgres", "redis")}
    result = stack.cli("vault", "bootstrap")
    assert result.returncode == 0, result.stderr
    assert "generating" not in result.stdout  # nothing was missing, nothing was replaced
    assert {name: stack.creds(name)["password"] for name in before} == before


def test_logs_show_a_service_and_its_processes(stack: StackUnderTest) -> None:
    redis = stack.cli("logs", "redis", "--lines", "200")
    assert redis.returncode == 0
    assert "redis-cluster| cluster_state:ok on every node" in redis.stdout
    assert {"redis-1|", "redis-2|", "redis-3|"} <= {
        line.split(" ")[0] for line in redis.stdout.splitlines()
    }
    bootstrap = stack.cli("logs", "vault-bootstrap")
    assert "bootstrap complete" in bootstrap.stdout


def test_no_password_in_any_log(stack: StackUnderTest) -> None:
    secrets = [
        stack.creds(name)["password"]
        for name in ("postgres", "mysql", "mongodb", "redis", "rabbitmq")
    ]
    for log in stack.settings.state.logs.glob("*.log"):
        text = log.read_text(errors="replace")
        for secret in secrets:
            assert secret not in text, f"a password appears in {log.name}"
