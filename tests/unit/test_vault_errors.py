"""The CLI's Vault errors: hvac's and requests' exceptions in, our one `VaultError` out, worded
with Vault's own words and never a token, secret-id or secret value (issue 10).

The fake Vault is a real HTTP server on loopback: hvac and requests do their real work."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import hvac.exceptions
import pytest
import requests

from devstack_cli.vault import NO_ANSWER, Vault, VaultError, from_hvac, from_requests
from devstack_vault_errors import describe_answer, error_messages

SECRET_ID = "5e1b0c3a-secret-id-never-shown"
TOKEN = "s.root-token-never-shown"


def test_error_messages_are_vaults_own_words() -> None:
    body = json.dumps({"errors": ["permission denied", " "]})
    assert error_messages(body, 403) == ["permission denied"]
    assert error_messages(body.encode(), 403) == ["permission denied"]


@pytest.mark.parametrize(
    "body", [f"<html>proxy error for {SECRET_ID}</html>", b"\xff\xfe", "", None, '{"errors": []}']
)
def test_a_body_that_is_not_vaults_json_becomes_its_status(body: bytes | str | None) -> None:
    assert error_messages(body, 502) == ["HTTP 502"]


def test_describe_answer() -> None:
    assert describe_answer("GET", "sys/mounts", 403, ["a", "b"]) == (
        "GET sys/mounts answered 403: a; b"
    )
    assert describe_answer("GET", "sys/health", NO_ANSWER, ["timed out"]) == (
        "GET sys/health did not answer: timed out"
    )


def test_a_real_hvac_exception_becomes_ours() -> None:
    text = json.dumps({"errors": ["invalid role or secret ID"]})
    exc = hvac.exceptions.VaultError.from_status(
        400,
        None,
        errors=["invalid role or secret ID"],
        method="post",
        url="http://127.0.0.1:8200/v1/auth/approle/login",
        text=text,
        json=json.loads(text),
    )
    ours = from_hvac(exc)
    assert isinstance(ours, VaultError)
    assert isinstance(ours, RuntimeError)  # callers that catch RuntimeError still do
    assert (ours.status, ours.path, ours.errors) == (
        400,
        "auth/approle/login",
        ["invalid role or secret ID"],
    )
    assert str(ours) == "Vault POST auth/approle/login answered 400: invalid role or secret ID"


def test_an_hvac_exception_without_vaults_json_shows_no_body() -> None:
    exc = hvac.exceptions.InternalServerError(
        f"upstream said {SECRET_ID}",
        method="GET",
        url="http://127.0.0.1:8200/v1/secret/data/postgres",
        text=f"upstream said {SECRET_ID}",
    )
    ours = from_hvac(exc)
    assert (ours.status, ours.errors) == (500, ["HTTP 500"])
    assert SECRET_ID not in str(ours)


def test_an_exception_hvac_raised_itself_is_named_by_its_class_only() -> None:
    ours = from_hvac(hvac.exceptions.ParamValidationError(f"bad value {SECRET_ID}"))
    assert SECRET_ID not in str(ours)
    assert "ParamValidationError" in str(ours)


def test_a_connection_error_becomes_no_answer() -> None:
    request = requests.Request("GET", "http://127.0.0.1:1/v1/sys/health?standbycode=200").prepare()
    ours = from_requests(requests.ConnectionError("refused", request=request))
    assert (ours.status, ours.answered, ours.path) == (NO_ANSWER, False, "sys/health")
    assert str(ours) == "Vault GET sys/health did not answer: ConnectionError"
    timeout = from_requests(requests.ReadTimeout("slow", request=request))
    assert timeout.errors == ["timed out"]


# -- through hvac, against a fake Vault on loopback ----------------------------------------


class FakeVault(BaseHTTPRequestHandler):
    """Refuses every login (400, Vault's words); 405 to a DELETE; records the token headers."""

    tokens: ClassVar[list[str | None]] = []

    def _answer(self, status: int, body: dict[str, Any] | None) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        FakeVault.tokens.append(self.headers.get("X-Vault-Token"))
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._answer(400, {"errors": ["invalid role or secret ID"]})

    def do_DELETE(self) -> None:
        self._answer(405, {"errors": ["unsupported operation"]})

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def fake_vault() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeVault)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    FakeVault.tokens = []
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_refused_login_names_vaults_words_and_never_the_secret_id(
    fake_vault: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Neither a token from the environment nor a proxy from it is used on loopback.
    monkeypatch.setenv("VAULT_TOKEN", TOKEN)
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with Vault(fake_vault) as vault, pytest.raises(VaultError) as refused:
        vault.login_approle("role", SECRET_ID)
    assert refused.value.status == 400
    assert str(refused.value) == (
        "Vault POST auth/approle/login answered 400: invalid role or secret ID"
    )
    assert SECRET_ID not in str(refused.value)
    assert refused.value.__cause__ is None
    assert FakeVault.tokens == [None]


def test_a_status_hvac_has_no_class_for_keeps_its_number(fake_vault: str) -> None:
    with Vault(fake_vault, TOKEN) as vault, pytest.raises(VaultError) as refused:
        vault.call("DELETE", "auth/approle/role/x")
    assert (refused.value.status, refused.value.errors) == (405, ["unsupported operation"])
    assert TOKEN not in str(refused.value)


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_a_vault_that_is_not_there_did_not_answer() -> None:
    with Vault(f"http://127.0.0.1:{closed_port()}", timeout=5) as vault:
        with pytest.raises(VaultError) as down:
            vault.health()
        assert not down.value.answered
        assert str(down.value).startswith("Vault GET sys/health did not answer")
