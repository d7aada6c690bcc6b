"""Measure the CPU a running, idle stack uses: each process's user + system time over a window.

Reads the stack's supervisor (state folder from DEVSTACK_STATE_DIR, as `devstack` does) and every
process below it from /proc (psutil), at the start and the end of the window, and prints each
process's share of one core and its wake-ups per second (voluntary context switches of all its
threads: a count the machine's load does not move, unlike CPU time), grouped by service. The
supervisor's line counts its reaped children too (its exec probes and one-shot steps). Send no
requests while it runs.

    DEVSTACK_STATE_DIR=... uv run python bench/idle_cpu.py --seconds 60

CPU time per wake-up is higher on a quiet machine than on a busy one (docs/performance.md, the
idle stack): compare figures measured side by side, and record the load average (printed).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

import psutil


def state_dir() -> Path:
    configured = os.environ.get("DEVSTACK_STATE_DIR")
    return Path(configured) if configured else Path.home() / ".local/state/devstack"


def cpu_seconds(proc: psutil.Process, with_children: bool) -> float:
    times = proc.cpu_times()
    total = times.user + times.system
    if with_children:
        total += times.children_user + times.children_system
    return total


def wakeups(pid: int) -> int:
    """Voluntary context switches of every thread of the process: how often it went to sleep
    and was woken. Unlike CPU time, a count that does not depend on how busy the machine is."""
    total = 0
    for status in Path(f"/proc/{pid}/task").glob("*/status"):
        try:
            for line in status.read_text().splitlines():
                if line.startswith("voluntary_ctxt_switches:"):
                    total += int(line.split()[1])
        except OSError:
            continue  # a thread that ended
    return total


Sample = tuple[str, float, int]  # label, CPU seconds, wake-ups


def snapshot(supervisor: psutil.Process) -> dict[int, Sample]:
    """pid -> (label, CPU seconds, wake-ups) for the supervisor and every process below it."""
    found = {
        supervisor.pid: (
            "supervisor (with its exec probes)",
            cpu_seconds(supervisor, True),
            wakeups(supervisor.pid),
        )
    }
    for child in supervisor.children(recursive=True):
        try:
            found[child.pid] = (child.name(), cpu_seconds(child, False), wakeups(child.pid))
        except psutil.NoSuchProcess:
            continue
    return found


def service_of(pid: int, children: dict[str, dict[str, object]]) -> str | None:
    """The supervised process a pid is, or descends from (children.json: name -> {pid, ...})."""
    by_pid = {int(str(entry["pid"])): name for name, entry in children.items()}
    try:
        lineage = [psutil.Process(pid), *psutil.Process(pid).parents()]
    except psutil.NoSuchProcess:
        return None
    for proc in lineage:
        if proc.pid in by_pid:
            return by_pid[proc.pid]
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    if args.seconds <= 0:
        parser.error("--seconds must be above 0")
    run = state_dir() / "run"
    try:
        supervisor = psutil.Process(json.loads((run / "supervisor.pid").read_text())["pid"])
        children = json.loads((run / "children.json").read_text())
    except (OSError, ValueError, KeyError, psutil.Error):
        sys.exit(
            f"no running stack in {run.parent}: start one with `devstack up` (the same "
            "DEVSTACK_STATE_DIR), or set DEVSTACK_STATE_DIR to its state folder"
        )

    before, started = snapshot(supervisor), time.monotonic()
    time.sleep(args.seconds)
    after, wall = snapshot(supervisor), time.monotonic() - started

    shares: dict[str, float] = defaultdict(float)
    rates: dict[str, float] = defaultdict(float)
    for pid, (label, seconds, woken) in after.items():
        if pid not in before:
            continue  # started during the window (a restart): not an idle figure
        name = label if pid == supervisor.pid else (service_of(pid, children) or label)
        shares[name] += (seconds - before[pid][1]) / wall * 100
        rates[name] += (woken - before[pid][2]) / wall
    width = max(len(name) for name in shares)
    print(f"{'process':<{width}}  {'CPU':>7}  wake-ups/s")
    for name, share in sorted(shares.items(), key=lambda item: -item[1]):
        print(f"{name:<{width}}  {share:5.2f} %  {rates[name]:8.1f}")
    total = sum(shares.values())
    print(f"{'total, of one core':<{width}}  {total:5.2f} %  {sum(rates.values()):8.1f}")
    print(f"over {wall:.0f} s; load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
