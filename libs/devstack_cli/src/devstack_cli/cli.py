"""`devstack`: set up, start, inspect and stop the local stack.

Exit codes: 0 success; 1 the stack (or a service) failed or is unhealthy; 2 bad input (an unknown
profile, service or option); 3 the machine is not ready (a port is taken, a program is missing).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, NoReturn

import click
import typer
from rich.console import Console
from rich.live import Live

from devstack_cli import appenv, compose, engine, polyglot, report, supervisor, tools
from devstack_cli.plan import Plan
from devstack_cli.report import status_table
from devstack_cli.settings import Settings, SettingsError, repo_root
from devstack_cli.stack import UnknownProfileError, UnknownServiceError, stack
from devstack_cli.states import ServiceState, ServiceStatus, StackStatus, all_healthy, culprit

EXIT_FAILED, EXIT_USAGE, EXIT_ENVIRONMENT = 1, 2, 3
MASK = "********"

app = typer.Typer(
    help="DevStack Core: a local, production-like data stack with Vault-managed secrets.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
vault_app = typer.Typer(
    help="Vault: status, bootstrap, the CA, a service's credentials.", no_args_is_help=True
)
app.add_typer(vault_app, name="vault")
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    err.print("[red]error:[/red] ", end="")
    err.print(message, markup=False)
    raise typer.Exit(code)


def settings() -> Settings:
    try:
        return Settings()
    except SettingsError as exc:
        fail(str(exc), EXIT_USAGE)


def known_service(name: str) -> str:
    try:
        return stack().service(name).name
    except UnknownServiceError as exc:
        fail(str(exc), EXIT_USAGE)


# -- up ---------------------------------------------------------------------------------


def install_missing(s: Settings, services: list[str]) -> None:
    log = s.state.logs / "setup.log"
    if {"victorialogs", "vlagent"} & set(services):
        # Built before the supervisor starts, as FerretDB is, not inside a launcher that `up`
        # is already timing (a few minutes the first time on 2 cores).
        from devstack_cli.servers import victorialogs  # here: it imports the server kit

        if victorialogs.GO_MODULE.missing():
            out.print(f"building VictoriaLogs {victorialogs.VERSION} once (log: {log})")
            try:
                victorialogs.build(log)
            except (FileNotFoundError, RuntimeError) as exc:
                fail(str(exc), EXIT_ENVIRONMENT)
    missing = tools.missing_for(services)
    if not missing:
        return
    apt = sorted({m.apt for m in missing if m.apt})
    if apt and tools.can_use_apt():
        out.print(f"installing with apt: {' '.join(apt)} (log: {log})")
        tools.apt_install(apt, log)
    if any(m.build for m in missing) and shutil.which("go"):
        out.print(
            f"building FerretDB {tools.FERRETDB_VERSION} once, into "
            f"{tools.ferretdb_binary().parent} (about a minute; log: {log})"
        )
        tools.build_ferretdb(log)
    still = tools.missing_for(services)
    if still:
        names = ", ".join(sorted({m.what for m in still}))
        lines = "\n  ".join(tools.install_commands(still))
        fail(f"missing: {names}. Install with:\n  {lines}", EXIT_ENVIRONMENT)


def check_toolchains(profile: str) -> None:
    """Before any long install: the toolchain of every polyglot API of the profile is there."""
    for service in stack().in_profile(profile):
        recipe = polyglot.recipe(service.name)
        missing = polyglot.missing_toolchains(recipe) if recipe is not None else []
        if missing:
            hints = "; ".join(f"{t.program}: {t.install}" for t in missing)
            fail(f"{service.name} needs {hints}", EXIT_ENVIRONMENT)


def prepare_apps(s: Settings, profile: str) -> None:
    """Each Python API gets an environment of its own, synced from uv.lock (devstack_cli.appenv);
    each other API is built once per source change (devstack_cli.polyglot)."""
    log = s.state.logs / "setup.log"
    for service in stack().in_profile(profile):
        if service.kind != "api":
            continue
        recipe = polyglot.recipe(service.name)
        try:
            if recipe is None:
                appenv.sync(s, service.name, log)
            else:
                built = polyglot.build(recipe, log, say=lambda line: out.print(line, markup=False))
                polyglot.record_build(s, service.name, built)
        except RuntimeError as exc:
            fail(str(exc), EXIT_ENVIRONMENT)


@app.command()
def up(
    profile: Annotated[
        str, typer.Option(help="minimal | standard | full, or e.g. standard+golang")
    ] = "standard",
    engine_name: Annotated[
        str, typer.Option("--engine", help="native (default) | compose (docs/compose.md)")
    ] = "native",
) -> None:
    """Set up whatever is missing and start the stack; return once every service is healthy."""
    s = settings()
    try:
        services = [svc.name for svc in stack().in_profile(profile)]
    except UnknownProfileError as exc:
        fail(str(exc), EXIT_USAGE)
    if engine_name not in ("native", "compose"):
        fail(f"unknown engine {engine_name!r}; choose native or compose", EXIT_USAGE)
    started = time.monotonic()
    if engine_name == "compose":
        compose_up(s, profile, started)
        return
    try:
        engine.lock_up(s)  # held until this command exits: one `up` per state folder
    except engine.UpInProgress as exc:
        fail(str(exc))
    left = engine.stop_orphans(s)
    if left:
        out.print(f"stopped what a supervisor that died left running: {', '.join(left)}")
    snapshot = engine.status(s)
    if snapshot is not None:
        states = snapshot.services()
        running = {state.name for state in states}
        missing = [name for name in services if name not in running]
        if missing:
            fail(
                f"the stack is running with profile {snapshot.profile}, without "
                f"{', '.join(missing)}: run `devstack down`, then `devstack up --profile "
                f"{profile}` (the data is kept)",
                EXIT_USAGE,
            )
        out.print(f"the stack is already running (profile {snapshot.profile}): nothing to do")
        out.print(status_table(states, s))
        raise typer.Exit(0 if all_healthy(states) else EXIT_FAILED)
    s.state.logs.mkdir(parents=True, exist_ok=True)
    # What can be checked is checked before any long install: ports, then toolchains.
    taken = engine.taken_ports(s, profile)
    if taken:
        port, label = taken[0]
        fail(
            f"port {port} ({label}) is already in use: stop what holds it, or set "
            "DEVSTACK_PORT_OFFSET to move the whole stack",
            EXIT_ENVIRONMENT,
        )
    check_toolchains(profile)
    install_missing(s, services)
    prepare_apps(s, profile)
    engine.start_supervisor(s, engine.render_plan(s, profile))
    interactive = out.is_terminal
    if interactive:
        with Live(status_table([], s), console=out, refresh_per_second=8) as live:
            ok, states = engine.wait_until_healthy(
                s, s.up_timeout, lambda st: live.update(status_table(st, s))
            )
    else:
        seen: dict[str, str] = {}

        def print_changes(states: list[ServiceStatus]) -> None:
            for st in states:
                if seen.get(st.name) != st.state:
                    seen[st.name] = st.state
                    out.print(f"{time.monotonic() - started:6.1f}s  {st.name:<10} {st.state}")

        ok, states = engine.wait_until_healthy(s, s.up_timeout, print_changes)
    if ok:
        out.print(
            f"[green]all {len(states)} services healthy[/green] in "
            f"{time.monotonic() - started:.1f}s (profile {profile})"
        )
        return
    broken = say_not_up(states, s.up_timeout)
    log_file = broken.blamed_process().log_file
    err.print(f"last lines of {log_file}:")
    for line in engine.tail(log_file, 20):
        err.print(f"  {line}", markup=False)
    err.print("stopping the stack")
    engine.stop(s)
    raise typer.Exit(EXIT_FAILED)


def say_not_up(states: list[ServiceStatus], timeout: float) -> ServiceStatus:
    """Print which service kept the stack from coming up, and why; that service."""
    broken = culprit(states)
    why = broken.reason or "did not become healthy"
    if broken.state == ServiceState.STARTING:
        why = f"not healthy after {timeout:.0f}s ({why})"
    err.print(f"[red]error:[/red] {broken.name} failed to start: {why}")
    return broken


@app.command()
def down() -> None:
    """Stop every service; state is kept for the next `up`."""
    s = settings()
    if compose.in_use(s):
        with compose_errors():
            out.print("stopped" if compose.down(s) else "the stack is not running")
        return
    if engine.stop(s):
        out.print("stopped")
    else:
        out.print("the stack is not running")


@app.command()
def status(
    json_output: Annotated[bool, typer.Option("--json", help="Machine-readable.")] = False,
) -> None:
    """Each service's state and ports (`devstack_cli.entry` prints the same without Typer)."""
    s = settings()
    snapshot = compose_snapshot(s) if compose.in_use(s) else engine.status(s)
    code = report.status(s, snapshot, json_output)
    if code:
        raise typer.Exit(code)


