"""Logging: structlog rendering JSON, with stdlib and uvicorn logs through the same pipeline.

`configure_logging()` installs one handler on the root logger whose formatter runs every record,
from structlog or from the standard library (uvicorn's included), through the same processors:
context variables (the request id), level, logger name, an ISO timestamp, formatted exceptions,
then the redactor (secret-looking keys, Vault tokens, PEM private keys, credentials in URLs and
every secret value the library has read), then the JSON renderer.
"""

from __future__ import annotations

import logging
import sys
from typing import IO, Any

import structlog
from structlog.typing import Processor

from devstack_client.redaction import Redactor
from devstack_client.redaction import redactor as default_redactor

UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")


class _DevStackHandler(logging.StreamHandler[IO[str]]):
    """Marks the handler this module installed, so configuring again replaces it."""


def configure_logging(
    level: int | str = "INFO",
    *,
    json: bool = True,
    stream: IO[str] | None = None,
    redactor: Redactor = default_redactor,
) -> logging.Handler:
    """Route structlog and stdlib logging through one redacting renderer; returns the handler."""
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    renderer: Processor = (
        structlog.processors.JSONRenderer(default=str)
        if json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redactor,
            renderer,
        ],
    )
    handler = _DevStackHandler(stream if stream is not None else sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _DevStackHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in UVICORN_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    # httpx logs every request at INFO (the library's Vault calls): keep those for debugging.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))
    return handler


def uvicorn_log_config() -> dict[str, Any]:
    """A `log_config` for uvicorn that leaves its loggers to the root handler installed above."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "loggers": {name: {"handlers": [], "propagate": True} for name in UVICORN_LOGGERS},
    }
