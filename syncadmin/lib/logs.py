"""Structured logs: a context (trace id, terminal, message) carried by every line, JSON or plain.

``log_context(trace_id=..., terminal=...)`` sets fields for every log line written inside it
(a contextvar, so threads and async tasks keep their own); ``ContextFilter`` on the handler
copies them onto each record. Fields passed with ``extra=`` win over the context.
LOG_FORMAT=json (default) writes one JSON object per line; LOG_FORMAT=plain is for a
developer's terminal. deploy/gunicorn.conf.py formats gunicorn's own lines and its access log
with the same formatters (``AccessLogFields`` turns an access line's atoms into fields). This
module is imported by the logging configuration, before the apps are ready: it must not import
models.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from contextvars import ContextVar

from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

CONTEXT_FIELDS = ("trace_id", "terminal", "message_id", "message_pk")
# A record about many messages (the engine's one record per batch) names them in lists: the plain
# format shows them too, so that grepping a message's id or trace id finds its batch's line.
LIST_FIELDS = ("message_ids", "trace_ids")
_context: ContextVar[dict | None] = ContextVar("syncadmin_log_context", default=None)


@contextmanager
def log_context(**fields):
    """Add fields (empty ones ignored) to every log line written inside the block."""
    merged = {**(_context.get() or {}), **{k: v for k, v in fields.items() if v not in (None, "")}}
    token = _context.set(merged)
    try:
        yield merged
    finally:
        _context.reset(token)


def current_log_context() -> dict:
    return dict(_context.get() or {})


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in (_context.get() or {}).items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class JsonFormatter(_JsonFormatter):
    """One JSON object per line: time, level, logger, message, then the context and extras."""

    def __init__(self, **kwargs):
        kwargs.setdefault("rename_fields", {"asctime": "time", "levelname": "level", "name": "logger"})
        kwargs.setdefault("fmt", "%(asctime)s %(levelname)s %(name)s %(message)s")
        super().__init__(**kwargs)


class PlainFormatter(logging.Formatter):
    """Human-readable line; context fields appended as ``[trace_id=... terminal=...]``."""

    def __init__(self, fmt=None, *args, **kwargs):
        super().__init__(fmt or "%(asctime)s %(levelname)s %(name)s %(message)s", *args, **kwargs)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        parts = [f"{k}={getattr(record, k)}" for k in CONTEXT_FIELDS if getattr(record, k, "") not in ("", None)]
        parts += [f"{k}={','.join(map(str, getattr(record, k)))}" for k in LIST_FIELDS if getattr(record, k, None)]
        return f"{line} [{' '.join(parts)}]" if parts else line


class HealthPollFilter(logging.Filter):
    """On django.request: drop the ERROR line Django writes for every /healthz 503.

    A load balancer polls /healthz every few seconds, so an outage would write one ERROR a poll;
    syncadmin.observability.health logs one WARNING when the answer changes instead.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        match = getattr(getattr(record, "request", None), "resolver_match", None)
        return not (getattr(record, "status_code", None) == 503 and getattr(match, "url_name", None) == "healthz")


# gunicorn's access-log atoms (gunicorn.glogging.Logger.atoms) kept as fields of the line.
ACCESS_FIELDS = {
    "h": "remote_addr",
    "m": "method",
    "U": "path",
    "q": "query",
    "H": "protocol",
    "s": "status",
    "B": "bytes",
    "M": "duration_ms",
    "a": "user_agent",
    "{x-forwarded-for}i": "forwarded_for",
}


class AccessLogFields(logging.Filter):
    """On gunicorn.access: the request's atoms as fields (status, path, duration_ms...) and the
    worker's pid, so a JSON access line is queried by field instead of parsed from its message.

    gunicorn logs each request as ``access_log.info(access_log_format, atoms)``: the message is
    the formatted line, ``record.args`` the atoms (a dict answering "-" for a missing one).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        atoms = record.args if isinstance(record.args, dict) else {}
        for atom, field in ACCESS_FIELDS.items():
            value = atoms.get(atom) if atom in atoms else None
            if value not in (None, "", "-") and not hasattr(record, field):
                setattr(record, field, int(value) if field == "status" and str(value).isdigit() else value)
        record.pid = os.getpid()
        return True


def logging_config(*, level: str, fmt: str, message_level: str) -> dict:
    """The settings' LOGGING: one handler on stderr in ``fmt`` (json or plain), the log context on every line."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "context": {"()": "syncadmin.lib.logs.ContextFilter"},
            "health_polls": {"()": "syncadmin.lib.logs.HealthPollFilter"},
        },
        "formatters": {
            "json": {"()": "syncadmin.lib.logs.JsonFormatter"},
            "plain": {"()": "syncadmin.lib.logs.PlainFormatter"},
        },
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": fmt, "filters": ["context"]}},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django.db.backends": {"level": "WARNING"},
            # django.request logs every 5xx at ERROR: not /healthz's 503s, which a load balancer polls
            # every few seconds; /healthz logs a WARNING when its answer changes instead.
            "django.request": {"filters": ["health_polls"]},
            "messages.processing": {"level": message_level},
        },
    }