@app.command()
def health() -> None:
    """Exit 0 when every service is healthy, 1 otherwise."""
    s = settings()
    snapshot = compose_snapshot(s) if compose.in_use(s) else engine.status(s)
    code = report.health(s, snapshot)
    if code:
        raise typer.Exit(code)


@app.command()
def logs(
    service: Annotated[str, typer.Argument(help="A service (or one process, like redis-2).")],
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines.")
    ] = False,
    lines: Annotated[int, typer.Option("--lines", "-n", min=0, help="Lines to show.")] = 50,
) -> None:
    """Show a service's log."""
    s = settings()
    if compose.in_use(s):
        known = compose.process_names(s, _last_profile(s), service)
        if not known:
            known_service(service)
        with compose_errors():
            raise typer.Exit(compose.logs(s, known, lines, follow))
    plan = engine.render_plan(s, _last_profile(s))
    names = [p.name for p in plan.processes]
    if service in names:
        files = [s.state.log_file(service)]
    else:
        known_service(service)
        files = [s.state.log_file(p.name) for p in plan.for_service(service)]
    existing = [f for f in files if f.exists()]
    if not existing:
        fail(f"no log for {service} yet in {s.state.logs}")
    prefix = len(existing) > 1
    for f in existing:
        for line in engine.tail(str(f), lines):
            out.print(f"{f.stem}| {line}" if prefix else line, markup=False)
    if follow:
        handles = [f.open("r", errors="replace") for f in existing]
        for h in handles:
            h.seek(0, os.SEEK_END)
        try:
            while True:
                quiet = True
                for f, h in zip(existing, handles, strict=True):
                    for line in h.readlines():
                        quiet = False
                        text = line.rstrip("\n")
                        out.print(f"{f.stem}| {text}" if prefix else text, markup=False)
                if quiet:
                    time.sleep(0.25)
        except KeyboardInterrupt:
            pass


