"""`devstack bench`: every implementation of the contract that is up, on the same work, with wrk.

What it does, in order (docs/performance.md has the method and the reference run):

1. Finds the implementations in the running stack: every service of kind "api" in the service
   table that the stack's profile runs and whose `/health` answers (or those named).
2. Starts the baselines (a bare Starlette app; Starlette handlers making the library's Redis
   GET and PostgreSQL item GET) from an API's own environment, and creates each
   implementation's fixtures through its own API: cache keys on all three Redis masters, items
   in PostgreSQL, MongoDB and MySQL.
3. For each scenario, each connection count, each implementation in turn (the order rotates,
   so drift hits them alike): a warm-up, then a fixed-duration wrk run (HTTP/1.1 keep-alive),
   with the server pinned to one core and wrk to another, and the server's CPU time read from
   /proc before and after.
4. The ceilings: redis-benchmark GET on one master (TLS) and pgbench running the items query,
   at the same connection counts. Then each implementation's resident memory, and its start-up
   time (the supervisor starts it; launch to `/health` 200), median of several starts.
5. Writes `results.json`, `results.md` and PNG charts into `bench/results/<date>-<commit>/`.

The heavy lifting is wrk (C, one epoll loop per thread): the harness only starts processes and
reads their output, so it costs nothing while a measurement runs.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from devstack_cli import engine, lifeline, tools
from devstack_cli.settings import Settings, repo_root
from devstack_cli.stack import Service, stack
from devstack_cli.states import ProcessState

EXIT_USAGE, EXIT_ENVIRONMENT = 2, 3
SCHEMA_VERSION = 1
BENCH_DIR = "bench"
LUA_SCRIPT = Path(BENCH_DIR) / "wrk" / "scenario.lua"
BASELINE_SCRIPT = Path(BENCH_DIR) / "baselines" / "starlette_app.py"
DEFAULT_CONNECTIONS = (1, 16, 64)
SMOKE_CONNECTIONS = (1, 16)
ISOLATED_OFFSET = 500  # --isolated: its ports this far above the current stack's, or further


class BenchError(Exception):
    """A reason not to run, with the CLI's exit code (2: bad input, 3: not ready)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


# -- scenarios ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    name: str
    method: str
    route: str  # as the contract writes it
    what: str
    body: str | None = None
    baseline: tuple[str, ...] = ()  # which baselines serve it too


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "health",
            "GET",
            "/health",
            "liveness: the framework's floor",
            None,
            ("starlette", "starlette_redis"),
        ),
        Scenario(
            "cache_get",
            "GET",
            "/examples/cache/{key}",
            "a cached value (keys on all three Redis masters)",
            None,
            ("starlette_redis",),
        ),
        Scenario(
            "cache_put",
            "PUT",
            "/examples/cache/{key}",
            "store a value with a TTL",
            '{"value": "bench value", "ttl_seconds": 600}',
        ),
        Scenario(
            "postgres_get",
            "GET",
            "/examples/postgres/items/{item_id}",
            "a PostgreSQL item by id",
            None,
            ("starlette_postgres",),
        ),
        Scenario(
            "postgres_post",
            "POST",
            "/examples/postgres/items",
            "create a PostgreSQL item",
            '{"name": "bench", "quantity": 1}',
        ),
        Scenario("mongodb_get", "GET", "/examples/mongodb/items/{item_id}", "a MongoDB item by id"),
        Scenario("mysql_get", "GET", "/examples/mysql/items/{item_id}", "a MySQL item by id"),
        Scenario(
            "publish",
            "POST",
            "/examples/messaging/queues/{queue}/messages",
            "publish to RabbitMQ, publisher confirm awaited",
            '{"bench": true}',
        ),
        Scenario("health_all", "GET", "/health/all", "every dependency checked"),
    )
}


@dataclass
class Options:
    implementations: list[str] | None = None
    scenarios: list[str] = field(default_factory=lambda: list(SCENARIOS))
    connections: list[int] = field(default_factory=lambda: list(DEFAULT_CONNECTIONS))
    duration: int = 10
    warmup: int = 3
    https: bool = False
    smoke: bool = False
    baselines: bool = True
    ceilings: bool = True
    startup_rounds: int = 3
    output: Path | None = None
    compare: Path | None = None
    against: Path | None = None
    threshold: float = 10.0
    pin: bool = True
    isolated: bool = False
    profile: str = "standard"

    def apply_smoke(self) -> None:
        """A few hundred requests per scenario: proves the pipeline, measures nothing."""
        self.connections = [c for c in self.connections if c in SMOKE_CONNECTIONS] or list(
            SMOKE_CONNECTIONS
        )
        self.duration, self.warmup = 1, 0
        self.startup_rounds = min(self.startup_rounds, 1)


