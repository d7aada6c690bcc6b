"""Client settings: one pydantic-settings class, read from `DEVSTACK_*` variables or given in code.

Vault credentials come from an AppRole: the role-id and secret-id as values, as files, or found
in a stack's state folder by AppRole name (`DEVSTACK_STATE_DIR` + `DEVSTACK_APPROLE`). There is
no root-token fallback: `VAULT_TOKEN` and friends are never read, and a bare token is used only
when given explicitly as `vault_token` (logged as a warning; a root token is refused at start).

Ports: a port left unset is the stack's default plus `port_offset` (the same meaning as for the
`devstack` command); a port set explicitly is used as it is.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from devstack_client.errors import ConfigurationError

Dependency = Literal["postgres", "mysql", "mongodb", "redis", "rabbitmq"]
DEPENDENCIES: tuple[Dependency, ...] = ("postgres", "mysql", "mongodb", "redis", "rabbitmq")

# The stack's base ports (stack/services.toml; a unit test keeps the two in agreement).
DEFAULT_PORTS: dict[str, int] = {
    "vault": 8200,
    "postgres": 5432,
    "pgbouncer": 6432,
    "mysql": 3306,
    "mongodb": 27017,
    "redis": 6379,
    "redis_tls": 6390,
    "rabbitmq": 5672,
    "rabbitmq_tls": 5671,
}


class ClientSettings(BaseSettings):
    """Where the stack is, how to log in to Vault, timeouts and pool sizes (`DEVSTACK_*`)."""

    model_config = SettingsConfigDict(
        env_prefix="DEVSTACK_", frozen=True, extra="ignore", validate_default=True
    )

    # -- where the stack is ---------------------------------------------------------------
    state_dir: Path | None = Field(
        default=None, description="a stack's state folder: AppRole files and the CA chain"
    )
    port_offset: int = Field(default=0, ge=0, le=20000)
    host: str = Field(default="127.0.0.1", description="default host of every dependency")

    # -- Vault ----------------------------------------------------------------------------
    vault_addr: str | None = Field(default=None, description="default http://<host>:8200+offset")
    approle: str | None = Field(default=None, description="AppRole name, files in the state dir")
    vault_role_id: SecretStr | None = None
    vault_role_id_file: Path | None = None
    vault_secret_id: SecretStr | None = None
    vault_secret_id_file: Path | None = None
    vault_token: SecretStr | None = Field(
        default=None, description="an explicit token instead of an AppRole (warned about)"
    )
    vault_kv_mount: str = "secret"
    vault_pki_mount: str = "pki_int"
    vault_timeout: float = Field(default=5.0, gt=0, le=120)
    vault_start_timeout: float = Field(
        default=30.0, ge=0, description="how long start() retries the first login"
    )
    vault_allow_insecure_http: bool = Field(
        default=False, description="allow plain HTTP to a Vault that is not on loopback"
    )
    token_renew_fraction: float = Field(default=2 / 3, gt=0.1, lt=0.95)
    backoff_initial: float = Field(default=0.5, gt=0, le=60)
    backoff_max: float = Field(default=30.0, gt=0, le=600)
    login_refused_retry: float = Field(
        default=960.0,
        gt=0,
        le=86400,
        description=(
            "after Vault refused the AppRole credentials (400/403), how long before they are "
            "tried again unless the role-id or secret-id changes: longer than OpenBao's "
            "15-minute lockout counter reset, so a dead secret-id never locks the role out"
        ),
    )

    # -- secrets --------------------------------------------------------------------------
    secret_ttl: float = Field(
        default=300.0, gt=0, description="a cached secret is re-read after half of this"
    )
    secret_paths: dict[str, str] = Field(
        default_factory=dict, description="KV path per dependency, default its name"
    )

    # -- TLS ------------------------------------------------------------------------------
    ca_file: Path | None = Field(
        default=None, description="CA chain; default <state>/ca/ca-chain.pem, else from Vault"
    )

    # -- dependencies (None: the stack's default plus port_offset) ------------------------
    postgres_host: str | None = None
    postgres_port: int | None = Field(default=None, gt=0, lt=65536)
    mysql_host: str | None = None
    mysql_port: int | None = Field(default=None, gt=0, lt=65536)
    mongodb_host: str | None = None
    mongodb_port: int | None = Field(default=None, gt=0, lt=65536)
    redis_host: str | None = None
    redis_port: int | None = Field(default=None, gt=0, lt=65536)
    redis_tls_port: int | None = Field(default=None, gt=0, lt=65536)
    rabbitmq_host: str | None = None
    rabbitmq_port: int | None = Field(default=None, gt=0, lt=65536)
    rabbitmq_tls_port: int | None = Field(default=None, gt=0, lt=65536)

    # -- timeouts and pools ---------------------------------------------------------------
    connect_timeout: float = Field(default=3.0, gt=0, le=120)
    operation_timeout: float = Field(default=5.0, gt=0, le=600)
    health_timeout: float = Field(default=2.0, gt=0, le=60)
    # One event loop keeps few queries in flight per server: 4 connections served 16 concurrent
    # API requests as fast as 10 did, with less memory (docs/apps.md).
    pool_max_size: int = Field(default=4, ge=1, le=1000)
    channel_pool_size: int = Field(default=8, ge=1, le=1000)
    # The contract fixes storage names so every implementation sees the same keys: cache:<key>.
    cache_key_prefix: str = Field(default="cache:", max_length=64)

    @model_validator(mode="after")
    def _check(self) -> Self:
        has_token = self.vault_token is not None
        role_given = self.vault_role_id is not None or self.vault_role_id_file is not None
        secret_given = self.vault_secret_id is not None or self.vault_secret_id_file is not None
        named = self.approle is not None
        if has_token and (role_given or secret_given or named):
            raise ValueError("configure either an AppRole or vault_token, not both")
        if not has_token:
            if named and self.state_dir is None and not (role_given and secret_given):
                raise ValueError("approle needs state_dir (its role-id and secret-id files)")
            if not named and not (role_given and secret_given):
                raise ValueError(
                    "no Vault credentials: set approle with state_dir, or the role-id and "
                    "secret-id (values or files); a root-token fallback does not exist"
                )
        if self.backoff_initial > self.backoff_max:
            raise ValueError("backoff_initial is larger than backoff_max")
        unknown = set(self.secret_paths) - set(DEPENDENCIES)
        if unknown:
            raise ValueError(f"secret_paths names unknown dependencies: {sorted(unknown)}")
        address = urlsplit(self.resolved_vault_addr)
        if address.scheme not in ("http", "https") or not address.hostname:
            raise ValueError(f"vault_addr is not an http(s) URL: {self.resolved_vault_addr!r}")
        if (
            address.scheme == "http"
            and not _is_loopback(address.hostname)
            and not self.vault_allow_insecure_http
        ):
            raise ValueError(
                "vault_addr is plain HTTP to a host that is not loopback: tokens would cross the "
                "network in clear (use https, or set vault_allow_insecure_http)"
            )
        return self

    # -- derived values -------------------------------------------------------------------

    @classmethod
    def for_stack(
        cls, state_dir: Path | str, port_offset: int = 0, approle: str = "code_first", **extra: Any
    ) -> ClientSettings:
        """Settings for a stack started by `devstack up` in `state_dir`, as AppRole `approle`."""
        return cls(state_dir=Path(state_dir), port_offset=port_offset, approle=approle, **extra)

    def default_port(self, name: str) -> int:
        """The stack's base port `name` plus the port offset."""
        return DEFAULT_PORTS[name] + self.port_offset

    @property
    def resolved_vault_addr(self) -> str:
        """Vault's address: `vault_addr`, else the stack's own."""
        return (self.vault_addr or f"http://{self.host}:{self.default_port('vault')}").rstrip("/")

    def endpoint(self, dependency: str, *, tls: bool = True) -> tuple[str, int]:
        """The (host, port) of a dependency; TLS picks the TLS port where it is a separate one."""
        host: str = getattr(self, f"{dependency}_host", None) or self.host
        port_name = dependency
        if tls and dependency in ("redis", "rabbitmq"):
            port_name = f"{dependency}_tls"
        explicit: int | None = getattr(self, f"{port_name}_port", None)
        return host, explicit if explicit is not None else self.default_port(port_name)

    def secret_path(self, dependency: str) -> str:
        """The KV path of a dependency's secret."""
        return self.secret_paths.get(dependency, dependency)

    @property
    def resolved_ca_file(self) -> Path | None:
        """The CA chain file: `ca_file`, else the state folder's, else None (read from Vault)."""
        if self.ca_file is not None:
            return self.ca_file
        if self.state_dir is not None:
            return self.state_dir / "ca" / "ca-chain.pem"
        return None

    def read_role_id(self) -> str:
        """The AppRole role-id (value or file)."""
        return self._credential(self.vault_role_id, self.vault_role_id_file, "role-id")

    def read_secret_id(self) -> str:
        """Read at each login, so a secret-id file replaced on disk is picked up."""
        return self._credential(self.vault_secret_id, self.vault_secret_id_file, "secret-id")

    def _credential(self, value: SecretStr | None, file: Path | None, name: str) -> str:
        if value is not None:
            return value.get_secret_value().strip()
        if file is None:
            if self.state_dir is None or self.approle is None:
                raise ConfigurationError(f"no AppRole {name} configured")
            file = self.state_dir / "approle" / self.approle / name
        try:
            text = file.read_text().strip()
        except OSError as exc:
            raise ConfigurationError(f"cannot read the AppRole {name} file {file}: {exc}") from None
        if not text:
            raise ConfigurationError(f"the AppRole {name} file {file} is empty")
        return text


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