def _last_profile(s: Settings) -> str:
    try:
        return s.state.profile_file.read_text().strip()
    except FileNotFoundError:
        return "standard"


def _control(command: str, service: str) -> None:
    s = settings()
    snapshot = engine.status(s)
    if snapshot is None:
        fail("the stack is not running: start it with `./devstack up`")
    # A service name means all of its processes (vault: the server and its unseal step).
    targets = [p.name for p in snapshot.of_service(service)]
    if not targets and snapshot.process(service) is not None:
        targets = [service]
    if not targets:
        known_service(service)
        fail(f"{service} is not part of the running profile ({snapshot.profile})", EXIT_USAGE)
    if command == "stop":
        targets.reverse()
    for name in targets:
        supervisor.request(s.state.supervisor_sock, {"cmd": command, "name": name}, timeout=120)
    out.print(f"{command} {', '.join(targets)}: done")


@app.command()
def stop(service: Annotated[str, typer.Argument(help="A service, or one process.")]) -> None:
    """Stop one service (it stays down until `devstack start`); the rest keeps running."""
    _control("stop", service)


@app.command()
def start(service: Annotated[str, typer.Argument(help="A service, or one process.")]) -> None:
    """Start a service stopped with `devstack stop` (Vault is unsealed again)."""
    _control("start", service)