def parse_names(raw: str | None, known: list[str], what: str) -> list[str] | None:
    if raw is None or raw.strip() in ("", "all"):
        return None
    names = [n.strip() for n in raw.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise BenchError(
            f"unknown {what} {', '.join(unknown)}; choose from: {', '.join(known)}", EXIT_USAGE
        )
    return list(dict.fromkeys(names))


def parse_connections(raw: str) -> list[int]:
    try:
        values = [int(v) for v in raw.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or any(v < 1 or v > 10_000 for v in values):
        raise BenchError(f"--connections: expected numbers like 1,16,64, got {raw!r}", EXIT_USAGE)
    return sorted(set(values))


# -- /proc -------------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text()
                if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


def process_tree(pid: int) -> list[int]:
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(_children(current))
    return tree


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its descendants (from /proc/<pid>/stat)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in process_tree(pid):
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{p}/stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def rss_mb(pid: int) -> float:
    """Resident memory (VmRSS) of a process and its descendants, in MB (MiB)."""
    total_kb = 0
    for p in process_tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
    return round(total_kb / 1024, 1)


def python_event_loop(pid: int) -> str:
    """The event loop a Python server runs on: `uvloop` when its library is mapped into the
    process (the APIs import it only to run on it), else `asyncio`."""
    with contextlib.suppress(OSError):
        if "/uvloop/" in Path(f"/proc/{pid}/maps").read_text():
            return "uvloop"
    return "asyncio"


def affinity(pid: int) -> set[int]:
    return set(os.sched_getaffinity(pid))


def tree_threads(pid: int) -> list[int]:
    """The thread ids of every process of the tree under `pid` (those that vanish are left out)."""
    threads: list[int] = []
    for p in process_tree(pid):
        with contextlib.suppress(OSError):
            threads.extend(int(task.name) for task in Path(f"/proc/{p}/task").iterdir())
    return threads


def pin_tree(pid: int, cpus: set[int], record: Path | None = None) -> dict[int, set[int]]:
    """Pin every thread of a process tree to `cpus`; returns what to restore. With `record`,
    that is written there first, so that a bench killed before it restores leaves the next one
    what to undo (`unpin_left_over`)."""
    before: dict[int, set[int]] = {}
    for tid in tree_threads(pid):
        with contextlib.suppress(OSError):
            before[tid] = affinity(tid)
    if record is not None:  # what its first thread had: the affinity to give every thread back
        was = sorted(before.get(pid) or os.sched_getaffinity(0))
        pinned = {"pid": pid, "started": lifeline.start_time(pid), "affinity": was}
        record.write_text(json.dumps(pinned))
    for tid in before:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(tid, cpus)
    return before


def restore_affinity(saved: dict[int, set[int]], record: Path | None = None) -> None:
    for tid, cpus in saved.items():
        with contextlib.suppress(OSError):
            os.sched_setaffinity(tid, cpus)
    if record is not None:
        record.unlink(missing_ok=True)


def unpin_left_over(record: Path) -> int | None:
    """Undo the pinning a killed bench left (`pin_tree`'s record): every thread of the process
    tree it pinned, if that process still runs, gets the affinity its first thread had before;
    returns that process's pid (None when there was nothing to undo)."""
    try:
        pinned = json.loads(record.read_text())
        pid, started, cpus = int(pinned["pid"]), pinned["started"], set(pinned["affinity"])
    except (OSError, ValueError, KeyError, TypeError):
        record.unlink(missing_ok=True)
        return None
    record.unlink(missing_ok=True)
    if started is None or not cpus or not lifeline.is_same_process(pid, float(started)):
        return None
    for tid in tree_threads(pid):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(tid, cpus)
    return pid


def machine() -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory_gib = 0.0
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    return {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "memory_gib": memory_gib,
        "kernel": platform.release(),
        "os": _os_name(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def _os_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    return platform.system()


def _version(argv: list[str], pattern: str = r"(\d+\.\d+(?:\.\d+)?)") -> str | None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.search(pattern, done.stdout + done.stderr)
    return found.group(1) if found else None


def versions(settings: Settings, targets: list[Target]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name, tool, args in (
        ("wrk", "wrk", ["-v"]),
        ("redis", "redis-server", ["--version"]),
        ("redis-benchmark", "redis-benchmark", ["--version"]),
        ("postgresql", "postgres", ["--version"]),
        ("pgbench", "pgbench", ["--version"]),
        ("mariadb", "mariadbd", ["--version"]),
        ("pgbouncer", "pgbouncer", ["--version"]),
    ):
        path = tools.find(tool, path_first=tool != "postgres")
        if path and args:
            found[name] = _version([path, *args])
    if shutil.which("dpkg-query"):
        found["rabbitmq"] = _version(["dpkg-query", "-W", "-f=${Version}", "rabbitmq-server"])
    found["ferretdb"] = tools.FERRETDB_VERSION.lstrip("v")
    found["openbao"] = _version([tools.find("bao") or "bao", "version"])
    found["python (harness)"] = platform.python_version()
    for runtime, argv in (
        ("go", ["go", "version"]),
        ("node", ["node", "--version"]),
        ("rustc", ["rustc", "--version"]),
    ):
        if shutil.which(argv[0]):
            found[runtime] = _version(argv)
    for target in targets:
        if target.python:
            found[f"python ({target.name})"] = _version([target.python, "--version"])
    return found


def git_commit() -> tuple[str, bool]:
    root = repo_root()
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short=10", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=20,
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=root,
                capture_output=True,
                text=True,
                check=True,
                timeout=20,
            ).stdout.strip()
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown", True
    return commit, dirty


# -- what is measured ----------------------------------------------------------------------


@dataclass
class Target:
    """One HTTP server under test: an implementation from the table, or a baseline."""

    name: str
    kind: str  # "implementation" | "baseline"
    url: str
    pid: int
    scenarios: tuple[str, ...]
    service: Service | None = None
    python: str | None = None  # the interpreter of a Python target (for its version)
    event_loop: str | None = None  # a Python target's, read from the process
    info: dict[str, Any] = field(default_factory=dict)
    paths: dict[str, list[str]] = field(default_factory=dict)
    rss_idle_mb: float | None = None
    rss_after_mb: float | None = None
    startup_s: list[float] = field(default_factory=list)
    created: list[str] = field(default_factory=list)  # fixture paths to delete at the end
    slot_ranges: list[dict[str, Any]] = field(default_factory=list)  # the cluster, as it reports
    queue: str = ""


def health_ok(url: str, verify: ssl.SSLContext | bool, timeout: float = 3.0) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=timeout, verify=verify).status_code == 200
    except httpx.HTTPError:
        return False


def discover(settings: Settings, options: Options, console: Console) -> list[Target]:
    """The implementations to measure: kind "api", in the running profile, answering."""
    snapshot = engine.status(settings)
    if snapshot is None:
        raise BenchError(
            f"the stack is not running (state folder {settings.state.root}): start it with "
            "`./devstack up`, or pass --isolated",
            EXIT_ENVIRONMENT,
        )
    apis = [s for s in stack().services.values() if s.kind == "api"]
    by_service = {s.name: s.processes for s in snapshot.services()}
    running = [s for s in apis if s.name in by_service]
    wanted = options.implementations
    if wanted:
        for name in wanted:
            if name not in by_service:
                raise BenchError(
                    f"{name} is not part of the running stack (profile {snapshot.profile}): "
                    f"start it with `./devstack up --profile {snapshot.profile}+{name}`",
                    EXIT_ENVIRONMENT,
                )
        running = [s for s in running if s.name in wanted]
    if not running:
        raise BenchError(
            f"no implementation (service of kind api) in the running profile "
            f"{snapshot.profile}: start one with `./devstack up --profile standard`",
            EXIT_ENVIRONMENT,
        )
    verify = tls_context(settings) if options.https else False
    targets = []
    for service in running:
        ports = engine.service_ports(settings, service)
        scheme = "https" if options.https else "http"
        url = f"{scheme}://127.0.0.1:{ports[scheme]}"
        pids = [p.pid for p in by_service[service.name] if p.pid]
        states = {p.state for p in by_service[service.name]}
        if len(pids) != 1 or not health_ok(url, verify):
            why = f"{url}/health does not answer 200 (state: {', '.join(sorted(states))})"
            if wanted:
                raise BenchError(f"{service.name}: {why}", EXIT_ENVIRONMENT)
            console.print(f"[yellow]skipping {service.name}[/yellow]: {why}")
            continue
        pid = pids[0]
        python = _python_of(pid)
        targets.append(
            Target(
                service.name,
                "implementation",
                url,
                pid,
                tuple(options.scenarios),
                service=service,
                python=python,
            )
        )
    if not targets:
        raise BenchError(
            "no implementation answers: see `./devstack status` and `./devstack logs <name>`",
            EXIT_ENVIRONMENT,
        )
    return targets


def _python_of(pid: int) -> str | None:
    """The interpreter a Python implementation runs, as launched (its environment's `python`,
    not the file the symlink resolves to: that would lose the environment)."""
    with contextlib.suppress(OSError, IndexError):
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
        if "python" in Path(argv0).name and Path(argv0).is_absolute():
            return argv0
    return None


def tls_context(settings: Settings) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(settings.state.ca_chain))


# -- fixtures: created through each implementation's own API -------------------------------


def crc16(data: bytes) -> int:
    """CRC16/XMODEM, as Redis Cluster uses to map a key to one of 16384 slots."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def key_slot(key: str) -> int:
    raw = key.encode()
    start = raw.find(b"{")
    if start != -1:
        end = raw.find(b"}", start + 1)
        if end > start + 1:
            raw = raw[start + 1 : end]
    return crc16(raw) % 16384


def keys_on_every_master(ranges: list[dict[str, Any]], per_master: int, prefix: str) -> list[str]:
    """Cache keys (as the API names them) spread evenly over the masters that own `ranges`."""
    masters = sorted({r["master"] for r in ranges})
    chosen: dict[str, list[str]] = {m: [] for m in masters}
    n = 0
    while any(len(v) < per_master for v in chosen.values()) and n < 100_000:
        key = f"{prefix}{n}"
        slot = key_slot("cache:" + key)  # the library's default key prefix
        for r in ranges:
            if r["start"] <= slot <= r["end"] and len(chosen[r["master"]]) < per_master:
                chosen[r["master"]].append(key)
        n += 1
    # Interleave, so that consecutive requests go to different masters.
    return [k for group in zip(*chosen.values(), strict=False) for k in group]


def prepare_fixtures(target: Target, run_id: str, verify: ssl.SSLContext | bool) -> None:
    """Create what the scenarios read, through the implementation itself."""
    with httpx.Client(base_url=target.url, timeout=30, verify=verify) as client:

        def call(method: str, path: str, body: Any = None, ok: tuple[int, ...] = (200,)) -> Any:
            response = client.request(method, path, json=body)
            if response.status_code not in ok:
                raise BenchError(
                    f"{target.name}: {method} {path} answered {response.status_code} while "
                    f"preparing the benchmark: {response.text[:200]}",
                    1,
                )
            return response.json() if response.content else None

        target.info = call("GET", "/")
        paths: dict[str, list[str]] = {"health": ["/health"], "health_all": ["/health/all"]}
        ranges = call("GET", "/examples/redis/cluster/slots")["ranges"]
        target.slot_ranges = ranges
        keys = keys_on_every_master(ranges, 4, f"bench:{run_id}:{target.name}:")
        for key in keys:
            call(
                "PUT",
                f"/examples/cache/{key}",
                {"value": "bench value", "ttl_seconds": 3600},
                (200, 201),
            )
        paths["cache_get"] = [f"/examples/cache/{k}" for k in keys]
        paths["cache_put"] = [f"/examples/cache/{k}:put" for k in keys]
        for backend in ("postgres", "mongodb", "mysql"):
            ids = []
            for i in range(8):
                item = call(
                    "POST",
                    f"/examples/{backend}/items",
                    {"name": f"bench {run_id} {i}", "quantity": i},
                    (201,),
                )
                ids.append(item["id"])
                target.created.append(f"/examples/{backend}/items/{item['id']}")
            paths[f"{backend}_get"] = [f"/examples/{backend}/items/{i}" for i in ids]
        paths["postgres_post"] = ["/examples/postgres/items"]
        target.queue = f"bench.{run_id}.{target.name}"
        paths["publish"] = [f"/examples/messaging/queues/{target.queue}/messages"]
        target.paths = paths


def cleanup_fixtures(target: Target, verify: ssl.SSLContext | bool) -> None:
    with httpx.Client(base_url=target.url, timeout=30, verify=verify) as client:
        for path in target.created:
            with contextlib.suppress(httpx.HTTPError):
                client.delete(path)
        for path in target.paths.get("cache_get", []) + target.paths.get("cache_put", []):
            with contextlib.suppress(httpx.HTTPError):
                client.delete(path)


def rabbitmq_delete_queue(settings: Settings, reader: str, queue: str) -> None:
    """Drop the queue a publish run filled (the management API, as the application user)."""
    from devstack_cli.vault import login_as

    with login_as(settings, reader) as vault:
        creds = vault.kv_get("rabbitmq") or {}
    port = engine.service_ports(settings, stack().service("rabbitmq"))["management"]
    vhost = creds.get("vhost", "/").replace("/", "%2F")
    with contextlib.suppress(httpx.HTTPError):
        httpx.delete(
            f"http://127.0.0.1:{port}/api/queues/{vhost}/{queue}",
            auth=(creds.get("user", ""), creds.get("password", "")),
            timeout=30,
        )


# -- baselines ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Baselines:
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# Each baseline (a target's name) and its mode in BASELINE_SCRIPT.
BASELINES = {"starlette": "bare", "starlette_redis": "redis", "starlette_postgres": "postgres"}


def start_baselines(
    settings: Settings, implementations: list[Target], options: Options, log: Path
) -> Baselines:
    """The bare Starlette app and the Starlette + library Redis GET and PostgreSQL item GET
    (`BASELINES`), from an API's own environment (the first Python implementation's), with
    that API's AppRole, on the event loop that API runs on."""
    started = Baselines()
    donor = next((t for t in implementations if t.python), None)
    if donor is None or donor.service is None:
        return started
    state = settings.state
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", ""),
        "DEVSTACK_VAULT_ROLE_ID_FILE": str(state.role_id_file(donor.service.name)),
        "DEVSTACK_VAULT_SECRET_ID_FILE": str(state.secret_id_file(donor.service.name)),
        "DEVSTACK_CA_FILE": str(state.ca_chain),
        "DEVSTACK_PORT_OFFSET": str(settings.port_offset),
        "MALLOC_ARENA_MAX": "2",
        "PYDANTIC_DISABLE_PLUGINS": "1",
    }
    script = repo_root() / BASELINE_SCRIPT
    python = donor.python or sys.executable
    for name, mode in BASELINES.items():
        port = free_port()
        handle = log.open("ab")
        process = subprocess.Popen(
            [
                python,
                "-OO",
                "-X",
                "no_debug_ranges",
                str(script),
                "--mode",
                mode,
                "--port",
                str(port),
                "--loop",
                python_event_loop(donor.pid),
            ],
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            # Killed with the bench, even by SIGKILL (the kernel's parent-death signal).
            preexec_fn=lifeline.preexec_die_with_parent(signal.SIGTERM),
        )
        handle.close()
        started.processes.append(process)
        launched = time.monotonic()
        url = f"http://127.0.0.1:{port}"
        while not health_ok(url, False, timeout=1):
            if process.poll() is not None or time.monotonic() - launched > 60:
                started.stop()
                raise BenchError(f"the {name} baseline did not start; see {log}", 1)
            time.sleep(0.02)
        scenarios = tuple(s for s in options.scenarios if name in SCENARIOS[s].baseline)
        target = Target(name, "baseline", url, process.pid, scenarios, python=python)
        target.startup_s = [round(time.monotonic() - launched, 3)]
        for scenario in scenarios:
            target.paths[scenario] = donor.paths[scenario]
        target.paths["health"] = ["/health"]
        started.targets.append(target)
    return started


