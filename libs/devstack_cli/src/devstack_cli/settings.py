"""Where the stack keeps its state and which ports it uses, from the environment.

Two variables make isolated stacks possible (the tests run one beside a developer's):
`DEVSTACK_STATE_DIR` (default `.devstack` in the checkout) and `DEVSTACK_PORT_OFFSET`
(0 to 20000, default 0, added to every port in the service table); `DEVSTACK_UP_TIMEOUT` is how
long `up` waits for health (seconds, default 180).

Plain Python on purpose: every command and every server launcher reads these, and a settings
library costs them more start-up time than the whole rest of `devstack status`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

PORT_OFFSET_RANGE = (0, 20000)  # README states it; the highest port, 27090 + 20000, < 49152


class SettingsError(ValueError):
    """A `DEVSTACK_*` variable holds a value that is refused; the message names it."""

    def __init__(self, variable: str, message: str) -> None:
        self.variable = variable
        super().__init__(f"{variable}: {message}")


def repo_root() -> Path:
    """The checkout this package was installed from (a uv workspace member, installed editable)."""
    return Path(__file__).resolve().parents[4]


def cache_dir() -> Path:
    """Per-user cache for tools built from source (FerretDB), keyed by version below it."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "devstack"


def _default_state_dir() -> Path:
    value = os.environ.get("DEVSTACK_STATE_DIR")
    return Path(value) if value else repo_root() / ".devstack"


def _default_port_offset() -> int:
    value = os.environ.get("DEVSTACK_PORT_OFFSET", "").strip()
    if not value:
        return 0
    try:
        return int(value)
    except ValueError:
        raise SettingsError("DEVSTACK_PORT_OFFSET", f"not a whole number: {value!r}") from None


def _default_up_timeout() -> float:
    value = os.environ.get("DEVSTACK_UP_TIMEOUT", "").strip()
    if not value:
        return 180.0
    try:
        return float(value)
    except ValueError:
        raise SettingsError("DEVSTACK_UP_TIMEOUT", f"not a number of seconds: {value!r}") from None


@dataclass(frozen=True)
class Settings:
    """The stack's settings: given explicitly, else from the `DEVSTACK_*` environment."""

    state_dir: Path = field(default_factory=_default_state_dir)
    port_offset: int = field(default_factory=_default_port_offset)
    up_timeout: float = field(default_factory=_default_up_timeout)  # seconds `up` waits

    def __post_init__(self) -> None:
        object.__setattr__(self, "state_dir", Path(self.state_dir))
        low, high = PORT_OFFSET_RANGE
        if not isinstance(self.port_offset, int) or not low <= self.port_offset <= high:
            raise SettingsError(
                "DEVSTACK_PORT_OFFSET", f"must be from {low} to {high}, not {self.port_offset}"
            )
        if not self.up_timeout > 0:
            raise SettingsError("DEVSTACK_UP_TIMEOUT", "must be more than 0 seconds")

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
        self.bench_lock = self.run / "bench.lock"  # one `devstack bench` at a time
        self.bench_pinned = self.run / "bench-pinned.json"  # what a bench has pinned, until undone
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