@app.command()
def reset(yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False) -> None:
    """Stop the stack and delete all of its state (data, secrets, certificates, logs)."""
    s = settings()
    root = s.state.root
    if not yes:
        if not sys.stdin.isatty():
            fail(f"reset deletes {root}; pass --yes to confirm", EXIT_USAGE)
        typer.confirm(f"Stop the stack and delete {root}?", abort=True)
    if compose.in_use(s):
        with compose_errors():
            compose.down(s, volumes=True)  # the compose stack's data lives in its volumes
        compose.forget(s)
    engine.stop(s)
    engine.remove_state(s)
    out.print(f"removed {root}")


@app.command()
def doctor() -> None:
    """Show what is missing and the exact command to install it."""
    services = [svc.name for svc in stack().servers()]
    for service in services:
        for tool in tools.TOOLS.get(service, ()):
            found = tools.find(tool.name, tool.path_first)
            mark = "[green]ok[/green]     " if found else "[red]missing[/red]"
            out.print(f"{mark} {service:<10} {tool.name:<20} {found or ''}")
    ferret = tools.ferretdb_binary()
    mark = "[green]ok[/green]     " if ferret.exists() else "[red]missing[/red]"
    out.print(f"{mark} {'mongodb':<10} {'ferretdb':<20} {ferret if ferret.exists() else ''}")
    toolchains_missing = False
    for name, recipe in polyglot.RECIPES.items():
        lacking = polyglot.missing_toolchains(recipe)
        for chain in recipe.toolchains:
            version = polyglot.toolchain_version(chain) or ""
            if chain in lacking:
                toolchains_missing = True
                needs = ".".join(map(str, chain.minimum))
                found = f"{version} (needs {needs} or newer)" if version else ""
                out.print(f"[red]missing[/red] {name:<10} {chain.program:<20} {found}")
                out.print(f"          {chain.install}", markup=False)
            else:
                out.print(f"[green]ok[/green]      {name:<10} {chain.program:<20} {version}")
    missing = tools.missing_for(services)
    if toolchains_missing and not missing:
        raise typer.Exit(EXIT_ENVIRONMENT)
    if missing:
        out.print(
            "\nTo install what is missing (`./devstack up` does it for you as root on "
            "Debian/Ubuntu):"
        )
        for line in tools.install_commands(missing):
            out.print(f"  {line}", markup=False)
        raise typer.Exit(EXIT_ENVIRONMENT)
    out.print("\neverything is installed")


@app.command()
def bench(
    implementations: Annotated[
        str | None,
        typer.Option(help="Comma-separated; default: every implementation that is up."),
    ] = None,
    scenarios: Annotated[
        str | None, typer.Option(help="Comma-separated; default: all (see docs/performance.md).")
    ] = None,
    connections: Annotated[str, typer.Option(help="Connection counts, comma-separated.")] = (
        "1,16,64"
    ),
    duration: Annotated[int, typer.Option(min=1, help="Seconds measured per run.")] = 10,
    warmup: Annotated[int, typer.Option(min=0, help="Seconds of warm-up before each run.")] = 3,
    https: Annotated[bool, typer.Option(help="Load the HTTPS ports instead of HTTP.")] = False,
    smoke: Annotated[bool, typer.Option(help="A few hundred requests per scenario.")] = False,
    baselines: Annotated[bool, typer.Option(help="Run the Starlette baselines.")] = True,
    ceilings: Annotated[bool, typer.Option(help="Run redis-benchmark and pgbench.")] = True,
    startup_rounds: Annotated[int, typer.Option(min=0, help="Restarts timed per API.")] = 3,
    output: Annotated[
        Path | None, typer.Option(help="Default: bench/results/<date>-<commit>.")
    ] = None,
    compare: Annotated[
        Path | None, typer.Option(help="An earlier results.json: print every change.")
    ] = None,
    against: Annotated[
        Path | None, typer.Option(help="With --compare: compare two files, run nothing.")
    ] = None,
    threshold: Annotated[float, typer.Option(help="Regression threshold, percent.")] = 10.0,
    pin: Annotated[bool, typer.Option(help="Pin server and wrk to separate cores.")] = True,
    isolated: Annotated[bool, typer.Option(help="Start a stack of its own, then stop it.")] = False,
    profile: Annotated[str, typer.Option(help="The profile of --isolated.")] = "standard",
) -> None:
    """Benchmark every implementation that is up with wrk, beside baselines and ceilings."""
    from devstack_cli import bench as bench_module  # here: it imports httpx

    options = {k: v for k, v in locals().items() if k != "bench_module"}
    try:
        bench_module.command(settings(), out, **options)
    except bench_module.BenchError as exc:
        fail(str(exc), exc.code)


