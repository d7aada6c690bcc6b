"""`serve(app)`: HTTP and HTTPS from one process, one event loop and one lifespan.

Two `uvicorn.Server`s share the loop; neither runs the lifespan (`lifespan="off"`): `serve` runs
it once around both, so there is one DevStackClient, one set of metrics and one rate-limit
budget whichever port a request comes in on. SIGINT/SIGTERM stop both servers, then the
lifespan closes the client. Without TLS files, only HTTP is served (logged).

The server settings (issue 15, measured in docs/performance.md): the event loop is asyncio's
(`DEVSTACK_API_EVENT_LOOP=uvloop` for uvloop's: 0 to 12 % less CPU per request for 4.3 MB more
resident memory, short of the 1.5x that would allow more than 80 MB; docs/apps.md), the
HTTP/1.1 parser httptools (`ProblemHttpToolsProtocol`), and uvicorn writes no access line:
`EdgeMiddleware` logs each request once, with its request id, status and duration. A request
leaves no reference cycle (a test holds it), so reference counting frees it at once: under many
connections, cycles reach the garbage collector's older generations first and hold their memory
(docs/apps.md#memory-after-a-burst-of-connections). At most `MAX_REQUESTS_IN_APP` requests
are in the app at once; the others wait before it (`Admission`). A request the parser refuses
is answered with a 400 problem document, not uvicorn's plain text; a header block (request line
included) over `MAX_HEAD_BYTES` is refused the same way, as h11 did.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import signal
import time
import weakref
from collections import deque
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar, cast

import structlog
import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from devstack_client import configure_logging, uvicorn_log_config
from devstack_client.asgi import new_request_id
from devstack_web.contract import SERVICE_LINKS
from devstack_web.edge import QUEUED_AT
from devstack_web.problems import PROBLEM_MEDIA_TYPE, problem_body
from devstack_web.settings import WebSettings

PARSE_ERROR_DETAIL = "The request is not valid HTTP/1.1."
# h11's default limit on an incomplete event (the request line and headers), which uvicorn
# applied before httptools; httptools itself has none.
MAX_HEAD_BYTES = 16 * 1024

# Requests the app works on at once, in this process (both servers); more wait before the app,
# in arrival order, with only their parsed head (the `Admission` class).
MAX_REQUESTS_IN_APP = 128
# Answered without waiting: liveness and the metrics must answer while the app is saturated.
UNQUEUED_PATHS = frozenset({SERVICE_LINKS["health"], SERVICE_LINKS["metrics"]})

log = structlog.get_logger("devstack_web")

T = TypeVar("T")


class HeadTooLarge(Exception):
    """Raised from a parser callback: httptools turns it into HttpParserCallbackError."""


class Admission:
    """At most `limit` requests in the app at once; the others wait, first come first in.

    A request waiting here holds its connection and its parsed head (a few kilobytes); one in the
    app also holds its middleware and route frames, its scope's objects and its place in a pool's
    queue (about 17 KB more, docs/apps.md#memory-after-a-burst-of-connections). Under 500
    connections that was most of the memory a burst left behind, since Python's allocator keeps
    an arena while any object in it lives. Admitting fewer does not lower the throughput: the
    pools already bound the work in progress (a few connections each), so the extra requests only
    queued inside the app. Like granian's `backpressure` setting, and unlike uvicorn's
    `limit_concurrency`, nothing is refused; a request whose client went away while it waited is
    dropped unanswered. The trade-off: when a dependency hangs (not refuses), up to `limit` of
    its requests occupy the app until their operation timeout, and other routes wait behind
    them, where without the limit they would run beside them."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.running = 0
        # A waiting request keeps the context it arrived in: started later from the end of another
        # request, its task would otherwise copy that request's context variables.
        self.waiting: deque[
            tuple[ProblemHttpToolsProtocol, RequestResponseCycle, Any, contextvars.Context]
        ] = deque()

    def start(
        self, protocol: ProblemHttpToolsProtocol, cycle: RequestResponseCycle, app: Any
    ) -> None:
        """Run the request now, or once a place is free (`UNQUEUED_PATHS` run now)."""
        if self.running >= self.limit and cycle.scope["path"] not in UNQUEUED_PATHS:
            cast(dict[str, Any], cycle.scope)[QUEUED_AT] = time.perf_counter()
            self.waiting.append((protocol, cycle, app, contextvars.copy_context()))
        else:
            self._run(protocol, cycle, app)

    def _run(
        self, protocol: ProblemHttpToolsProtocol, cycle: RequestResponseCycle, app: Any
    ) -> None:
        self.running += 1

        async def counted(scope: Any, receive: Any, send: Any) -> None:
            try:
                await app(scope, receive, send)
            finally:
                self.running -= 1
                self._next()

        protocol.start_admitted(cycle, counted)

    def _next(self) -> None:
        while self.waiting and self.running < self.limit:
            protocol, cycle, app, context = self.waiting.popleft()
            if not cycle.disconnected:
                context.run(self._run, protocol, cycle, app)


class ProblemHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, answering a request it cannot parse (a malformed request
    line or header, a header block over `MAX_HEAD_BYTES`) with a problem document instead of
    uvicorn's plain-text "Invalid HTTP request received."; the connection is then closed."""

    _head_bytes = 0
    admission = Admission(MAX_REQUESTS_IN_APP)  # one per process: both servers share it

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # uvicorn decides per connection from the logger's handlers, which configure_logging
        # (run again by the lifespan) gives back to it: `access_log=False` alone does not hold.
        self.access_log = False

    def on_message_begin(self) -> None:
        """A new request: its head is counted from zero."""
        super().on_message_begin()
        self._head_bytes = 0

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > MAX_HEAD_BYTES:
            raise HeadTooLarge

    def on_url(self, url: bytes) -> None:
        """Count the request target toward MAX_HEAD_BYTES."""
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        """Count a header toward MAX_HEAD_BYTES."""
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        self.admission.start(self, cycle, app)

    def start_admitted(self, cycle: RequestResponseCycle, app: Any) -> None:
        """Start the request's task: `Admission` has given it a place in the app."""
        _coalesce_head_and_body(cycle)
        super()._start_asgi_task(cycle, app)

    def send_400_response(self, msg: str) -> None:
        """A 400 problem document, then the connection is closed."""
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            self.transport.close()  # a response is under way on this connection: just close
            return
        request_id = new_request_id()
        body = json.dumps(
            problem_body(400, PARSE_ERROR_DETAIL, "/", request_id), separators=(",", ":")
        ).encode()
        self.transport.write(
            b"HTTP/1.1 400 Bad Request\r\n"
            b"content-type: " + PROBLEM_MEDIA_TYPE.encode() + b"\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n"
            b"x-request-id: " + request_id.encode() + b"\r\n"
            b"connection: close\r\n\r\n" + body
        )
        self.transport.close()


class _Held:
    """Stands in for the transport while uvicorn writes a response's head: keeps the bytes."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.chunks.append(data)

    def close(self) -> None:
        self.closed = True


def _coalesce_head_and_body(cycle: RequestResponseCycle) -> None:
    """Write a response's status line and headers together with its first body message: one
    `send` (one packet for a small answer) instead of two. uvicorn writes each ASGI message as
    it comes; with TCP_NODELAY that is two system calls and two packets per response, about a
    third of the CPU of a `/health` answer in the profile (docs/performance.md). The head is held
    only until the next message of the same response, which every response sends at once."""
    send = RequestResponseCycle.send
    # The cycle holds this function, so it reaches the cycle through a weak reference: a strong
    # one would make a reference cycle of every request, left to the garbage collector (uvicorn
    # breaks its own, `on_response`, when the request ends).
    cycle_ref = weakref.ref(cycle)
    real = cycle.transport
    held = _Held()

    async def send_coalesced(message: Any) -> None:
        cycle = cycle_ref()
        if cycle is None:
            raise RuntimeError("send after the request ended")
        if not held.chunks and (
            cycle.response_started or message.get("type") != "http.response.start"
        ):
            await send(cycle, message)
            return
        cycle.transport = held  # type: ignore[assignment]
        try:
            await send(cycle, message)
        finally:
            cycle.transport = real
        if message.get("type") == "http.response.start" and not held.closed:
            return  # the head alone: it goes out with the body
        data = b"".join(held.chunks)
        held.chunks.clear()
        if data and not cycle.disconnected:
            real.write(data)
        if held.closed:
            held.closed = False
            real.close()

    cycle.send = send_coalesced  # type: ignore[method-assign]


class _Server(uvicorn.Server):
    """A uvicorn server whose signals are handled by `serve` (for both servers at once), and whose
    housekeeping tick (the Date header, the exit check) runs once a second. uvicorn's own loop
    wakes ten times a second to see whether to stop; two servers per app made that most of an
    idle app's CPU (issue 15, docs/performance.md#the-idle-stack). `request_exit` wakes it at
    once instead."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._exit_requested = asyncio.Event()

    def request_exit(self) -> None:
        """Stop gracefully; asked a second time, stop at once (as uvicorn's signal handler)."""
        if self.should_exit:
            self.force_exit = True
        self.should_exit = True
        self._exit_requested.set()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def main_loop(self) -> None:
        counter = 0  # a multiple of 10 on every tick: uvicorn refreshes the Date header then
        while not await self.on_tick(counter):
            counter = (counter + 10) % 864000
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await self._exit_requested.wait()


def _configs(app: FastAPI, settings: WebSettings) -> list[uvicorn.Config]:
    implementation = str(getattr(app.state, "implementation", "app"))
    http_port, https_port = settings.ports(implementation)
    common = {
        "host": settings.host,
        "lifespan": "off",
        "log_config": uvicorn_log_config(),
        "log_level": settings.log_level.lower(),
        "proxy_headers": False,  # the client address is the rate limit's key: never from headers
        "server_header": False,
        # EdgeMiddleware writes the one access line per request (with the request id).
        "access_log": False,
        "http": ProblemHttpToolsProtocol,
        # serve() runs the servers on the loop the settings name (run() below); uvicorn only
        # sets a policy when it runs its own loop, which it does not here.
        "loop": "none",
    }
    configs = [uvicorn.Config(app, port=http_port, **common)]  # type: ignore[arg-type]
    if settings.tls_enabled:
        configs.append(
            uvicorn.Config(
                app,
                port=https_port,
                ssl_certfile=str(settings.tls_cert_file),
                ssl_keyfile=str(settings.tls_key_file),
                **common,  # type: ignore[arg-type]
            )
        )
    else:
        log.warning("no TLS certificate configured: serving HTTP only", port=http_port)
    return configs


async def serve_async(app: FastAPI, settings: WebSettings | None = None) -> None:
    """Serve `app` on the running loop until a signal, inside its lifespan (run once)."""
    settings = settings or getattr(app.state, "web_settings", None) or WebSettings()
    configure_logging(settings.log_level)
    configs = _configs(app, settings)
    servers = [_Server(config) for config in configs]
    loop = asyncio.get_running_loop()
    log.info(
        "serving",
        ports=[config.port for config in configs],
        loop=type(loop).__module__.split(".")[0],
        http=configs[0].http.__name__ if isinstance(configs[0].http, type) else configs[0].http,
    )

    def stop() -> None:
        """Ask both servers to exit (a second signal forces it)."""
        for server in servers:
            server.request_exit()

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop)
    try:
        async with app.router.lifespan_context(app):
            tasks = [asyncio.create_task(server.serve()) for server in servers]
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            stop()  # one listener ended (a port taken, a signal): end the other one too
            results = await asyncio.gather(*tasks, return_exceptions=True)
            for server, result in zip(servers, results, strict=True):
                if isinstance(result, BaseException):
                    raise result
                if not server.started:
                    raise SystemExit(f"could not listen on port {server.config.port}")
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)


def run(main: Coroutine[Any, Any, T], event_loop: str = "asyncio") -> T:
    """`asyncio.run(main)` on asyncio's event loop, or on uvloop's with `event_loop="uvloop"`
    (Python 3.11's asyncio.run takes no loop factory; asyncio.Runner does)."""
    factory = None
    if event_loop == "uvloop":
        import uvloop  # only when chosen: its module and libuv are 1.8 MB resident

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


def serve(app: FastAPI, settings: WebSettings | None = None) -> None:
    """Run `app` over HTTP (and HTTPS when TLS files are set) until SIGINT or SIGTERM."""
    settings = settings or getattr(app.state, "web_settings", None) or WebSettings()
    run(serve_async(app, settings), settings.event_loop)
