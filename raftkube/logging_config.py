"""The one place that configures logging for every raftkube process.

Contract: `configure_logging` is idempotent; it renders JSON lines when the stream is not a
terminal (daemons, CI) and readable console lines when it is. Standard-library loggers
(grpc, pysyncobj, podman) are routed through the same renderer.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from typing import TextIO

import structlog


@dataclass(frozen=True)
class LoggingConfig:
    """How a process logs.

    level: minimum level name ("debug", "info", "warning", "error").
    json: force JSON (True) or console (False) rendering; None picks JSON off a terminal.
    component: added to every line as `component`, e.g. "master" or "worker".
    """

    level: str = "info"
    json: bool | None = None
    component: str = ""


def configure_logging(config: LoggingConfig, stream: TextIO | None = None) -> None:
    """Configure structlog and the standard logging module for this process."""
    out = stream if stream is not None else sys.stderr
    use_json = config.json if config.json is not None else not out.isatty()
    level = logging.getLevelName(config.level.upper())
    if not isinstance(level, int):
        raise ValueError(f"logging level: {config.level!r} is not a level name")

    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if config.component:
        component = config.component

        def add_component(_logger: object, _name: str, event: dict) -> dict:
            event.setdefault("component", component)
            return event

        shared.append(add_component)
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    structlog.configure(
        processors=[
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A structured logger named after its module."""
    return structlog.get_logger(name)
