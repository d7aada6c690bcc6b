"""A small synchronous Vault (OpenBao) HTTP client for the command line and the server launchers.

The CLI needs a handful of admin calls (init, unseal, mounts, policies, roles) and each launcher
needs three (AppRole login, read a secret, issue a certificate). They are plain JSON calls over
HTTP on loopback, so the standard library's `http.client` does: every server launcher imports
this module, and an HTTP library would cost each of them more start-up time than all of its
calls. Applications use `devstack_client` instead.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.parse
from pathlib import Path
from typing import Any

from devstack_cli.settings import Settings

# What a request to a Vault that is not (yet) there raises: refused, reset, timed out, cut off.
UNREACHABLE = (OSError, http.client.HTTPException)


class VaultError(RuntimeError):
    """Vault answered with an error; the message carries Vault's own words, never a secret."""

    def __init__(self, method: str, path: str, status: int, errors: list[str]) -> None:
        self.status = status
        self.errors = errors
        detail = "; ".join(errors) or "no detail"
        super().__init__(f"Vault {method} {path} answered {status}: {detail}")


class Vault:
    def __init__(self, address: str, token: str | None = None, timeout: float = 60.0) -> None:
        self.address = address
        self.token = token
        # Generous: `operator init` waits for raft to elect itself, which takes seconds on an
        # idle machine and much longer on a loaded one. The callers are one-off commands.
        self.timeout = timeout
        parts = urllib.parse.urlsplit(address)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"the stack's Vault is plain HTTP on loopback, not {address!r}")
        self._host, self._port = parts.hostname, parts.port or 80

    def _request(
        self, method: str, path: str, body: dict[str, Any] | None = None, token: bool = True
    ) -> tuple[int, bytes]:
        """One request on a connection of its own (loopback: cheap); (status, body)."""
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if token and self.token:
            headers["X-Vault-Token"] = self.token
        data = json.dumps(body).encode() if body is not None else None
        conn = http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)
        try:
            conn.request(method, path, body=data, headers=headers)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    @classmethod
    def for_settings(cls, settings: Settings, token: str | None = None) -> Vault:
        from devstack_cli.stack import stack

        port = settings.port(stack().service("vault").ports["api"])
        return cls(f"http://127.0.0.1:{port}", token)

    def close(self) -> None:
        """Nothing to release: each request has its own connection."""

    def __enter__(self) -> Vault:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        missing_ok: bool = False,
    ) -> dict[str, Any] | None:
        status, content = self._request(method, f"/v1/{path}", body)
        if status == 404 and missing_ok:
            return None
        if status >= 400:
            try:
                errors = [str(e) for e in json.loads(content).get("errors", [])]
            except (ValueError, AttributeError):
                errors = [content[:200].decode(errors="replace")]
            raise VaultError(method, path, status, errors)
        if status == 204 or not content:
            return {}
        result: dict[str, Any] = json.loads(content)
        return result

    def read(self, path: str) -> dict[str, Any] | None:
        return self.call("GET", path, missing_ok=True)

    def write(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.call("POST", path, body) or {}

    # -- status ---------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """sys/health without treating sealed or uninitialised as an error."""
        path = "/v1/sys/health?sealedcode=200&uninitcode=200&standbycode=200"
        status, content = self._request("GET", path, token=False)
        if status != 200:
            raise VaultError("GET", "sys/health", status, [content[:200].decode(errors="replace")])
        result: dict[str, Any] = json.loads(content)
        return result

    def wait_until_reachable(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.health()
            except (*UNREACHABLE, VaultError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def wait_until_active(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self._request("GET", "/v1/sys/health", token=False)[0] == 200:
                    return
            except UNREACHABLE:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("Vault did not become active (unsealed and leader) in time")
            time.sleep(0.2)

    # -- the calls every service makes ----------------------------------------------------

    def ca_pem(self, mount: str) -> str | None:
        """The PEM certificate of a PKI mount's CA, or None before it has one."""
        status, content = self._request("GET", f"/v1/{mount}/ca/pem", token=False)
        text = content.decode(errors="replace")
        if status == 200 and "BEGIN CERTIFICATE" in text:
            return text.strip() + "\n"
        return None

    def login_approle(self, role_id: str, secret_id: str) -> Vault:
        """A new client holding the token of this AppRole."""
        result = self.write("auth/approle/login", {"role_id": role_id, "secret_id": secret_id})
        return Vault(self.address, result["auth"]["client_token"])

    def kv_get(self, path: str) -> dict[str, Any] | None:
        result = self.read(f"secret/data/{path}")
        if result is None:
            return None
        data: dict[str, Any] = result["data"]["data"]
        return data


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
