"""The native engine: a small process supervisor, run as a background daemon by `devstack up`.

It starts the plan's processes in dependency order (a dependency is "started", "healthy" or
"completed"), probes each one until it is ready and then every few seconds, restarts a
long-running process that dies (with backoff), writes each process's output to its own log file,
and stops everything in reverse dependency order on shutdown. The CLI talks to it over a Unix
socket in the state folder with one JSON request per connection.

Every process runs in its own session (process group), so stopping it also stops whatever it
started. Every process also dies with the supervisor (a parent-death signal, see
`devstack_cli.lifeline`), and each one is recorded with its start time in `run/children.json`,
so that whatever outlives a killed supervisor is found and stopped by the next CLI command,
and nothing else is ever signalled. One supervisor per state folder: it holds a lock on
`run/supervisor.pid` for its whole life.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import json
import os
import signal
import socket
import ssl
import struct
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devstack_cli import lifeline
from devstack_cli.plan import POSTGRES_SSL_REQUEST
from devstack_cli.settings import write_private
from devstack_cli.states import (
    FINISHED_STATES,
    ProcessState,
    ProcessStatus,
    StatusReply,
    satisfies,
)

if TYPE_CHECKING:
    import httpx

    from devstack_cli.plan import Plan, Probe, ProcessSpec

PROBE_INTERVAL_STARTING = 0.25
# A process that exits is seen at once (the supervisor waits on it); the steady probe only
# finds a server that is up but stopped answering. Every 10 s, not 5: each probe costs the
# server it asks as much as the supervisor (issue 15: the idle stack under 2 % of one core).
PROBE_INTERVAL_HEALTHY = 10.0
PROBE_TIMEOUT = 5.0
UNHEALTHY_AFTER_FAILURES = 3
STOP_GRACE_SECONDS = 20.0
MAX_RESTART_BACKOFF = 30.0


@dataclass
class Supervised:
    """One process of the plan and what the supervisor knows of it."""

    spec: ProcessSpec
    state: ProcessState = ProcessState.PENDING
    pid: int | None = None
    exit_code: int | None = None
    restarts: int = 0
    since: float = field(default_factory=time.time)
    reason: str = ""
    wanted: bool = True  # False after an explicit stop: not restarted
    proc: asyncio.subprocess.Process | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def set(self, state: ProcessState, reason: str = "") -> None:
        if state != self.state or reason != self.reason:
            self.state, self.reason, self.since = state, reason, time.time()
            self.changed.set()
            self.changed = asyncio.Event()

    def status(self) -> ProcessStatus:
        return ProcessStatus(
            name=self.spec.name,
            service=self.spec.service,
            state=self.state,
            pid=self.pid,
            exit_code=self.exit_code,
            restarts=self.restarts,
            since=self.since,
            reason=self.reason,
            one_shot=self.spec.one_shot,
            log_file=self.spec.log_file,
        )


async def tcp_answers(port: int, send_hex: str) -> bool:
    """Connect, send the greeting (if any), and read the first byte of the server's answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        if send_hex:
            writer.write(bytes.fromhex(send_hex))
            await writer.drain()
        return bool(await reader.read(1))
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


_PG_CANNOT_CONNECT_NOW = "57P03"  # "the database system is starting up" (or shutting down)


@functools.cache
def _pg_probe_tls() -> ssl.SSLContext:
    """One TLS context for every PostgreSQL probe: one per probe is what issue 15 removed."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def postgres_accepts(port: int) -> bool:
    """pg_isready's question, asked without starting a process every 5 s (issue 15: the exec
    probe was the idle supervisor's largest cost): TLS, then a startup packet for a role that
    need not exist. An authentication request means the server accepts connections; so does any
    error but 57P03. Closing before answering the challenge is silent in PostgreSQL's log, as
    pg_isready's own probe is. No secret is sent, so the server's certificate is not checked."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(bytes.fromhex(POSTGRES_SSL_REQUEST))
        await writer.drain()
        if await reader.readexactly(1) != b"S":
            return False
        await writer.start_tls(_pg_probe_tls())
        params = b"user\0devstack_probe\0database\0postgres\0\0"
        writer.write(struct.pack("!ii", 8 + len(params), 196608) + params)  # protocol 3.0
        await writer.drain()
        kind = await reader.readexactly(1)
        if kind == b"R":
            return True
        if kind != b"E":
            return False
        (length,) = struct.unpack("!i", await reader.readexactly(4))
        fields = (await reader.readexactly(length - 4)).split(b"\0")
        return b"C" + _PG_CANNOT_CONNECT_NOW.encode() not in fields
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()


