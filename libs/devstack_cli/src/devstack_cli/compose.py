"""The stack on a container engine: compose.yaml from the native plan, the image, the engine.

`compose.yaml` is not written by hand: `render()` turns the plan the native supervisor runs
(`engine.render_plan`, from `stack/services.toml`) into one Compose service per process, with the
same command (`devstack _serve NAME` in the runtime image), the same dependencies
(`service_started` / `service_healthy` / `service_completed_successfully`) and the same probe
(stack/containers/probe.py runs it inside the container). So a server is configured by the same
launcher code in a container as natively, and a change to the plan shows up as a stale
compose.yaml (a test renders and compares).

Networking: every container uses the host's network (`network_mode: host`) and every server binds
127.0.0.1 as natively. Nothing is published, no bridge, NAT or iptables rule is needed, the
certificates' SANs and every address stay what they are natively, and Redis Cluster announces
addresses that clients can reach. DEVSTACK_PORT_OFFSET moves every port as natively.

Secrets: the root token and unseal keys live only in the bootstrap's volume (`vault-init`); each
service's AppRole files reach it through a volume of its own (`approle-NAME`, read-only); the CA
chain through `ca` (read-only). No container gets a Vault token through its environment.

The engine: whatever `docker` answers (Docker Desktop, Colima, a Linux engine), or, as root on
Debian with no engine running, a private `dockerd` that this module starts with its own data
root, socket and PID file and without bridge, iptables or IP forwarding (so stopping it leaves
the host's network as it was; `stop_private_engine` checks that and restores what changed).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack_cli.plan import Probe
from devstack_cli.settings import Settings, cache_dir, repo_root, write_private
from devstack_cli.states import (
    FAILED_STATES,
    ProcessState,
    ProcessStatus,
    ServiceStatus,
    StackStatus,
    all_healthy,
)

COMPOSE_FILE = "compose.yaml"
IMAGE = "devstack-core/runtime:local"
BASE_IMAGE_DEFAULT = "debian:bookworm-slim"
LOCAL_BASE_IMAGE = "devstack-core/debian:bookworm-minbase"
STATE = "/state"  # DEVSTACK_STATE_DIR inside every container
PROBE = "/opt/devstack/stack/containers/probe.py"
CONDITIONS = {
    "started": "service_started",
    "healthy": "service_healthy",
    "completed": "service_completed_successfully",
}
ENGINE_MARK = "engine"  # <state>/engine holds "compose" while the compose stack is the stack
# Natively the supervisor runs Vault's bootstrap again whenever Vault restarts (it comes back
# sealed); Compose cannot rerun a one-shot, so there the bootstrap stays up once done and unseals
# Vault whenever it finds it sealed. It is healthy (and reported `completed`) once done.
BOOTSTRAP = "vault-bootstrap"
BOOTSTRAPPED = f"{STATE}/vault/bootstrapped"  # in the bootstrap's own volume
RESTART_POLICY = "unless-stopped"  # a server that dies is started again, as natively
# Profiles whose servers the image does not carry yet: VictoriaLogs is built from its Go module
# natively (servers/victorialogs.py) and not staged into the image.
NATIVE_ONLY_PROFILES = ("observability",)

Say = Callable[[str], None]


class ComposeError(RuntimeError):
    """One line for the user, and the CLI's exit code (2 bad input, 3 machine not ready)."""

    def __init__(self, message: str, code: int = 3) -> None:
        super().__init__(message)
        self.code = code


# -- render ------------------------------------------------------------------------------


def compose_path() -> Path:
    return repo_root() / COMPOSE_FILE


@contextlib.contextmanager
def _programs_in_the_image() -> Iterator[None]:
    """While rendering, a program is named, not looked up on this host: the container finds it
    (its PATH, or probe.py's Debian folders). The host may not have the servers at all."""
    from devstack_cli import tools

    original = tools.find
    tools.find = lambda name, path_first=True: name
    try:
        yield
    finally:
        tools.find = original


def _command(argv: tuple[str, ...], base_ports: set[int]) -> list[str]:
    if argv[:3] == (sys.executable, "-m", "devstack_cli"):
        return ["devstack", *argv[3:]]
    # Another program of the plan (epmd): probe.py execs it with its ports moved by the offset.
    marked = [_port_marker(a, base_ports) for a in argv[1:]]
    return ["python3", "-I", PROBE, "--exec", os.path.basename(argv[0]), *marked]


def _port_marker(arg: str, base_ports: set[int]) -> str:
    return f"@{arg}" if arg.isdigit() and int(arg) in base_ports else arg


def _probe_json(probe: Any, base_ports: set[int]) -> str:
    """The plan's probe, rendered with offset 0; probe.py adds the container's offset."""
    if probe.tcp:
        body: dict[str, Any] = {"tcp": list(probe.tcp)}
        if probe.send:
            body["send"] = probe.send
    elif probe.http:
        body = {"http": probe.http}
    elif probe.postgres:
        body = {"postgres": probe.postgres}
    else:
        argv = [os.path.basename(probe.exec[0]), *probe.exec[1:]]
        body = {"exec": [_port_marker(a, base_ports) for a in argv]}
    return json.dumps(body, separators=(",", ":"))


