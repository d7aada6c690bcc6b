"""`serve(app)`: HTTP and HTTPS from one process, one event loop and one lifespan.

Two `uvicorn.Server`s share the loop; neither runs the lifespan (`lifespan="off"`): `serve` runs
it once around both, so there is one DevStackClient, one set of metrics and one rate-limit
budget whichever port a request comes in on. SIGINT/SIGTERM stop both servers, then the
lifespan closes the client. Without TLS files, only HTTP is served (logged). A request the HTTP
parser refuses is answered with a 400 problem document (`ProblemH11Protocol`), not uvicorn's
plain text.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import uuid
from collections.abc import Iterator

import h11
import structlog
import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.h11_impl import H11Protocol

from devstack_client import configure_logging, uvicorn_log_config
from devstack_web.problems import PROBLEM_MEDIA_TYPE, problem_body
from devstack_web.settings import WebSettings

PARSE_ERROR_DETAIL = "The request is not valid HTTP/1.1."

log = structlog.get_logger("devstack_web")


class ProblemH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, answering a request it cannot parse (a malformed request
    line or header, a header block over the size limit) with a problem document instead of
    uvicorn's plain-text "Invalid HTTP request received."; the connection is then closed."""

    def send_400_response(self, msg: str) -> None:
        request_id = str(uuid.uuid4())
        body = json.dumps(
            problem_body(400, PARSE_ERROR_DETAIL, "/", request_id), separators=(",", ":")
        ).encode()
        headers = [
            (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
            (b"content-length", str(len(body)).encode()),
            (b"x-request-id", request_id.encode()),
            (b"connection", b"close"),
        ]
        try:
            for event in (
                h11.Response(status_code=400, headers=headers, reason=b"Bad Request"),
                h11.Data(data=body),
                h11.EndOfMessage(),
            ):
                self.transport.write(self.conn.send(event) or b"")
        except h11.LocalProtocolError:  # a response was already under way: just close
            pass
        self.transport.close()


class _Server(uvicorn.Server):
    """A uvicorn server whose signals are handled by `serve` (for both servers at once)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


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
        "access_log": True,
        "http": ProblemH11Protocol,
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
    settings = settings or getattr(app.state, "web_settings", None) or WebSettings()
    configure_logging(settings.log_level)
    servers = [_Server(config) for config in _configs(app, settings)]
    loop = asyncio.get_running_loop()

    def stop() -> None:
        for server in servers:
            if server.should_exit:
                server.force_exit = True
            server.should_exit = True

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


def serve(app: FastAPI, settings: WebSettings | None = None) -> None:
    """Run `app` over HTTP (and HTTPS when TLS files are set) until SIGINT or SIGTERM."""
    asyncio.run(serve_async(app, settings))