_probe_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
    weakref.WeakKeyDictionary()
)


def probe_client() -> httpx.AsyncClient:
    """The HTTP probes' one client (per event loop): building an httpx client builds its TLS
    context (the CA store loaded), which every probe every 5 s did, most of the idle
    supervisor's CPU (issue 15). No connection is kept between probes: each probe connects
    anew, so it sees what a new client would (a server that no longer accepts is caught, and
    no probe races a server's keep-alive timeout)."""
    loop = asyncio.get_running_loop()
    client = _probe_clients.get(loop)
    if client is None:
        import httpx  # here: the CLI's light paths import this module without an HTTP library

        client = httpx.AsyncClient(
            timeout=PROBE_TIMEOUT, limits=httpx.Limits(max_keepalive_connections=0)
        )
        _probe_clients[loop] = client
    return client


async def close_probe_client() -> None:
    client = _probe_clients.pop(asyncio.get_running_loop(), None)
    if client is not None:
        await client.aclose()


async def run_probe(probe: Probe) -> str | None:
    """None when the probe passes, else a short reason."""
    try:
        if probe.tcp:
            for port in probe.tcp:
                if not await asyncio.wait_for(tcp_answers(port, probe.send), PROBE_TIMEOUT):
                    return f"port {port} closed without answering"
            return None
        if probe.postgres:
            if not await asyncio.wait_for(postgres_accepts(probe.postgres), PROBE_TIMEOUT):
                return f"port {probe.postgres} does not accept connections yet"
            return None
        if probe.http:
            response = await probe_client().get(probe.http)
            return None if response.status_code == 200 else f"HTTP {response.status_code}"
        proc = await asyncio.create_subprocess_exec(
            *probe.exec, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
        )
        try:
            code = await asyncio.wait_for(proc.wait(), PROBE_TIMEOUT)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            return "probe timed out"
        return None if code == 0 else f"probe exited {code}"
    except Exception as exc:  # OSError, TimeoutError, httpx.HTTPError: the probe failed
        if isinstance(exc, TimeoutError) or "Timeout" in type(exc).__name__:
            return f"probe timed out ({PROBE_TIMEOUT:.0f} s)"
        return type(exc).__name__


