"""The reference APIs (every service of kind "api"): one process each, health-gated.

Each app is configured like a server: its launcher logs in with the app's own AppRole, issues
the app's certificate (for HTTPS) and execs the app: a Python app as `python -OO -m <app>`, from
its own environment (devstack_cli.appenv, prepared by `up`); another language's app as its
recipe's command, from the build `up` made (devstack_cli.polyglot). The app gets only what it
needs, the same variables in every language: where
its AppRole's role-id and secret-id files are (the app logs in itself, and keeps its token
alive), the CA chain, the port offset, its ports and its certificate. The supervisor calls it
ready when `/health` (liveness) answers on its HTTP port.
"""

from __future__ import annotations

import os

from devstack_cli import appenv, polyglot
from devstack_cli.plan import Probe, ProcessSpec
from devstack_cli.servers.base import Exec, Launch, PlanContext


def processes(ctx: PlanContext) -> list[ProcessSpec]:
    probe = Probe(http=f"http://127.0.0.1:{ctx.port('http')}/health")
    return [ctx.process(ctx.service.name, probe, ctx.after())]


def launch(ctx: Launch) -> Exec:
    name = ctx.service.name
    state = ctx.settings.state
    tls = ctx.tls()
    # exec_server strips inherited DEVSTACK_* variables: optional web settings a user gave
    # `devstack up` (DEVSTACK_API_RATE_LIMIT, ..._CORS_ORIGINS) are passed on explicitly.
    env = {k: v for k, v in os.environ.items() if k.startswith("DEVSTACK_API_")}
    env.update(
        {
            "DEVSTACK_VAULT_ROLE_ID_FILE": str(state.role_id_file(name)),
            "DEVSTACK_VAULT_SECRET_ID_FILE": str(state.secret_id_file(name)),
            "DEVSTACK_CA_FILE": str(state.ca_chain),
            "DEVSTACK_PORT_OFFSET": str(ctx.settings.port_offset),
            **appenv.dependency_env(ctx.settings),  # every dependency's port, explicitly
            "DEVSTACK_API_HTTP_PORT": str(ctx.port("http")),
            "DEVSTACK_API_HTTPS_PORT": str(ctx.port("https")),
            "DEVSTACK_API_TLS_CERT_FILE": str(tls.cert),
            "DEVSTACK_API_TLS_KEY_FILE": str(tls.key),
        }
    )
    recipe = polyglot.recipe(name)
    if recipe is not None:
        env.update(recipe.run_env)
        return Exec(polyglot.run_command(ctx.settings, recipe), env=env)
    env.update(
        {
            "MALLOC_ARENA_MAX": "2",  # one event loop thread: more glibc arenas only hold RSS
            # No pydantic plugin is installed: skip reading every distribution's entry points.
            "PYDANTIC_DISABLE_PLUGINS": "1",
        }
    )
    python = appenv.python(ctx.settings, name)
    if not python.exists():
        raise FileNotFoundError(f"{python} is missing: `devstack up` prepares it")
    return Exec(appenv.command(ctx.settings, name), env=env)
