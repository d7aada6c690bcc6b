"""The native engine, seen from the CLI: render the plan, start and stop the supervisor, read state.

The supervisor itself lives in `devstack_cli.supervisor`; each server's part of the plan lives
in its module under `devstack_cli.servers`.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devstack_cli import lifeline
from devstack_cli.settings import Settings
from devstack_cli.stack import Service, stack
from devstack_cli.states import GIVE_UP_STATES, ServiceStatus, StackStatus, all_healthy
from devstack_cli.supervisor import SupervisorUnavailable, fetch_status, request

if TYPE_CHECKING:
    from devstack_cli.plan import Plan, ProcessSpec


def render_plan(settings: Settings, profile: str) -> Plan:
    # Imported here: `status` and `health` use this module without planning anything.
    from devstack_cli.plan import Plan
    from devstack_cli.servers import module_for, ready_process
    from devstack_cli.servers.base import PlanContext

    ready: dict[str, ProcessSpec] = {}  # what a later service waits for (the table lists it first)
    processes: list[ProcessSpec] = []
    for service in stack().in_profile(profile):
        specs = module_for(service.name).processes(PlanContext(settings, service, ready))
        ready[service.name] = ready_process(service.name, specs)
        processes.extend(specs)
    return Plan(profile=profile, processes=tuple(processes))


# -- ports -------------------------------------------------------------------------------


def service_ports(settings: Settings, service: Service) -> dict[str, int]:
    """Every port a service listens on, with the offset applied ("tls-2" for instance 2)."""
    ports: dict[str, int] = {}
    for name, base in service.ports.items():
        for index in range(service.instances):
            label = name if service.instances == 1 else f"{name}-{index + 1}"
            ports[label] = settings.port(base + index)
    return ports


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def taken_ports(settings: Settings, profile: str) -> list[tuple[int, str]]:
    taken = []
    for service in stack().in_profile(profile):
        for label, port in service_ports(settings, service).items():
            if not port_is_free(port):
                taken.append((port, f"{service.name} {label}"))
    return taken


# -- the supervisor ----------------------------------------------------------------------


def status(settings: Settings) -> StackStatus | None:
    """The supervisor's view of every process, or None when the stack is not running."""
    try:
        return fetch_status(settings.state.supervisor_sock, timeout=10)
    except SupervisorUnavailable:
        return None