class Supervisor:
    def __init__(self, plan: Plan, socket_path: Path, records: Path | None = None) -> None:
        self.plan = plan
        self.socket_path = socket_path
        self.records_path = records or socket_path.parent / "children.json"
        self.records: dict[str, dict[str, Any]] = {}
        self.procs = {p.name: Supervised(p) for p in plan.processes}
        self.levels = plan.levels()
        self.shutting_down = asyncio.Event()
        self.tasks: dict[str, asyncio.Task[None]] = {}

    # -- running one process -------------------------------------------------------------

    async def _wait_for_dependencies(self, ps: Supervised) -> None:
        while True:
            waiting = [
                name
                for name, cond in ps.spec.depends_on.items()
                if not satisfies(self.procs[name].state, cond)
            ]
            if not waiting:
                return
            ps.set(ProcessState.PENDING, f"waiting for {', '.join(waiting)}")
            waiters = [asyncio.create_task(self.procs[n].changed.wait()) for n in waiting]
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()

    async def _spawn(self, ps: Supervised) -> asyncio.subprocess.Process:
        log_path = Path(ps.spec.log_file)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:  # noqa: ASYNC230 (a local append-open, once per start)
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
            log.write(f"[devstack {stamp}] starting {ps.spec.name}\n".encode())
            log.flush()
            env = {
                **os.environ,
                **ps.spec.env,
                "DEVSTACK_SUPERVISOR_PID": str(os.getpid()),
                "DEVSTACK_STOP_SIGNAL": ps.spec.stop_signal,
            }
            stop_signal = getattr(signal, ps.spec.stop_signal)
            proc = await asyncio.create_subprocess_exec(
                *ps.spec.command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                env=env,
                start_new_session=True,
                preexec_fn=lifeline.preexec_die_with_parent(stop_signal),
            )
        self._record(ps.spec, proc.pid)
        return proc

    def _record(self, spec: ProcessSpec, pid: int | None) -> None:
        """Keep `run/children.json` in line with the live children (pid and start time)."""
        if pid is None:
            self.records.pop(spec.name, None)
        else:
            self.records[spec.name] = {**lifeline.record(pid), "stop_signal": spec.stop_signal}
        with contextlib.suppress(OSError):
            write_private(self.records_path, json.dumps(self.records, indent=1))

    async def _probe_loop(self, ps: Supervised, proc: asyncio.subprocess.Process) -> None:
        probe = ps.spec.probe
        if probe is None:
            ps.set(ProcessState.HEALTHY)
            return
        failures = 0
        while proc.returncode is None:
            reason = await run_probe(probe)
            if proc.returncode is not None:
                return
            if reason is None:
                failures = 0
                ps.set(ProcessState.HEALTHY)
            elif ps.state == ProcessState.STARTING:
                ps.reason = reason
            else:
                failures += 1
                if failures >= UNHEALTHY_AFTER_FAILURES:
                    ps.set(ProcessState.UNHEALTHY, reason)
            # After a failure, probe again soon: a frozen server is unhealthy in about
            # UNHEALTHY_AFTER_FAILURES probe timeouts, not that many healthy intervals.
            steady = ps.state == ProcessState.HEALTHY and failures == 0
            await asyncio.sleep(PROBE_INTERVAL_HEALTHY if steady else PROBE_INTERVAL_STARTING)

    async def run_process(self, ps: Supervised) -> None:
        backoff = 1.0
        while ps.wanted and not self.shutting_down.is_set():
            await self._wait_for_dependencies(ps)
            if not ps.wanted or self.shutting_down.is_set():
                break
            try:
                proc = await self._spawn(ps)
            except OSError as exc:
                ps.set(ProcessState.FAILED, f"cannot start: {exc}")
                return
            ps.proc, ps.pid, ps.exit_code = proc, proc.pid, None
            ps.set(ProcessState.STARTING)
            self._rerun_one_shots_after(ps.spec.name)
            started = time.monotonic()
            prober = None if ps.spec.one_shot else asyncio.create_task(self._probe_loop(ps, proc))
            code = await proc.wait()
            if prober is not None:
                prober.cancel()
            ps.exit_code, ps.proc = code, None
            self._reap_group(ps.spec, proc.pid)
            if ps.spec.one_shot:
                done = ProcessState.COMPLETED if code == 0 else ProcessState.FAILED
                ps.set(done, f"exited {code}")
                return
            if not ps.wanted or self.shutting_down.is_set():
                ps.set(ProcessState.STOPPED, f"exited {code}")
                return
            ps.restarts += 1
            if time.monotonic() - started > 60:
                backoff = 1.0
            ps.set(ProcessState.EXITED, f"exited {code}; restarting in {backoff:.0f}s")
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_RESTART_BACKOFF)

    def _rerun_one_shots_after(self, name: str) -> None:
        """A one-shot that runs once a process has started (Vault's unseal and bootstrap) runs
        again whenever that process starts again: a Vault that restarts comes back sealed."""
        for other in self.procs.values():
            if other.spec.one_shot and other.spec.depends_on.get(name) == "started":
                task = self.tasks.get(other.spec.name)
                if task is not None and task.done() and not self.shutting_down.is_set():
                    self.start_process(other.spec.name)

    def _reap_group(self, spec: ProcessSpec, pgid: int) -> None:
        """A process that died may leave members of its group behind (a wrapper's server): they
        go too, so that a restart never runs beside an orphan holding the ports."""
        rec = self.records.get(spec.name)
        if rec is not None and rec["pid"] == pgid:
            for pid in lifeline.group_members(pgid, rec["started"]):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        self._record(spec, None)

    # -- stopping ----------------------------------------------------------------------

    async def stop_process(self, ps: Supervised) -> None:
        ps.wanted = False
        proc = ps.proc
        if proc is not None and proc.returncode is None:
            sig = getattr(signal, ps.spec.stop_signal)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                await asyncio.wait_for(proc.wait(), STOP_GRACE_SECONDS)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
            # Whatever the process left in its group (workers that outlive it) goes too.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        task = self.tasks.get(ps.spec.name)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if ps.state not in FINISHED_STATES:
            ps.set(ProcessState.STOPPED)

    async def stop_all(self) -> None:
        self.shutting_down.set()
        for level in sorted(set(self.levels.values()), reverse=True):
            names = [n for n, lv in self.levels.items() if lv == level]
            await asyncio.gather(*(self.stop_process(self.procs[n]) for n in names))

    def start_process(self, name: str) -> None:
        ps = self.procs[name]
        if name in self.tasks and not self.tasks[name].done():
            return
        ps.wanted = True
        self.tasks[name] = asyncio.create_task(self.run_process(ps))

    # -- control socket ----------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = json.loads(await reader.readline())
            response = await self._dispatch(request)
        except Exception as exc:  # a bad request must not take the supervisor down
            response = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        writer.write(json.dumps(response).encode() + b"\n")
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()

    async def _dispatch(self, request: dict[str, Any]) -> dict[str, Any]:
        cmd = request.get("cmd")
        if cmd == "status":
            reply = StatusReply(
                pid=os.getpid(),
                profile=self.plan.profile,
                processes=tuple(self.procs[p.name].status() for p in self.plan.processes),
            )
            return reply.model_dump(mode="json")
        if cmd in ("stop", "start"):
            name = str(request.get("name"))
            if name not in self.procs:
                return {"ok": False, "error": f"unknown process {name!r}"}
            if cmd == "stop":
                await self.stop_process(self.procs[name])
            else:
                self.start_process(name)
            return {"ok": True}
        if cmd == "shutdown":
            asyncio.get_running_loop().call_soon(self.shutting_down.set)
            return {"ok": True}
        return {"ok": False, "error": f"unknown command {cmd!r}"}

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.shutting_down.set)
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        server = await asyncio.start_unix_server(self._handle, path=str(self.socket_path))
        os.chmod(self.socket_path, 0o600)
        for name in self.procs:
            self.start_process(name)
        await self.shutting_down.wait()
        await self.stop_all()
        await close_probe_client()
        server.close()
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()


