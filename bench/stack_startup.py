"""Measure how long `devstack up` takes: first start on a fresh state folder, and after `down`.

Runs an isolated stack (its own temporary state folder, ports moved by --port-offset) through the
same CLI a developer uses, N rounds, and prints one JSON document with every run and the medians.
Binaries must already be installed (run `./devstack up` once, or `./devstack doctor`).

    uv run python bench/stack_startup.py --rounds 3 --profile standard
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def devstack(env: dict[str, str], *args: str) -> float:
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "devstack_cli", *args], env=env, capture_output=True, text=True
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"devstack {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return elapsed


def timeline(env: dict[str, str], started_at: float) -> dict[str, object]:
    """Where an `up` went, from the running stack: when the supervisor started (the CLI's own
    work before it: environment checks, the APIs' environments, port checks) and when each
    process became ready (its state's `since`), in seconds after `up` was run."""
    result = subprocess.run(
        [sys.executable, "-m", "devstack_cli", "status", "--json"],
        env=env,
        capture_output=True,
        text=True,
    )
    report = json.loads(result.stdout)
    state = Path(report["state_dir"])
    supervisor = json.loads((state / "run" / "supervisor.pid").read_text())
    ready = {
        p["name"]: round(p["since"] - started_at, 2)
        for service in report["services"].values()
        for p in service["processes"]
    }
    return {
        "supervisor_started_s": round(supervisor["started"] - started_at, 2),
        "ready_s": dict(sorted(ready.items(), key=lambda item: item[1])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", default="standard")
    parser.add_argument("--port-offset", type=int, default=900)
    parser.add_argument(
        "--timeline", action="store_true", help="also report where each `up` after `down` went"
    )
    options = parser.parse_args()
    runs = []
    for _ in range(options.rounds):
        state = Path(tempfile.mkdtemp(prefix="devstack-bench-"))
        state.chmod(0o755)
        env = {
            **os.environ,
            "DEVSTACK_STATE_DIR": str(state),
            "DEVSTACK_PORT_OFFSET": str(options.port_offset),
        }
        try:
            first = devstack(env, "up", "--profile", options.profile)
            stop = devstack(env, "down")
            warm_started = time.time()
            warm = devstack(env, "up", "--profile", options.profile)
            where = timeline(env, warm_started) if options.timeline else None
            devstack(env, "down")
        finally:
            subprocess.run(
                [sys.executable, "-m", "devstack_cli", "reset", "--yes"],
                env=env,
                capture_output=True,
            )
            shutil.rmtree(state, ignore_errors=True)
        runs.append(
            {
                "first_up_s": round(first, 2),
                "down_s": round(stop, 2),
                "up_after_down_s": round(warm, 2),
                **({"up_after_down_timeline": where} if where else {}),
            }
        )
    report = {
        "profile": options.profile,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "system": platform.platform(),
        },
        "runs": runs,
        "median": {
            key: statistics.median(float(r[key]) for r in runs)  # type: ignore[arg-type]
            for key in ("first_up_s", "down_s", "up_after_down_s")
        },
        "targets": {"first_up_s": 60, "up_after_down_s": 15},
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
