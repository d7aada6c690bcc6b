"""The service table: validation, profiles, and what the bootstrap derives from it."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack_cli.bootstrap import application_secret, render_policy
from devstack_cli.stack import Stack, UnknownProfileError, load_stack, stack

TABLE = stack()


def test_profiles_name_the_documented_services() -> None:
    assert [s.name for s in TABLE.in_profile("minimal")] == [
        "vault",
        "postgres",
        "pgbouncer",
        "redis",
    ]
    assert [s.name for s in TABLE.in_profile("standard")] == [
        "vault",
        "postgres",
        "pgbouncer",
        "redis",
        "mysql",
        "mongodb",
        "rabbitmq",
        "code_first",
        "api_first",
    ]

    assert [s.name for s in TABLE.in_profile("full")] == [
        *(s.name for s in TABLE.in_profile("standard")),
        "golang",
        "nodejs",
        "rust",
    ]


def test_a_profile_expression_adds_services_with_what_they_come_after() -> None:
    assert [s.name for s in TABLE.in_profile("minimal+golang")] == [
        "vault",
        "postgres",
        "pgbouncer",
        "redis",
        "mysql",
        "mongodb",
        "rabbitmq",
        "golang",
    ]
    assert [s.name for s in TABLE.in_profile("standard+rust+nodejs")] == [
        *(s.name for s in TABLE.in_profile("standard")),
        "nodejs",
        "rust",
    ]


@pytest.mark.parametrize("expression", ["huge", "standard+huge", "golang", "standard+"])
def test_unknown_profile_names_the_choices(expression: str) -> None:
    with pytest.raises(
        UnknownProfileError, match="choose one of: full, minimal, observability, standard"
    ):
        TABLE.in_profile(expression)


def test_ports_follow_the_stack_table() -> None:
    ports = {name: s.ports for name, s in TABLE.services.items()}
    assert ports["vault"]["api"] == 8200
    assert ports["postgres"]["postgres"] == 5432
    assert ports["pgbouncer"]["pgbouncer"] == 6432
    assert ports["mysql"]["mysql"] == 3306
    assert ports["mongodb"]["mongodb"] == 27017
    assert (ports["redis"]["redis"], ports["redis"]["tls"]) == (6379, 6390)
    assert TABLE.service("redis").instances == 3
    rabbit = ports["rabbitmq"]
    assert (rabbit["amqp"], rabbit["amqps"], rabbit["management"]) == (5672, 5671, 15672)


def write_table(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "services.toml"
    path.write_text('[profiles]\nminimal = "x"\n' + text)
    return path


def test_a_port_declared_twice_is_refused(tmp_path: Path) -> None:
    path = write_table(
        tmp_path,
        """
[services.a]
description = "a"
kind = "server"
ports = { main = 7000 }
[services.b]
description = "b"
kind = "server"
instances = 2
ports = { main = 6999 }
""",
    )
    with pytest.raises(ValueError, match=r"port 7000 is declared by a\.main and b\.main"):
        load_stack(path)


def test_unknown_references_are_refused(tmp_path: Path) -> None:
    path = write_table(
        tmp_path,
        """
[services.a]
description = "a"
kind = "server"
ports = { main = 7000 }
after = ["nope"]
""",
    )
    with pytest.raises(ValueError, match="'after' names unknown service 'nope'"):
        load_stack(path)
    path = write_table(
        tmp_path,
        """
[services.a]
description = "a"
kind = "server"
ports = { main = 7000 }
reads = ["a"]
""",
    )
    with pytest.raises(ValueError, match="'reads' names 'a', which has no secret"):
        load_stack(path)


def test_policies_grant_exactly_the_readable_secrets() -> None:
    policy = render_policy(TABLE.service("pgbouncer"))
    assert 'path "secret/data/postgres"' in policy
    assert 'path "pki_int/issue/pgbouncer"' in policy
    assert "admin/" not in policy
    assert "*" not in policy
    postgres = render_policy(TABLE.service("postgres"))
    assert 'path "secret/data/admin/postgres"' in postgres
    for api in ("code_first", "api_first"):
        text = render_policy(TABLE.service(api))
        for dep in ("postgres", "mysql", "mongodb", "redis", "rabbitmq"):
            assert f'path "secret/data/{dep}"' in text
        assert "admin/" not in text


def test_no_application_reads_an_admin_secret() -> None:
    for service in TABLE.services.values():
        for path in service.readable_secrets():
            if path.startswith("admin/"):
                assert path == f"admin/{service.name}"


def test_generated_secrets_are_long_and_distinct() -> None:
    first = application_secret(TABLE.service("postgres"))
    second = application_secret(TABLE.service("postgres"))
    assert len(first["password"]) >= 25
    assert first["password"] != second["password"]
    assert first["user"] == "devstack"
    assert first["database"] == "devstack"
    assert first["tls_enabled"] is True
    assert application_secret(TABLE.service("rabbitmq"))["vhost"] == "dev_vhost"


def test_the_table_validates_as_a_model() -> None:
    assert isinstance(TABLE, Stack)


def test_the_port_offset_range_is_documented_and_enforced() -> None:
    """README states the range Settings enforces; the highest port stays below 49152."""
    import re
    import subprocess
    import sys

    from devstack_cli.settings import PORT_OFFSET_RANGE, Settings, SettingsError, repo_root

    low, high = PORT_OFFSET_RANGE
    Settings(port_offset=high)
    for refused_value in (low - 1, high + 1):
        with pytest.raises(SettingsError, match="DEVSTACK_PORT_OFFSET"):
            Settings(port_offset=refused_value)
    readme = (repo_root() / "README.md").read_text()
    stated = re.search(r"N is (\d+) to (\d+) \(anything else is refused with exit code 2\)", readme)
    assert stated is not None, "README does not state the DEVSTACK_PORT_OFFSET range"
    assert (int(stated[1]), int(stated[2])) == (low, high)
    highest = max(
        base + i
        for s in stack().services.values()
        for base in s.ports.values()
        for i in range(s.instances)
    )
    assert f"{highest} + N" in readme
    assert highest + high < 49152
    refused = subprocess.run(
        [sys.executable, "-m", "devstack_cli", "status"],
        env={"DEVSTACK_PORT_OFFSET": str(high + 1), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert refused.returncode == 2
    assert "DEVSTACK_PORT_OFFSET" in refused.stderr