class AlreadyRunning(RuntimeError):
    pass


def hold_lock(pid_file: Path) -> int:
    """Take the state folder's supervisor lock (held until this process exits) and write who
    holds it: PID and start time. AlreadyRunning when another supervisor holds it."""
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(pid_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise AlreadyRunning(f"another supervisor holds {pid_file}") from None
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps(lifeline.record(os.getpid())).encode() + b"\n")
    return fd


def run_supervisor(plan: Plan, socket_path: Path, pid_file: Path) -> None:
    fd = hold_lock(pid_file)
    try:
        asyncio.run(Supervisor(plan, socket_path).serve())
    finally:
        with contextlib.suppress(FileNotFoundError):
            pid_file.unlink()
        os.close(fd)


# -- the client side, used by the CLI ---------------------------------------------------


class SupervisorUnavailable(RuntimeError):
    pass


def request(socket_path: Path, payload: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
    if not socket_path.exists():
        raise SupervisorUnavailable("the stack is not running")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(socket_path))
            sock.sendall(json.dumps(payload).encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
    except OSError as exc:
        raise SupervisorUnavailable(f"the supervisor does not answer ({exc})") from exc
    response: dict[str, Any] = json.loads(b"".join(chunks))
    if not response.get("ok"):
        raise RuntimeError(response.get("error", "supervisor error"))
    return response


def fetch_status(socket_path: Path, timeout: float = 30.0) -> StatusReply:
    """The supervisor's status, parsed with the model it was sent with."""
    return StatusReply.model_validate(request(socket_path, {"cmd": "status"}, timeout))
