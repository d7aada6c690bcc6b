"""The application secrets of the stack's dependencies, masked, as an API may show them."""

from __future__ import annotations

import json
from typing import Any

from devstack_client.errors import (
    NotFound,
    VaultError,
)
from devstack_client.models import (
    SecretValue,
    SecretView,
)
from devstack_client.redaction import MASK, is_masked_key
from devstack_client.secretstore import SecretStore
from devstack_client.settings import DEPENDENCIES, ClientSettings


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value)  # true, 3, null: as JSON spells them


class SecretReader:
    """The application secrets of the stack's dependencies, masked (served from the cache)."""

    def __init__(self, store: SecretStore, settings: ClientSettings) -> None:
        self._store = store
        self._settings = settings

    async def read(self, service: str) -> SecretView:
        """The secret of `service`, masked; NotFound for an unknown or unreadable one."""
        if service not in DEPENDENCIES:
            raise NotFound(f"no secret for {service!r}")
        path = self._settings.secret_path(service)
        try:
            secret = await self._store.get(path)
        except VaultError as exc:
            if exc.status == 403:
                raise NotFound(f"the secret of {service!r} is not readable") from exc
            raise
        data = {k: MASK if is_masked_key(k) else _as_text(v) for k, v in secret.data.items()}
        return SecretView(
            service=service,
            path=f"{self._settings.vault_kv_mount}/{path}",
            version=secret.version,
            data=data,
            masked_keys=sorted(k for k in secret.data if is_masked_key(k)),
        )

    async def read_key(self, service: str, key: str) -> SecretValue:
        """One key of the secret of `service`, masked when secret-looking."""
        view = await self.read(service)
        if key not in view.data:
            raise NotFound(f"the secret of {service!r} has no key {key!r}")
        return SecretValue(
            service=service, key=key, value=view.data[key], masked=is_masked_key(key)
        )
