"""Process and service states, and the stack's status: the one model the supervisor sends and
the CLI reads (`devstack status`, `up`, `health`, `stop`/`start`, the bench, the compose engine).

A process's state is the supervisor's; a service's state is what its processes add up to
(`ServiceStatus.of`). The named groups below are the only place a set of states is spelled out.
The supervisor answers `status` with a `StatusReply` (this model plus `ok`) and the CLI parses it
with the same model, so a state the one end does not know is an error at the other, not a silent
mismatch. `devstack status --json` prints the same fields.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict

from devstack_cli.plan import Condition


class ProcessState(StrEnum):
    PENDING = "pending"  # waiting for its dependencies (or not started yet)
    STARTING = "starting"  # running, its probe has not passed yet
    HEALTHY = "healthy"  # running, its probe passes (or it has none)
    UNHEALTHY = "unhealthy"  # running, its probe failed several times in a row
    COMPLETED = "completed"  # a one-shot step that exited 0
    EXITED = "exited"  # died; restarted after a backoff
    FAILED = "failed"  # a one-shot that exited non-zero, or a process that could not start
    STOPPED = "stopped"  # stopped on purpose (`devstack stop`, shutdown)


class ServiceState(StrEnum):
    HEALTHY = "healthy"
    STARTING = "starting"
    UNHEALTHY = "unhealthy"
    FAILED = "failed"
    STOPPED = "stopped"


# A live process, probed by the supervisor.
RUNNING_STATES = frozenset({ProcessState.STARTING, ProcessState.HEALTHY, ProcessState.UNHEALTHY})
# A one-shot that is done: stopping the stack leaves its state as it is.
FINISHED_STATES = frozenset({ProcessState.COMPLETED, ProcessState.FAILED})
# The process states that meet each dependency condition of the plan.
SATISFYING_STATES: dict[Condition, frozenset[ProcessState]] = {
    "started": RUNNING_STATES | {ProcessState.COMPLETED},
    "healthy": frozenset({ProcessState.HEALTHY, ProcessState.COMPLETED}),
    "completed": frozenset({ProcessState.COMPLETED}),
}
# A process in one of these states makes its service this state (the first found, in this order).
BREAKING_STATES: dict[ProcessState, ServiceState] = {
    ProcessState.FAILED: ServiceState.FAILED,
    ProcessState.EXITED: ServiceState.UNHEALTHY,
    ProcessState.UNHEALTHY: ServiceState.UNHEALTHY,
    ProcessState.STOPPED: ServiceState.STOPPED,
}
# Which process of a service to blame: the one that broke, else the one still on its way.
BLAME_ORDER = (
    ProcessState.FAILED,
    ProcessState.EXITED,
    ProcessState.UNHEALTHY,
    ProcessState.STARTING,
    ProcessState.PENDING,
)
# A service that broke (what `up` reports first); `up` stops waiting on these and a stopped one.
FAILED_STATES = frozenset({ServiceState.FAILED, ServiceState.UNHEALTHY})
GIVE_UP_STATES = FAILED_STATES | {ServiceState.STOPPED}


def satisfies(state: ProcessState, condition: Condition) -> bool:
    """A dependency in `state` meets `condition` (started, healthy, completed)."""
    return state in SATISFYING_STATES[condition]


class ProcessStatus(BaseModel):
    """One process, as the supervisor (or the compose engine) sees it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    service: str
    state: ProcessState
    reason: str = ""
    one_shot: bool = False
    pid: int | None = None
    exit_code: int | None = None
    restarts: int = 0
    since: float | None = None  # when the state last changed (epoch seconds)
    log_file: str
    container: str = ""  # the compose engine's container ("" natively, or not created)

    @property
    def done(self) -> bool:
        """Where it should be: a one-shot completed, any other process healthy."""
        return self.state == (ProcessState.COMPLETED if self.one_shot else ProcessState.HEALTHY)


class ServiceStatus(BaseModel):
    """One service, as `devstack status` shows it: what its processes add up to."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    state: ServiceState
    reason: str
    processes: tuple[ProcessStatus, ...]

    @classmethod
    def of(cls, name: str, processes: tuple[ProcessStatus, ...]) -> ServiceStatus:
        for process_state, service_state in BREAKING_STATES.items():
            bad = [p for p in processes if p.state == process_state]
            if bad:
                reason = "; ".join(f"{p.name}: {p.reason or p.state}" for p in bad)
                return cls(name=name, state=service_state, reason=reason, processes=processes)
        waiting = [p for p in processes if not p.done]
        return cls(
            name=name,
            state=ServiceState.STARTING if waiting else ServiceState.HEALTHY,
            reason="; ".join(f"{p.name}: {p.reason or p.state}" for p in waiting),
            processes=processes,
        )

    def blamed_process(self) -> ProcessStatus:
        """The process that broke, else the one still on its way."""
        order = {state: rank for rank, state in enumerate(BLAME_ORDER)}
        return min(self.processes, key=lambda p: order.get(p.state, len(order)))


def all_healthy(services: list[ServiceStatus]) -> bool:
    return all(s.state == ServiceState.HEALTHY for s in services)


def culprit(services: list[ServiceStatus]) -> ServiceStatus:
    """The service to name when the stack did not come up: a broken one first."""
    bad = [s for s in services if s.state != ServiceState.HEALTHY] or services
    return next((s for s in bad if s.state in FAILED_STATES), bad[0])


class StackStatus(BaseModel):
    """Every process of the running stack, in the plan's order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    profile: str
    engine: Literal["native", "compose"] = "native"
    pid: int | None = None  # the supervisor's
    processes: tuple[ProcessStatus, ...]

    def services(self) -> list[ServiceStatus]:
        grouped: dict[str, list[ProcessStatus]] = {}
        for process in self.processes:
            grouped.setdefault(process.service, []).append(process)
        return [ServiceStatus.of(name, tuple(procs)) for name, procs in grouped.items()]

    def of_service(self, service: str) -> list[ProcessStatus]:
        return [p for p in self.processes if p.service == service]

    def process(self, name: str) -> ProcessStatus | None:
        return next((p for p in self.processes if p.name == name), None)


class StatusReply(StackStatus):
    """The supervisor's answer to `{"cmd": "status"}` on its socket."""

    ok: Literal[True] = True