def start_supervisor(settings: Settings, plan: Plan) -> None:
    paths = settings.state
    for folder in (paths.run, paths.logs):
        folder.mkdir(parents=True, exist_ok=True)
    paths.plan_file.write_text(plan.model_dump_json(indent=2))
    paths.profile_file.write_text(plan.profile + "\n")
    with paths.supervisor_log.open("ab") as log:
        subprocess.Popen(
            [sys.executable, "-m", "devstack_cli", "_supervise", str(paths.plan_file)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={
                **os.environ,
                "DEVSTACK_STATE_DIR": str(paths.root),
                "DEVSTACK_PORT_OFFSET": str(settings.port_offset),
            },
        )
    deadline = time.monotonic() + 15
    while status(settings) is None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the supervisor did not start; see {paths.supervisor_log}")
        time.sleep(0.05)


def supervisor_pid(settings: Settings) -> int | None:
    """The running supervisor's PID, proven: it holds the state folder's lock, its start time is
    the one it recorded, and its command line is the supervisor's. None otherwise (a stale PID
    file, whatever process now has that number, is never taken for ours)."""
    pid_file = settings.state.supervisor_pid
    try:
        fd = os.open(pid_file, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            pass  # held: a supervisor is alive; check it is the one recorded
        else:
            return None  # nobody holds it: whatever the file says is stale
        try:
            rec = json.loads(os.read(fd, 4096))
            pid, started = int(rec["pid"]), float(rec["started"])
        except (ValueError, KeyError, TypeError):
            return None
    finally:
        os.close(fd)
    if not lifeline.is_same_process(pid, started):
        return None
    if "_supervise" not in lifeline.command_line(pid):
        return None
    return pid


def orphans(settings: Settings) -> dict[str, dict[str, Any]]:
    """Processes a dead supervisor left behind (still the very processes it recorded)."""
    if supervisor_pid(settings) is not None:
        return {}
    return lifeline.live_records(settings.state.children_file)


def stop_orphans(settings: Settings) -> list[str]:
    """Stop what a dead supervisor left running; the names of what was stopped."""
    if supervisor_pid(settings) is not None:
        return []
    records = lifeline.read_records(settings.state.children_file)
    stopped = lifeline.stop_recorded(records) if records else []
    settings.state.children_file.unlink(missing_ok=True)
    return stopped


class UpInProgress(RuntimeError):
    pass


def lock_up(settings: Settings) -> int:
    """Hold the state folder's `up` lock until this process exits; UpInProgress when another
    `up` holds it. One `up` at a time per state folder: never two stacks on one folder."""
    paths = settings.state
    fd, holder = take_lock(paths.up_lock)
    if fd is None:
        raise UpInProgress(
            f"another `devstack up` (pid {holder}) is starting this stack ({paths.root}): "
            "wait for it, then see `devstack status`"
        )
    return fd


def take_lock(path: Path) -> tuple[int | None, str]:
    """Take the exclusive lock of `path` (created) for this process: (its descriptor, "");
    the lock goes when the descriptor is closed or the process ends. When another process
    holds it: (None, the pid it recorded, or "unknown")."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            holder = str(json.loads(os.read(fd, 4096))["pid"])
        except (ValueError, KeyError, TypeError):
            holder = "unknown"
        os.close(fd)
        return None, holder
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps(lifeline.record(os.getpid())).encode())
    return fd, ""


def stop(settings: Settings, timeout: float = 90.0) -> bool:
    """Stop the stack; False when it was not running (and left nothing behind)."""
    pid = supervisor_pid(settings)
    if pid is None:
        return bool(stop_orphans(settings))
    with contextlib.suppress(SupervisorUnavailable, RuntimeError):
        request(settings.state.supervisor_sock, {"cmd": "shutdown"})
    deadline = time.monotonic() + timeout
    while supervisor_pid(settings) == pid:
        if time.monotonic() > deadline:
            # Proven ours a moment ago (lock, start time, command line): its group goes.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            break
        time.sleep(0.1)
    stop_orphans(settings)
    return True


def remove_state(settings: Settings) -> None:
    """Delete the state folder, and the folders outside it that it links to (a server's folder
    kept where its own account can reach it: see `Launch.reachable_by`)."""
    from devstack_cli.servers.base import outside_root

    root, outside = settings.state.root, outside_root(settings)
    if root.exists():
        for child in root.iterdir():
            if child.is_symlink() and child.resolve().parent == outside:
                shutil.rmtree(child.resolve(), ignore_errors=True)
        shutil.rmtree(root)
    if outside.exists():
        shutil.rmtree(outside, ignore_errors=True)
    with contextlib.suppress(OSError):
        outside.parent.rmdir()  # only when no other state folder keeps one there


# -- services, as the user sees them ------------------------------------------------------


def wait_until_healthy(
    settings: Settings, timeout: float, on_change: Callable[[list[ServiceStatus]], None]
) -> tuple[bool, list[ServiceStatus]]:
    """Poll until every service is healthy (True) or one fails or time runs out (False)."""
    deadline = time.monotonic() + timeout
    last: list[ServiceStatus] = []
    while True:
        snapshot = status(settings)
        if snapshot is None:
            return False, last
        states = snapshot.services()
        if states != last:
            on_change(states)
            last = states
        if all_healthy(states):
            return True, states
        if any(s.state in GIVE_UP_STATES for s in states):
            return False, states
        if time.monotonic() > deadline:
            return False, states
        time.sleep(0.2)


def tail(path: str, lines: int) -> list[str]:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 256 * 1024))
            data = f.read().decode(errors="replace")
    except FileNotFoundError:
        return []
    return data.splitlines()[-lines:] if lines > 0 else []
