"""Settings refuse what cannot work safely, and agree with the stack's table."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from devstack_cli.stack import stack as service_table
from devstack_client import ClientSettings, ConfigurationError
from devstack_client.settings import DEFAULT_PORTS


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("DEVSTACK_") or name in ("VAULT_TOKEN", "BAO_TOKEN"):
            monkeypatch.delenv(name)


def test_no_credentials_is_refused_and_no_root_token_fallback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VAULT_TOKEN", "s.abcdefghijklmnopqrstuvwx")
    with pytest.raises(ValidationError, match="no Vault credentials"):
        ClientSettings()


def test_a_token_and_an_approle_together_are_refused() -> None:
    with pytest.raises(ValidationError, match="not both"):
        ClientSettings(
            vault_token=SecretStr("s.x"),
            vault_role_id=SecretStr("r"),
            vault_secret_id=SecretStr("s"),
        )


def test_an_explicit_token_alone_is_accepted() -> None:
    settings = ClientSettings(vault_token=SecretStr("s.abc"))
    assert settings.vault_token is not None
    assert "s.abc" not in repr(settings)


def test_a_role_id_without_secret_id_is_refused() -> None:
    with pytest.raises(ValidationError, match="no Vault credentials"):
        ClientSettings(vault_role_id=SecretStr("r"))


def test_an_approle_name_needs_a_state_dir() -> None:
    with pytest.raises(ValidationError, match="state_dir"):
        ClientSettings(approle="code_first")


def test_plain_http_to_a_remote_vault_is_refused() -> None:
    with pytest.raises(ValidationError, match="plain HTTP"):
        ClientSettings(vault_addr="http://vault.example.com:8200", vault_token=SecretStr("s.x"))
    ClientSettings(vault_addr="https://vault.example.com:8200", vault_token=SecretStr("s.x"))
    ClientSettings(
        vault_addr="http://vault.example.com:8200",
        vault_token=SecretStr("s.x"),
        vault_allow_insecure_http=True,
    )


def test_environment_variables_configure_the_client(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DEVSTACK_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("DEVSTACK_PORT_OFFSET", "100")
    monkeypatch.setenv("DEVSTACK_APPROLE", "api_first")
    monkeypatch.setenv("DEVSTACK_POSTGRES_PORT", "6532")
    settings = ClientSettings()
    assert settings.resolved_vault_addr == "http://127.0.0.1:8300"
    assert settings.endpoint("postgres") == ("127.0.0.1", 6532)  # explicit: used as is
    assert settings.endpoint("mysql") == ("127.0.0.1", 3406)
    assert settings.endpoint("redis") == ("127.0.0.1", 6490)  # the TLS port
    assert settings.endpoint("redis", tls=False) == ("127.0.0.1", 6479)
    assert settings.endpoint("rabbitmq") == ("127.0.0.1", 5771)


def test_approle_files_are_read_from_the_state_dir(tmp_path: Path) -> None:
    role_dir = tmp_path / "approle" / "code_first"
    role_dir.mkdir(parents=True)
    (role_dir / "role-id").write_text("the-role\n")
    (role_dir / "secret-id").write_text("the-secret\n")
    settings = ClientSettings.for_stack(tmp_path, 0, "code_first")
    assert (settings.read_role_id(), settings.read_secret_id()) == ("the-role", "the-secret")
    (role_dir / "secret-id").write_text("rotated\n")
    assert settings.read_secret_id() == "rotated", "re-read at each login"


def test_a_missing_approle_file_is_a_configuration_error(tmp_path: Path) -> None:
    settings = ClientSettings.for_stack(tmp_path, 0, "code_first")
    with pytest.raises(ConfigurationError, match="role-id"):
        settings.read_role_id()


@pytest.mark.parametrize(
    ("field", "value"),
    [("port_offset", -1), ("pool_max_size", 0), ("operation_timeout", 0), ("secret_ttl", -5)],
)
def test_out_of_range_values_are_refused(field: str, value: float) -> None:
    with pytest.raises(ValidationError):
        ClientSettings.model_validate({"vault_token": "s.x", field: value})


def test_unknown_secret_path_overrides_are_refused() -> None:
    with pytest.raises(ValidationError, match="unknown dependencies"):
        ClientSettings(vault_token=SecretStr("s.x"), secret_paths={"oracle": "db"})


def test_default_ports_agree_with_the_service_table() -> None:
    table = service_table()
    assert DEFAULT_PORTS["vault"] == table.service("vault").ports["api"]
    assert DEFAULT_PORTS["postgres"] == table.service("postgres").ports["postgres"]
    assert DEFAULT_PORTS["pgbouncer"] == table.service("pgbouncer").ports["pgbouncer"]
    assert DEFAULT_PORTS["mysql"] == table.service("mysql").ports["mysql"]
    assert DEFAULT_PORTS["mongodb"] == table.service("mongodb").ports["mongodb"]
    assert DEFAULT_PORTS["redis"] == table.service("redis").ports["redis"]
    assert DEFAULT_PORTS["redis_tls"] == table.service("redis").ports["tls"]
    assert DEFAULT_PORTS["rabbitmq"] == table.service("rabbitmq").ports["amqp"]
    assert DEFAULT_PORTS["rabbitmq_tls"] == table.service("rabbitmq").ports["amqps"]