def server_packages() -> list[str]:
    from devstack_cli import tools

    packages = {t.apt for tools_ in tools.TOOLS.values() for t in tools_ if t.apt}
    return sorted(packages)


def uv_version() -> str:
    from importlib.metadata import version

    return version("uv")


def model() -> dict[str, Any]:
    """compose.yaml as data: one service per process of the plan, in the plan's order."""
    from devstack_cli import engine
    from devstack_cli.stack import stack

    table = stack()
    settings = Settings(state_dir=Path(STATE), port_offset=0)
    profiles = list(table.profiles)
    with _programs_in_the_image():
        plan = engine.render_plan(settings, "+".join(profiles))
    in_compose = plan.processes
    services_with_approle = list(table.services)
    services: dict[str, Any] = {}
    volumes: dict[str, Any] = {}
    build = {
        "context": ".",
        "dockerfile": "stack/containers/Dockerfile",
        "network": "host",
        "args": {
            "BASE_IMAGE": f"${{DEVSTACK_BASE_IMAGE:-{BASE_IMAGE_DEFAULT}}}",
            "SERVER_PACKAGES": " ".join(server_packages()),
            "UV_VERSION": uv_version(),
        },
    }
    for index, process in enumerate(in_compose):
        service = table.service(process.service)
        base_ports = {p + i for p in service.ports.values() for i in range(service.instances)}
        entry: dict[str, Any] = {"image": IMAGE}
        if index == 0:
            entry["build"] = build
        entry["profiles"] = list(service.profiles)
        entry["network_mode"] = "host"
        entry["command"] = _command(process.command, base_ports)
        if process.name == BOOTSTRAP:
            entry["command"] = ["python", "-m", "devstack_cli.compose", "bootstrap-and-watch"]
        if not process.one_shot or process.name == BOOTSTRAP:
            entry["restart"] = RESTART_POLICY
        entry["environment"] = {"DEVSTACK_PORT_OFFSET": "${DEVSTACK_PORT_OFFSET:-0}"}
        if process.stop_signal != "SIGTERM":
            entry["stop_signal"] = process.stop_signal
        mounts: list[str] = []
        if process.name == "vault-bootstrap":
            mounts.append(f"vault-init:{STATE}/vault")
            mounts.append(f"ca:{STATE}/ca")
            mounts += [f"approle-{n}:{STATE}/approle/{n}" for n in services_with_approle]
        elif process.command[:3] == (sys.executable, "-m", "devstack_cli"):
            mounts.append(f"{service.name}:{STATE}/{service.name}")
            if service.name != "vault":
                mounts.append(f"approle-{service.name}:{STATE}/approle/{service.name}:ro")
                mounts.append(f"ca:{STATE}/ca:ro")
        for mount in mounts:
            volumes[mount.split(":", 1)[0]] = {}
        if mounts:
            entry["volumes"] = mounts
        probe = process.probe
        if process.name == BOOTSTRAP:
            probe = Probe(exec=("test", "-e", BOOTSTRAPPED))
        if probe is not None:
            entry["healthcheck"] = {
                "test": ["CMD", "python3", "-I", PROBE, _probe_json(probe, base_ports)],
                "interval": "3s",
                "timeout": "20s",
                "retries": 5,
                "start_period": "300s",
            }
        if process.depends_on:
            entry["depends_on"] = {
                dep: {"condition": CONDITIONS["healthy" if dep == BOOTSTRAP else cond]}
                for dep, cond in process.depends_on.items()
            }
        services[process.name] = entry
    return {"version": "3.9", "services": services, "volumes": dict(sorted(volumes.items()))}


HEADER = """\
# Generated by `devstack compose render` from stack/services.toml (the native engine's plan):
# do not edit; a test fails when this file is stale. See docs/compose.md.
#
# Every container runs on the host's network and every server binds 127.0.0.1, as natively;
# DEVSTACK_PORT_OFFSET moves every port. Build the image and bring the stack up with
#   ./devstack compose build && ./devstack up --engine compose
# (or `DEVSTACK_BASE_IMAGE=... docker compose -p devstack --profile standard up -d` after
# `devstack compose build`). The Go, Node.js and Rust APIs (profile full) are not in the image
# yet: only the services of the minimal and standard profiles are here.
"""


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(str(value))  # a JSON string is a YAML double-quoted scalar


def _yaml(value: Any, indent: int = 0) -> list[str]:
    pad = " " * indent
    lines: list[str] = []
    for key, item in value.items():
        if isinstance(item, dict):
            if item:
                lines.append(f"{pad}{key}:")
                lines.extend(_yaml(item, indent + 2))
            else:
                lines.append(f"{pad}{key}: {{}}")
        elif isinstance(item, list):
            lines.append(f"{pad}{key}: [{', '.join(_scalar(v) for v in item)}]")
        else:
            lines.append(f"{pad}{key}: {_scalar(item)}")
    return lines


