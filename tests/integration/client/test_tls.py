"""The library's own TLS: with a CA that signed nothing here, every server refuses it."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack_client import DependencyUnavailable, DevStackClient, ssl_context
from tests.support import StackUnderTest, client_settings


def test_the_context_checks_hostnames_and_requires_tls12(stack: StackUnderTest) -> None:
    context = ssl_context(Path(stack.ca_file).read_text())
    assert context.check_hostname
    assert context.minimum_version.name == "TLSv1_2"


async def test_every_server_refuses_a_foreign_ca(
    stack: StackUnderTest, foreign_ca_file: str
) -> None:
    settings = client_settings(stack, ca_file=Path(foreign_ca_file), connect_timeout=1.0)
    async with DevStackClient(settings) as client:
        for backend in ("postgres", "mysql", "mongodb"):
            with pytest.raises(DependencyUnavailable) as caught:
                await client.items(backend).query()
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
