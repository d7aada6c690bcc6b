"""Helpers the tests share (fixtures stay in the conftest files).

- `StackUnderTest`: a stack the tests started through `devstack up` (the session's, from the
  `stack` fixture of tests/conftest.py, or a test's own in a `new_state_dir`), on ports moved
  by DEVSTACK_TEST_PORT_OFFSET, with the profile DEVSTACK_TEST_PROFILE.
- `wait_for` (and `wait_for_sync`, its twin for synchronous tests): every deadline loop of the
  tests. A test waits for a condition, never for a guessed time; it fails naming what it waited
  for. A fixed pause (`asyncio.sleep`, `time.sleep`) is left only where time itself must pass,
  and says why.
- `can_read`: whether a Vault login may read a KV secret (a refusal is False, any other error
  raises).
- `temporary_approle`: an AppRole with a service's policy and the token TTLs a test wants,
  created with the root token (test setup only: no process under test ever holds it).
- `client_settings`, `approle_settings`: devstack_client settings for the session's stack, with
  the `code_first` AppRole or a role of the test's own; `LogCapture`, what the library logged
  during the client tests (tests/integration/client/conftest.py scans it when they end).
- `leaks_in_logs`: the secret scan of the stack's logs, run when the session ends
  (tests/conftest.py).
- `running_implementation`: one implementation of the contract started by the test itself, on
  free ports, from the same build and environment `devstack up` prepared, with the variables
  its launcher would give it, so a test can run it with an AppRole or settings of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import io
import json
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aio_pika
import asyncpg
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from redis.asyncio.cluster import RedisCluster

from devstack_cli import appenv, polyglot
from devstack_cli.settings import Settings
from devstack_cli.stack import stack as service_table
from devstack_cli.vault import Vault, VaultError, login_as
from devstack_client import ClientSettings, DevStackClient
from devstack_client.redaction import is_masked_key as is_secret_key
from devstack_web import reason

TEST_PORT_OFFSET = int(os.environ.get("DEVSTACK_TEST_PORT_OFFSET", "100"))
# The session's stack: every implementation of the contract. A profile expression such as
# `standard+golang` runs the tests on fewer (while one is being written).
TEST_PROFILE = os.environ.get("DEVSTACK_TEST_PROFILE", "full")


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

    def processes(self) -> dict[str, dict[str, Any]]:
        """Every process of the stack by name (`redis-1`, `vault`, ...), as `status` reports it."""
        services = self.status()["services"].values()
        return {p["name"]: p for svc in services for p in svc["processes"]}

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


T = TypeVar("T")


async def wait_for(
    condition: Callable[[], Awaitable[T | None]],
    timeout: float,
    what: str,
    interval: float = 0.5,
    detail: Callable[[], object] | None = None,
) -> T:
    """Poll `condition` until it returns a true value (False, None, "" and 0 mean not yet),
    and return that value; fail the test after `timeout` seconds, naming `what` (and what
    `detail()` says then, e.g. the last state seen). The condition is always tried once more at
    the deadline, so a slow poll never fails a condition that holds."""
    deadline = time.monotonic() + timeout
    while True:
        result = await condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            pytest.fail(_timed_out(timeout, what, detail))
        await asyncio.sleep(interval)


def _timed_out(timeout: float, what: str, detail: Callable[[], object] | None) -> str:
    message = f"timed out after {timeout:.0f} s waiting for {what}"
    return f"{message}: {detail()}" if detail is not None else message


def wait_for_sync(
    condition: Callable[[], T | None],
    timeout: float,
    what: str,
    interval: float = 0.5,
    detail: Callable[[], object] | None = None,
) -> T:
    """`wait_for` for a synchronous test: the same deadline and message, a blocking pause."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            pytest.fail(_timed_out(timeout, what, detail))
        time.sleep(interval)


def vault_data(vault: Vault, path: str) -> dict[str, Any]:
    """The `data` of Vault's answer to a read of `path`; the test fails if there is none."""
    answer = vault.read(path)
    assert answer is not None, f"Vault has nothing at {path}"
    data: dict[str, Any] = answer["data"]
    return data


