"""The programs the stack runs: where to find each, and how to install what is missing.

`up` installs what it can and remembers it (a second `up` installs nothing): Debian packages
with apt when it runs as root on Debian or Ubuntu, FerretDB built from its Go module into a
per-user cache keyed by version, and `bao` from the locked Python environment. Where it cannot
install, `doctor` and `up` print the exact commands, with the Homebrew equivalents for macOS.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from devstack_cli.settings import cache_dir

FERRETDB_MODULE = "github.com/FerretDB/FerretDB"
FERRETDB_VERSION = "v1.24.2"

# Where Debian and Homebrew put programs that are not on PATH.
EXTRA_DIRS = (
    "/usr/lib/postgresql/15/bin",
    "/usr/lib/rabbitmq/bin",
    "/usr/sbin",
    "/opt/homebrew/opt/postgresql@15/bin",
    "/usr/local/opt/postgresql@15/bin",
    "/opt/homebrew/sbin",
    "/usr/local/sbin",
)


@dataclass(frozen=True)
class Tool:
    name: str  # the program's file name
    apt: str | None  # the Debian package that provides it
    brew: str | None  # the Homebrew formula that provides it
    path_first: bool = True  # False: prefer EXTRA_DIRS over PATH (Debian's wrapper scripts)


TOOLS: dict[str, tuple[Tool, ...]] = {
    "vault": (Tool("bao", None, None),),
    "postgres": (
        Tool("postgres", "postgresql-15", "postgresql@15", path_first=False),
        Tool("initdb", "postgresql-15", "postgresql@15", path_first=False),
    ),
    "pgbouncer": (Tool("pgbouncer", "pgbouncer", "pgbouncer"),),
    "redis": (
        Tool("redis-server", "redis-server", "redis"),
        Tool("redis-cli", "redis-tools", "redis"),
    ),
    "mysql": (
        Tool("mariadbd", "mariadb-server", "mariadb@10.11"),
        Tool("mariadb-install-db", "mariadb-server", "mariadb@10.11"),
    ),
    "mongodb": (),  # FerretDB is built from source: see ferretdb_binary()
    "rabbitmq": (
        Tool("rabbitmq-server", "rabbitmq-server", "rabbitmq", path_first=False),
        Tool("epmd", "erlang-base", "erlang"),
    ),
    # The observability profile (docs/observability.md); VictoriaLogs is built from source:
    # see devstack_cli.servers.victorialogs.
    "postgres_exporter": (
        Tool("prometheus-postgres-exporter", "prometheus-postgres-exporter", "postgres_exporter"),
    ),
    "mysqld_exporter": (
        Tool("prometheus-mysqld-exporter", "prometheus-mysqld-exporter", "mysqld_exporter"),
    ),
    "redis_exporter": (
        Tool("prometheus-redis-exporter", "prometheus-redis-exporter", "redis_exporter"),
    ),
    "prometheus": (
        Tool("prometheus", "prometheus", "prometheus"),
        Tool("promtool", "prometheus", "prometheus"),
    ),
}


# What `devstack test` needs beyond the stack: a browser to render the APIs' docs pages.
TEST_TOOLS = (Tool("chromium", "chromium", "--cask chromium"),)

# What `devstack bench` runs: the HTTP load generator (wrk: a Debian package, C, one epoll loop
# per thread, Lua hooks for request mixes and status counts) and the stores' own benchmarks.
BENCH_TOOLS = (
    Tool("wrk", "wrk", "wrk"),
    Tool("redis-benchmark", "redis-tools", "redis"),
    Tool("pgbench", "postgresql-client-15", "postgresql@15"),
    Tool("taskset", "util-linux", None),
)


def find(name: str, path_first: bool = True) -> str | None:
    if name == "bao":
        candidate = Path(sys.executable).parent / "bao"
        return str(candidate) if candidate.exists() else shutil.which("bao")
    extra = os.pathsep.join(EXTRA_DIRS)
    if path_first:
        return shutil.which(name) or shutil.which(name, path=extra)
    return shutil.which(name, path=extra) or shutil.which(name)


def require(name: str) -> str:
    """The path of a program, or an error that says how to get it."""
    for tools in (*TOOLS.values(), TEST_TOOLS, BENCH_TOOLS):
        for tool in tools:
            if tool.name == name:
                found = find(name, tool.path_first)
                if found:
                    return found
    raise FileNotFoundError(f"{name} is not installed: run `devstack doctor` to see how")


def ferretdb_binary() -> Path:
    return FERRETDB.binary("ferretdb")


@dataclass(frozen=True)
class Missing:
    service: str
    what: str
    apt: str | None = None
    brew: str | None = None
    build: bool = False  # built from source by `up` (needs Go)


def missing_test_tools() -> list[Missing]:
    return [
        Missing("tests", t.name, t.apt, t.brew)
        for t in TEST_TOOLS
        if find(t.name, t.path_first) is None
    ]


def missing_bench_tools() -> list[Missing]:
    return [
        Missing("bench", t.name, t.apt, t.brew)
        for t in BENCH_TOOLS
        if find(t.name, t.path_first) is None
    ]


def missing_for(services: list[str]) -> list[Missing]:
    result: list[Missing] = []
    for service in services:
        for tool in TOOLS.get(service, ()):
            if find(tool.name, tool.path_first) is None:
                result.append(Missing(service, tool.name, tool.apt, tool.brew))
        if service == "mongodb" and not ferretdb_binary().exists():
            result.append(Missing(service, f"ferretdb {FERRETDB_VERSION}", build=True))
    return result


def can_use_apt() -> bool:
    return (
        os.geteuid() == 0 and Path("/etc/debian_version").exists() and bool(shutil.which("apt-get"))
    )


def install_commands(missing: list[Missing]) -> list[str]:
    """The exact commands that install what is missing, for Debian/Ubuntu and for macOS."""
    lines: list[str] = []
    apt = sorted({m.apt for m in missing if m.apt})
    brew = sorted({m.brew for m in missing if m.brew})
    if apt:
        lines.append(
            "Debian/Ubuntu: sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive "
            f"apt-get install -y {' '.join(apt)}"
        )
    if brew:
        lines.append(f"macOS: brew install {' '.join(brew)}")
    if any(m.build for m in missing):
        lines.append(
            f"FerretDB {FERRETDB_VERSION}: {GO_HINT}, then run `./devstack up` again: it "
            "builds FerretDB itself"
        )
    return lines


def apt_install(packages: list[str], log_file: Path) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        for argv in (
            ["apt-get", "update"],
            ["apt-get", "install", "-y", "--no-install-recommends", *packages],
        ):
            if subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, env=env).returncode:
                raise RuntimeError(f"`{' '.join(argv)}` failed; see {log_file}")


@dataclass(frozen=True)
class GoModule:
    """Programs built from a Go module's source into the per-user cache, keyed by version:
    `<cache>/<folder>/<version>/<program>` (the layout every existing cache already has)."""

    module: str
    version: str
    folder: str  # under the cache: ferretdb, victorialogs
    programs: dict[str, str]  # program -> its package in the module (`./cmd/ferretdb`)
    needs: str  # what the Go hint names: "FerretDB"
    files: dict[str, str] = field(default_factory=dict)  # written into the source first

    def binary(self, program: str) -> Path:
        return cache_dir() / self.folder / self.version / program

    def missing(self) -> list[str]:
        return [name for name in self.programs if not self.binary(name).exists()]


FERRETDB = GoModule(
    FERRETDB_MODULE,
    FERRETDB_VERSION,
    "ferretdb",
    {"ferretdb": "./cmd/ferretdb"},
    "FerretDB",
    # A plain `go install` builds a binary that panics at start: FerretDB's build reads a
    # generated `build/version/version.txt`, so the module is copied and that file written.
    files={"build/version/version.txt": FERRETDB_VERSION + "\n"},
)
GO_HINT = "install Go 1.24 or newer (https://go.dev/dl, or `brew install go`)"


def build_go_module(spec: GoModule, log_file: Path) -> None:
    """Build whichever of the module's programs is missing: download the module, copy it
    (writable, with `spec.files` written), `go build` each program, then move it into place
    (a build cut short leaves only a `.partial` file). Go's own build cache makes a second
    build of the same module quick."""
    missing = spec.missing()
    if not missing:
        return
    go = shutil.which("go")
    if go is None:
        raise FileNotFoundError(f"Go is needed to build {spec.needs} {spec.version}: {GO_HINT}")
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod"}
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log, tempfile.TemporaryDirectory() as tmp:
        download = subprocess.run(
            [go, "mod", "download", "-json", f"{spec.module}@{spec.version}"],
            capture_output=True,
            env=env,
            cwd=tmp,
        )
        log.write(download.stderr)
        if download.returncode:
            raise RuntimeError(f"downloading {spec.module}@{spec.version} failed; see {log_file}")
        source = Path(tmp) / "src"
        shutil.copytree(json.loads(download.stdout)["Dir"], source)
        for path in source.rglob("*"):
            path.chmod(path.stat().st_mode | 0o200)
        for relative, text in spec.files.items():
            (source / relative).write_text(text)
        for name in missing:
            target = spec.binary(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f"{name}.partial")
            build = subprocess.run(
                [go, "build", "-trimpath", "-o", str(partial), spec.programs[name]],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=source,
            )
            if build.returncode:
                raise RuntimeError(f"building {name} {spec.version} failed; see {log_file}")
            partial.replace(target)


def build_ferretdb(log_file: Path) -> Path:
    """Build FerretDB from its Go module into the per-user cache (about a minute, once)."""
    build_go_module(FERRETDB, log_file)
    return ferretdb_binary()
