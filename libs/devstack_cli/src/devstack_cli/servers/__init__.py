"""One module per server of the stack, each a `ServerModule` (see `base` for the contexts).

Modules are imported when first asked for: a launcher (`devstack _serve NAME`) imports its own
server's module, not every server's.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, cast

if TYPE_CHECKING:
    from devstack_cli.plan import ProcessSpec
    from devstack_cli.servers.base import Exec, Launch, PlanContext


class ServerModule(Protocol):
    """What every module of this package provides."""

    def processes(self, ctx: PlanContext) -> list[ProcessSpec]:
        """What the supervisor runs for the service, in order, the ready process last (below)."""
        ...

    def launch(self, ctx: Launch) -> Exec:
        """Run by `devstack _serve NAME` before the server starts: the command to exec."""
        ...


# service -> its module in this package (every API, whatever its language, is `api`)
MODULE_NAMES: dict[str, str] = {
    "vault": "vault",
    "postgres": "postgres",
    "pgbouncer": "pgbouncer",
    "redis": "redis",
    "mysql": "mysql",
    "mongodb": "mongodb",
    "rabbitmq": "rabbitmq",
    "code_first": "api",
    "api_first": "api",
    "golang": "api",
    "nodejs": "api",
    "rust": "api",
    "postgres_exporter": "postgres_exporter",
    "mysqld_exporter": "mysqld_exporter",
    "redis_exporter": "redis_exporter",
    "prometheus": "prometheus",
    "victorialogs": "victorialogs",
    "vlagent": "vlagent",
}


def module_for(service: str) -> ServerModule:
    """The module that plans and launches `service`."""
    module = importlib.import_module(f"devstack_cli.servers.{MODULE_NAMES[service]}")
    return cast("ServerModule", module)  # each is held to the protocol by mypy, below


def ready_process(service: str, specs: Sequence[ProcessSpec]) -> ProcessSpec:
    """The process that says `service` is ready: the last one its module plans, by convention.

    What depends on a service depends on that process alone, so it must wait, directly or
    through the others, for every other process of the service (Vault's bootstrap waits for
    Vault, the Redis cluster's creation for each node). ValueError naming the service otherwise.
    """
    if not specs:
        raise ValueError(f"{service}: its server module plans no process")
    if any(spec.service != service for spec in specs):
        strays = ", ".join(spec.name for spec in specs if spec.service != service)
        raise ValueError(
            f"{service}: its server module plans processes of another service: {strays}"
        )
    by_name = {spec.name: spec for spec in specs}
    last = specs[-1]
    waited, pending = set(), [last.name]
    while pending:
        for dep in by_name[pending.pop()].depends_on:
            if dep in by_name and dep not in waited:
                waited.add(dep)
                pending.append(dep)
    missed = [spec.name for spec in specs[:-1] if spec.name not in waited]
    if missed:
        raise ValueError(
            f"{service}: the last process its module plans ({last.name}) is the one that says "
            f"the service is ready, but it does not wait for {', '.join(missed)}: plan the "
            "ready process last, depending on the others"
        )
    return last


def __getattr__(name: str) -> dict[str, ServerModule]:
    """`MODULES`: every service's module, imported on first use (PEP 562)."""
    if name == "MODULES":
        return {service: module_for(service) for service in MODULE_NAMES}
    raise AttributeError(name)


if TYPE_CHECKING:  # mypy holds every server module to the protocol
    from devstack_cli.servers import (
        api,
        mongodb,
        mysql,
        mysqld_exporter,
        pgbouncer,
        postgres,
        postgres_exporter,
        prometheus,
        rabbitmq,
        redis,
        redis_exporter,
        vault,
        victorialogs,
        vlagent,
    )

    _CHECKED: tuple[ServerModule, ...] = (
        api,
        mongodb,
        mysql,
        mysqld_exporter,
        pgbouncer,
        postgres,
        postgres_exporter,
        prometheus,
        rabbitmq,
        redis,
        redis_exporter,
        vault,
        victorialogs,
        vlagent,
    )
