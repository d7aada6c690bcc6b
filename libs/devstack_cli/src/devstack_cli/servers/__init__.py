"""One module per server of the stack; see `base` for what each provides."""

from __future__ import annotations

from types import ModuleType

from devstack_cli.servers import (
    api,
    mongodb,
    mysql,
    pgbouncer,
    postgres,
    rabbitmq,
    redis,
    vault,
)

MODULES: dict[str, ModuleType] = {
    "vault": vault,
    "postgres": postgres,
    "pgbouncer": pgbouncer,
    "redis": redis,
    "mysql": mysql,
    "mongodb": mongodb,
    "rabbitmq": rabbitmq,
    "code_first": api,
    "api_first": api,
    "golang": api,
    "nodejs": api,
    "rust": api,
}
