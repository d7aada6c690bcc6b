"""The command line's and the server launchers' Vault (OpenBao) calls, through hvac.

They are synchronous one-shots: the bootstrap (init, unseal, mounts, PKI, policies, AppRoles),
each launcher (AppRole login, read a secret, issue a certificate, revoke its token) and the
`devstack vault` commands. So they use hvac, the well-kept synchronous Vault client, which speaks
to OpenBao. `Vault` is a thin facade over one `hvac.Client`: it keeps the names the callers and
the tests use (`Vault.for_settings`, `login_as`, `kv_get`, `call`...), and every failure leaving
it is our one error type, `VaultError` (from `devstack_vault_errors`, shared with
devstack_client): Vault's own words, the method and the path, never a token, secret-id or secret
value (`from_hvac`, `from_requests`). Applications use `devstack_client` instead (async; hvac has
no asyncio support).

What hvac is told, and why:
- `token=""` when there is none: given `None`, hvac would take `VAULT_TOKEN` or the user's
  `~/.vault-token` and send it to the stack's Vault;
- a `requests.Session` with `trust_env=False`: requests would otherwise send these loopback calls
  (tokens included) through an `HTTP_PROXY` from the environment, and read `~/.netrc`;
- a 60 s timeout: `operator init` waits for raft to elect itself, which takes seconds on an idle
  machine and much longer on a loaded one.

hvac has no method for two calls we make; they go through hvac's own adapter (its session, its
token header, its errors) as plain paths: lifting an AppRole's lockout
(`sys/locked-users/<accessor>/unlock/<role-id>`) and Vault's metrics in Prometheus's format
(`sys/metrics?format=prometheus`). `call`, `read` and `write` do the same for the tests.

Start-up cost: every launcher imports this module, and hvac imports requests (and urllib3,
charset_normalizer, idna); docs/architecture.md records the measured figure.
"""

from __future__ import annotations

import contextlib
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hvac
import hvac.adapters
import hvac.exceptions
import requests

from devstack_cli.settings import Settings
from devstack_vault_errors import NO_ANSWER, VaultError, error_messages

__all__ = ["NO_ANSWER", "Vault", "VaultError", "from_hvac", "from_requests", "login_as"]

# The status each of hvac's exception classes stands for: hvac keeps no status on its exceptions;
# `_Adapter` adds the real one, this covers an exception raised without it.
_STATUS_OF = {
    hvac.exceptions.InvalidRequest: 400,
    hvac.exceptions.Unauthorized: 401,
    hvac.exceptions.Forbidden: 403,
    hvac.exceptions.InvalidPath: 404,
    hvac.exceptions.PreconditionFailed: 412,
    hvac.exceptions.RateLimitExceeded: 429,
    hvac.exceptions.InternalServerError: 500,
    hvac.exceptions.VaultNotInitialized: 501,
    hvac.exceptions.BadGateway: 502,
    hvac.exceptions.VaultDown: 503,
}


def _path_of(url: str | None) -> str:
    """`sys/init` from `http://127.0.0.1:8200/v1/sys/init?x=y` (the query is left out)."""
    path = urllib.parse.urlsplit(url or "").path.lstrip("/")
    return path.removeprefix("v1/") or "?"


def from_hvac(exc: hvac.exceptions.VaultError) -> VaultError:
    """Our error for one of hvac's: the method, the path, the status and Vault's own words.

    Vault's words are read from the answer's body by the shared parser (its JSON `errors`, never
    the raw body). An exception hvac raised without asking Vault (a parameter it refused) is named
    by its class only: its message could quote an argument."""
    status = getattr(exc, "status_code", None) or next(
        (s for cls, s in _STATUS_OF.items() if isinstance(exc, cls)), 0
    )
    if exc.url is None and exc.text is None:
        return VaultError((exc.method or "-").upper(), "-", status, [f"hvac: {type(exc).__name__}"])
    errors = error_messages(exc.text, status)
    return VaultError((exc.method or "?").upper(), _path_of(exc.url), status, errors)


def from_requests(exc: requests.RequestException) -> VaultError:
    """Our error for a call Vault did not answer: refused, reset, timed out, cut off."""
    request = exc.request
    method = str(getattr(request, "method", None) or "?")
    reason = "timed out" if isinstance(exc, requests.Timeout) else type(exc).__name__
    return VaultError(method, _path_of(getattr(request, "url", None)), NO_ANSWER, [reason])


@contextlib.contextmanager
def hvac_errors() -> Iterator[None]:
    """Within it, any failure of hvac or requests leaves as our `VaultError`."""
    try:
        yield
    except hvac.exceptions.VaultError as exc:
        raise from_hvac(exc) from None
    except requests.RequestException as exc:
        raise from_requests(exc) from exc


class _Adapter(hvac.adapters.JSONAdapter):  # type: ignore[misc]  # hvac ships no types
    """hvac's JSON adapter, keeping the answer's status on the exception it raises."""

    def _raise_for_error(self, method: str, url: str, response: requests.Response) -> None:
        try:
            super()._raise_for_error(method, url, response)
        except hvac.exceptions.VaultError as exc:
            exc.status_code = response.status_code
            raise


