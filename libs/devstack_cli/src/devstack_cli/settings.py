"""Where the stack keeps its state and which ports it uses, from the environment.

Two variables make isolated stacks possible (the tests run one beside a developer's):
`DEVSTACK_STATE_DIR` (default `.devstack` in the checkout) and `DEVSTACK_PORT_OFFSET`
(default 0, added to every port in the service table).
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def repo_root() -> Path:
    """The checkout this package was installed from (a uv workspace member, installed editable)."""
    return Path(__file__).resolve().parents[4]


def cache_dir() -> Path:
    """Per-user cache for tools built from source (FerretDB), keyed by version below it."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "devstack"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DEVSTACK_", frozen=True)

    state_dir: Path = Field(default_factory=lambda: repo_root() / ".devstack")
    port_offset: int = Field(default=0, ge=0, le=20000)
    up_timeout: float = Field(default=180.0, gt=0, description="seconds `up` waits for health")

    @cached_property
    def state(self) -> StatePaths:
        return StatePaths(self.state_dir.resolve())

    def port(self, base: int) -> int:
        return base + self.port_offset


class StatePaths:
    """The layout of the state folder: one place that names every file in it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.run = root / "run"
        self.logs = root / "logs"
        self.ca = root / "ca"
        self.approle = root / "approle"
        self.profile_file = root / "profile"
        self.supervisor_pid = self.run / "supervisor.pid"
        self.supervisor_sock = self.run / "supervisor.sock"
        self.children_file = self.run / "children.json"  # what the supervisor started, proven
        self.up_lock = self.run / "up.lock"
        self.plan_file = self.run / "plan.json"
        self.supervisor_log = self.logs / "supervisor.log"
        self.vault_init = root / "vault" / "init.json"
        self.ca_cert = self.ca / "ca.pem"
        self.ca_chain = self.ca / "ca-chain.pem"

    def service_dir(self, name: str) -> Path:
        return self.root / name

    def log_file(self, process: str) -> Path:
        return self.logs / f"{process}.log"

    def role_id_file(self, service: str) -> Path:
        return self.approle / service / "role-id"

    def secret_id_file(self, service: str) -> Path:
        return self.approle / service / "secret-id"


def write_private(path: Path, content: str | bytes, mode: int = 0o600) -> None:
    """Write a file that only its owner can read, creating it with that mode (never wider)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = content.encode() if isinstance(content, str) else content
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