# -- wrk -------------------------------------------------------------------------------------


def taskset(cpu: int | None) -> list[str]:
    return ["taskset", "-c", str(cpu)] if cpu is not None else []


def run_wrk(
    url: str,
    scenario: Scenario,
    paths: list[str],
    connections: int,
    duration: int,
    loadgen_cpu: int | None,
) -> dict[str, Any]:
    script = repo_root() / LUA_SCRIPT
    argv = [
        *taskset(loadgen_cpu),
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{duration}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(script),
        url,
        "--",
        scenario.method,
        scenario.body or "-",
        *paths,
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60)
    for line in done.stdout.splitlines():
        if line.startswith("WRK_JSON "):
            parsed: dict[str, Any] = json.loads(line[len("WRK_JSON ") :])
            return parsed
    raise RuntimeError(
        f"wrk gave no result (exit {done.returncode}): {(done.stderr or done.stdout)[-300:]}"
    )


def measure(
    target: Target,
    scenario: Scenario,
    connections: int,
    options: Options,
    loadgen_cpu: int | None,
) -> dict[str, Any]:
    paths = target.paths[scenario.name]
    warmup: dict[str, Any] | None = None
    if options.warmup:
        warm = run_wrk(target.url, scenario, paths, connections, options.warmup, loadgen_cpu)
        # Not a figure, but an error during the warm-up is not hidden either.
        warmup = {
            "requests": int(warm["requests"]),
            "statuses": {str(k): int(v) for k, v in sorted(warm["statuses"].items())},
        }
    cpu_before = cpu_seconds(target.pid)
    raw = run_wrk(target.url, scenario, paths, connections, options.duration, loadgen_cpu)
    cpu_used = cpu_seconds(target.pid) - cpu_before
    seconds = raw["duration_us"] / 1e6
    requests = int(raw["requests"])
    statuses = {str(k): int(v) for k, v in sorted(raw["statuses"].items())}
    non_2xx = sum(v for k, v in statuses.items() if not 200 <= int(k) < 300)
    socket_errors = {k: int(v) for k, v in raw["socket_errors"].items() if k != "status"}
    pct = raw["percentiles_us"]
    return {
        "target": target.name,
        "kind": target.kind,
        "scenario": scenario.name,
        "connections": connections,
        "seconds": round(seconds, 3),
        "requests": requests,
        "requests_per_second": round(requests / seconds, 1) if seconds else 0.0,
        "latency_ms": {
            "p50": round(pct["50"] / 1000, 3),
            "p90": round(pct["90"] / 1000, 3),
            "p99": round(pct["99"] / 1000, 3),
            "p99.9": round(pct["99.9"] / 1000, 3),
            "mean": round(float(raw["latency_mean_us"]) / 1000, 3),
            "max": round(raw["latency_max_us"] / 1000, 3),
        },
        "statuses": statuses,
        "non_2xx": non_2xx,
        "socket_errors": socket_errors,
        "cpu_seconds": round(cpu_used, 3),
        "cpu_seconds_per_1000_requests": round(cpu_used / requests * 1000, 4) if requests else None,
        "warmup": warmup,
    }


