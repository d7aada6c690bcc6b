"""The engine's plan: the processes to run, their order, probes and logs.

`render_plan` turns the service table into this plan; the supervisor runs it. The plan is plain
data (saved as JSON in the state folder), so a unit test can read what `up` would do without
starting anything.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Condition = Literal["started", "healthy", "completed"]


# PostgreSQL's SSLRequest (length 8, code 80877103), as hex: the first message of a PostgreSQL
# client, answered "S" by a server (or PgBouncer) that speaks TLS.
POSTGRES_SSL_REQUEST = "0000000804d2162f"


class Probe(BaseModel):
    """How the supervisor decides that a process is ready: exactly one of the four.

    A TCP probe passes when every port answers: the server must send at least one byte within
    the probe's timeout, after `send` (hex) when the protocol has the client speak first. A bare
    connect is not enough: the kernel completes it even for a frozen server. A `postgres` probe
    asks what pg_isready asks (the server accepts connections, not only its port), in process.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    tcp: tuple[int, ...] = ()
    send: str = ""  # hex bytes written after connecting, e.g. PostgreSQL's SSLRequest
    http: str | None = None
    exec: tuple[str, ...] = ()
    postgres: int | None = None  # a PostgreSQL port: does the server accept connections?

    @model_validator(mode="after")
    def _exactly_one(self) -> Probe:
        if sum(bool(x) for x in (self.tcp, self.http, self.exec, self.postgres)) != 1:
            raise ValueError("a probe has exactly one of tcp, http, exec, postgres")
        if self.send and not self.tcp:
            raise ValueError("only a tcp probe sends bytes")
        bytes.fromhex(self.send)
        return self


class ProcessSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    service: str
    command: tuple[str, ...]
    env: dict[str, str] = Field(default_factory=dict)
    depends_on: dict[str, Condition] = Field(default_factory=dict)
    probe: Probe | None = None
    one_shot: bool = False
    stop_signal: Literal["SIGTERM", "SIGINT", "SIGQUIT"] = "SIGTERM"
    log_file: str


class Plan(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    profile: str
    processes: tuple[ProcessSpec, ...]

    @model_validator(mode="after")
    def _check_dependencies(self) -> Plan:
        names = {p.name for p in self.processes}
        if len(names) != len(self.processes):
            raise ValueError("process names must be unique")
        for p in self.processes:
            for dep in p.depends_on:
                if dep not in names:
                    raise ValueError(f"{p.name} depends on unknown process {dep!r}")
        self.levels()  # raises on a cycle
        return self

    def levels(self) -> dict[str, int]:
        """Depth of each process in the dependency graph: 0 has no dependencies."""
        by_name = {p.name: p for p in self.processes}
        level: dict[str, int] = {}

        def visit(name: str, path: tuple[str, ...]) -> int:
            if name in path:
                raise ValueError(f"dependency cycle: {' -> '.join((*path, name))}")
            if name not in level:
                deps = by_name[name].depends_on
                level[name] = 1 + max((visit(d, (*path, name)) for d in deps), default=-1)
            return level[name]

        for p in self.processes:
            visit(p.name, ())
        return level

    def process(self, name: str) -> ProcessSpec:
        for p in self.processes:
            if p.name == name:
                return p
        raise KeyError(name)

    def for_service(self, service: str) -> list[ProcessSpec]:
        return [p for p in self.processes if p.service == service]