def pytest_beside_checks(
    argv: list[str], recipes: list[polyglot.Recipe]
) -> tuple[int, list[polyglot.Recipe]]:
    """Run pytest, and meanwhile each polyglot API's checks that can run beside it (their lint
    and their compiling) at the lowest CPU priority: pytest leaves about one core of two idle.
    Their output goes to a log, shown once pytest is done. Returns pytest's exit code and the
    recipes whose checks failed."""
    failed = []
    checks_log = settings().state.logs / "polyglot-checks.log"
    checks_log.parent.mkdir(parents=True, exist_ok=True)
    pytest_run = subprocess.Popen(argv, cwd=repo_root())
    try:
        with checks_log.open("w") as log:

            def say(line: str) -> None:
                log.write(f"{line}\n")
                log.flush()

            for recipe in recipes:
                if not polyglot.run_checks(
                    recipe, say, stage="beside", output=log, lowest_priority=True
                ):
                    failed.append(recipe)
        code = pytest_run.wait()
    finally:
        if pytest_run.poll() is None:  # interrupted: pytest had the same signal
            pytest_run.wait()
    if recipes:
        out.print(f"[bold]beside pytest ({checks_log}):[/bold]", markup=True)
        out.print(checks_log.read_text().rstrip(), markup=False, highlight=False)
    return code, failed


