"""HTTPS on each implementation's HTTPS port (8443-8447 + offset), with a certificate from the
stack's Vault CA."""

from __future__ import annotations

import datetime as dt
import ssl

import httpx
import pytest
from cryptography import x509

from tests.parity.implementations import STACK_APPS, app_url
from tests.support import StackUnderTest

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("app", STACK_APPS)
async def test_https_with_the_vault_ca(stack: StackUnderTest, app: str) -> None:
    https = app_url(stack, app, "https")
    assert https.endswith(str(stack.port(app, "https")))
    context = ssl.create_default_context(cafile=stack.ca_file)
    async with (
        httpx.AsyncClient(base_url=https, verify=context, timeout=30) as secure,
        httpx.AsyncClient(base_url=app_url(stack, app), timeout=30) as plain,
    ):
        for path in (
            "/",
            "/health",
            "/examples/redis/cluster/info",
            "/examples/vault/secret/redis",
        ):
            over_tls = await secure.get(path)
            assert over_tls.status_code == 200, (path, over_tls.text)
            assert over_tls.http_version in ("HTTP/1.1", "HTTP/2")
            over_http = await plain.get(path)
            assert over_tls.json() == over_http.json(), "the same app behind both listeners"
        assert (await secure.get("/")).json()["implementation"] == app
        created = await secure.post("/examples/postgres/items", json={"name": "over tls"})
        assert created.status_code == 201, created.text
        assert (await secure.delete(created.headers["location"])).status_code == 204


@pytest.mark.parametrize("app", STACK_APPS)
async def test_https_refused_with_a_foreign_ca(
    stack: StackUnderTest, app: str, foreign_ca_file: str
) -> None:
    context = ssl.create_default_context(cafile=foreign_ca_file)
    async with httpx.AsyncClient(verify=context, timeout=30) as client:
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await client.get(f"{app_url(stack, app, 'https')}/health")


@pytest.mark.parametrize("app", STACK_APPS)
def test_certificate_is_issued_for_loopback(stack: StackUnderTest, app: str) -> None:
    pem = ssl.get_server_certificate(("127.0.0.1", stack.port(app, "https")), timeout=10)
    cert = x509.load_pem_x509_certificate(pem.encode())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "127.0.0.1" in [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)]
    assert cert.not_valid_after_utc > dt.datetime.now(dt.UTC)
