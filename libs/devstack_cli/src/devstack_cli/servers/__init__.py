"""One module per server of the stack; see `base` for what each provides.

Modules are imported when first asked for: a launcher (`devstack _serve NAME`) imports its own
server's module, not every server's.
"""

from __future__ import annotations

import importlib
from types import ModuleType

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


def module_for(service: str) -> ModuleType:
    """The module that plans and launches `service`."""
    return importlib.import_module(f"devstack_cli.servers.{MODULE_NAMES[service]}")


def __getattr__(name: str) -> dict[str, ModuleType]:
    """`MODULES`: every service's module, imported on first use (PEP 562)."""
    if name == "MODULES":
        return {service: module_for(service) for service in MODULE_NAMES}
    raise AttributeError(name)