# -- ceilings ---------------------------------------------------------------------------------


def _resp(sock: ssl.SSLSocket, *args: str) -> bytes:
    payload = f"*{len(args)}\r\n".encode()
    for arg in args:
        data = arg.encode()
        payload += b"$%d\r\n%s\r\n" % (len(data), data)
    sock.sendall(payload)
    return sock.recv(65536)


@contextlib.contextmanager
def redis_bench_user(settings: Settings, reader: str, port: int) -> Iterator[str]:
    """A throwaway ACL user on one master: GET on `bench-ceiling*` keys and nothing else, no
    password (so none is ever on redis-benchmark's command line); removed afterwards."""
    from devstack_cli.vault import login_as

    with login_as(settings, reader) as vault:
        password = (vault.kv_get("redis") or {}).get("password", "")
    user = f"devstack-bench-{secrets.token_hex(4)}"
    context = tls_context(settings)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as sock,
    ):
        if not _resp(sock, "AUTH", password).startswith(b"+OK"):
            raise RuntimeError("Redis refused the application's password")
        reply = _resp(
            sock,
            "ACL",
            "SETUSER",
            user,
            "reset",
            "on",
            "nopass",
            "~bench-ceiling*",
            "+get",
            "+ping",
            "+config|get",
        )
        if not reply.startswith(b"+OK"):
            raise RuntimeError(f"ACL SETUSER failed: {reply[:100]!r}")
        key = "bench-ceiling"
        _resp(sock, "SET", key, "bench value", "EX", "3600")
        try:
            yield user
        finally:
            _resp(sock, "ACL", "DELUSER", user)


