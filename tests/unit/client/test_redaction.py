"""Masking in responses and redaction in logs, including stdlib logs through configure_logging."""

from __future__ import annotations

import io
import json
import logging
import random
from collections.abc import Iterator

import pytest
import structlog

from devstack_client import MASK, Redactor, configure_logging, mask_secret_data
from devstack_client.redaction import _PATTERNS, is_sensitive_key

PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAx5\nabc/def+==\n-----END RSA PRIVATE KEY-----"
)


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "db_password",
        "X-Vault-Token",
        "client_token",
        "secret_id",
        "private_key",
        "Authorization",
        "api-key",
        "secret",
    ],
)
def test_secret_looking_keys(key: str) -> None:
    assert is_sensitive_key(key)


@pytest.mark.parametrize("key", ["user", "database", "secret_path", "token_ttl", "tls_enabled"])
def test_ordinary_keys(key: str) -> None:
    assert not is_sensitive_key(key)


def test_mask_secret_data_follows_the_contract_substring_rule() -> None:
    data = {
        "user": "devstack",
        "password": "pw",
        "api_key": "k",
        "Role_ID": "r",
        "nested": {"authToken": "t", "port": 1},
        "database": "devstack",
    }
    assert mask_secret_data(data) == {
        "user": "devstack",
        "password": MASK,
        "api_key": MASK,
        "Role_ID": MASK,
        "nested": {"authToken": MASK, "port": 1},
        "database": "devstack",
    }


def test_redactor_scrubs_tokens_pem_keys_and_url_credentials() -> None:
    redactor = Redactor()
    text = (
        f"token s.AbCdEfGhIjKlMnOpQrStUvWx and hvs.CAESIJabcdefghijklmnopqrstuvwxyz12345 "
        f"key {PEM} url postgresql://devstack:sup3r-s3cret@127.0.0.1:5432/devstack "
        "dsn password=letmein123 ok"
    )
    out = redactor.redact_text(text)
    for leaked in ("AbCdEfGhIjKl", "CAESIJabc", "MIIEowIBAAKCAQEAx5", "sup3r-s3cret", "letmein123"):
        assert leaked not in out
    assert "postgresql://***@127.0.0.1:5432/devstack" in out
    assert out.endswith(" ok")


def test_redactor_masks_every_known_secret_value_anywhere() -> None:
    redactor = Redactor()
    redactor.add_secret_data({"user": "devstack", "password": "Zq8-known-value"})
    redactor.add("short")  # too short to mask safely: ignored
    event = {"event": "connecting with Zq8-known-value", "detail": ["x Zq8-known-value y"]}
    out = redactor(None, "info", event)
    assert "Zq8-known-value" not in json.dumps(out)
    assert redactor.redact_text("user devstack short") == "user devstack short"


def test_redactor_masks_values_of_secret_keys_in_events() -> None:
    out = Redactor()(None, "info", {"event": "login", "secret_id": "abc", "ttl": 3})
    assert out == {"event": "login", "secret_id": MASK, "ttl": 3}


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = configure_logging("DEBUG", stream=stream)
    try:
        yield stream
    finally:
        logging.getLogger().removeHandler(handler)
        structlog.reset_defaults()


def test_structlog_and_stdlib_logs_share_the_json_renderer_and_redaction(
    captured: io.StringIO,
) -> None:
    from devstack_client.redaction import redactor

    redactor.add("Vq3-value-the-library-read")
    structlog.get_logger("devstack_client.test").info(
        "read a secret", password="pw-in-a-field", note="Vq3-value-the-library-read"
    )
    logging.getLogger("uvicorn.error").warning(
        "client sent amqps://devstack:Vq3-value-the-library-read@127.0.0.1:5671/"
    )
    try:
        raise RuntimeError(f"failed with {PEM}")
    except RuntimeError:
        logging.getLogger("some.lib").exception("boom")
    lines = [json.loads(line) for line in captured.getvalue().splitlines()]
    assert [line["event"][:12] for line in lines] == ["read a secre", "client sent ", "boom"]
    assert lines[0]["logger"] == "devstack_client.test"
    assert lines[0]["level"] == "info"
    assert lines[1]["logger"] == "uvicorn.error"
    text = captured.getvalue()
    for leaked in ("pw-in-a-field", "Vq3-value-the-library-read", "MIIEowIBAAKCAQEAx5"):
        assert leaked not in text
    assert "exception" in lines[2]


@pytest.mark.timeout(30)
def test_a_long_value_is_redacted_in_linear_time() -> None:
    """A regular expression that backtracks over a long word took minutes on a 600 kB value
    (a message body logged at DEBUG): the log call blocked the event loop that long. Linear
    scanning takes well under a second for 2 MB; the timeout only catches the blow-up."""
    word = "".join(chr(0x41 + i % 26) for i in range(2_000_000))
    assert Redactor().redact_text(word) == word
    with_url = word + " redis://default:pw123456@host:6379 " + word
    assert "pw123456" not in Redactor().redact_text(with_url)


def unfiltered(text: str) -> str:
    """What redact_text did before its patterns had literals to look for: every pattern, always."""
    for pattern, replacement, _ in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


EDGES = [
    PEM,
    "-----BEGIN PRIVATE KEY-----cut short",
    "-----BEGINPRIVATE KEY-----",
    "postgres://user:pw@host/db",
    "amqps://u:p@h and HTTP://x:y@z",
    "no scheme user:pw@host",
    "hvs.AAAAAAAAAAAAAAAAAAAAAAAAAA",
    "token s.ABCDEFGHIJKLMNOPQRSTUVWX, b.ABCDEFGHIJKLMNOPQRSTUVWX r.ABCDEFGHIJKLMNOPQRSTUVWX",
    "xs.ABCDEFGHIJKLMNOPQRSTUVWX",  # no word boundary before the prefix
    "password=hunter22",
    "PASSWORD : 'hunter22'",
    "\u017fecret_id=abc",  # LATIN SMALL LETTER LONG S folds to "s" under (?i)
    "\u212aey token: abc",  # KELVIN SIGN folds to "k"
    'pwd="x y"',
    "TOKEN\t=\tvalue;",
    "/examples/cache/bench-options-31725",
    "GET",
    "7023bd49-fc6d-4e60-b574-d8b6c55004de",
    "",
]


def test_a_pattern_skipped_for_a_missing_literal_could_not_have_matched() -> None:
    # A literal check only skips work: on every text, the result is the unfiltered one.
    alphabet = "sbrhv.:=@/-_ aA1 PASSWORD token \u017f\u212a BEGIN '\""
    generator = random.Random(15)  # noqa: S311 (reproducible test texts, not secrets)
    texts = [*EDGES]
    for _ in range(3000):
        length = generator.randint(0, 60)
        texts.append("".join(generator.choice(alphabet) for _ in range(length)))
    for _ in range(300):
        a, b = generator.sample(EDGES, 2)
        texts.append(a[: generator.randint(0, len(a))] + b[generator.randint(0, len(b)) :])
    redactor = Redactor()
    for text in texts:
        assert redactor.redact_text(text) == unfiltered(text), text