# Where `test` requires a docstring on everything public (interrogate).
DOCSTRING_CHECKED = ("libs/devstack_client/src", "libs/devstack_web/src")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def test(
    ctx: typer.Context,
    checks: Annotated[
        bool,
        typer.Option(
            help=(
                "Run ruff, mypy, interrogate and typos before pytest, and each polyglot API's "
                "own checks beside it and after it."
            )
        ),
    ] = True,
    unit: Annotated[
        bool, typer.Option("--unit", help="The fast lane: no integration test, no server started.")
    ] = False,
) -> None:
    """Run the whole test suite: lint, types, unit and integration tests (extra args go to pytest).

    The integration tests start a stack of their own through `devstack up`, in a separate state
    folder and on ports moved by DEVSTACK_TEST_PORT_OFFSET (default 100), beside yours, with the
    profile DEVSTACK_TEST_PROFILE (default `full`: every implementation of the contract).
    """
    root = repo_root()
    missing = tools.missing_test_tools()
    if missing and tools.can_use_apt():
        log = settings().state.logs / "setup.log"
        out.print(f"installing with apt: {' '.join(str(m.apt) for m in missing)} (log: {log})")
        tools.apt_install([str(m.apt) for m in missing], log)
    elif missing:
        lines = "\n  ".join(tools.install_commands(missing))
        fail(
            f"the tests need {', '.join(m.what for m in missing)}. Install with:\n  {lines}",
            EXIT_ENVIRONMENT,
        )
    bin_dir = os.path.dirname(sys.executable)
    steps = (
        [
            [f"{bin_dir}/ruff", "check", "."],
            [f"{bin_dir}/ruff", "format", "--check", "."],
            [f"{bin_dir}/mypy"],
            # Docstrings of the libraries' public API ([tool.interrogate] in pyproject.toml).
            [f"{bin_dir}/interrogate", "-c", "pyproject.toml", *DOCSTRING_CHECKED],
            [f"{bin_dir}/typos", "."],
        ]
        if checks
        else []
    )
    for argv in steps:
        shown = " ".join([os.path.basename(argv[0]), *argv[1:]])
        out.print(f"[bold]$ {shown}[/bold]", markup=True)
        started = time.monotonic()
        code = subprocess.run(argv, cwd=root).returncode
        out.print(f"  ({time.monotonic() - started:.1f} s)")
        if code:
            fail(f"`{' '.join(argv[1:3]) or argv[0]}` failed (exit {code})", EXIT_FAILED)
    recipes = [r for r in polyglot.RECIPES.values() if r.exists()] if checks else []
    if recipes and not unit:
        # The test stack's builds, first: the checks beside pytest then compile on top of them
        # (Go's cache, Rust's target folder) and never hold a build the stack waits for.
        log = settings().state.logs / "setup.log"
        for recipe in recipes:
            try:
                polyglot.build(recipe, log, say=lambda line: out.print(line, markup=False))
            except polyglot.BuildError as exc:
                # What the compiler said, in CI's log too.
                tail = log.read_text(errors="replace").splitlines()[-60:]
                out.print("\n".join(tail), markup=False, highlight=False)
                fail(str(exc), EXIT_FAILED)
    # The whole suite names its slowest tests (CI's log): where the cold run's time goes.
    lane = ["-m", "not integration"] if unit else ["--durations=25"]
    argv = [sys.executable, "-m", "pytest", *lane, *ctx.args]
    out.print(f"[bold]$ pytest {' '.join([*lane, *ctx.args])}[/bold]", markup=True)
    code, failed = pytest_beside_checks(argv, recipes)
    for recipe in recipes:
        if recipe not in failed and not polyglot.run_checks(
            recipe, say=lambda line: out.print(f"[bold]{line}[/bold]", markup=True), stage="after"
        ):
            failed.append(recipe)
    if failed:
        names = ", ".join(f"{r.name} ({r.folder})" for r in failed)
        also = " (and so did `pytest`)" if code else ""
        fail(f"the checks of {names} failed{also}", EXIT_FAILED)
    if code:
        fail(f"`pytest` failed (exit {code})", EXIT_FAILED)
    out.print("[green]all checks and tests passed[/green]")


# -- vault ------------------------------------------------------------------------------


@vault_app.command("status")
def vault_status() -> None:
    """Is Vault initialised, unsealed and answering?"""
    from devstack_cli.vault import Vault, VaultError  # deferred: hvac costs 0.2 s to import

    s = settings()
    with Vault.for_settings(s) as vault:
        try:
            health = vault.health()
        except VaultError as exc:
            if exc.answered:
                fail(str(exc))
            fail(f"Vault does not answer at {vault.address}: start it with `./devstack up`")
    out.print(f"address      {vault.address}")
    for key in ("initialized", "sealed", "standby", "version"):
        out.print(f"{key:<12} {health.get(key)}")
    if health.get("sealed") or not health.get("initialized"):
        raise typer.Exit(EXIT_FAILED)


@vault_app.command("bootstrap")
def vault_bootstrap() -> None:
    """Unseal Vault and re-apply the bootstrap (idempotent)."""
    from devstack_cli import bootstrap  # deferred: hvac costs 0.2 s to import

    s = settings()
    if engine.status(s) is None:
        fail("the stack is not running: start it with `./devstack up`")
    root = bootstrap.init_or_unseal(s, out.print)
    bootstrap.bootstrap(s, stack(), root, out.print)
    out.print("bootstrap applied")