def redis_master_for(settings: Settings, ranges: list[dict[str, Any]], key: str) -> tuple[int, int]:
    """(TLS port, pid) of the Redis master that owns `key`, as the cluster reports its slots."""
    slot = key_slot(key)
    master = next(r["master"] for r in ranges if r["start"] <= slot <= r["end"])
    port = int(master.rsplit(":", 1)[1])
    service = stack().service("redis")
    ports = engine.service_ports(settings, service)
    instance = next(i for i in range(service.instances) if ports[f"tls-{i + 1}"] == port)
    snapshot = engine.status(settings)
    process = snapshot.process(f"redis-{instance + 1}") if snapshot else None
    if process is None or process.pid is None:
        raise RuntimeError(f"redis-{instance + 1} is not running")
    return port, process.pid


def redis_ceiling(
    settings: Settings,
    reader: str,
    ranges: list[dict[str, Any]],
    connections: list[int],
    requests: int,
    pin: tuple[int, int] | None,
) -> list[dict[str, Any]]:
    key = "bench-ceiling"
    port, pid = redis_master_for(settings, ranges, key)
    results = []
    saved = pin_tree(pid, {pin[0]}, settings.state.bench_pinned) if pin else {}
    try:
        with redis_bench_user(settings, reader, port) as user:
            for c in connections:
                argv = [
                    *taskset(pin[1] if pin else None),
                    "redis-benchmark",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(port),
                    "--tls",
                    "--cacert",
                    str(settings.state.ca_chain),
                    "--user",
                    user,
                    "-a",
                    "nopass",
                    "-c",
                    str(c),
                    "-n",
                    str(requests),
                    "--csv",
                    "GET",
                    key,
                ]
                done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
                row = _redis_csv(done.stdout)
                if row is None:
                    raise RuntimeError(f"redis-benchmark: {(done.stderr or done.stdout)[-300:]}")
                results.append(
                    {
                        "tool": "redis-benchmark",
                        "what": "GET (TLS, one master)",
                        "connections": c,
                        "requests": requests,
                        **row,
                    }
                )
    finally:
        restore_affinity(saved, settings.state.bench_pinned)
    return results


def _redis_csv(text: str) -> dict[str, Any] | None:
    lines = [line for line in text.splitlines() if line.startswith('"')]
    if len(lines) < 2:
        return None
    header = [h.strip('"') for h in lines[0].split(",")]
    values = [v.strip('"') for v in lines[-1].split(",")]
    row = dict(zip(header, values, strict=False))
    try:
        return {
            "requests_per_second": float(row["rps"]),
            "latency_ms": {
                "p50": float(row["p50_latency_ms"]),
                "p99": float(row["p99_latency_ms"]),
                "mean": float(row["avg_latency_ms"]),
            },
        }
    except (KeyError, ValueError):
        return None


def postgres_ceiling(
    settings: Settings,
    reader: str,
    item_id: str,
    connections: list[int],
    duration: int,
    pin: tuple[int, int] | None,
) -> list[dict[str, Any]]:
    """pgbench running the items query the APIs run (`SELECT * FROM items WHERE id = $1`),
    prepared, over TLS verified against the stack's CA, straight to PostgreSQL."""
    from devstack_cli.vault import login_as

    with login_as(settings, reader) as vault:
        creds = vault.kv_get("postgres") or {}
    port = engine.service_ports(settings, stack().service("postgres"))["postgres"]
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PGHOST": "127.0.0.1",
        "PGPORT": str(port),
        "PGUSER": str(creds.get("user", "")),
        "PGPASSWORD": str(creds.get("password", "")),  # the environment, never the arguments
        "PGDATABASE": str(creds.get("database", "")),
        "PGSSLMODE": "verify-full",
        "PGSSLROOTCERT": str(settings.state.ca_chain),
    }
    item = str(uuid.UUID(item_id))  # only a well-formed id we created goes into the script
    results = []
    pgbench = tools.find("pgbench") or "pgbench"
    # pgbench opens its connections (TLS, one thread) inside its -T window: give it 5 s at least.
    seconds = max(duration, 5)
    with tempfile.TemporaryDirectory(prefix="devstack-bench-") as tmp:
        script = Path(tmp) / "item.sql"
        script.write_text(f"SELECT * FROM items WHERE id = '{item}';\n")  # noqa: S608 (a UUID)
        for c in connections:
            argv = [
                *taskset(pin[1] if pin else None),
                pgbench,
                "-n",
                "-M",
                "prepared",
                "-f",
                str(script),
                "-c",
                str(c),
                "-j",
                "1",
                "-T",
                str(seconds),
            ]
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=seconds + 120, env=env, cwd=tmp
            )
            tps = re.search(r"tps = ([\d.]+) \(without initial", done.stdout)
            latency = re.search(r"latency average = ([\d.]+) ms", done.stdout)
            failed = re.search(r"number of failed transactions: (\d+)", done.stdout)
            processed = re.search(r"transactions actually processed: (\d+)", done.stdout)
            if not tps or not processed or int(processed.group(1)) == 0:
                why = " ".join((done.stderr.strip() or done.stdout.strip()).splitlines()[-3:])
                raise RuntimeError(f"pgbench -c {c}: no transaction completed ({why[-300:]})")
            results.append(
                {
                    "tool": "pgbench",
                    "what": "SELECT item by id (prepared, TLS, no pooler)",
                    "connections": c,
                    "seconds": seconds,
                    "requests_per_second": float(tps.group(1)),
                    "latency_ms": {"mean": float(latency.group(1)) if latency else None},
                    "failed": int(failed.group(1)) if failed else 0,
                }
            )
    return results


