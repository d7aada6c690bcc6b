"""The same security checks as natively, against the containers: no container's environment,
arguments or process list holds the root token; only the bootstrap mounts the volume it lives in;
each server's certificate (issued inside its container) names the service."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import psutil
import pytest
from cryptography import x509

from tests.integration.compose.support import ComposeStack

SERVERS_WITH_TLS = ["postgres", "pgbouncer", "redis", "mysql", "mongodb", "rabbitmq"]


def service_of(container: dict[str, Any]) -> str:
    return str(container["Config"]["Labels"]["com.docker.compose.service"])


def test_no_container_holds_the_root_token(compose_stack: ComposeStack) -> None:
    token = compose_stack.root_token()
    assert len(token) > 20
    scanned: dict[str, int] = {}
    for container in compose_stack.containers():
        name = service_of(container)
        config = container["Config"]
        assert not any(token in item for item in config.get("Env") or []), name
        assert not any(token in item for item in config.get("Cmd") or []), name
        pid = container["State"].get("Pid") or 0
        if not pid:
            continue  # a one-shot that has finished
        root = psutil.Process(pid)
        for proc in [root, *root.children(recursive=True)]:
            try:
                environ = Path(f"/proc/{proc.pid}/environ").read_bytes()
                cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
            except (FileNotFoundError, ProcessLookupError):
                continue
            assert token.encode() not in environ, f"{name}: pid {proc.pid}'s environment"
            assert token.encode() not in cmdline, f"{name}: pid {proc.pid}'s arguments"
            scanned[name] = scanned.get(name, 0) + 1
    for server in ("vault", "postgres", "redis-1", "mysql", "rabbitmq", "code_first"):
        assert scanned.get(server), f"{server}'s processes were not scanned"


def test_only_the_bootstrap_mounts_the_root_token_volume(compose_stack: ComposeStack) -> None:
    holders = [
        service_of(c)
        for c in compose_stack.containers()
        if any(str(m.get("Name", "")).endswith("_vault-init") for m in c["Mounts"])
    ]
    assert holders == ["vault-bootstrap"]


@pytest.mark.parametrize("service", SERVERS_WITH_TLS)
def test_each_server_has_its_own_certificate(compose_stack: ComposeStack, service: str) -> None:
    container = next(
        c
        for c in compose_stack.containers()
        if service_of(c) in (service, f"{service}-1") and c["State"]["Status"] == "running"
    )
    folder = f"/state/{service}/redis-1/tls" if service == "redis" else f"/state/{service}/tls"
    with tempfile.TemporaryDirectory() as tmp:
        compose_stack.docker("cp", f"{container['Id']}:{folder}/cert.pem", tmp)
        cert = x509.load_pem_x509_certificate((Path(tmp) / "cert.pem").read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(sans.get_values_for_type(x509.DNSName)) >= {service, "localhost"}
    assert "127.0.0.1" in {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}
    assert cert.issuer.rfc4514_string() == "CN=DevStack Core Intermediate CA"