@vault_app.command("rotate-secret-id")
def vault_rotate_secret_id(
    service: Annotated[str, typer.Argument(help="The service whose AppRole secret-id to replace.")],
) -> None:
    """Issue a new secret-id for a service's AppRole and destroy the old one (and lift a lockout).

    `vault bootstrap` replaces a secret-id that no longer logs in; this replaces one on demand.
    """
    from devstack_cli import bootstrap  # deferred: hvac costs 0.2 s to import

    s = settings()
    name = known_service(service)
    if engine.status(s) is None:
        fail("the stack is not running: start it with `./devstack up`")
    root = bootstrap.init_or_unseal(s, out.print)
    bootstrap.rotate_secret_id(s, name, root, out.print)


@vault_app.command("ca")
def vault_ca() -> None:
    """Print the CA chain (intermediate and root) that every certificate here verifies against."""
    s = settings()
    chain = s.state.ca_chain
    if not chain.exists():
        fail(f"{chain} does not exist yet: run `./devstack up`")
    err.print(f"# {chain}")
    sys.stdout.write(chain.read_text())


@vault_app.command("creds")
def vault_creds(
    service: Annotated[str, typer.Argument(help="The service whose secret to show.")],
    reveal: Annotated[bool, typer.Option("--reveal", help="Show the password.")] = False,
) -> None:
    """A service's credentials, read through its own AppRole (passwords masked)."""
    from devstack_cli.vault import VaultError, login_as  # deferred: hvac costs 0.2 s to import

    s = settings()
    svc = stack().service(known_service(service))
    if svc.secret is None:
        fail(
            f"{svc.name} has no secret of its own; services with one: "
            + ", ".join(n for n, x in stack().services.items() if x.secret),
            EXIT_USAGE,
        )
    try:
        with login_as(s, svc.name) as vault:
            secret = vault.kv_get(svc.secret_path)
    except FileNotFoundError as exc:
        fail(str(exc))
    except VaultError as exc:
        fail(str(exc) if exc.answered else "Vault does not answer: start it with `./devstack up`")
    if secret is None:
        fail(f"secret/{svc.secret_path} is missing: run `./devstack vault bootstrap`")
    ports = engine.service_ports(s, svc)
    out.print(
        f"secret/{svc.secret_path}  (ports: "
        + ", ".join(f"{k} {v}" for k, v in ports.items())
        + ")"
    )
    for key, value in secret.items():
        shown = value if reveal or key != "password" else MASK
        out.print(f"  {key:<12} {shown}", markup=False)


# -- compose: the same stack on a container engine (docs/compose.md) ----------------------

compose_app = typer.Typer(
    help="The stack on a container engine: compose.yaml, the image, the engine.",
    no_args_is_help=True,
)
compose_engine_app = typer.Typer(
    help="A private dockerd (root on Debian): its own data root and socket, no NAT.",
    no_args_is_help=True,
)
app.add_typer(compose_app, name="compose")
compose_app.add_typer(compose_engine_app, name="engine")


@contextlib.contextmanager
def compose_errors() -> Iterator[None]:
    """A ComposeError is one line and the CLI's exit code."""
    try:
        yield
    except compose.ComposeError as exc:
        fail(str(exc), exc.code)


def compose_snapshot(s: Settings) -> StackStatus | None:
    with compose_errors():
        engine_ = compose.find_engine()
        snap = compose.snapshot(engine_, s, _last_profile(s))
    started = [p for p in snap.processes if p.container]
    return snap if started else None


def compose_up(s: Settings, profile: str, started: float) -> None:
    def say(line: str) -> None:
        out.print(f"{time.monotonic() - started:6.1f}s  {line}", markup=False)

    with compose_errors():
        ok, snap = compose.up(s, profile, say, s.up_timeout)
    states = snap.services()
    if ok:
        out.print(
            f"[green]all {len(states)} services healthy[/green] in "
            f"{time.monotonic() - started:.1f}s (profile {profile}, engine compose)"
        )
        return
    broken = say_not_up(states, s.up_timeout)
    err.print(f"see `devstack logs {broken.name}`; the stack is left up for that")
    raise typer.Exit(EXIT_FAILED)