# -- start-up ---------------------------------------------------------------------------------


def cannot_restart(settings: Settings, name: str) -> str | None:
    """Why stopping `name` would leave it down, if it would: a compiled implementation whose
    build for this stack is gone (the cache keeps the build of the current sources) cannot be
    started again until `devstack up` rebuilds it."""
    try:
        from devstack_cli import polyglot
    except ImportError:
        return None
    recipe = polyglot.recipe(name)
    if recipe is None:
        return None
    try:
        polyglot.run_command(settings, recipe)
    except polyglot.BuildError:
        # Not the error's text: it names a folder of this machine, and results may be committed.
        return f"the {name} build this stack runs is not in the cache: `devstack up` rebuilds it"
    return None


def startup_times(settings: Settings, target: Target, rounds: int) -> list[float]:
    """Stop the implementation through the supervisor (`devstack stop NAME`), start it again
    (`devstack start NAME`), and time from the start request to the first `/health` 200:
    the launcher's AppRole login and certificate included, as `up` starts it."""
    from devstack_cli.supervisor import request

    cannot = cannot_restart(settings, target.name)
    if cannot:
        raise RuntimeError(f"not restarted, so not timed: {cannot}")
    sock = settings.state.supervisor_sock
    snapshot = engine.status(settings)
    names = [p.name for p in snapshot.of_service(target.name)] if snapshot else []
    url = target.url.replace("https://", "http://")
    if url != target.url and target.service is not None:
        url = f"http://127.0.0.1:{engine.service_ports(settings, target.service)['http']}"
    times = []
    for _ in range(rounds):
        for name in reversed(names):
            request(sock, {"cmd": "stop", "name": name}, timeout=120)
        deadline = time.monotonic() + 30
        while health_ok(url, False, timeout=0.5) and time.monotonic() < deadline:
            time.sleep(0.05)
        started = time.monotonic()
        for name in names:
            request(sock, {"cmd": "start", "name": name}, timeout=120)
        while not health_ok(url, False, timeout=1):
            if time.monotonic() - started > 180:
                raise RuntimeError(f"{target.name} did not answer /health within 180 s")
            time.sleep(0.01)
        times.append(round(time.monotonic() - started, 3))
    # Wait for the supervisor to see it healthy too, and follow the new process.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        snapshot = engine.status(settings)
        procs = snapshot.of_service(target.name) if snapshot else []
        if procs and all(p.state == ProcessState.HEALTHY for p in procs) and procs[0].pid:
            target.pid = procs[0].pid
            break
        time.sleep(0.2)
    return times


# -- the run ----------------------------------------------------------------------------------


def output_dir(options: Options, commit: str) -> Path:
    if options.output is not None:
        return options.output
    base = repo_root() / BENCH_DIR / "results" / f"{dt.date.today():%Y-%m-%d}-{commit}"
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def ensure_tools(settings: Settings, console: Console) -> None:
    missing = tools.missing_bench_tools()
    if missing and tools.can_use_apt():
        log = settings.state.logs / "setup.log"
        apt = sorted({str(m.apt) for m in missing if m.apt})
        console.print(f"installing with apt: {' '.join(apt)} (log: {log})")
        try:
            tools.apt_install(apt, log)
        except RuntimeError as exc:
            raise BenchError(str(exc), EXIT_ENVIRONMENT) from exc
        missing = tools.missing_bench_tools()
    if missing:
        lines = "; ".join(tools.install_commands(missing))
        raise BenchError(
            f"missing {', '.join(m.what for m in missing)}: install with {lines}",
            EXIT_ENVIRONMENT,
        )


