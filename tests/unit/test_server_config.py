"""What the launchers write: quoting, hashing, certificate renewal."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from pathlib import Path

from devstack_cli.servers.base import certificate_is_fresh
from devstack_cli.servers.mysql import init_sql
from devstack_cli.servers.postgres import provisioning_sql
from devstack_cli.servers.rabbitmq import definitions, password_hash
from tests.support import self_signed


def test_postgres_provisioning_quotes_passwords() -> None:
    sql = provisioning_sql({"user": "app", "password": "it's"}, {"user": "adm", "password": "x"})
    assert "PASSWORD 'it''s'" in sql
    assert all(line.endswith(";") for line in sql.strip().splitlines())


def test_mysql_init_quotes_passwords() -> None:
    sql = init_sql(
        {"user": "app", "password": "a'b\\c", "database": "db"}, {"user": "root", "password": "r"}
    )
    assert "IDENTIFIED BY 'a''b\\\\c'" in sql
    assert "GRANT ALL PRIVILEGES ON `db`.* TO 'app'@'%'" in sql


def test_rabbitmq_password_hash_is_salted_sha256() -> None:
    salt = b"\x01\x02\x03\x04"
    encoded = password_hash("secret", salt)
    raw = base64.b64decode(encoded)
    assert raw[:4] == salt
    assert raw[4:] == hashlib.sha256(salt + b"secret").digest()
    assert password_hash("secret") != password_hash("secret")  # a new salt each time


def test_rabbitmq_definitions_hold_no_plain_password() -> None:
    defs = definitions(
        {"user": "app", "password": "pw-app", "vhost": "dev_vhost"},
        {"user": "adm", "password": "pw-adm"},
    )
    text = repr(defs)
    assert "pw-app" not in text
    assert "pw-adm" not in text
    vhosts = defs["vhosts"]
    assert isinstance(vhosts, list)
    assert {"name": "dev_vhost"} in vhosts


def make_cert(path: Path, start: dt.datetime, days: int) -> None:
    path.write_bytes(self_signed("t", start, start + dt.timedelta(days=days))[0])


def test_certificates_are_renewed_in_the_last_third(tmp_path: Path) -> None:
    now = dt.datetime(2026, 1, 31, tzinfo=dt.UTC)
    cert = tmp_path / "cert.pem"
    assert not certificate_is_fresh(cert, now)  # missing
    make_cert(cert, now - dt.timedelta(days=10), 30)  # 20 of 30 days left
    assert certificate_is_fresh(cert, now)
    make_cert(cert, now - dt.timedelta(days=21), 30)  # 9 of 30 days left
    assert not certificate_is_fresh(cert, now)