@compose_app.command("render")
def compose_render(
    check: Annotated[
        bool, typer.Option("--check", help="Exit 1 when compose.yaml is stale; write nothing.")
    ] = False,
) -> None:
    """Write compose.yaml from the service table (the native engine's plan)."""
    if check:
        if compose.is_stale():
            fail("compose.yaml is stale: run `devstack compose render` and commit it")
        out.print("compose.yaml is current")
        return
    out.print(f"wrote {compose.write()}")


@compose_app.command("build")
def compose_build() -> None:
    """Build the runtime image (servers, launcher, Python APIs) on the engine."""
    started = time.monotonic()
    with compose_errors():
        seconds = compose.build(compose.find_engine(), lambda line: out.print(line, markup=False))
    out.print(f"built {compose.IMAGE} in {seconds:.0f}s ({time.monotonic() - started:.0f}s in all)")


@compose_engine_app.command("start")
def compose_engine_start() -> None:
    """Start a private dockerd (root on Debian; installs docker.io with apt)."""
    with compose_errors():
        compose.start_private_engine(lambda line: out.print(line, markup=False))
    out.print(f"engine running: DOCKER_HOST=unix://{compose.private_socket()}")


@compose_engine_app.command("stop")
def compose_engine_stop() -> None:
    """Stop the private dockerd and restore any network change it made."""
    fixed = compose.stop_private_engine(lambda line: out.print(line, markup=False))
    out.print("network restored: " + ", ".join(fixed) if fixed else "the host network is unchanged")


# -- internal commands, run by the engine --------------------------------------------------


@app.command("_supervise", hidden=True)
def _supervise(plan_file: str) -> None:
    for name in ("VAULT_TOKEN", "BAO_TOKEN"):
        os.environ.pop(name, None)
    s = settings()
    plan = Plan.model_validate_json(Path(plan_file).read_text())
    supervisor.run_supervisor(plan, s.state.supervisor_sock, s.state.supervisor_pid)


@app.command("_bootstrap", hidden=True)
def _bootstrap() -> None:
    from devstack_cli import bootstrap  # deferred: hvac costs 0.2 s to import

    s = settings()
    root = bootstrap.init_or_unseal(s, lambda m: print(m, flush=True))
    bootstrap.bootstrap(s, stack(), root, lambda m: print(m, flush=True))
    print("bootstrap complete", flush=True)


@app.command("_serve", hidden=True)
def _serve(service: str, instance: int = 0) -> None:
    # Here, not at the top: a launcher imports its own server's module only (entry.py's path).
    from devstack_cli.servers import module_for
    from devstack_cli.servers.base import Launch, exec_server

    s = settings()
    ctx = Launch(s, stack().service(service), instance)
    exec_server(ctx, module_for(service).launch(ctx))


@app.command("_redis_cluster", hidden=True)
def _redis_cluster() -> None:
    from devstack_cli.servers.base import Launch  # here: only this step needs the server kit
    from devstack_cli.servers.redis import ensure_cluster

    ensure_cluster(Launch(settings(), stack().service("redis")))


def main() -> None:
    """Entry point: usage errors are one line and exit 2."""
    command = typer.main.get_command(app)
    try:
        code = command.main(args=sys.argv[1:], prog_name="devstack", standalone_mode=False)
    except click.UsageError as exc:
        hint = (
            f" (see `devstack {exc.ctx.command_path.split(' ', 1)[1]} --help`)"
            if (exc.ctx and " " in exc.ctx.command_path)
            else " (see `devstack --help`)"
        )
        err.print(f"error: {exc.format_message()}{hint}", markup=False)
        sys.exit(EXIT_USAGE)
    except click.exceptions.Abort:
        err.print("aborted")
        sys.exit(130)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    sys.exit(code if isinstance(code, int) else 0)
