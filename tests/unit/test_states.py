"""Process and service states, and the status model the supervisor and the CLI share."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

import pydantic
import pytest

from devstack_cli import supervisor
from devstack_cli.plan import Plan, ProcessSpec
from devstack_cli.states import (
    SATISFYING_STATES,
    ProcessState,
    ProcessStatus,
    ServiceState,
    ServiceStatus,
    StackStatus,
    StatusReply,
    culprit,
    satisfies,
)


def proc(
    name: str, state: ProcessState, *, one_shot: bool = False, reason: str = ""
) -> ProcessStatus:
    return ProcessStatus(
        name=name,
        service=name.split("-")[0],
        state=state,
        one_shot=one_shot,
        reason=reason,
        log_file=f"/logs/{name}.log",
    )


def service(*processes: ProcessStatus) -> ServiceStatus:
    return ServiceStatus.of(processes[0].service, processes)


def test_each_dependency_condition_names_its_states() -> None:
    assert set(SATISFYING_STATES) == {"started", "healthy", "completed"}
    assert satisfies(ProcessState.UNHEALTHY, "started")
    assert not satisfies(ProcessState.UNHEALTHY, "healthy")
    assert satisfies(ProcessState.COMPLETED, "healthy")
    assert not satisfies(ProcessState.HEALTHY, "completed")
    for condition in SATISFYING_STATES:
        assert not satisfies(ProcessState.PENDING, condition)
        assert not satisfies(ProcessState.EXITED, condition)


def test_a_service_is_healthy_when_each_process_is_where_it_should_be() -> None:
    vault = service(
        proc("vault", ProcessState.HEALTHY),
        proc("vault-bootstrap", ProcessState.COMPLETED, one_shot=True),
    )
    assert (vault.state, vault.reason) == (ServiceState.HEALTHY, "")


def test_a_service_waits_on_its_slowest_process() -> None:
    vault = service(
        proc("vault", ProcessState.HEALTHY),
        proc("vault-bootstrap", ProcessState.HEALTHY, one_shot=True),  # running, not done
    )
    assert vault.state == ServiceState.STARTING
    assert vault.reason == "vault-bootstrap: healthy"


@pytest.mark.parametrize(
    ("process_state", "service_state"),
    [
        (ProcessState.FAILED, ServiceState.FAILED),
        (ProcessState.EXITED, ServiceState.UNHEALTHY),
        (ProcessState.UNHEALTHY, ServiceState.UNHEALTHY),
        (ProcessState.STOPPED, ServiceState.STOPPED),
    ],
)
def test_a_broken_process_breaks_its_service(
    process_state: ProcessState, service_state: ServiceState
) -> None:
    redis = service(
        proc("redis-1", ProcessState.HEALTHY), proc("redis-2", process_state, reason="x")
    )
    assert (redis.state, redis.reason) == (service_state, "redis-2: x")


def test_failed_is_reported_before_unhealthy() -> None:
    redis = service(
        proc("redis-1", ProcessState.UNHEALTHY),
        proc("redis-cluster", ProcessState.FAILED, one_shot=True),
    )
    assert redis.state == ServiceState.FAILED
    assert redis.reason == "redis-cluster: failed"


def test_the_culprit_is_a_broken_service_and_its_broken_process() -> None:
    states = [
        service(proc("postgres", ProcessState.STARTING)),
        service(proc("redis-1", ProcessState.STARTING), proc("redis-2", ProcessState.EXITED)),
    ]
    broken = culprit(states)
    assert broken.name == "redis"
    assert broken.blamed_process().name == "redis-2"
    assert culprit(states[:1]).blamed_process().name == "postgres"


def test_the_supervisor_answers_status_with_the_shared_model() -> None:
    folder = Path(tempfile.mkdtemp(prefix="st-"))
    try:
        plan = Plan(
            profile="minimal",
            processes=(
                ProcessSpec(name="a", service="a", command=("true",), log_file=str(folder / "a")),
            ),
        )

        async def ask() -> dict[str, object]:
            return await supervisor.Supervisor(plan, folder / "s.sock")._dispatch({"cmd": "status"})

        reply = StatusReply.model_validate(asyncio.run(ask()))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    assert reply.profile == "minimal"
    assert reply.processes[0].state == ProcessState.PENDING
    assert [s.name for s in reply.services()] == ["a"]


def test_a_state_one_end_does_not_know_is_refused() -> None:
    raw = {
        "profile": "standard",
        "processes": [
            {"name": "a", "service": "a", "state": "sleeping", "log_file": "/logs/a.log"}
        ],
    }
    with pytest.raises(pydantic.ValidationError, match="state"):
        StackStatus.model_validate(raw)
