"""The service table (`stack/services.toml`), loaded and validated once.

Everything that needs to know what the stack is (the engine, the Vault bootstrap, the port check,
the docs) asks this module, so that a fact about a service is written in one place.
"""

from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from devstack_cli.settings import repo_root

Kind = Literal["server", "api"]


class Service(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = ""
    description: str
    kind: Kind
    profiles: tuple[str, ...] = ()
    ports: dict[str, int] = Field(min_length=1)
    after: tuple[str, ...] = ()
    secret: dict[str, str] | None = None
    admin: dict[str, str] | None = None
    reads: tuple[str, ...] = ()
    instances: int = Field(default=1, ge=1)

    @property
    def hostname(self) -> str:
        """Its DNS name in certificates: no underscores in a hostname (api_first: api-first)."""
        return self.name.replace("_", "-")

    @property
    def secret_path(self) -> str:
        """KV v2 path (under the `secret/` mount) of this service's application secret."""
        return self.name

    @property
    def admin_path(self) -> str:
        return f"admin/{self.name}"

    def readable_secrets(self) -> tuple[str, ...]:
        """KV paths this service's policy may read: its own secrets, then what it depends on."""
        paths: list[str] = []
        if self.secret is not None:
            paths.append(self.secret_path)
        if self.admin is not None:
            paths.append(self.admin_path)
        paths.extend(self.reads)
        return tuple(paths)


class Stack(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    profiles: dict[str, str]
    services: dict[str, Service]

    @model_validator(mode="after")
    def _check_references(self) -> Stack:
        listed: set[str] = set()
        for name, service in self.services.items():
            object.__setattr__(service, "name", name)
            for profile in service.profiles:
                if profile not in self.profiles:
                    raise ValueError(f"{name}: unknown profile {profile!r}")
            for dep in service.after:
                if dep not in self.services:
                    raise ValueError(f"{name}: 'after' names unknown service {dep!r}")
                # The engine plans services in the table's order, each after what it waits for.
                if dep not in listed:
                    raise ValueError(
                        f"{name}: 'after' names {dep!r}, which the table lists later; "
                        f"dependencies are listed first: move {dep!r} above {name!r}"
                    )
            listed.add(name)
            for dep in service.reads:
                target = self.services.get(dep)
                if target is None or target.secret is None:
                    raise ValueError(f"{name}: 'reads' names {dep!r}, which has no secret")
        seen: dict[int, str] = {}
        for service in self.services.values():
            for port_name, base in service.ports.items():
                for index in range(service.instances):
                    port = base + index
                    where = f"{service.name}.{port_name}"
                    if port in seen:
                        raise ValueError(f"port {port} is declared by {seen[port]} and {where}")
                    seen[port] = where
        return self

    def in_profile(self, profile: str) -> list[Service]:
        """The services a profile starts (servers and APIs), in the table's order (dependencies
        first).

        `profile` is a profile's name, or several names of profiles and services joined by `+`
        (`standard+golang`): their union, with every service a named one comes `after`.
        """
        wanted: set[str] = set()
        for part in profile.split("+"):
            if part in self.profiles:
                wanted.update(s.name for s in self.services.values() if part in s.profiles)
            elif part in self.services and "+" in profile:
                wanted.add(part)
            else:
                raise UnknownProfileError(part, sorted(self.profiles))
        pending = list(wanted)
        while pending:
            for dep in self.services[pending.pop()].after:
                if dep not in wanted:
                    wanted.add(dep)
                    pending.append(dep)
        return [s for s in self.services.values() if s.name in wanted]

    def servers(self) -> list[Service]:
        return [s for s in self.services.values() if s.kind == "server"]

    def service(self, name: str) -> Service:
        try:
            return self.services[name]
        except KeyError:
            raise UnknownServiceError(name, sorted(self.services)) from None


class UnknownProfileError(ValueError):
    def __init__(self, profile: str, known: list[str]) -> None:
        super().__init__(
            f"unknown profile {profile!r}; choose one of: {', '.join(known)} "
            "(or join profiles and services with '+', e.g. standard+golang)"
        )


class UnknownServiceError(ValueError):
    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"unknown service {name!r}; choose one of: {', '.join(known)}")


def load_stack(path: Path) -> Stack:
    with path.open("rb") as f:
        return Stack.model_validate(tomllib.load(f))


@cache
def stack() -> Stack:
    """The project's own table."""
    return load_stack(repo_root() / "stack" / "services.toml")
