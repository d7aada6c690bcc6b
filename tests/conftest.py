"""The integration, contract and parity tests share one stack, started through `devstack up`.

It runs in a fresh state folder and on ports moved by DEVSTACK_TEST_PORT_OFFSET (default 100),
so it never touches a developer's stack, with the profile DEVSTACK_TEST_PROFILE (default `full`:
every implementation of the contract). One stack serves the whole session; tests that stop or
wipe a stack start their own (see test_lifecycle.py). When the session ends, no log file of the
stack may hold a secret.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from redis.asyncio.cluster import RedisCluster

from devstack_cli.settings import Settings
from devstack_cli.stack import stack as service_table
from devstack_cli.vault import Vault, login_as

TEST_PORT_OFFSET = int(os.environ.get("DEVSTACK_TEST_PORT_OFFSET", "100"))
# The session's stack: every implementation of the contract. A profile expression such as
# `standard+golang` runs the tests on fewer (while one is being written).
TEST_PROFILE = os.environ.get("DEVSTACK_TEST_PROFILE", "full")


TESTS = Path(__file__).resolve().parent
# Every test under these folders uses the real stack; everything else is a unit test, which
# `./devstack test --unit` (pytest -m "not integration") runs without starting any server.
INTEGRATION_FOLDERS = ("integration", "parity", "contract")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.relative_to(TESTS).parts[0] in INTEGRATION_FOLDERS:
            item.add_marker(pytest.mark.integration)


async def wait_for(
    condition: Callable[[], Awaitable[bool]], timeout: float, what: str, interval: float = 0.5
) -> None:
    """Poll `condition` until it holds; fail the test after `timeout` seconds, naming `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await condition():
            return
        await asyncio.sleep(interval)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def new_state_dir(name: str) -> Path:
    # Searchable by others: PostgreSQL runs as its own account when the tests run as root.
    path = Path(tempfile.mkdtemp(prefix=f"devstack-{name}-"))
    path.chmod(0o755)
    return path


@dataclass
class StackUnderTest:
    state_dir: Path
    port_offset: int
    profile: str = TEST_PROFILE  # what `up` was given

    @property
    def settings(self) -> Settings:
        return Settings(state_dir=self.state_dir, port_offset=self.port_offset)

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DEVSTACK_STATE_DIR": str(self.state_dir),
            "DEVSTACK_PORT_OFFSET": str(self.port_offset),
        }

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run the `devstack` command against this stack, as a user would."""
        return subprocess.run(
            [sys.executable, "-m", "devstack_cli", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def up(self, *args: str) -> subprocess.CompletedProcess[str]:
        # A cold machine builds the polyglot APIs first (Rust: about ten minutes on 2 cores).
        result = self.cli("up", *args, timeout=2400)
        if result.returncode != 0:
            pytest.fail(
                f"devstack up failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
            )
        return result

    def status(self) -> dict[str, Any]:
        result = self.cli("status", "--json")
        assert result.returncode == 0, result.stderr
        report: dict[str, Any] = json.loads(result.stdout)
        return report

    def port(self, service: str, name: str, instance: int = 0) -> int:
        return self.settings.port(service_table().service(service).ports[name] + instance)

    @property
    def ca_file(self) -> str:
        return str(self.settings.state.ca_chain)

    def tls_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_file)

    def login(self, service: str) -> Vault:
        return login_as(self.settings, service)

    def creds(self, service: str) -> dict[str, Any]:
        """A service's application secret, read through that service's own AppRole."""
        with self.login(service) as vault:
            secret = vault.kv_get(service)
        assert secret is not None
        return secret

    async def postgres(
        self,
        via: str = "postgres",
        *,
        creds: dict[str, Any] | None = None,
        database: str | None = None,
        ca_file: str | None = None,
        timeout: float = 60,
    ) -> asyncpg.Connection:
        """A TLS connection to PostgreSQL (or through PgBouncer: via="pgbouncer"), verified
        against the stack's CA (or `ca_file`), with the application's credentials by default."""
        creds = creds or self.creds("postgres")
        context = ssl.create_default_context(cafile=ca_file or self.ca_file)
        connection: asyncpg.Connection = await asyncpg.connect(
            host="127.0.0.1",
            port=self.port(via, via),
            user=creds["user"],
            password=creds["password"],
            database=database or creds["database"],
            ssl=context,
            timeout=timeout,
        )
        return connection

    def redis_cluster(self, *, password: bool = True) -> RedisCluster:
        """A cluster client on the TLS ports, verified against the stack's CA."""
        return RedisCluster(
            host="127.0.0.1",
            port=self.port("redis", "tls"),
            password=self.creds("redis")["password"] if password else None,
            ssl=True,
            ssl_ca_certs=self.ca_file,
        )

    def root_token(self) -> str:
        token: str = json.loads(self.settings.state.vault_init.read_text())["root_token"]
        return token


@pytest.fixture(scope="session")
def stack() -> Iterator[StackUnderTest]:
    from tests.support import leaks_in_logs

    under_test = StackUnderTest(new_state_dir("it"), TEST_PORT_OFFSET)
    leaks: list[str] = []
    try:
        under_test.up("--profile", TEST_PROFILE)
        yield under_test
        # After every test of the session: no process of the stack logged a secret.
        leaks = leaks_in_logs(under_test)
    finally:
        under_test.cli("down")
        shutil.rmtree(under_test.state_dir, ignore_errors=True)
    assert not leaks, f"secrets in the stack's logs: {leaks}"


@pytest.fixture(scope="session")
def foreign_ca_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A CA that signed nothing here: a client trusting only it must be refused everywhere."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Not Our CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = tmp_path_factory.mktemp("foreign-ca") / "foreign-ca.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return str(path)