def can_read(vault: Vault, path: str) -> bool:
    """Whether `vault`'s login may read the KV secret at `path`."""
    try:
        return vault.kv_get(path) is not None
    except VaultError as exc:
        if exc.status != 403:  # only a refusal means "cannot read"
            raise
        return False


@dataclass(frozen=True)
class AppRole:
    name: str
    role_id_file: Path
    secret_id_file: Path
    secret_id: str


def root_vault(stack: StackUnderTest) -> Vault:
    return Vault.for_settings(stack.settings, stack.root_token())


def _write_private(path: Path, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


@contextlib.contextmanager
def temporary_approle(
    stack: StackUnderTest, policy: str, ttl: str = "3s", max_ttl: str = "12s"
) -> Iterator[AppRole]:
    """A new AppRole with `policy`, its role-id and secret-id in 0600 files; deleted after."""
    name = f"test-{policy}-{secrets.token_hex(4)}"
    folder = Path(tempfile.mkdtemp(prefix="devstack-approle-"))
    with root_vault(stack) as vault:
        vault.write(
            f"auth/approle/role/{name}",
            {"token_policies": [policy], "token_ttl": ttl, "token_max_ttl": max_ttl},
        )
        role_id = vault_data(vault, f"auth/approle/role/{name}/role-id")["role_id"]
        secret_id = vault.write(f"auth/approle/role/{name}/secret-id", {})["data"]["secret_id"]
    role = AppRole(name, folder / "role-id", folder / "secret-id", secret_id)
    _write_private(role.role_id_file, role_id)
    _write_private(role.secret_id_file, secret_id)
    try:
        yield role
    finally:
        with root_vault(stack) as vault:
            vault.wait_until_active(timeout=60)  # a test may just have restarted it
            vault.call("DELETE", f"auth/approle/role/{name}")
        for path in (role.role_id_file, role.secret_id_file):
            path.unlink(missing_ok=True)
        folder.rmdir()


def client_settings(stack: StackUnderTest, **extra: Any) -> ClientSettings:
    """The library's settings for the stack, as the `code_first` app (its AppRole files)."""
    return ClientSettings.for_stack(stack.state_dir, stack.port_offset, "code_first", **extra)


def approle_settings(stack: StackUnderTest, role: AppRole, **extra: Any) -> ClientSettings:
    """The library's settings for the stack, logging in with `role`."""
    return ClientSettings(
        vault_addr=f"http://127.0.0.1:{stack.port('vault', 'api')}",
        vault_role_id_file=role.role_id_file,
        vault_secret_id_file=role.secret_id_file,
        ca_file=Path(stack.ca_file),
        port_offset=stack.port_offset,
        **extra,
    )


@dataclass
class LogCapture:
    """What the library logged; `extra_secrets`: values a test created (a new password, a new
    secret-id) that the scan must look for besides the stack's own."""

    stream: io.StringIO = field(default_factory=io.StringIO)
    extra_secrets: list[str] = field(default_factory=list)


def self_signed(
    common_name: str, not_before: dt.datetime, not_after: dt.datetime, *, ca: bool = False
) -> tuple[bytes, bytes]:
    """A self-signed P-256 certificate and its key, both PEM (the key unencrypted PKCS#8)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    if ca:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=True, path_length=None), critical=True
        )
    cert = builder.sign(key, hashes.SHA256())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def app_client(base_url: str) -> httpx.AsyncClient:
    """An HTTP client for an API under test. It drops a connection idle for 2 s, before any
    implementation would (uvicorn and Node.js close one after 5 s; httpx's own default is 5 s
    too): with equal timeouts, a request sent on a kept connection just as the server closes it
    gets no answer (a reset, `httpx.ReadError`), a race of the test's client, not of the API."""
    return httpx.AsyncClient(
        base_url=base_url, timeout=30.0, limits=httpx.Limits(keepalive_expiry=2.0)
    )


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports: each socket stays bound until all are chosen (one at a time,
    the kernel may hand the same port out twice)."""
    with contextlib.ExitStack() as held:
        ports = []
        for _ in range(count):
            sock = held.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def launch_command(stack: StackUnderTest, name: str) -> list[str]:
    """How `devstack _serve NAME` would start this implementation on this stack."""
    recipe = polyglot.recipe(name)
    if recipe is not None:
        return polyglot.run_command(stack.settings, recipe)
    return appenv.command(stack.settings, name)


@dataclass
class Running:
    name: str
    client: httpx.AsyncClient
    process: asyncio.subprocess.Process
    log_file: Path

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])


@contextlib.asynccontextmanager
async def running_implementation(
    stack: StackUnderTest, name: str, role: AppRole, **settings: str
) -> AsyncIterator[Running]:
    """Start `name` with `role`'s credentials and extra DEVSTACK_* `settings`; stop it after
    (SIGTERM, then SIGKILL), whatever happens in between."""
    tls = stack.settings.state.service_dir(name) / "tls"
    http_port, https_port = free_ports(2)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DEVSTACK_", "VAULT_"))}
    env.update(
        {
            "DEVSTACK_VAULT_ROLE_ID_FILE": str(role.role_id_file),
            "DEVSTACK_VAULT_SECRET_ID_FILE": str(role.secret_id_file),
            "DEVSTACK_CA_FILE": stack.ca_file,
            "DEVSTACK_PORT_OFFSET": str(stack.port_offset),
            "DEVSTACK_API_HTTP_PORT": str(http_port),
            "DEVSTACK_API_HTTPS_PORT": str(https_port),
            "DEVSTACK_API_TLS_CERT_FILE": str(tls / "cert.pem"),
            "DEVSTACK_API_TLS_KEY_FILE": str(tls / "key.pem"),
            **{f"DEVSTACK_{key.upper()}": value for key, value in settings.items()},
        }
    )
    log_file = Path(tempfile.mkdtemp(prefix=f"devstack-{name}-")) / f"{name}.log"
    with log_file.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            *launch_command(stack, name),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=stack.settings.state.service_dir(name),
        )
    client = app_client(f"http://127.0.0.1:{http_port}")
    running = Running(name, client, process, log_file)

    async def healthy() -> bool:
        if process.returncode is not None:
            raise AssertionError(f"{name} exited ({process.returncode}):\n{running.log_tail()}")
        with contextlib.suppress(httpx.TransportError):
            return (await client.get("/health")).status_code == 200
        return False

    try:
        try:  # up to a minute: the process loads, logs in, opens its pools
            await wait_for(healthy, 60, f"{name} to answer /health", interval=0.1)
        except pytest.fail.Exception:
            raise AssertionError(f"{name} did not answer /health:\n{running.log_tail()}") from None
        yield running
    finally:
        await client.aclose()
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                process.kill()
                await process.wait()
        shutil.rmtree(log_file.parent, ignore_errors=True)


VAULT_TOKEN = re.compile(r"\b(?:hv[sbr]|[sbr])\.[A-Za-z0-9_\-]{20,}")


def secret_values(stack: StackUnderTest) -> list[str]:
    """Every secret the stack holds: each KV secret's values under a secret key, every AppRole's
    secret-id, the root token and the unseal keys."""
    init = json.loads(stack.settings.state.vault_init.read_text())
    found: list[str] = [init["root_token"], *init["unseal_keys"]]  # bootstrap.init_or_unseal
    table = service_table()
    with root_vault(stack) as vault:
        vault.wait_until_active(timeout=60)  # a test may just have restarted it
        for service in table.services.values():
            for path in service.readable_secrets()[:2]:  # its own secret and admin secret
                for key, value in (vault.kv_get(path) or {}).items():
                    if isinstance(value, str) and is_secret_key(key):
                        found.append(value)
    for name in table.services:
        secret_id = stack.settings.state.secret_id_file(name)
        if secret_id.exists():
            found.append(secret_id.read_text().strip())
    return list(dict.fromkeys(value for value in found if len(value) >= 8))  # each once


def leaks_in_logs(stack: StackUnderTest) -> list[str]:
    """Log files of the stack (servers, APIs, supervisor, bootstrap) holding a secret value or a
    Vault token: `file: what` for each, the value itself never repeated."""
    values = secret_values(stack)
    leaks = []
    for log in sorted(stack.settings.state.logs.glob("*.log")):
        text = log.read_text(errors="replace")
        leaked = sum(1 for value in values if value in text)
        if leaked:
            leaks.append(f"{log.name}: {leaked} secret value(s)")
        if VAULT_TOKEN.search(text):
            leaks.append(f"{log.name}: a Vault token")
    return leaks


# -- fakes and checks of the unit tests, and what the messaging tests publish -------------


@dataclass
class FakeVault:
    """Just enough of Vault: AppRole login, renew, lookup, revoke, KV v2 read."""

    ttl: float = 3600
    max_ttl: float = 86400
    down: bool = False
    tokens: dict[str, dict[str, float]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    issued: int = 0
    policies: list[str] = field(default_factory=lambda: ["code_first"])

    def handler(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/v1/")
        self.calls.append(path)
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        now = time.monotonic()
        token = request.headers.get("x-vault-token")
        live = token is not None and token in self.tokens and self.tokens[token]["exp"] > now
        if path == "auth/approle/login":
            body = json.loads(request.content)
            if body != {"role_id": "role", "secret_id": "secret"}:
                return httpx.Response(400, json={"errors": ["invalid role or secret ID"]})
            self.issued += 1
            new = f"s.token{self.issued:020d}"
            self.tokens[new] = {"exp": now + self.ttl, "max": now + self.max_ttl}
            auth = {"client_token": new, "lease_duration": self.ttl, "renewable": True}
            return httpx.Response(200, json={"auth": auth})
        if not live:
            return httpx.Response(403, json={"errors": ["permission denied"]})
        assert token is not None
        if path == "auth/token/renew-self":
            entry = self.tokens[token]
            granted = min(self.ttl, entry["max"] - now)
            entry["exp"] = now + granted
            auth = {"client_token": token, "lease_duration": granted, "renewable": True}
            return httpx.Response(200, json={"auth": auth})
        if path == "auth/token/lookup-self":
            data = {"ttl": self.tokens[token]["exp"] - now, "renewable": True}
            return httpx.Response(200, json={"data": {**data, "policies": self.policies}})
        if path == "auth/token/revoke-self":
            del self.tokens[token]
            return httpx.Response(204)
        if path == "secret/data/postgres":
            secret = {
                "data": {"user": "devstack", "password": "pw-123456"},
                "metadata": {"version": 4},
            }
            return httpx.Response(200, json={"data": secret})
        if path == "secret/data/admin/postgres":
            return httpx.Response(403, json={"errors": ["permission denied"]})
        return httpx.Response(404, json={"errors": []})


def fake_vault_settings(**extra: Any) -> ClientSettings:
    """Settings for a VaultClient talking to FakeVault with its role and secret id."""
    base: dict[str, Any] = {"vault_role_id": "role", "vault_secret_id": "secret"}
    base.update(extra)
    return ClientSettings(**base)


PROBLEM_KEYS = {"type", "title", "status", "detail", "instance", "request_id"}


def check_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """The problem document `response` must be (RFC 9457, as the contract has it), returned."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()  # a problem document: JSON, checked below
    assert PROBLEM_KEYS <= set(body) <= PROBLEM_KEYS | {"dependency", "errors"}
    assert body["type"] == "about:blank"
    assert body["status"] == status
    assert body["title"] == reason(status)
    assert body["request_id"] == response.headers["x-request-id"]
    assert body["instance"] == response.request.url.raw_path.decode().split("?")[0]
    assert isinstance(body["detail"], str)
    assert body["detail"]
    return body


DEEP = "[" * 65 + "]" * 65
# Bodies another publisher could put on a queue, which no consumer can be given as JSON.
UNDELIVERABLE = [
    b'{"bad": "\\ud800"}',  # a lone surrogate: no UTF-8 encoder takes it
    b'{"deep": ' + DEEP.encode() + b"}",  # deeper than 64 levels
    b'{"huge": 1e400}',  # not finite as a double
    b"not json at all",
    b"[1, 2, 3]",  # JSON, not an object
    b'{"latin1": "\xe9"}',  # not UTF-8
]


async def publish_raw(client: DevStackClient, queue: str, body: bytes) -> None:
    """Put `body` on `queue` as another publisher could, past the library's checks."""
    async with client.rabbitmq.channel("test") as channel:
        await channel.default_exchange.publish(aio_pika.Message(body), routing_key=queue)
