"""Least privilege and root-token hygiene, checked against the running stack's own Vault."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from devstack_cli.bootstrap import render_policy
from devstack_cli.stack import stack as service_table
from devstack_cli.vault import VaultError
from tests.support import StackUnderTest, can_read, root_vault, vault_data

TABLE = service_table()
ROLES = sorted(TABLE.services)  # every server and every API has an AppRole
ALL_SECRETS = sorted(
    [s.secret_path for s in TABLE.services.values() if s.secret is not None]
    + [s.admin_path for s in TABLE.services.values() if s.admin is not None]
)
ADMIN_SECRETS = [p for p in ALL_SECRETS if p.startswith("admin/")]


@pytest.mark.parametrize("role", ROLES)
def test_each_approle_reads_exactly_what_the_table_allows(stack: StackUnderTest, role: str) -> None:
    allowed = set(TABLE.service(role).readable_secrets())
    with stack.login(role) as vault:
        readable = {path for path in ALL_SECRETS if can_read(vault, path)}
    assert readable == allowed


def test_the_matrix_is_not_vacuous() -> None:
    """Every server's own secret is denied to every other server that does not depend on it."""
    assert len(ROLES) >= 9
    assert len(ALL_SECRETS) >= 8
    apis = [s for s in TABLE.services.values() if s.kind == "api"]
    for api in apis:
        assert not set(api.readable_secrets()) & set(ADMIN_SECRETS)


@pytest.mark.parametrize("role", ROLES)
def test_each_approle_issues_only_its_own_certificate(stack: StackUnderTest, role: str) -> None:
    other = "mysql" if role != "mysql" else "postgres"
    host = TABLE.service(role).hostname
    with stack.login(role) as vault:
        issued = vault.write(f"pki_int/issue/{role}", {"common_name": host, "ttl": "1h"})
        assert "BEGIN CERTIFICATE" in issued["data"]["certificate"]
        with pytest.raises(VaultError) as denied:
            vault.write(f"pki_int/issue/{other}", {"common_name": other, "ttl": "1h"})
        assert denied.value.status == 403


def test_no_policy_grants_a_wildcard_on_secrets(stack: StackUnderTest) -> None:
    with root_vault(stack) as root:
        for role in ROLES:
            policy = vault_data(root, f"sys/policies/acl/{role}")["policy"]
            assert policy == render_policy(TABLE.service(role))
            assert "*" not in policy, f"policy {role} has a wildcard:\n{policy}"


def test_approle_tokens_have_the_documented_ttls(stack: StackUnderTest) -> None:
    with stack.login("postgres") as vault:
        token = vault_data(vault, "auth/token/lookup-self")
    assert token["ttl"] <= 3600
    assert token["ttl"] > 3500
    assert token["policies"] == ["default", "postgres"]
    with root_vault(stack) as root:
        role = vault_data(root, "auth/approle/role/postgres")
    assert role["token_ttl"] == 3600
    assert role["token_max_ttl"] == 86400


def test_credential_files_are_private(stack: StackUnderTest) -> None:
    paths = stack.settings.state
    files = [paths.vault_init]
    for role in ROLES:
        files += [paths.role_id_file(role), paths.secret_id_file(role)]
    for path in files:
        assert path.stat().st_mode & 0o777 == 0o600, path


def test_no_process_holds_the_root_token(stack: StackUnderTest) -> None:
    """Scan every process's environment and command line, and every file in the state folder."""
    token = stack.root_token().encode()
    stack_pids = {
        p["pid"]
        for service in stack.status()["services"].values()
        for p in service["processes"]
        if not p["one_shot"]
    }
    scanned = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            cmdline = (entry / "cmdline").read_bytes()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        scanned.add(int(entry.name))
        assert token not in environ, f"pid {entry.name} has the root token in its environment"
        assert token not in cmdline, f"pid {entry.name} has the root token in its arguments"
    assert stack_pids, "no process of the stack was found"
    assert stack_pids <= scanned, "the stack's own processes were not scanned"
    for path in stack.state_dir.rglob("*"):
        if path.is_file() and path != stack.settings.state.vault_init:
            if path.stat().st_size > 1_000_000:
                continue  # database files, not configuration
            assert token not in path.read_bytes(), f"{path} contains the root token"


# -- a dead secret-id is replaced (issue 9, item 14, the CLI side) ---------------------------


def secret_id_known(stack: StackUnderTest, role: str, secret_id: str) -> bool:
    with root_vault(stack) as root:
        found = root.call(
            "POST", f"auth/approle/role/{role}/secret-id/lookup", {"secret_id": secret_id}
        )
    return bool((found or {}).get("data"))


def test_bootstrap_replaces_a_secret_id_that_no_longer_logs_in(stack: StackUnderTest) -> None:
    role = "pgbouncer"  # its launcher logs in at each start only: nothing running is disturbed
    secret_file = stack.settings.state.secret_id_file(role)
    dead = secret_file.read_text().strip()
    with root_vault(stack) as root:
        root.write(f"auth/approle/role/{role}/secret-id/destroy", {"secret_id": dead})
    assert not secret_id_known(stack, role, dead)
    result = stack.cli("vault", "bootstrap")
    assert result.returncode == 0, result.stderr
    assert f"{role}: its secret-id no longer logs in" in result.stdout
    fresh = secret_file.read_text().strip()
    assert fresh != dead
    assert secret_file.stat().st_mode & 0o777 == 0o600
    with stack.login(role) as vault:  # the new one logs in
        assert vault_data(vault, "auth/token/lookup-self")["policies"] == [
            "default",
            role,
        ]
    again = stack.cli("vault", "bootstrap")  # a working secret-id is left alone
    assert "no longer logs in" not in again.stdout
    assert secret_file.read_text().strip() == fresh


def test_rotate_secret_id_replaces_and_destroys(stack: StackUnderTest) -> None:
    role = "pgbouncer"
    secret_file = stack.settings.state.secret_id_file(role)
    old = secret_file.read_text().strip()
    result = stack.cli("vault", "rotate-secret-id", role)
    assert result.returncode == 0, result.stderr
    new = secret_file.read_text().strip()
    assert new != old
    assert old not in result.stdout + result.stderr
    assert new not in result.stdout
    assert not secret_id_known(stack, role, old)
    assert secret_id_known(stack, role, new)
    with stack.login(role) as vault:
        assert vault.call("GET", "auth/token/lookup-self")
    unknown = stack.cli("vault", "rotate-secret-id", "nosuch")
    assert unknown.returncode == 2
    assert "unknown service 'nosuch'" in unknown.stderr