def run(settings: Settings, options: Options, console: Console) -> Path:
    """Run the benchmark; returns the folder holding its results."""
    ensure_tools(settings, console)
    if options.smoke:
        options.apply_smoke()
    verify: ssl.SSLContext | bool = tls_context(settings) if options.https else False
    implementations = discover(settings, options, console)
    commit, dirty = git_commit()
    folder = output_dir(options, commit)
    folder.mkdir(parents=True, exist_ok=True)
    run_id = uuid.uuid4().hex[:8]
    started_at = dt.datetime.now(dt.UTC)
    cpus = sorted(os.sched_getaffinity(0))
    pin = (cpus[0], cpus[1]) if options.pin and len(cpus) >= 2 else None
    reader = implementations[0].service.name if implementations[0].service else ""
    running = engine.status(settings)
    report: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "mode": "smoke" if options.smoke else "full",
        "started_at": started_at.isoformat(timespec="seconds"),
        "commit": commit,
        "commit_dirty": dirty,
        "machine": machine(),
        "settings": {
            "load_generator": "wrk, 1 thread, HTTP/1.1 keep-alive, bench/wrk/scenario.lua",
            "scheme": "https" if options.https else "http",
            "duration_s": options.duration,
            "warmup_s": options.warmup,
            "connections": options.connections,
            "scenarios": options.scenarios,
            "startup_rounds": options.startup_rounds,
            "pinning": (
                {
                    "server_cpu": pin[0],
                    "load_generator_cpu": pin[1],
                    "data_stores": "not pinned (share every core)",
                }
                if pin
                else "none (fewer than 2 usable cores, or --no-pin)"
            ),
            "order": "scenario, then connections, then every target in turn (rotated each round)",
        },
        "stack": {
            "profile": running.profile if running else None,
            "port_offset": settings.port_offset,
        },
        "skipped": {},
        "results": [],
        "ceilings": [],
        "errors": [],
    }
    log = settings.state.logs / "bench-baselines.log"  # the state folder: never committed
    log.parent.mkdir(parents=True, exist_ok=True)
    baselines = Baselines()
    targets = list(implementations)
    pinned_record = settings.state.bench_pinned
    left_pinned = unpin_left_over(pinned_record)
    if left_pinned is not None:
        console.print(
            f"a bench killed during its run had left process {left_pinned} pinned to one core: "
            "its CPU affinity is restored"
        )
    try:
        for target in implementations:
            prepare_fixtures(target, run_id, verify)
        if options.baselines and not options.https:
            baselines = start_baselines(settings, implementations, options, log)
            targets += baselines.targets
        elif options.baselines:
            report["skipped"]["baselines"] = "served over HTTP only; not run with --https"
        for target in targets:
            target.rss_idle_mb = rss_mb(target.pid)
            if target.python:
                target.event_loop = python_event_loop(target.pid)
        plan = [
            (SCENARIOS[s], c, t)
            for s in options.scenarios
            for i, c in enumerate(options.connections)
            for t in _rotate(targets, options.scenarios.index(s) * len(options.connections) + i)
            if s in t.scenarios
        ]
        ceiling_steps = 2 * len(options.connections) if options.ceilings else 0
        startup_steps = len(implementations) if options.startup_rounds else 0
        with _progress(console) as progress:
            task = progress.add_task("benchmark", total=len(plan) + ceiling_steps + startup_steps)
            for scenario, connections, target in plan:
                progress.update(task, description=f"{target.name} {scenario.name} c={connections}")
                saved = pin_tree(target.pid, {pin[0]}, pinned_record) if pin else {}
                try:
                    row = measure(target, scenario, connections, options, pin[1] if pin else None)
                    report["results"].append(row)
                    if not console.is_terminal:
                        console.print(
                            f"{target.name:<16} {scenario.name:<14} c={connections:<3} "
                            f"{row['requests_per_second']:>9.1f} req/s  "
                            f"p99 {row['latency_ms']['p99']:.1f} ms  non-2xx {row['non_2xx']}"
                        )
                except (RuntimeError, subprocess.TimeoutExpired, KeyError) as exc:
                    report["errors"].append(f"{target.name} {scenario.name} c={connections}: {exc}")
                finally:
                    restore_affinity(saved, pinned_record)
                    if scenario.name == "publish" and target.kind == "implementation":
                        # wrk leaves publishes in flight when it stops: let them be confirmed
                        # before the queue goes, so the server sees no error of our making.
                        time.sleep(2)
                        rabbitmq_delete_queue(settings, reader, target.queue)
                progress.advance(task)
            for target in targets:
                target.rss_after_mb = rss_mb(target.pid)
            if options.ceilings:
                progress.update(task, description="ceiling: redis-benchmark GET")
                try:
                    report["ceilings"] += redis_ceiling(
                        settings,
                        reader,
                        implementations[0].slot_ranges,
                        options.connections,
                        2000 if options.smoke else 20_000 * max(1, options.duration // 5),
                        pin,
                    )
                except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
                    report["errors"].append(f"ceiling redis-benchmark: {exc}")
                progress.advance(task, len(options.connections))
                progress.update(task, description="ceiling: pgbench items query")
                item = implementations[0].paths["postgres_get"][0].rsplit("/", 1)[1]
                try:
                    report["ceilings"] += postgres_ceiling(
                        settings, reader, item, options.connections, options.duration, pin
                    )
                except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
                    report["errors"].append(f"ceiling pgbench: {exc}")
                progress.advance(task, len(options.connections))
            for target in implementations if options.startup_rounds else []:
                progress.update(task, description=f"start-up: {target.name}")
                try:
                    target.startup_s = startup_times(settings, target, options.startup_rounds)
                except (RuntimeError, OSError) as exc:
                    report["errors"].append(f"start-up {target.name}: {exc}")
                progress.advance(task)
    finally:
        baselines.stop()
        for target in implementations:
            with contextlib.suppress(httpx.HTTPError, BenchError):
                cleanup_fixtures(target, verify)
            if target.queue:
                with contextlib.suppress(Exception):
                    rabbitmq_delete_queue(settings, reader, target.queue)
    report["targets"] = {
        t.name: {
            "kind": t.kind,
            "url": t.url,
            "scenarios": list(t.scenarios),
            "implementation": t.info.get("implementation", t.name),
            "contract_version": t.info.get("version"),
            "rss_mb": {"idle": t.rss_idle_mb, "after_run": t.rss_after_mb},
            "event_loop": t.event_loop,
            # What the run created through the API and removed at its end.
            "fixtures": {
                "queue": t.queue or None,
                "cache_keys": t.paths.get("cache_get", []) if t.kind == "implementation" else [],
                "items": t.created,
            },
            "startup_s": {
                "runs": t.startup_s,
                "median": round(statistics.median(t.startup_s), 3) if t.startup_s else None,
            },
        }
        for t in targets
    }
    report["versions"] = versions(settings, targets)
    report["finished_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    report["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    from devstack_cli import bench_report

    (folder / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    (folder / "results.md").write_text(bench_report.markdown(report))
    bench_report.charts(report, folder)
    console.print(bench_report.summary_table(report))
    for error in report["errors"]:
        console.print(f"[red]error:[/red] {error}", markup=True)
    console.print(f"results in {folder}")
    return folder


def _rotate(targets: list[Target], by: int) -> list[Target]:
    if not targets:
        return targets
    k = by % len(targets)
    return targets[k:] + targets[:k]


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description:<40}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
        disable=not console.is_terminal,
    )


# -- the command ---------------------------------------------------------------------------


def load_report(path: Path) -> dict[str, Any]:
    try:
        report: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise BenchError(f"{path}: not a readable results.json ({exc})", EXIT_USAGE) from exc
    if not isinstance(report, dict) or report.get("schema") != SCHEMA_VERSION:
        raise BenchError(f"{path}: not a results.json of this benchmark", EXIT_USAGE)
    return report


def print_comparison(
    old_path: Path, new: dict[str, Any], threshold: float, console: Console, folder: Path | None
) -> None:
    from devstack_cli import bench_report

    old = load_report(old_path)
    rows, regressions = bench_report.compare(old, new, threshold)
    title = (
        f"{old['started_at']} ({old['commit']}) -> {new['started_at']} ({new['commit']}), "
        f"regressions beyond {threshold:g}% flagged"
    )
    console.print(bench_report.compare_table(rows, title))
    differ = [
        f"{key} {old['settings'].get(key)} -> {new['settings'].get(key)}"
        for key in ("scheme", "duration_s", "warmup_s", "pinning")
        if old["settings"].get(key) != new["settings"].get(key)
    ]
    if old.get("mode") != new.get("mode"):
        differ.append(f"mode {old.get('mode')} -> {new.get('mode')}")
    if differ:
        console.print(f"[yellow]note: the runs differ in {'; '.join(differ)}[/yellow]")
    if folder is not None:
        (folder / "compare.md").write_text(bench_report.compare_markdown(rows, title))
    if not rows:
        console.print("no figure in common between the two runs")
    elif regressions:
        console.print(f"[red]{len(regressions)} regression(s) beyond {threshold:g}%[/red]")
    else:
        console.print(f"no regression beyond {threshold:g}%")


def free_offset(settings: Settings, profile: str) -> int:
    from devstack_cli.stack import UnknownProfileError

    start = settings.port_offset + ISOLATED_OFFSET
    for offset in range(start, min(start + 5000, 20_001), 50):
        candidate = Settings(state_dir=settings.state_dir, port_offset=offset)
        try:
            if not engine.taken_ports(candidate, profile):
                return offset
        except UnknownProfileError as exc:
            raise BenchError(str(exc), EXIT_USAGE) from exc
    raise BenchError(
        f"no free set of ports for an isolated stack between offsets {start} and {start + 5000}",
        EXIT_ENVIRONMENT,
    )


@contextlib.contextmanager
def isolated_stack(settings: Settings, profile: str, console: Console) -> Iterator[Settings]:
    """A stack of its own, as the tests start one: a fresh state folder, and every port moved
    by the first offset, from ISOLATED_OFFSET above the current one, at which every port of the
    profile is free (on a shared machine other stacks hold ports too)."""
    offset = free_offset(settings, profile)
    state = Path(tempfile.mkdtemp(prefix="devstack-bench-"))
    state.chmod(0o755)  # PostgreSQL runs as its own account when this runs as root
    isolated = Settings(state_dir=state, port_offset=offset)
    env = {
        **os.environ,
        "DEVSTACK_STATE_DIR": str(state),
        "DEVSTACK_PORT_OFFSET": str(offset),
    }
    console.print(f"starting an isolated stack (profile {profile}) in {state}")
    try:
        up = subprocess.run(
            [sys.executable, "-m", "devstack_cli", "up", "--profile", profile],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if up.returncode != 0:
            first = (up.stderr or up.stdout).strip().splitlines()[:1] or ["?"]
            raise BenchError(f"the isolated stack did not start: {first[0]}", up.returncode)
        yield isolated
    finally:
        subprocess.run(
            [sys.executable, "-m", "devstack_cli", "down"],
            env=env,
            capture_output=True,
            check=False,
        )
        shutil.rmtree(state, ignore_errors=True)


class Interrupted(KeyboardInterrupt):
    """The run was ended by a signal (`signum`): a KeyboardInterrupt, so that no `except
    Exception` on the way swallows it and every `finally` runs."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def ended_by_signals_as_by_ctrl_c() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP end the run through every `finally` on the way: the
    baselines are stopped, each server's CPU affinity restored, the fixtures removed. By their
    default action SIGTERM and SIGHUP end the process where it stands, leaving the servers it
    was loading pinned to one core and the baselines running."""

    def interrupt(signum: int, _frame: object) -> None:
        raise Interrupted(signum)

    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.signal(sig, interrupt) for sig in signals}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def one_bench_at_a_time(settings: Settings) -> Iterator[None]:
    """Hold the stack's bench lock for the run; BenchError when another bench holds it. Two at
    once would measure each other, and each pins the server it loads to a core and restores
    the affinity it found, which may be the other's pinning."""
    paths = settings.state
    fd, holder = engine.take_lock(paths.bench_lock)
    if fd is None:
        raise BenchError(
            f"another `devstack bench` (pid {holder}) is running on this stack "
            f"({paths.root}): two at once would measure each other; wait for it to end",
            EXIT_ENVIRONMENT,
        )
    try:
        yield
    finally:
        os.close(fd)  # the lock goes with it


def command(
    settings: Settings,
    console: Console,
    *,
    implementations: str | None,
    scenarios: str | None,
    connections: str,
    duration: int,
    warmup: int,
    https: bool,
    smoke: bool,
    baselines: bool,
    ceilings: bool,
    startup_rounds: int,
    output: Path | None,
    compare: Path | None,
    against: Path | None,
    threshold: float,
    pin: bool,
    isolated: bool,
    profile: str,
) -> None:
    """`devstack bench`, once its options are parsed (raises BenchError for the CLI)."""
    if against is not None:
        if compare is None:
            raise BenchError("--against needs --compare OLD.json", EXIT_USAGE)
        print_comparison(compare, load_report(against), threshold, console, None)
        return
    if compare is not None:
        load_report(compare)  # refuse a bad file before a long run, not after it
    known_apis = [s.name for s in stack().services.values() if s.kind == "api"]
    options = Options(
        implementations=parse_names(implementations, known_apis, "implementation"),
        scenarios=parse_names(scenarios, list(SCENARIOS), "scenario") or list(SCENARIOS),
        connections=parse_connections(connections),
        duration=duration,
        warmup=warmup,
        https=https,
        smoke=smoke,
        baselines=baselines,
        ceilings=ceilings,
        startup_rounds=startup_rounds,
        output=output.resolve() if output else None,
        compare=compare,
        threshold=threshold,
        pin=pin,
        isolated=isolated,
        profile=profile,
    )
    try:
        with ended_by_signals_as_by_ctrl_c():
            if isolated:
                with isolated_stack(settings, profile, console) as own, one_bench_at_a_time(own):
                    folder = run(own, options, console)
            else:
                with one_bench_at_a_time(settings):
                    folder = run(settings, options, console)
    except Interrupted as exc:
        raise BenchError(
            f"interrupted by {signal.Signals(exc.signum).name}: the baselines were stopped, the "
            "servers unpinned and the fixtures removed; no results were written",
            128 + exc.signum,
        ) from None
    if compare is not None:
        print_comparison(compare, load_report(folder / "results.json"), threshold, console, folder)
