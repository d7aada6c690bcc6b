"""Vault initialisation, unsealing and bootstrap, generated from the service table.

This is the only code that uses the root token. It reads it from `<state>/vault/init.json`
(mode 0600, written by `operator init`) and never passes it to another process. Every step is
idempotent: running the bootstrap again changes nothing that is already right.

What the bootstrap creates, per service of the table:
- `secret/<name>`: the application secret (user, generated password, database or vhost,
  `tls_enabled`), and `secret/admin/<name>` for the server's admin account where it has one;
- a PKI role `pki_int/roles/<name>` for its certificates;
- a policy `<name>` that reads exactly the secrets the table allows and issues its own
  certificates, and an AppRole `<name>` with that policy (token TTL 1h, max 24h), whose role-id and
  secret-id are written to the state folder with mode 0600. A secret-id that no longer logs in
  (destroyed, expired) is replaced, and the role's lockout lifted; `devstack vault
  rotate-secret-id NAME` replaces one on demand.

The calls are hvac's (`vault.client` is an `hvac.Client`); `hvac_errors` turns any failure into
our `VaultError`, which names Vault's own words and never a token, key or secret.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from collections.abc import Callable
from typing import Any

from devstack_cli.settings import Settings, write_private
from devstack_cli.stack import Service, Stack
from devstack_cli.vault import Vault, hvac_errors

KEY_SHARES = 5
KEY_THRESHOLD = 3
ROOT_CA_TTL = "87600h"  # 10 years
INTERMEDIATE_CA_TTL = "43800h"  # 5 years
CERT_TTL = "720h"  # 30 days; `up` re-issues a certificate in its last third
CERT_MAX_TTL = "2160h"
TOKEN_TTL = "1h"  # noqa: S105 (a duration, not a password)
TOKEN_MAX_TTL = "24h"  # noqa: S105 (a duration, not a password)
PASSWORD_BYTES = 24  # 32 URL-safe characters

Log = Callable[[str], None]


def generate_password() -> str:
    return secrets.token_urlsafe(PASSWORD_BYTES)


# Vault paths beyond secrets and certificates, by service: Prometheus reads Vault's metrics.
EXTRA_RULES = {"prometheus": ('path "sys/metrics" {\n  capabilities = ["read"]\n}',)}


def render_policy(service: Service) -> str:
    """The least-privilege policy of one service: its readable secrets and its own certificate."""
    rules = [
        f'path "secret/data/{path}" {{\n  capabilities = ["read"]\n}}'
        for path in service.readable_secrets()
    ]
    rules.append(f'path "pki_int/issue/{service.name}" {{\n  capabilities = ["update"]\n}}')
    rules.extend(EXTRA_RULES.get(service.name, ()))
    return (
        f"# Generated from stack/services.toml: service {service.name}\n" + "\n".join(rules) + "\n"
    )


def application_secret(service: Service) -> dict[str, Any]:
    if service.secret is None:
        raise ValueError(f"{service.name} has no application secret")
    return {**service.secret, "password": generate_password(), "tls_enabled": True}


def admin_secret(service: Service) -> dict[str, Any]:
    if service.admin is None:
        raise ValueError(f"{service.name} has no admin secret")
    return {**service.admin, "password": generate_password()}


# -- init and unseal ------------------------------------------------------------------------


def init_or_unseal(settings: Settings, log: Log) -> str:
    """Initialise Vault on first start, unseal it on every start; return the root token."""
    init_file = settings.state.vault_init
    with Vault.for_settings(settings) as vault, hvac_errors():
        health = vault.wait_until_reachable(timeout=60)
        if not health["initialized"]:
            if init_file.exists():
                raise RuntimeError(
                    f"Vault is empty but {init_file} exists: the state folder is inconsistent; "
                    "run `devstack reset --yes` and `devstack up`"
                )
            log("initialising Vault (5 key shares, threshold 3)")
            # hvac's timeout is the facade's generous one: init waits for raft to elect itself.
            result = vault.client.sys.initialize(
                secret_shares=KEY_SHARES, secret_threshold=KEY_THRESHOLD
            )
            write_private(
                init_file,
                json.dumps(
                    {"root_token": result["root_token"], "unseal_keys": result["keys_base64"]}
                ),
            )
            health = vault.health()
        stored = json.loads(init_file.read_text())
        if health["sealed"]:
            log("unsealing Vault")
            for key in stored["unseal_keys"][:KEY_THRESHOLD]:
                vault.client.sys.submit_unseal_key(key=key)
        vault.wait_until_active(timeout=60)
        root_token: str = stored["root_token"]
        return root_token


# -- bootstrap ----------------------------------------------------------------------------


def bootstrap(settings: Settings, table: Stack, root_token: str, log: Log) -> None:
    with Vault.for_settings(settings, root_token) as vault, hvac_errors():
        _mounts(vault, log)
        _pki(vault, log)
        for service in table.services.values():
            _service(vault, settings, service, log)
        _export_ca(vault, settings)


def _mounts(vault: Vault, log: Log) -> None:
    sys = vault.client.sys
    mounts = sys.list_mounted_secrets_engines()
    mounted = set(mounts.get("data", mounts))
    wanted: list[tuple[str, str, dict[str, Any]]] = [
        ("secret", "kv", {"options": {"version": "2"}}),
        ("pki", "pki", {"config": {"max_lease_ttl": ROOT_CA_TTL}}),
        ("pki_int", "pki", {"config": {"max_lease_ttl": INTERMEDIATE_CA_TTL}}),
    ]
    for path, kind, params in wanted:
        if f"{path}/" not in mounted:
            log(f"enabling {kind} at {path}/")
            sys.enable_secrets_engine(backend_type=kind, path=path, **params)
    auths = sys.list_auth_methods()
    if "approle/" not in set(auths.get("data", auths)):
        log("enabling AppRole auth")
        sys.enable_auth_method(method_type="approle")


def _pki(vault: Vault, log: Log) -> None:
    pki = vault.client.secrets.pki
    if vault.ca_pem("pki") is None:
        log("generating the root CA (10 years)")
        pki.generate_root(
            type="internal",
            common_name="DevStack Core Root CA",
            extra_params={"ttl": ROOT_CA_TTL, "key_type": "ec"},
            mount_point="pki",
        )
    if vault.ca_pem("pki_int") is None:
        log("generating the intermediate CA (5 years), signed by the root")
        intermediate = "DevStack Core Intermediate CA"
        csr = pki.generate_intermediate(
            type="internal",
            common_name=intermediate,
            extra_params={"key_type": "ec"},
            mount_point="pki_int",
        )["data"]["csr"]
        signed = pki.sign_intermediate(
            csr=csr,
            common_name=intermediate,
            extra_params={"format": "pem_bundle", "ttl": INTERMEDIATE_CA_TTL},
            mount_point="pki",
        )["data"]["certificate"]
        pki.set_signed_intermediate(certificate=signed, mount_point="pki_int")


def _service(vault: Vault, settings: Settings, service: Service, log: Log) -> None:
    name = service.name
    kv, approle = vault.client.secrets.kv.v2, vault.client.auth.approle
    if service.secret is not None and vault.kv_get(service.secret_path) is None:
        log(f"{name}: generating its secret")
        kv.create_or_update_secret(
            path=service.secret_path, secret=application_secret(service), mount_point="secret"
        )
    if service.admin is not None and vault.kv_get(service.admin_path) is None:
        log(f"{name}: generating its admin secret")
        kv.create_or_update_secret(
            path=service.admin_path, secret=admin_secret(service), mount_point="secret"
        )
    vault.client.secrets.pki.create_or_update_role(
        name=name,
        mount_point="pki_int",
        extra_params={
            "allowed_domains": [service.hostname, "localhost"],
            "allow_bare_domains": True,
            "allow_localhost": True,
            "allow_subdomains": False,
            "allow_ip_sans": True,
            "key_type": "rsa",
            "key_bits": 2048,
            "ttl": CERT_TTL,
            "max_ttl": CERT_MAX_TTL,
        },
    )
    vault.client.sys.create_or_update_acl_policy(name=name, policy=render_policy(service))
    approle.create_or_update_approle(
        role_name=name,
        token_policies=[name],
        token_ttl=TOKEN_TTL,
        token_max_ttl=TOKEN_MAX_TTL,
        secret_id_ttl="0",  # noqa: S106 (a duration: secret-ids never expire)
    )
    role_id: str = approle.read_role_id(role_name=name)["data"]["role_id"]
    paths = settings.state
    role_file, secret_file = paths.role_id_file(name), paths.secret_id_file(name)
    if not role_file.exists() or role_file.read_text().strip() != role_id:
        write_private(role_file, role_id + "\n")
        secret_file.unlink(missing_ok=True)
    if not secret_file.exists():
        issue_secret_id(vault, settings, name)
    elif not secret_id_works(vault, name, secret_file.read_text().strip()):
        log(f"{name}: its secret-id no longer logs in (destroyed or expired): issuing a new one")
        issue_secret_id(vault, settings, name)
        unlock(vault, role_id)


# -- secret-ids -----------------------------------------------------------------------------


def secret_id_works(vault: Vault, role: str, secret_id: str) -> bool:
    """True when Vault still knows this secret-id of the role and it has not expired.

    Asked with the root token (a lookup), not by logging in: failed logins count towards
    Vault's lockout of the role."""
    if not secret_id:
        return False
    found = vault.client.auth.approle.read_secret_id(role_name=role, secret_id=secret_id)
    # hvac hands back the bare response (204, no body) for a secret-id Vault does not know.
    data = found.get("data") if isinstance(found, dict) else None
    if not data:
        return False
    expires = str(data.get("expiration_time") or "")
    if expires and not expires.startswith("0001-01-01"):
        when = dt.datetime.fromisoformat(expires.replace("Z", "+00:00"))
        if when <= dt.datetime.now(dt.UTC):
            return False
    return True


