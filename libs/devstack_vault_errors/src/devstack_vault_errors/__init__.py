"""Vault's error answers, read once for the project's two Vault clients.

The command line and the server launchers call Vault through hvac (synchronous one-shots:
`devstack_cli.vault`); the applications call it through devstack_client's own async client (hvac
has no asyncio support). What the two share lives here, in a package with no dependency at all:
a launcher imports it for nothing, devstack_client does not pull the command line in, and the
command line does not pull in the library (httpx, redis, asyncpg...).

- `error_messages`: Vault's own words from an error answer, its JSON `errors` list. Never the raw
  body: an answer that is not Vault's JSON (a proxy, a truncated body) could echo anything, so it
  becomes `HTTP <status>`.
- `describe_answer`: how a failed call is worded everywhere: `<METHOD> <path> answered <status>:
  <Vault's words>`, or `<METHOD> <path> did not answer: <reason>`.
- `VaultError`: the error type of a Vault call that failed. The command line raises it as is;
  devstack_client's `errors.VaultError` sits in that library's own error tree (a
  `DependencyUnavailable`: HTTP 503 with Retry-After) and words its message with
  `describe_answer`.

No message built here ever carries a token, a secret-id or a secret value: only the method, the
path (Vault's paths carry names, never secrets), the status and Vault's `errors`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

__all__ = ["NO_ANSWER", "VaultError", "describe_answer", "error_messages"]

# The status of a call Vault did not answer (refused, reset, timed out).
NO_ANSWER = 0


def error_messages(body: bytes | str | None, status: int) -> list[str]:
    """Vault's own words from an error answer's body (its JSON `errors`), else `HTTP <status>`."""
    try:
        parsed = json.loads(body) if body else None
    except ValueError:  # not JSON (UnicodeDecodeError is a ValueError too)
        parsed = None
    errors = parsed.get("errors") if isinstance(parsed, dict) else None
    if isinstance(errors, list):
        words = [str(e).strip() for e in errors if str(e).strip()]
        if words:
            return words
    return [f"HTTP {status}"]


def describe_answer(method: str, path: str, status: int, errors: Iterable[str]) -> str:
    """`GET secret/data/x answered 403: permission denied` (or `... did not answer: reason`)."""
    detail = "; ".join(e.strip() for e in errors if e.strip()) or "no detail"
    if status == NO_ANSWER:
        return f"{method} {path} did not answer: {detail}"
    return f"{method} {path} answered {status}: {detail}"


class VaultError(RuntimeError):
    """A Vault call failed: `status` (0: no answer) and `errors` (Vault's own words, no secret)."""

    def __init__(self, method: str, path: str, status: int, errors: Iterable[str]) -> None:
        self.method = method
        self.path = path
        self.status = status
        self.errors = list(errors)
        super().__init__(f"Vault {describe_answer(method, path, status, self.errors)}")

    @property
    def answered(self) -> bool:
        """False when Vault did not answer at all (refused, reset, timed out)."""
        return self.status != NO_ANSWER
