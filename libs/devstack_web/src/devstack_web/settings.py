"""The web layer's settings: `DEVSTACK_API_*` variables, validated once, failing fast."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Each implementation's own ports (stack/services.toml); DEVSTACK_API_HTTP_PORT overrides.
DEFAULT_PORTS: dict[str, tuple[int, int]] = {
    "code_first": (8000, 8443),
    "api_first": (8001, 8444),
}
_ORIGIN = re.compile(
    r"^https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?$|^https?://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$"
)

Port = Annotated[int, Field(ge=1, le=65535)]


class WebSettings(BaseSettings):
    """
    | variable | default | meaning |
    |---|---|---|
    | `DEVSTACK_API_HOST` | 127.0.0.1 | the address both listeners bind |
    | `DEVSTACK_API_HTTP_PORT`, `..._HTTPS_PORT` | the implementation's own | ports |
    | `DEVSTACK_API_TLS_CERT_FILE`, `..._TLS_KEY_FILE` | none | HTTPS only when both are set |
    | `DEVSTACK_API_CORS_ORIGINS` | empty (no CORS headers) | comma-separated or a JSON list |
    | `DEVSTACK_API_RATE_LIMIT` | 0 (disabled) | requests per window per client, `/examples/**` |
    | `DEVSTACK_API_RATE_WINDOW_SECONDS` | 60 | the window |
    | `DEVSTACK_API_BODY_LIMIT` | 1048576 | the largest request body, in bytes |
    | `DEVSTACK_API_LOG_LEVEL` | INFO | |
    | `DEVSTACK_API_EVENT_LOOP` | asyncio | `asyncio` (the standard library's loop), or `uvloop` |
    """

    model_config = SettingsConfigDict(env_prefix="DEVSTACK_API_", extra="ignore", frozen=True)

    host: str = Field(default="127.0.0.1", min_length=1)
    http_port: Port | None = None
    https_port: Port | None = None
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    rate_limit: int = Field(default=0, ge=0)
    rate_window_seconds: int = Field(default=60, ge=1, le=86400)
    body_limit: int = Field(default=1_048_576, ge=1, le=64 * 1_048_576)
    log_level: str = "INFO"
    event_loop: Literal["asyncio", "uvloop"] = "asyncio"

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                import json

                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("cors_origins")
    @classmethod
    def _check_origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            if origin != "*" and not _ORIGIN.fullmatch(origin):
                raise ValueError(
                    f"{origin!r} is not an origin: use scheme://host[:port] (no path), or *"
                )
        return value

    @field_validator("log_level")
    @classmethod
    def _check_level(cls, value: str) -> str:
        level = value.upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ValueError("log_level is one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return level

    @model_validator(mode="after")
    def _check_tls(self) -> Self:
        cert, key = self.tls_cert_file, self.tls_key_file
        if (cert is None) != (key is None):
            raise ValueError("set both DEVSTACK_API_TLS_CERT_FILE and DEVSTACK_API_TLS_KEY_FILE")
        for path in (cert, key):
            if path is not None and not path.is_file():
                raise ValueError(f"TLS file {path} does not exist")
        if (
            self.http_port is not None
            and self.https_port is not None
            and self.http_port == self.https_port
        ):
            raise ValueError("http_port and https_port must differ")
        return self

    @property
    def tls_enabled(self) -> bool:
        """Whether both TLS files are set (then HTTPS is served)."""
        return self.tls_cert_file is not None and self.tls_key_file is not None

    def ports(self, implementation: str) -> tuple[int, int]:
        """(http, https) for this implementation: the variables, else its defaults."""
        http, https = DEFAULT_PORTS.get(implementation, (8000, 8443))
        return self.http_port or http, self.https_port or https