def render() -> str:
    data = model()
    body: list[str] = [f"version: {_scalar(data['version'])}", "", "services:"]
    for name, entry in data["services"].items():
        body.extend(_yaml({name: entry}, 2))
        body.append("")
    body.append("volumes:")
    body.extend(_yaml(data["volumes"], 2))
    return HEADER + "\n" + "\n".join(body) + "\n"


def is_stale() -> bool:
    path = compose_path()
    return not path.exists() or path.read_text() != render()


def write() -> Path:
    path = compose_path()
    path.write_text(render())
    return path


# -- the engine --------------------------------------------------------------------------

PRIVATE_RUN = Path("/run/devstack-docker")  # socket, PID file, exec root of a private dockerd


def private_socket() -> Path:
    return PRIVATE_RUN / "docker.sock"


def private_data_root() -> Path:
    return cache_dir() / "compose" / "docker"


@dataclass(frozen=True)
class Engine:
    docker: str
    compose: tuple[str, ...]  # ("docker", "compose") (v2) or ("docker-compose",) (v1)
    env: dict[str, str]

    @property
    def v2(self) -> bool:
        return len(self.compose) == 2

    def run(
        self, *args: str, check: bool = True, timeout: float | None = 600, capture: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.docker, *args],
            env=self.env,
            capture_output=capture,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode:
            raise ComposeError(f"docker {args[0]} failed: {(result.stderr or '').strip()}", 1)
        return result


def _engine_env() -> dict[str, str]:
    env = dict(os.environ)
    if "DOCKER_HOST" not in env and private_socket().exists():
        env["DOCKER_HOST"] = f"unix://{private_socket()}"
    return env


def docker_program() -> str | None:
    return shutil.which("docker")


