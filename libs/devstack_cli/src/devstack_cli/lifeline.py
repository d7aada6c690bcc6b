"""Which processes are the stack's, proven rather than assumed, and how they die with it.

A PID alone proves nothing: after a crash or a reboot the number in a PID file may belong to
any process. So every process the engine may signal is recorded as (pid, start time), and a
process is ours only when its start time still matches (and, for the supervisor, its command
line and the lock it holds in the state folder agree). Signals go to nothing else.

Each server also dies with its supervisor: on Linux the kernel sends it a parent-death signal
(`PR_SET_PDEATHSIG`), set in the child before it execs and set again by a launcher after it
drops root (a change of user clears it). Whatever survives anyway (a platform without that
signal, a process that ignores it) is found from the records by the next `status`, `down` or
`up`.

This module is imported by every launcher: it imports nothing heavy (psutil lazily).
"""

from __future__ import annotations

# ctypes is imported here, not lazily: a launcher calls it after dropping root, when the
# Python installation may no longer be readable.
import contextlib
import ctypes
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

PR_SET_PDEATHSIG = 1
START_TIME_TOLERANCE = 0.05  # seconds: start times are derived from clock ticks since boot


def start_time(pid: int) -> float | None:
    """When the process started (seconds since the epoch); None when there is no such live
    process (a zombie is dead)."""
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None  # dead, waiting to be reaped: nothing left to stop
        return float(proc.create_time())
    except psutil.Error:
        return None


def is_same_process(pid: int, started: float) -> bool:
    """True when `pid` is still the process that started at `started` (not a reused PID)."""
    now = start_time(pid)
    return now is not None and abs(now - started) <= START_TIME_TOLERANCE


def command_line(pid: int) -> list[str]:
    import psutil

    try:
        return list(psutil.Process(pid).cmdline())
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return []


def record(pid: int) -> dict[str, Any]:
    """What identifies a process later: its PID and its start time."""
    return {"pid": pid, "started": start_time(pid) or time.time()}


# -- dying with the parent ---------------------------------------------------------------


def set_parent_death_signal(sig: int) -> bool:
    """Ask the kernel to send `sig` to this process when its parent dies (Linux only)."""
    if sys.platform != "linux":
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return bool(libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0) == 0)


def die_with_parent(sig: int, parent: int) -> None:
    """Set the parent-death signal; if the parent is already gone, take the signal now.

    `parent` is the PID the caller expects as its parent: checked after setting the signal, so
    a parent that died in between is not missed.
    """
    if set_parent_death_signal(sig) and os.getppid() != parent:
        os.kill(os.getpid(), sig)


def preexec_die_with_parent(sig: int) -> Callable[[], None]:
    """A `preexec_fn` for a child that must not outlive the process that starts it."""
    parent = os.getpid()

    def setup() -> None:
        die_with_parent(sig, parent)

    return setup


# -- records of what the supervisor started ------------------------------------------------


def read_records(path: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def live_records(path: Path) -> dict[str, dict[str, Any]]:
    """The recorded processes that are still the very processes recorded."""
    return {
        name: rec
        for name, rec in read_records(path).items()
        if isinstance(rec.get("pid"), int)
        and isinstance(rec.get("started"), int | float)
        and is_same_process(rec["pid"], rec["started"])
    }


def group_members(pgid: int, leader_started: float) -> list[int]:
    """The processes of the group a recorded leader created, when that group is still its.

    A group keeps its id after its leader dies (a wrapper's server does). The kernel does not
    give a PID to a new process while a group of that id has members, so: the leader is alive
    and the one recorded, or no process has that PID at all, and then the members are ours. A
    live process with that PID but another start time means the group is gone and the PID reused.
    """
    import psutil

    if not is_same_process(pgid, leader_started) and start_time(pgid) is not None:
        return []
    members = []
    for proc in psutil.process_iter(["pid"]):
        with contextlib.suppress(psutil.Error, ProcessLookupError, PermissionError):
            if os.getpgid(proc.pid) == pgid and start_time(proc.pid) is not None:
                members.append(proc.pid)
    return members


def stop_recorded(
    records: dict[str, dict[str, Any]], grace: float = 20.0, poll: float = 0.1
) -> list[str]:
    """Stop recorded process groups whose leader or members are still ours; return their names.

    Each group gets its recorded stop signal, then SIGKILL after `grace` seconds.
    """
    stopped: list[str] = []
    targets: dict[str, tuple[list[int], int]] = {}
    for name, rec in records.items():
        pid, started = rec.get("pid"), rec.get("started")
        if not isinstance(pid, int) or not isinstance(started, int | float):
            continue
        members = group_members(pid, started)
        if is_same_process(pid, started) and pid not in members:
            members.append(pid)
        if members:
            sig = getattr(signal, str(rec.get("stop_signal", "SIGTERM")), signal.SIGTERM)
            targets[name] = (members, sig)
    for _name, (members, sig) in targets.items():
        for pid in members:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
    deadline = time.monotonic() + grace
    for name, (members, _sig) in targets.items():
        started_of = {pid: start_time(pid) for pid in members}
        while any(_alive(pid, started_of[pid]) for pid in members):
            if time.monotonic() > deadline:
                for pid in members:
                    if _alive(pid, started_of[pid]):
                        with contextlib.suppress(ProcessLookupError, PermissionError):
                            os.kill(pid, signal.SIGKILL)
                break
            time.sleep(poll)
        stopped.append(name)
    return stopped


def _alive(pid: int, started: float | None) -> bool:
    return started is not None and is_same_process(pid, started)
