"""Helpers the tests share (fixtures stay in the conftest files).

- `temporary_approle`: an AppRole with a service's policy and the token TTLs a test wants,
  created with the root token (test setup only: no process under test ever holds it).
- `running_implementation`: one implementation of the contract started by the test itself, on
  free ports, from the same build and environment `devstack up` prepared, with the variables
  its launcher would give it, so a test can run it with an AppRole or settings of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from devstack_cli import appenv, polyglot
from devstack_cli.stack import stack as service_table
from devstack_cli.vault import Vault
from devstack_client.redaction import is_masked_key as is_secret_key
from tests.conftest import StackUnderTest


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
        answer = vault.call("GET", f"auth/approle/role/{name}/role-id")
        assert answer is not None
        role_id = answer["data"]["role_id"]
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
    client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}", timeout=30)
    running = Running(name, client, process, log_file)
    try:
        for _ in range(600):  # up to a minute: the process loads, logs in, opens its pools
            if process.returncode is not None:
                raise AssertionError(f"{name} exited ({process.returncode}):\n{running.log_tail()}")
            with contextlib.suppress(httpx.TransportError):
                if (await client.get("/health")).status_code == 200:
                    break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"{name} did not answer /health:\n{running.log_tail()}")
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