class Vault:
    """One `hvac.Client` on the stack's Vault, with or without a token; use it as a context."""

    def __init__(self, address: str, token: str | None = None, timeout: float = 60.0) -> None:
        parts = urllib.parse.urlsplit(address)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"the stack's Vault is plain HTTP on loopback, not {address!r}")
        self.address = address
        self.timeout = timeout
        session = requests.Session()
        session.trust_env = False  # no proxy, no ~/.netrc: see the module's docstring
        self.client = hvac.Client(
            url=address, token=token or "", timeout=timeout, session=session, adapter=_Adapter
        )

    @classmethod
    def for_settings(cls, settings: Settings, token: str | None = None) -> Vault:
        from devstack_cli.stack import stack

        port = settings.port(stack().service("vault").ports["api"])
        return cls(f"http://127.0.0.1:{port}", token)

    @property
    def token(self) -> str | None:
        token: str | None = self.client.token or None
        return token

    def close(self) -> None:
        self.client.adapter.close()

    def __enter__(self) -> Vault:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- any path (through hvac's adapter): the tests, and what hvac has no method for ------

    def call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        missing_ok: bool = False,
    ) -> dict[str, Any] | None:
        """One request to `/v1/<path>`; its JSON answer, `{}` when it has none, None when it is
        404 and `missing_ok`."""
        with hvac_errors():
            try:
                answer = self.client.adapter.request(method, f"/v1/{path}", json=body)
            except hvac.exceptions.InvalidPath:
                if missing_ok:
                    return None
                raise
        return answer if isinstance(answer, dict) else {}

    def read(self, path: str) -> dict[str, Any] | None:
        return self.call("GET", path, missing_ok=True)

    def write(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.call("POST", path, body) or {}

    # -- status ---------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """sys/health without treating sealed, uninitialised or standby as an error."""
        with hvac_errors():
            answer = self.client.sys.read_health_status(
                method="GET", sealed_code=200, uninit_code=200, standby_code=200
            )
        if not isinstance(answer, dict):  # hvac hands back the response of a non-200 answer
            status = answer.status_code
            raise VaultError("GET", "sys/health", status, error_messages(answer.text, status))
        return answer

    def is_active(self) -> bool:
        """Initialised, unsealed and the leader (sys/health answers 200)."""
        with hvac_errors():
            answer = self.client.sys.read_health_status(method="HEAD")
        return int(answer.status_code) == 200

    def wait_until_reachable(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.health()
            except VaultError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def wait_until_active(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(VaultError):
                if self.is_active():
                    return
            if time.monotonic() > deadline:
                raise TimeoutError("Vault did not become active (unsealed and leader) in time")
            time.sleep(0.2)

    # -- the calls every service makes ----------------------------------------------------

    def ca_pem(self, mount: str) -> str | None:
        """The PEM certificate of a PKI mount's CA, or None before it has one."""
        try:
            with hvac_errors():
                text = str(self.client.secrets.pki.read_ca_certificate(mount_point=mount))
        except VaultError as exc:
            if exc.answered and exc.status < 500:  # no CA yet (Vault answers 204, 400 or 404)
                return None
            raise
        return text.strip() + "\n" if "BEGIN CERTIFICATE" in text else None

    def login_approle(self, role_id: str, secret_id: str) -> Vault:
        """A new client holding the token of this AppRole."""
        vault = Vault(self.address, timeout=self.timeout)
        with hvac_errors():
            vault.client.auth.approle.login(role_id=role_id, secret_id=secret_id)
        return vault

    def kv_get(self, path: str, mount: str = "secret") -> dict[str, Any] | None:
        """The latest version of a KV v2 secret, or None when there is none."""
        try:
            with hvac_errors():
                answer = self.client.secrets.kv.v2.read_secret_version(
                    path=path, mount_point=mount, raise_on_deleted_version=True
                )
        except VaultError as exc:
            if exc.status == 404:
                return None
            raise
        data: dict[str, Any] = answer["data"]["data"]
        return data

    def issue_certificate(self, role: str, common_name: str, **params: str) -> dict[str, Any]:
        """A certificate and its key from `pki_int/issue/<role>` (the answer's `data`)."""
        with hvac_errors():
            answer = self.client.secrets.pki.generate_certificate(
                name=role, common_name=common_name, extra_params=params, mount_point="pki_int"
            )
        data: dict[str, Any] = answer["data"]
        return data

    def token_ttl(self) -> int:
        """The remaining life of this client's token, in seconds."""
        with hvac_errors():
            return int(self.client.auth.token.lookup_self()["data"]["ttl"])

    def renew_token(self) -> int:
        """Renew this client's token; the lease granted, in seconds."""
        with hvac_errors():
            return int(self.client.auth.token.renew_self()["auth"]["lease_duration"])

    def revoke_token(self) -> None:
        with hvac_errors():
            self.client.auth.token.revoke_self()


def login_as(settings: Settings, service: str) -> Vault:
    """Log in with a service's own AppRole (its role-id and secret-id files)."""
    paths = settings.state
    role_id = _read_credential(paths.role_id_file(service))
    secret_id = _read_credential(paths.secret_id_file(service))
    with Vault.for_settings(settings) as anonymous:
        return anonymous.login_approle(role_id, secret_id)


def _read_credential(path: Path) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{path} is missing: run `devstack up` (or `devstack vault bootstrap`) first"
        ) from None
