"""What would cut the Python APIs' cost per request: code_first as the stack runs it, against the
same app run by hand with other settings: asyncio's event loop and uvloop's (the setting
`DEVSTACK_API_EVENT_LOOP`, each named explicitly) and no access log.

    .venv/bin/python bench/python_options.py [--state-dir .devstack] [--port-offset 0]
        [--rounds 3] [--duration 6] [--json out.json]

Needs a running stack with code_first. It copies code_first's environment (`<state>/envs/
code_first`) to a temporary folder (the stack's environment is not touched), starts the variants
from the working tree's code on free ports with code_first's AppRole (HTTP only), then, each
round, each variant in turn: `GET /examples/cache/{key}` and `GET /health` at 16 connections with
wrk (warm-up 1 s, then `--duration` s), the server pinned to the first core and wrk to the second,
and the server's CPU seconds per 1,000 requests from /proc: on a shared machine the CPU per
request moves far less than the requests per second do. Prints the medians (and every round,
and each variant's resident memory at the end) as JSON; stops what it started.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from devstack_cli import lifeline
from devstack_cli.bench import (
    SCENARIOS,
    cpu_seconds,
    free_port,
    health_ok,
    pin_tree,
    restore_affinity,
    rss_mb,
    run_wrk,
)

APP = "code_first"
RUN = "from code_first.__main__ import main; main()"


def status(state_dir: Path, port_offset: int) -> dict[str, Any]:
    env = {**os.environ, "DEVSTACK_STATE_DIR": str(state_dir)}
    env["DEVSTACK_PORT_OFFSET"] = str(port_offset)
    done = subprocess.run(
        [sys.executable, "-m", "devstack_cli", "status", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--state-dir", default=os.environ.get("DEVSTACK_STATE_DIR", ".devstack"))
    parser.add_argument(
        "--port-offset", type=int, default=int(os.environ.get("DEVSTACK_PORT_OFFSET", "0"))
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=6)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    state = Path(args.state_dir).resolve()
    service = status(state, args.port_offset)["services"].get(APP)
    if not service or service["state"] != "healthy":
        raise SystemExit(f"{APP} is not running healthy in the stack at {state}")
    stack_pid = int(service["processes"][0]["pid"])
    stack_url = f"http://127.0.0.1:{service['ports']['http']}"
    if len(os.sched_getaffinity(0)) < 2:
        raise SystemExit("needs two usable cores: one for the server, one for wrk")

    tmp = Path(tempfile.mkdtemp(prefix="devstack-pyopts-"))
    started: list[subprocess.Popen[bytes]] = []
    try:
        env_copy = tmp / "env"
        shutil.copytree(state / "envs" / APP, env_copy, symlinks=True)
        python = str(env_copy / "bin" / "python")
        base_env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", ""),
            "DEVSTACK_VAULT_ROLE_ID_FILE": str(state / "approle" / APP / "role-id"),
            "DEVSTACK_VAULT_SECRET_ID_FILE": str(state / "approle" / APP / "secret-id"),
            "DEVSTACK_CA_FILE": str(state / "ca" / "ca-chain.pem"),
            "DEVSTACK_PORT_OFFSET": str(args.port_offset),
            "MALLOC_ARENA_MAX": "2",
            "PYDANTIC_DISABLE_PLUGINS": "1",
        }
        variants: dict[str, tuple[str, int]] = {"as the stack runs it": (stack_url, stack_pid)}
        for name, code, extra in (
            ("by hand, as served", RUN, {}),
            ("asyncio's event loop", RUN, {"DEVSTACK_API_EVENT_LOOP": "asyncio"}),
            ("uvloop's event loop", RUN, {"DEVSTACK_API_EVENT_LOOP": "uvloop"}),
            ("no access log", RUN, {"DEVSTACK_API_LOG_LEVEL": "WARNING"}),
        ):
            port = free_port()
            env = {**base_env, **extra, "DEVSTACK_API_HTTP_PORT": str(port)}
            env["DEVSTACK_API_HTTPS_PORT"] = str(free_port())
            log = (tmp / f"{port}.log").open("ab")
            process = subprocess.Popen(
                [python, "-OO", "-X", "no_debug_ranges", "-c", code],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                # Killed with this script, even by SIGKILL (the kernel's parent-death signal).
                preexec_fn=lifeline.preexec_die_with_parent(signal.SIGTERM),
            )
            started.append(process)
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 90
            while not health_ok(url, False, timeout=1):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"{name} did not start; see {tmp / f'{port}.log'}")
                time.sleep(0.1)
            variants[name] = (url, process.pid)
        key = f"bench-options-{os.getpid()}"
        httpx.put(f"{stack_url}/examples/cache/{key}", json={"value": "v"}, timeout=30)
        figures: dict[str, dict[str, dict[str, list[float]]]] = {
            v: {s: {"cpu_s_per_1000": [], "rps": []} for s in ("cache_get", "health")}
            for v in variants
        }
        cpus = sorted(os.sched_getaffinity(0))
        for _ in range(args.rounds):
            for name, (url, pid) in variants.items():
                saved = pin_tree(pid, {cpus[0]})
                try:
                    for scenario, path in (
                        ("cache_get", f"/examples/cache/{key}"),
                        ("health", "/health"),
                    ):
                        s = SCENARIOS[scenario]
                        run_wrk(url, s, [path], 16, 1, cpus[1])
                        before = cpu_seconds(pid)
                        raw = run_wrk(url, s, [path], 16, args.duration, cpus[1])
                        used = cpu_seconds(pid) - before
                        ok = sum(v for k, v in raw["statuses"].items() if 200 <= int(k) < 300)
                        if ok != raw["requests"]:
                            raise SystemExit(f"{name} {scenario}: non-2xx {raw['statuses']}")
                        figures[name][scenario]["cpu_s_per_1000"].append(
                            round(used / raw["requests"] * 1000, 3)
                        )
                        figures[name][scenario]["rps"].append(
                            round(raw["requests"] / (raw["duration_us"] / 1e6), 1)
                        )
                finally:
                    restore_affinity(saved)
        httpx.delete(f"{stack_url}/examples/cache/{key}", timeout=30)
        resident_mb = {name: rss_mb(pid) for name, (_, pid) in variants.items()}
    finally:
        for process in started:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in started:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    result = {
        name: {
            scenario: {
                "cpu_s_per_1000_median": statistics.median(f["cpu_s_per_1000"]),
                "rps_median": statistics.median(f["rps"]),
                **f,
            }
            for scenario, f in by_scenario.items()
        }
        for name, by_scenario in figures.items()
    }
    text = json.dumps({"variants": result, "resident_mb_after": resident_mb}, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