def issue_secret_id(vault: Vault, settings: Settings, role: str) -> str:
    """A new secret-id for the role, written (mode 0600) where its service reads it."""
    answer = vault.client.auth.approle.generate_secret_id(role_name=role)
    secret_id: str = answer["data"]["secret_id"]
    write_private(settings.state.secret_id_file(role), secret_id + "\n")
    return secret_id


def unlock(vault: Vault, role_id: str) -> None:
    """Lift Vault's lockout of an AppRole (a client that retried a dead secret-id trips it).

    hvac has no method for `sys/locked-users`: the call goes through hvac's adapter as a path."""
    auths = vault.client.sys.list_auth_methods()
    accessor = auths.get("data", auths).get("approle/", {}).get("accessor")
    if accessor:
        vault.write(f"sys/locked-users/{accessor}/unlock/{role_id}", {})


def rotate_secret_id(settings: Settings, role: str, root_token: str, log: Log) -> None:
    """Issue a new secret-id for a service, write it, then destroy the one it replaces.

    A running app reads its secret-id file again when a login fails; a server's launcher reads
    it at each start."""
    secret_file = settings.state.secret_id_file(role)
    old = secret_file.read_text().strip() if secret_file.exists() else ""
    with Vault.for_settings(settings, root_token) as vault, hvac_errors():
        approle = vault.client.auth.approle
        role_id: str = approle.read_role_id(role_name=role)["data"]["role_id"]
        issue_secret_id(vault, settings, role)
        log(f"{role}: new secret-id written to {secret_file}")
        if old:
            approle.destroy_secret_id(role_name=role, secret_id=old)
            log(f"{role}: the previous secret-id is destroyed")
        unlock(vault, role_id)


def _export_ca(vault: Vault, settings: Settings) -> None:
    root, intermediate = vault.ca_pem("pki"), vault.ca_pem("pki_int")
    if root is None or intermediate is None:
        raise RuntimeError("Vault has no CA to export: the PKI bootstrap did not complete")
    paths = settings.state
    paths.ca.mkdir(parents=True, exist_ok=True)
    write_private(paths.ca_cert, root, mode=0o644)
    write_private(paths.ca_chain, intermediate + root, mode=0o644)
