"""`devstack status` and `devstack health`: what the supervisor says, as a table or JSON.

They are the commands people and scripts run most, so they import only what they print with:
no CLI framework (`devstack_cli.entry` calls them directly), no server module.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

from devstack_cli import engine
from devstack_cli.stack import stack
from devstack_cli.states import ServiceState

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from devstack_cli.settings import Settings
    from devstack_cli.states import ServiceStatus, StackStatus

EXIT_FAILED = 1
STATE_STYLE = {
    ServiceState.HEALTHY: "green",
    ServiceState.STARTING: "yellow",
    ServiceState.FAILED: "red",
    ServiceState.UNHEALTHY: "red",
    ServiceState.STOPPED: "dim",
}
HIDDEN_PORTS = ("cluster", "bus", "epmd", "dist", "debug")  # internal: not what users dial


def status_table(states: list[ServiceStatus], s: Settings) -> Table:
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for column in ("service", "state", "ports", "detail"):
        table.add_column(column)
    for state in states:
        ports = engine.service_ports(s, stack().service(state.name))
        table.add_row(
            state.name,
            f"[{STATE_STYLE[state.state]}]{state.state}[/]",
            " ".join(
                f"{k}={v}"
                for k, v in ports.items()
                if k not in HIDDEN_PORTS and not k.startswith(("bus-",))
            ),
            state.reason[:60],
        )
    return table


def observability_urls(s: Settings, services: list[str]) -> dict[str, str]:
    """What a person opens in a browser when the profile runs Prometheus (docs/observability.md)."""
    if "prometheus" not in services:
        return {}
    base = f"http://127.0.0.1:{s.port(stack().service('prometheus').ports['http'])}"
    urls = {
        "dashboards": f"{base}/consoles/index.html",
        "prometheus": f"{base}/classic/graph",
        "targets": f"{base}/classic/targets",
    }
    if "victorialogs" in services:
        logs = s.port(stack().service("victorialogs").ports["http"])
        urls["logs"] = f"http://127.0.0.1:{logs}/select/vmui/"
    return urls


def _consoles() -> tuple[Console, Console]:
    from rich.console import Console

    return (
        Console(highlight=False, soft_wrap=True),
        Console(stderr=True, highlight=False, soft_wrap=True),
    )


def _error(err: Console, message: str) -> None:
    err.print("[red]error:[/red] ", end="")
    err.print(message, markup=False)


def status(s: Settings, snapshot: StackStatus | None, json_output: bool) -> int:
    """Print each service's state and ports (`snapshot`: the supervisor's `status`, None when
    nothing runs); the exit code."""
    states = snapshot.services() if snapshot else []
    if json_output:
        report: dict[str, Any] = {
            "running": snapshot is not None,
            "orphans": sorted(engine.orphans(s)) if snapshot is None else [],
            "profile": snapshot.profile if snapshot else None,
            "state_dir": str(s.state.root),
            "services": {
                st.name: {
                    "state": st.state,
                    "reason": st.reason,
                    "ports": engine.service_ports(s, stack().service(st.name)),
                    "processes": [p.model_dump(mode="json") for p in st.processes],
                }
                for st in states
            },
            "urls": observability_urls(s, [st.name for st in states]),
        }
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return 0
    out, err = _consoles()
    if snapshot is None:
        left = engine.orphans(s)
        if left:
            _error(
                err,
                f"the supervisor is not running, but what it started is: {', '.join(left)}; "
                "stop it with `./devstack down`",
            )
            return EXIT_FAILED
        out.print("the stack is not running: start it with `./devstack up`")
        return 0
    out.print(f"profile {snapshot.profile}, state in {s.state.root}")
    out.print(status_table(states, s))
    for name, url in observability_urls(s, [st.name for st in states]).items():
        out.print(f"{name:<11} {url}", markup=False)
    return 0


def health(s: Settings, snapshot: StackStatus | None) -> int:
    """Exit code 0 when every service is healthy, 1 otherwise (with the table)."""
    out, err = _consoles()
    if snapshot is None:
        _error(err, "the stack is not running: start it with `./devstack up`")
        return EXIT_FAILED
    states = snapshot.services()
    out.print(status_table(states, s))
    unhealthy = [st.name for st in states if st.state != ServiceState.HEALTHY]
    if unhealthy:
        _error(err, f"unhealthy: {', '.join(unhealthy)}")
        return EXIT_FAILED
    return 0
