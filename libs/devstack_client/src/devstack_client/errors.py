"""The exceptions the library raises, one small tree a web adapter can map to status codes.

```
DevStackError                      every error of this library (HTTP 500 unless below)
├── ConfigurationError             settings that cannot work (raised at start, never per request)
├── InvalidInput                   422: an argument a use case refuses (bad key, empty name, ...)
├── NotFound                       404: the item, key, queue or secret does not exist
│   └── MessageUnroutable          the broker could not route a published message
└── DependencyError                a dependency failed; `.dependency` names it
    ├── DependencyUnavailable      503 (with Retry-After): down, refusing us, or not ready
    │   └── VaultError             Vault answered with an error status
    └── DependencyTimeout          504: the operation did not finish within its timeout
```

Each class carries `status_code` (the HTTP status an adapter should answer) and `title` (the
RFC 9110 reason phrase, as a problem+json `title`); DependencyError adds `dependency` and
`retry_after` (whole seconds, for the Retry-After header). Messages never contain secret values
or raw server text that could carry them; the original exception is kept as `__cause__`.
"""

from __future__ import annotations

import ssl
from typing import ClassVar

from devstack_vault_errors import describe_answer


class DevStackError(Exception):
    """Base class of every error raised by devstack_client."""

    status_code: ClassVar[int] = 500
    title: ClassVar[str] = "Internal Server Error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigurationError(DevStackError, ValueError):
    """The settings cannot work (for example no Vault credentials, or a root token)."""


class InvalidInput(DevStackError, ValueError):
    """An argument a use case refuses (422)."""

    status_code = 422
    title = "Unprocessable Content"


class NotFound(DevStackError, LookupError):
    """The item, key, queue or secret does not exist (404)."""

    status_code = 404
    title = "Not Found"


class MessageUnroutable(NotFound):
    """Published with `mandatory`, and no queue was bound to receive it."""


class DependencyError(DevStackError):
    """A dependency (Vault, a database, the cache or the broker) failed."""

    def __init__(self, dependency: str, message: str, *, retry_after: int = 5) -> None:
        super().__init__(f"{dependency}: {message}")
        self.dependency = dependency
        self.retry_after = retry_after


class DependencyUnavailable(DependencyError):
    """The dependency is down, refuses us, or is not ready (503, with Retry-After)."""

    status_code = 503
    title = "Service Unavailable"


class DependencyTimeout(DependencyError):
    """The operation did not finish within its timeout (504)."""

    status_code = 504
    title = "Gateway Timeout"


class VaultError(DependencyUnavailable):
    """Vault answered with an error status; `errors` are Vault's own words (never a secret)."""

    def __init__(self, method: str, path: str, status: int, errors: list[str]) -> None:
        super().__init__("vault", describe_answer(method, path, status, errors))
        self.status = status
        self.errors = errors


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 10:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def describe(exc: BaseException) -> str:
    """A short reason for any error (a driver's, the OS's), safe to show: its kind, never raw
    server text that could carry a value."""
    if any(
        isinstance(e, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(e)
        for e in _chain(exc)
    ):
        return "TLS certificate verification failed"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{type(exc).__name__}: {exc.strerror}"
    if isinstance(exc, TimeoutError):
        return "timed out"
    return type(exc).__name__
