"""Ports: the launcher passes each API every dependency's port explicitly (from the service
table), and the tables of base ports the Python libraries keep as a fallback agree with it."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from devstack_cli import appenv
from devstack_cli.settings import Settings
from devstack_cli.stack import stack
from devstack_client import DEPENDENCIES, ClientSettings
from devstack_web import DEFAULT_PORTS as WEB_DEFAULT_PORTS

TLS_PORTS = {"redis": "tls", "rabbitmq": "amqps"}
PLAIN_PORTS = {"postgres": "postgres", "mysql": "mysql", "mongodb": "mongodb"}
PLAIN_PORTS |= {"redis": "redis", "rabbitmq": "amqp"}


@pytest.mark.parametrize("offset", [0, 550])
def test_the_launcher_variables_name_the_port_of_every_dependency_in_the_table(
    tmp_path: Path, offset: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = appenv.dependency_env(Settings(state_dir=tmp_path, port_offset=offset))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    # A port offset the app would otherwise add: the explicit ports must not depend on it.
    client = ClientSettings(vault_token=SecretStr("t"), port_offset=9)
    table = stack()
    for dependency in DEPENDENCIES:
        service = table.service(dependency)
        plain = service.ports[PLAIN_PORTS[dependency]] + offset
        assert client.endpoint(dependency, tls=False) == ("127.0.0.1", plain)
        tls = service.ports[TLS_PORTS.get(dependency, PLAIN_PORTS[dependency])] + offset
        assert client.endpoint(dependency, tls=True) == ("127.0.0.1", tls)
    vault = table.service("vault").ports["api"] + offset
    assert client.resolved_vault_addr == f"http://127.0.0.1:{vault}"


def test_the_web_kits_default_ports_are_the_tables() -> None:
    table = stack()
    for app, (http, https) in WEB_DEFAULT_PORTS.items():
        ports = table.service(app).ports
        assert (http, https) == (ports["http"], ports["https"])
    python_apps = {s.name for s in table.services.values() if s.kind == "api"}
    assert set(WEB_DEFAULT_PORTS) <= python_apps
