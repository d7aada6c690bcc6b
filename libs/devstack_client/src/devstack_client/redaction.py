"""Masking for responses and redaction for logs.

`mask_secret_data` hides the values of secret-looking keys in a mapping (what a "read a secret"
endpoint returns). `Redactor` scrubs anything on its way to a log: values of secret-looking keys,
Vault tokens, PEM private keys, credentials in URLs, and every secret value the library has read
(the secret store and the Vault client register each one as they see it).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

MASK = "********"

# A key is secret-looking when its last word is one of these (so `password`, `db_password`,
# `X-Vault-Token`, `client_token`, `private_key`, but not `secret_path` or `token_ttl`).
_SENSITIVE_WORDS = (
    "password|passwd|pwd|passphrase|secret|secret_id|role_id|token|client_token|apikey|api_key"
    "|authorization|private_key|credential|credentials|cookie|set_cookie|dsn|signature"
)
_SENSITIVE_KEY = re.compile(rf"(?:^|[_\-.\s])(?:{_SENSITIVE_WORDS})$", re.IGNORECASE)

# Each pattern, its replacement, and the literals a text must hold for the pattern to match at
# all. The pattern only runs on a text that holds them (a path, a method or a request id seldom
# does): on the access line, the patterns were most of the redaction's cost.
_PATTERNS: tuple[tuple[re.Pattern[str], str, Callable[[str], bool]], ...] = (
    # PEM private keys of any kind, whole blocks (and a block cut short by truncation).
    (
        re.compile(
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----.*?"
            r"(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----|$)",
            re.DOTALL,
        ),
        "[REDACTED PRIVATE KEY]",
        lambda text: "-----BEGIN " in text,
    ),
    # user:password@ in any URL. The scheme's length is bounded: unbounded, every letter of a
    # long word was a start that scanned to the word's end (minutes for a 600 kB log value).
    (
        re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]{0,31}://)[^\s:/@]+:[^\s/@]+@"),
        r"\g<scheme>***@",
        lambda text: "://" in text and "@" in text,
    ),
    # Vault and OpenBao tokens (service, batch, recovery; old and new prefixes).
    (
        re.compile(r"\b(?:hv[sbr]|[sbr])\.[A-Za-z0-9_\-]{20,}"),
        "[REDACTED TOKEN]",
        lambda text: "s." in text or "b." in text or "r." in text,
    ),
    # `password=...` or `password: ...` inside free text (DSNs, error messages).
    (
        re.compile(r"(?i)\b(password|passwd|pwd|secret_id|token)(\s*[=:]\s*)(['\"]?)[^\s'\",;]+\3"),
        rf"\1\2{MASK}",
        lambda text: "=" in text or ":" in text,
    ),
)

_MIN_KNOWN_SECRET = 6  # shorter values ("1", "yes") would mask innocent text everywhere


def is_sensitive_key(key: str) -> bool:
    """True when a key's name says its value is a secret (password, token, ...)."""
    return bool(_SENSITIVE_KEY.search(key.replace("-", "_")))


# What an API response masks (openapi/devstack.yaml, VaultSecret): a key whose lowercased name
# contains any of these. Broader than the log rule above, on purpose: a response shows a value
# to a caller, a log line is read by the people running the service.
MASKED_KEY_SUBSTRINGS = (
    "password", "passwd", "passphrase", "pwd", "secret", "token", "key", "credential",
    "private", "auth", "cookie", "dsn", "signature", "role_id",
)  # fmt: skip


def is_masked_key(key: str) -> bool:
    """True when a secret's key is one whose value an API shows masked."""
    lowered = key.lower()
    return any(part in lowered for part in MASKED_KEY_SUBSTRINGS)


def mask_secret_data(data: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a secret's data with the value of every key `is_masked_key` names masked."""
    masked: dict[str, Any] = {}
    for key, value in data.items():
        if is_masked_key(key):
            masked[key] = MASK
        elif isinstance(value, Mapping):
            masked[key] = mask_secret_data(value)
        else:
            masked[key] = value
    return masked


class Redactor:
    """Scrubs secrets out of strings and nested structures; thread-safe; a structlog processor."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._known: set[str] = set()
        self._known_pattern: re.Pattern[str] | None = None

    def add(self, *values: object) -> None:
        """Remember secret values so they are masked wherever they appear later."""
        fresh = {v for v in values if isinstance(v, str) and len(v) >= _MIN_KNOWN_SECRET}
        with self._lock:
            if fresh <= self._known:
                return
            self._known |= fresh
            alternatives = sorted(self._known, key=len, reverse=True)
            self._known_pattern = re.compile("|".join(re.escape(v) for v in alternatives))

    def add_secret_data(self, data: Mapping[str, Any]) -> None:
        """Remember the values of a secret: every value under a secret-looking key."""
        self.add(*_sensitive_values(data))

    def known_count(self) -> int:
        """How many secret values are remembered."""
        return len(self._known)

    def redact_text(self, text: str) -> str:
        """`text` with secret-looking patterns and every remembered secret masked."""
        for pattern, replacement, could_match in _PATTERNS:
            if could_match(text):
                text = pattern.sub(replacement, text)
        known = self._known_pattern
        if known is not None:
            text = known.sub(MASK, text)
        return text

    def redact(self, value: Any, key: str | None = None) -> Any:
        """`value` (nested structures too) with secrets masked; `key` names it."""
        if key is not None and is_sensitive_key(key) and value not in (None, "", True, False):
            return MASK
        if isinstance(value, str):
            return self.redact_text(value)
        if isinstance(value, Mapping):
            return {k: self.redact(v, str(k)) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self.redact(v) for v in value]
        if isinstance(value, int | float | bool) or value is None:
            return value
        return self.redact_text(str(value))

    def __call__(self, logger: object, method_name: str, event_dict: Any) -> Any:
        """structlog processor: redact every value of the event (after exceptions are formatted)."""
        return {
            k: (v if k in ("timestamp", "level", "logger") else self.redact(v, k))
            for k, v in event_dict.items()
        }


def _sensitive_values(data: Mapping[str, Any]) -> Iterable[str]:
    for key, value in data.items():
        if isinstance(value, Mapping):
            yield from _sensitive_values(value)
        elif isinstance(value, str) and is_sensitive_key(str(key)):
            yield value


redactor = Redactor()
"""The process-wide redactor: the library registers what it reads; the log setup uses it."""