def compose_program(docker: str, env: dict[str, str]) -> tuple[str, ...] | None:
    try:
        v2 = subprocess.run(
            [docker, "compose", "version"], env=env, capture_output=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        v2 = None
    if v2 is not None and v2.returncode == 0:
        return (docker, "compose")
    v1 = shutil.which("docker-compose")
    return (v1,) if v1 else None


def engine_answers(docker: str, env: dict[str, str]) -> bool:
    try:
        done = subprocess.run(
            [docker, "version", "--format", "{{.Server.Version}}"],
            env=env,
            capture_output=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def can_run_private_engine() -> bool:
    from devstack_cli import tools

    return tools.can_use_apt() or (os.geteuid() == 0 and shutil.which("dockerd") is not None)


def find_engine() -> Engine:
    """The engine to use, or a ComposeError naming what is missing and what to do."""
    docker = docker_program()
    if docker is None:
        raise ComposeError(
            "no container engine: install Docker (Docker Desktop, Colima or docker.io), or run "
            "`devstack compose engine start` as root on Debian to start a private one"
        )
    env = _engine_env()
    if not engine_answers(docker, env):
        raise ComposeError(
            "the container engine is not running: start it (Docker Desktop, `colima start`, "
            "`sudo systemctl start docker`), or `devstack compose engine start` as root on Debian"
        )
    compose = compose_program(docker, env)
    if compose is None:
        raise ComposeError(
            "Docker Compose is missing: install the compose plugin (v2) or docker-compose (v1)"
        )
    return Engine(docker, compose, env)


def install_engine_packages(say: Say) -> None:
    """docker.io, docker-compose and debootstrap with apt, as `up` installs the servers."""
    from devstack_cli import tools

    wanted = {"dockerd": "docker.io", "docker-compose": "docker-compose"}
    wanted["debootstrap"] = "debootstrap"
    missing = [pkg for program, pkg in wanted.items() if shutil.which(program) is None]
    if not missing:
        return
    if not tools.can_use_apt():
        raise ComposeError(
            f"missing {', '.join(missing)}: install them "
            f"(`apt-get install -y {' '.join(missing)}` as root on Debian)"
        )
    log = cache_dir() / "compose" / "setup.log"
    say(f"installing with apt: {' '.join(missing)} (log: {log})")
    tools.apt_install(missing, log)


def _network_state() -> dict[str, Any]:
    """What a container engine may change in the host's network: recorded before it starts."""

    def run(*argv: str) -> str:
        if shutil.which(argv[0]) is None:
            return ""
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        return done.stdout

    forward = Path("/proc/sys/net/ipv4/ip_forward")
    return {
        "ip_forward": forward.read_text().strip() if forward.exists() else "",
        "filter": run("iptables", "-S"),
        "nat": run("iptables", "-t", "nat", "-S"),
        "links": sorted(p.name for p in Path("/sys/class/net").iterdir()),
    }


def network_state() -> dict[str, Any]:
    return _network_state()


_DAEMONS: list[subprocess.Popen[bytes]] = []


def start_private_engine(say: Say) -> Engine:
    """Start dockerd as root with its own data root, socket and PID file; no bridge, no NAT."""
    if os.geteuid() != 0:
        raise ComposeError("a private engine needs root (or start Docker yourself)")
    install_engine_packages(say)
    dockerd = shutil.which("dockerd")
    docker = docker_program()
    if dockerd is None or docker is None:
        raise ComposeError("dockerd is missing: install docker.io")
    sock = private_socket()
    env = {**os.environ, "DOCKER_HOST": f"unix://{sock}"}
    if sock.exists() and engine_answers(docker, env):
        compose = compose_program(docker, env)
        if compose is None:
            raise ComposeError("Docker Compose is missing: install docker-compose")
        return Engine(docker, compose, env)
    PRIVATE_RUN.mkdir(mode=0o700, parents=True, exist_ok=True)
    private_data_root().mkdir(parents=True, exist_ok=True)
    (PRIVATE_RUN / "network.json").write_text(json.dumps(_network_state()))
    log = PRIVATE_RUN / "dockerd.log"
    say(f"starting a private dockerd (data in {private_data_root()}, log {log})")
    with log.open("ab") as out:
        daemon = subprocess.Popen(
            [
                dockerd,
                f"--data-root={private_data_root()}",
                f"--exec-root={PRIVATE_RUN / 'exec'}",
                f"--pidfile={PRIVATE_RUN / 'dockerd.pid'}",
                f"--host=unix://{sock}",
                "--bridge=none",
                "--iptables=false",
                "--ip-forward=false",
                "--ip-masq=false",
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _DAEMONS.append(daemon)  # it outlives this call: keep its handle (stopped by its PID file)
    deadline = time.monotonic() + 60
    while not engine_answers(docker, env):
        if time.monotonic() > deadline:
            raise ComposeError(f"dockerd did not start in 60 s; see {log}", 1)
        time.sleep(0.5)
    compose = compose_program(docker, env)
    if compose is None:
        raise ComposeError("Docker Compose is missing: install docker-compose")
    return Engine(docker, compose, env)


def private_engine_pid() -> int | None:
    try:
        pid = int((PRIVATE_RUN / "dockerd.pid").read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except FileNotFoundError:
        return None
    # Ours only when it runs with our socket (never another engine that reused the number).
    if not cmdline or not cmdline[0].endswith(b"dockerd"):
        return None
    if f"--host=unix://{private_socket()}".encode() not in cmdline:
        return None
    return pid


def stop_private_engine(say: Say) -> list[str]:
    """Stop the private dockerd (its containers first) and undo any change to the network.

    Returns what had to be restored (empty when the engine changed nothing, as intended)."""
    pid = private_engine_pid()
    if pid is not None:
        docker = docker_program()
        env = {**os.environ, "DOCKER_HOST": f"unix://{private_socket()}"}
        if docker is not None:
            ids = subprocess.run(
                [docker, "ps", "-q"], env=env, capture_output=True, text=True, check=False
            ).stdout.split()
            if ids:
                subprocess.run([docker, "stop", *ids], env=env, capture_output=True, check=False)
        os.kill(pid, 15)
        ours = [d for d in _DAEMONS if d.pid == pid]
        for daemon in ours:  # started by this process: reap it
            with contextlib.suppress(subprocess.TimeoutExpired):
                daemon.wait(timeout=60)
            _DAEMONS.remove(daemon)
        deadline = time.monotonic() + 60
        while not ours and Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        say("stopped the private dockerd")
    return restore_network()


def restore_network() -> list[str]:
    saved_file = PRIVATE_RUN / "network.json"
    if not saved_file.exists():
        return []
    saved = json.loads(saved_file.read_text())
    now = _network_state()
    fixed: list[str] = []
    if "docker0" in now["links"] and "docker0" not in saved["links"]:
        subprocess.run(["ip", "link", "delete", "docker0"], capture_output=True, check=False)
        fixed.append("docker0 removed")
    for table in ("filter", "nat"):
        if now[table] != saved[table] and shutil.which("iptables-restore"):
            flag = [] if table == "filter" else ["-t", "nat"]
            for chain in re.findall(r"^-N (DOCKER\S*)$", now[table], re.M):
                subprocess.run(["iptables", *flag, "-F", chain], capture_output=True, check=False)
            for rule in now[table].splitlines():
                if rule.startswith("-A ") and rule not in saved[table].splitlines():
                    delete = ["iptables", *flag, "-D", *rule.split()[1:]]
                    subprocess.run(delete, capture_output=True, check=False)
            for chain in re.findall(r"^-N (DOCKER\S*)$", now[table], re.M):
                subprocess.run(["iptables", *flag, "-X", chain], capture_output=True, check=False)
            for policy in re.findall(r"^-P (\S+) (\S+)$", saved[table], re.M):
                subprocess.run(["iptables", *flag, "-P", *policy], capture_output=True, check=False)
            fixed.append(f"iptables {table} restored")
    if now["ip_forward"] != saved["ip_forward"] and saved["ip_forward"]:
        Path("/proc/sys/net/ipv4/ip_forward").write_text(saved["ip_forward"] + "\n")
        fixed.append(f"ip_forward back to {saved['ip_forward']}")
    saved_file.unlink()
    return fixed


# -- images ------------------------------------------------------------------------------


def image_exists(engine: Engine, image: str) -> bool:
    return engine.run("image", "inspect", image, check=False, timeout=60).returncode == 0


def apt_mirror() -> str | None:
    """The Debian mirror apt uses on this machine (debootstrap's default otherwise)."""
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    if sources.exists():
        found = re.search(r"^URIs:\s*(\S+/debian)/?\s*$", sources.read_text(), re.M)
        if found:
            return found.group(1)
    legacy = Path("/etc/apt/sources.list")
    if legacy.exists():
        found = re.search(r"^deb\s+(\S+/debian)/?\s+bookworm\s", legacy.read_text(), re.M)
        if found:
            return found.group(1)
    return None


def base_tarball() -> Path:
    return cache_dir() / "compose" / "debian-bookworm-minbase.tar"


def ensure_local_base(engine: Engine, say: Say) -> str:
    """A Debian bookworm base image made with debootstrap (no registry needed), cached."""
    if image_exists(engine, LOCAL_BASE_IMAGE):
        return LOCAL_BASE_IMAGE
    tarball = base_tarball()
    if not tarball.exists():
        if os.geteuid() != 0 or shutil.which("debootstrap") is None:
            raise ComposeError(
                "no base image: let the engine pull debian:bookworm-slim (unset "
                "DEVSTACK_BASE_IMAGE), or install debootstrap and run as root"
            )
        tarball.parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        say("building the base image with debootstrap (minbase bookworm, about 2.5 min, once)")
        with tempfile.TemporaryDirectory(dir=tarball.parent) as tmp:
            rootfs = Path(tmp) / "rootfs"
            argv = ["debootstrap", "--variant=minbase", "bookworm", str(rootfs)]
            mirror = apt_mirror()
            if mirror:
                argv.append(mirror)
            log = tarball.parent / "debootstrap.log"
            with log.open("ab") as out:
                if subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT).returncode:
                    raise ComposeError(f"debootstrap failed; see {log}", 1)
            partial = tarball.with_suffix(".partial")
            packed = subprocess.run(
                ["tar", "-C", str(rootfs), "-cf", str(partial), "."], capture_output=True
            )
            if packed.returncode:
                raise ComposeError(f"packing the base failed: {packed.stderr.decode()[-300:]}", 1)
            partial.replace(tarball)
        say(f"base root file system cached in {tarball} ({time.monotonic() - started:.0f} s)")
    with tarball.open("rb") as data:
        done = subprocess.run(
            [engine.docker, "import", "-", LOCAL_BASE_IMAGE],
            stdin=data,
            env=engine.env,
            capture_output=True,
            text=True,
            check=False,
        )
    if done.returncode:
        raise ComposeError(f"docker import failed: {done.stderr.strip()}", 1)
    return LOCAL_BASE_IMAGE


def stage_build_context(say: Say) -> None:
    """What the image copies from the building machine: FerretDB (built from its Go module by
    the same code as natively), the Go, Node.js and Rust APIs, and the machine's own CAs (an
    intercepting egress proxy)."""
    from devstack_cli import tools

    here = repo_root() / "stack" / "containers"
    binary = tools.ferretdb_binary()
    if not binary.exists():
        log = cache_dir() / "compose" / "setup.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        say(f"building FerretDB {tools.FERRETDB_VERSION} once (log: {log})")
        try:
            tools.build_ferretdb(log)
        except (FileNotFoundError, RuntimeError) as exc:
            raise ComposeError(str(exc)) from None
    target = here / "staged" / "cache" / binary.relative_to(cache_dir())
    if not target.exists() or _digest(target) != _digest(binary):
        shutil.rmtree(here / "staged", ignore_errors=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(binary, target)
    stage_polyglot(here / "staged", say)
    extra = here / "extra-ca"
    wanted = {p.name: p for p in sorted(Path("/usr/local/share/ca-certificates").glob("*.crt"))}
    for old in extra.glob("*.crt"):
        if old.name not in wanted:
            old.unlink()
    for name, source in wanted.items():
        if not (extra / name).exists() or (extra / name).read_bytes() != source.read_bytes():
            shutil.copyfile(source, extra / name)


def stage_polyglot(staged: Path, say: Say) -> None:
    """Each polyglot API as `devstack up` builds it natively (the same recipe, the same cache:
    no rebuild when the machine has built it already), and this machine's `node` for the
    Node.js one. The image copies them rather than building them: with no registry, it has no
    Go, Rust or Node.js base image to build on. An API whose toolchain is missing here is left
    out of the image, and said so."""
    from devstack_cli import polyglot

    log = cache_dir() / "compose" / "setup.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    (staged / "polyglot").mkdir(parents=True, exist_ok=True)  # the image copies it, even empty
    for recipe in polyglot.RECIPES.values():
        target = staged / "polyglot" / recipe.name
        missing = polyglot.missing_toolchains(recipe)
        if missing:
            say(
                f"{recipe.name} is left out of the image: it needs "
                + "; ".join(t.install for t in missing)
            )
            shutil.rmtree(target, ignore_errors=True)
            continue
        try:
            out = polyglot.build(recipe, log, say)
        except polyglot.BuildError as exc:
            raise ComposeError(str(exc), 1) from None
        if not (target / out.name / polyglot.BUILT_MARKER).exists():
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(out, target / out.name, symlinks=True)
    bin_dir = staged / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    node, copy = shutil.which("node"), bin_dir / "node"
    if node is None:
        copy.unlink(missing_ok=True)
    elif not copy.exists() or _digest(copy) != _digest(Path(node).resolve()):
        shutil.copy2(Path(node).resolve(), copy)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def base_image(engine: Engine, say: Say) -> str:
    """DEVSTACK_BASE_IMAGE when given; else a local debootstrap base when the engine is our
    private one (no registry), else the default, which the user's engine pulls."""
    given = os.environ.get("DEVSTACK_BASE_IMAGE")
    if given:
        return given
    if engine.env.get("DOCKER_HOST") == f"unix://{private_socket()}":
        return ensure_local_base(engine, say)
    return BASE_IMAGE_DEFAULT


def build(engine: Engine, say: Say) -> float:
    """Build the runtime image; returns the seconds it took."""
    if is_stale():
        raise ComposeError("compose.yaml is stale: run `devstack compose render` and commit it")
    started = time.monotonic()
    base = base_image(engine, say)
    stage_build_context(say)
    say(f"building {IMAGE} on {base}")
    env = {**engine.env, "DEVSTACK_BASE_IMAGE": base}
    first = next(iter(model()["services"]))
    argv = [*engine.compose, "-f", str(compose_path()), "--profile", "full", "build", first]
    log = cache_dir() / "compose" / "build.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        done = subprocess.run(
            argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=repo_root(), check=False
        )
    if done.returncode:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        raise ComposeError(f"the image build failed; see {log}:\n  " + "\n  ".join(tail), 1)
    return time.monotonic() - started


# -- the stack ---------------------------------------------------------------------------


def project(settings: Settings) -> str:
    """One Compose project per port offset (two stacks on one offset would share ports)."""
    offset = settings.port_offset
    return "devstack" if offset == 0 else f"devstack-{offset}"


def profiles_of(profile: str) -> list[str]:
    from devstack_cli.stack import UnknownProfileError, stack

    table = stack()
    if profile not in table.profiles:
        raise ComposeError(
            str(UnknownProfileError(profile, sorted(table.profiles)))
            + "; the compose engine takes a profile's name",
            2,
        )
    if profile in NATIVE_ONLY_PROFILES:
        raise ComposeError(
            f"the {profile} profile runs on the native engine only for now (docs/compose.md): "
            f"`devstack up --profile {profile}`",
            2,
        )
    return [profile]


def _compose(engine: Engine, settings: Settings, *args: str) -> list[str]:
    return [
        *engine.compose,
        "-f",
        str(compose_path()),
        "-p",
        project(settings),
        "--profile",
        "full",
        *args,
    ]


def compose_env(engine: Engine, settings: Settings) -> dict[str, str]:
    return {**engine.env, "DEVSTACK_PORT_OFFSET": str(settings.port_offset)}


def in_use(settings: Settings) -> bool:
    """True when this state folder's stack is the compose one (`up --engine compose`)."""
    mark = settings.state.root / ENGINE_MARK
    return mark.exists() and mark.read_text().strip() == "compose"


def containers(engine: Engine, settings: Settings) -> list[dict[str, Any]]:
    ids = engine.run(
        "ps",
        "-aq",
        "--filter",
        f"label=com.docker.compose.project={project(settings)}",
        timeout=60,
    ).stdout.split()
    if not ids:
        return []
    found: list[dict[str, Any]] = json.loads(engine.run("inspect", *ids, timeout=60).stdout)
    return found


# A container's state (docker's State.Status) when it is not running or exited.
CONTAINER_STATES = {
    "created": ProcessState.PENDING,
    "restarting": ProcessState.EXITED,
    "paused": ProcessState.UNHEALTHY,
    "removing": ProcessState.STOPPED,
    "dead": ProcessState.FAILED,
}


def snapshot(engine: Engine, settings: Settings, profile: str) -> StackStatus:
    """The compose stack in the native supervisor's status model."""
    from devstack_cli import engine as native
    from devstack_cli.stack import stack

    wanted = [s.name for s in stack().in_profile(profile)]
    with _programs_in_the_image():
        plan = native.render_plan(Settings(state_dir=Path(STATE), port_offset=0), profile)
    by_service = {
        c["Config"]["Labels"].get("com.docker.compose.service"): c
        for c in containers(engine, settings)
    }
    processes = []
    for spec in plan.processes:
        if spec.service not in wanted:
            continue
        found = by_service.get(spec.name)
        state, reason, pid = ProcessState.PENDING, "", None
        if found is not None:
            st = found["State"]
            pid = st.get("Pid") or None
            health = (st.get("Health") or {}).get("Status")
            if st["Status"] == "running" and spec.name == BOOTSTRAP and health == "healthy":
                state = ProcessState.COMPLETED  # done, and watching (BOOTSTRAP)
            elif st["Status"] == "running":
                # Without a probe, running is healthy, as the supervisor says natively.
                state = {
                    "healthy": ProcessState.HEALTHY,
                    "unhealthy": ProcessState.UNHEALTHY,
                }.get(health or "", ProcessState.STARTING if spec.probe else ProcessState.HEALTHY)
                if health == "unhealthy":
                    log = (st.get("Health") or {}).get("Log") or [{}]
                    reason = str(log[-1].get("Output", "")).strip()[:200]
            elif st["Status"] == "exited":
                code = st.get("ExitCode", 0)
                if spec.one_shot and code == 0:
                    state = ProcessState.COMPLETED
                else:
                    state, reason = ProcessState.FAILED, f"exited {code}"
            else:
                state = CONTAINER_STATES.get(st["Status"], ProcessState.PENDING)
                reason = st["Status"]
        processes.append(
            ProcessStatus(
                name=spec.name,
                service=spec.service,
                state=state,
                reason=reason,
                one_shot=spec.one_shot,
                pid=pid,
                log_file=f"docker logs {project(settings)}_{spec.name}",
                container=(found or {}).get("Name", "").lstrip("/"),
            )
        )
    return StackStatus(profile=profile, engine="compose", processes=tuple(processes))


def taken_ports(settings: Settings, profile: str) -> list[tuple[int, str]]:
    from devstack_cli import engine as native

    return native.taken_ports(settings, profile)


def export_state(engine: Engine, settings: Settings) -> None:
    """Copy out what clients on the host need, as natively: the CA chain and each service's
    AppRole files (never the root token: it stays in the bootstrap's volume)."""
    from devstack_cli.stack import stack

    bootstrap = next(
        (
            c["Id"]
            for c in containers(engine, settings)
            if c["Config"]["Labels"].get("com.docker.compose.service") == "vault-bootstrap"
        ),
        None,
    )
    if bootstrap is None:
        return
    paths = settings.state
    with tempfile.TemporaryDirectory() as tmp:
        engine.run("cp", f"{bootstrap}:{STATE}/ca/.", f"{tmp}/ca")
        for name in ("ca.pem", "ca-chain.pem"):
            write_private(paths.ca / name, (Path(tmp) / "ca" / name).read_text(), mode=0o644)
        for service in stack().services.values():
            target = Path(tmp) / "approle" / service.name
            target.parent.mkdir(parents=True, exist_ok=True)
            copied = engine.run(
                "cp", f"{bootstrap}:{STATE}/approle/{service.name}/.", str(target), check=False
            )
            if copied.returncode:
                raise ComposeError(f"could not copy {service.name}'s AppRole files out", 1)
            for name in ("role-id", "secret-id"):
                if (target / name).exists():
                    write_private(paths.approle / service.name / name, (target / name).read_text())


def up(settings: Settings, profile: str, say: Say, timeout: float) -> tuple[bool, StackStatus]:
    """Start the compose stack and wait until every process is healthy (or completed)."""
    from devstack_cli import engine as native

    profiles_of(profile)
    if is_stale():
        raise ComposeError("compose.yaml is stale: run `devstack compose render` and commit it")
    engine = find_engine()
    if native.status(settings) is not None:
        raise ComposeError(
            f"the native stack of {settings.state.root} is running: `devstack down` first"
        )
    found = containers(engine, settings)
    running = [c for c in found if c["State"]["Status"] == "running"]
    stopped = [c["Id"] for c in found if c["State"]["Status"] != "running"]
    if stopped:
        # Left by an earlier run that was stopped or cut short (an engine killed under it marks
        # every container exited 255): removed, so that what is reported below is this run's.
        # Their volumes, and so the stack's data, stay.
        engine.run("rm", "--force", *stopped, timeout=120)
    if not running:
        taken = taken_ports(settings, profile)
        if taken:
            port, label = taken[0]
            raise ComposeError(
                f"port {port} ({label}) is already in use: stop what holds it, or set "
                "DEVSTACK_PORT_OFFSET to move the whole stack"
            )
    if not image_exists(engine, IMAGE):
        raise ComposeError(f"the image {IMAGE} is missing: run `devstack compose build` first")
    settings.state.root.mkdir(parents=True, exist_ok=True)
    (settings.state.root / ENGINE_MARK).write_text("compose\n")
    settings.state.profile_file.write_text(profile + "\n")
    services = [name for name, entry in model()["services"].items() if profile in entry["profiles"]]
    # Compose v1 waits for each healthcheck before starting what depends on it: run it beside
    # the polling below, which reports each service as it changes.
    log = settings.state.root / "compose-up.log"
    with log.open("wb") as out:
        runner = subprocess.Popen(
            _compose(engine, settings, "up", "-d", "--no-build", *services),
            env=compose_env(engine, settings),
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=repo_root(),
        )
    deadline = time.monotonic() + timeout
    try:
        while True:
            snap = snapshot(engine, settings, profile)
            states = snap.services()
            say_states(states, say)
            done = runner.poll() is not None
            if done and states and all_healthy(states):
                export_state(engine, settings)
                return True, snap
            if any(st.state in FAILED_STATES for st in states):
                return False, snap
            if runner.poll() not in (None, 0):
                tail = log.read_text(errors="replace").strip().splitlines()[-3:]
                raise ComposeError("docker compose up failed: " + " | ".join(tail), 1)
            if time.monotonic() > deadline:
                return False, snap
            time.sleep(1.0)
    finally:
        if runner.poll() is None:
            runner.terminate()
            runner.wait()


_seen: dict[str, str] = {}


def say_states(states: list[ServiceStatus], say: Say) -> None:
    for st in states:
        if _seen.get(st.name) != st.state:
            _seen[st.name] = st.state
            say(f"{st.name:<12} {st.state}")


def down(settings: Settings, volumes: bool = False) -> bool:
    engine = find_engine()
    had = bool(containers(engine, settings))
    args = ["down", "--remove-orphans", *(["-v"] if volumes else [])]
    done = subprocess.run(
        _compose(engine, settings, *args),
        env=compose_env(engine, settings),
        capture_output=True,
        text=True,
        cwd=repo_root(),
        check=False,
    )
    if done.returncode:
        raise ComposeError(f"docker compose down failed: {done.stderr.strip()[-500:]}", 1)
    return had


def forget(settings: Settings) -> None:
    """The state folder no longer names the compose engine (after `reset`)."""
    (settings.state.root / ENGINE_MARK).unlink(missing_ok=True)


def logs(settings: Settings, processes: list[str], lines: int, follow: bool) -> int:
    engine = find_engine()
    args = ["logs", "--no-color", f"--tail={lines}", *(["-f"] if follow else []), *processes]
    return subprocess.run(
        _compose(engine, settings, *args),
        env=compose_env(engine, settings),
        cwd=repo_root(),
        check=False,
    ).returncode


def process_names(settings: Settings, profile: str, service: str) -> list[str]:
    """The compose services (processes) of a service or a process name."""
    from devstack_cli import engine as native

    with _programs_in_the_image():
        plan = native.render_plan(Settings(state_dir=Path(STATE), port_offset=0), profile)
    if service in {p.name for p in plan.processes}:
        return [service]
    return [p.name for p in plan.for_service(service)]


# -- inside the image --------------------------------------------------------------------


def prepare_image(apps: list[str]) -> None:
    """Run by the Dockerfile: each Python API's environment, completed and compiled by the
    same code `devstack up` runs natively (devstack_cli.appenv)."""
    from devstack_cli import appenv

    settings = Settings()
    log = Path("/dev/stdout")
    for app in apps:
        appenv.sync(settings, app, log)


def bootstrap_and_watch(interval: float = 2.0) -> None:
    """The compose stack's `vault-bootstrap` (see BOOTSTRAP): init or unseal, bootstrap, mark
    it done, then unseal Vault again whenever it comes back sealed (a restarted container)."""
    from devstack_cli import bootstrap
    from devstack_cli.stack import stack
    from devstack_cli.vault import Vault, VaultError

    def log(message: str) -> None:
        print(message, flush=True)

    settings = Settings()
    done = Path(BOOTSTRAPPED)
    done.unlink(missing_ok=True)  # an earlier run's: its volume outlives the container
    root = bootstrap.init_or_unseal(settings, log)
    bootstrap.bootstrap(settings, stack(), root, log)
    done.touch()
    log("bootstrap complete; unsealing Vault whenever it restarts")
    while True:
        time.sleep(interval)
        try:
            with Vault.for_settings(settings) as vault:
                sealed = vault.health()["sealed"]
            if sealed:
                bootstrap.init_or_unseal(settings, log)
        except VaultError as exc:  # restarting (no answer, or sealed/standby): try again
            log(f"Vault not ready yet ({type(exc).__name__})")


def record_builds() -> None:
    """Run by the Dockerfile: each polyglot build the image carries recorded in the image's
    state folder, where the launcher finds it natively too (devstack_cli.polyglot)."""
    from devstack_cli import polyglot

    settings = Settings()
    for name in polyglot.RECIPES:
        for out in sorted((cache_dir() / "polyglot" / name).glob("*")):
            if (out / polyglot.BUILT_MARKER).exists():
                polyglot.record_build(settings, name, out)


def main(argv: list[str]) -> int:
    if argv[:1] == ["prepare-image"]:
        prepare_image(argv[1:])
        return 0
    if argv == ["record-builds"]:
        record_builds()
        return 0
    if argv == ["bootstrap-and-watch"]:
        bootstrap_and_watch()
        return 0
    usage = "usage: python -m devstack_cli.compose prepare-image APP... | record-builds"
    usage += " | bootstrap-and-watch"
    print(usage, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
