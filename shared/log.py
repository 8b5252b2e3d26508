"""Operational logs: one JSON object per line on stderr.

Events an operator acts on (startup, timer runs, internal failures, store retries and faults, audit
trail trouble, nonce-table pressure) are logged under the `kms` logger with an `event` name and
plain fields: `log.warning("...", extra={"event": "store.fault", "op": "get"})` becomes
`{"time": "...", "level": "warning", "logger": "kms.store", "event": "store.fault", "message": "...",
"op": "get"}`. Function Compute collects stderr into its log service line by line, so the same
lines arrive there unchanged; the local runner writes them to its own stderr.

What may appear: names, ids, counts, durations, error types. Never request parameters, plaintext,
key material or secret values. An exception is logged as its type and the frames of its traceback
(file, line, function, source text), never its message or the frames' variables: messages carry
values (a pydantic error quotes the input, a KeyError its key).

The standard library's logging with this formatter is enough: the lines are rare (none per
successful request), so a formatter's cost never reaches the request path.
"""

from __future__ import annotations

import logging
import sys
import time
import traceback

import orjson

ROOT = "kms"
LEVELS = ("debug", "info", "warning", "error", "critical")
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "event"}
_handler: list[logging.Handler] = []  # the one handler configure() installed, once per process
_for: list = [None]  # the configuration get() last configured from


def safe_traceback(exc: BaseException) -> str:
    """The traceback of `exc` and of its causes, with each exception's type but not its message."""
    parts = []
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        frames = "".join(traceback.StackSummary.extract(traceback.walk_tb(cause.__traceback__),
                                                        capture_locals=False).format())
        kind = type(cause)
        parts.append(f"Traceback (most recent call last):\n{frames}{kind.__module__}.{kind.__qualname__}\n")
        cause = cause.__cause__ or (None if cause.__suppress_context__ else cause.__context__)
    return "\nwhile handling or caused by:\n".join(reversed(parts))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
               "level": record.levelname.lower(), "logger": record.name,
               "event": getattr(record, "event", None) or record.name, "message": record.getMessage()}
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info and record.exc_info[1] is not None:
            out["error"] = type(record.exc_info[1]).__name__
            out["traceback"] = safe_traceback(record.exc_info[1])
        return orjson.dumps(out, default=str).decode()


class _Stderr(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is when a line is logged (a test's capture, say)."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self):
        return sys.stderr


def configure(level: str = "info") -> None:
    """Send the `kms` loggers to stderr as JSON lines at `level` (KMS_LOG_LEVEL). Idempotent.

    The records still propagate, so a test's log capture sees them; nothing else in the service
    configures the root logger, so they are not printed twice."""
    logger = logging.getLogger(ROOT)
    if not _handler:
        handler = _Stderr()
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)
        _handler.append(handler)
    logger.setLevel(level.upper() if level.lower() in LEVELS else logging.INFO)


def get(name: str = ROOT) -> logging.Logger:
    """A `kms` logger, configured from the service's settings on first use in this process.

    For the rare places that log (never once per successful request): they may run in a Function
    Compute instance or a tool where nothing configured logging yet."""
    from .config import get_config

    try:
        cfg = get_config()
    except Exception:  # noqa: BLE001 - a broken configuration must not hide the line being logged
        cfg = None
    if not _handler or _for[0] is not cfg:
        _for[0] = cfg
        configure(cfg.log_level if cfg is not None else "info")
    return logging.getLogger(name)


def uvicorn_log_config(level: str = "warning") -> dict:
    """uvicorn's own messages (a worker that died, a bad request line) as the same JSON lines."""
    return {"version": 1, "disable_existing_loggers": False,
            "formatters": {"json": {"()": JsonFormatter}},
            "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
            "loggers": {name: {"handlers": ["stderr"], "level": level.upper(), "propagate": False}
                        for name in ("uvicorn", "uvicorn.error", "uvicorn.access")}}
