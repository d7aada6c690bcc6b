"""The library's own TLS: with a CA that signed nothing here, every server refuses it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from devstack_client import DependencyUnavailable, DevStackClient, ssl_context
from tests.conftest import StackUnderTest
from tests.integration.client.conftest import client_settings


def foreign_ca(folder: Path) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Not Our CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = folder / "foreign-ca.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def test_the_context_checks_hostnames_and_requires_tls12(stack: StackUnderTest) -> None:
    context = ssl_context(Path(stack.ca_file).read_text())
    assert context.check_hostname
    assert context.minimum_version.name == "TLSv1_2"


async def test_every_server_refuses_a_foreign_ca(stack: StackUnderTest, tmp_path: Path) -> None:
    settings = client_settings(stack, ca_file=foreign_ca(tmp_path), connect_timeout=1.0)
    async with DevStackClient(settings) as client:
        for backend in ("postgres", "mysql", "mongodb"):
            with pytest.raises(DependencyUnavailable) as caught:
                await client.items(backend).query()  # type: ignore[arg-type]
            assert caught.value.dependency == backend
            assert "CERTIFICATE_VERIFY_FAILED" in repr(caught.value.__cause__) or (
                "certificate verification failed" in caught.value.message.lower()
            ), (backend, caught.value.__cause__)
        with pytest.raises(DependencyUnavailable, match="TLS certificate verification failed"):
            await client.cache.put("tls", "x")
        with pytest.raises(DependencyUnavailable):
            await client.queues.inspect("tls")
        report = await client.health()
        assert report.status == "unhealthy"
        assert report.checks["vault"].status == "healthy"
        assert all(report.checks[d].status == "unhealthy" for d in client.dependencies)
