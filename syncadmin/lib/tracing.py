"""OpenTelemetry tracing: off unless the standard OTEL_* variables switch it on.

Off (the default) costs one boolean check per SOAP call and per batch: no provider, no span
objects. On (OTEL_TRACES_EXPORTER=otlp|console, or an OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT;
OTEL_SDK_DISABLED=true wins), every SOAP call gets a ``soap.<Operation>`` span and every
applied batch a ``messages.batch`` span. The SOAP span is in the trace whose id is the
messages' ``trace_id`` (set at ingest from the SOAP call), under one virtual root span derived
from that trace id; the batch span links to the virtual root of each of its messages' traces
(and is in that trace when all its messages share it), so a tracing backend leads from a call
to the batches that applied its messages, even minutes later in another process. An incoming
W3C ``traceparent`` header is honoured: its trace id is used.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from contextlib import contextmanager

from django.conf import settings
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags

log = logging.getLogger(__name__)

_tracer = None  # an opentelemetry Tracer when tracing is on


def enabled() -> bool:
    return _tracer is not None


def new_trace_id() -> str:
    """32 hex digits: a valid W3C/OpenTelemetry trace id, and Message.trace_id's format."""
    return uuid.uuid4().hex


def setup() -> bool:
    """Build the tracer from settings (called once per process from AppConfig.ready)."""
    exporter_name = settings.SYNC_TRACING_EXPORTER
    if not exporter_name:
        return False
    if exporter_name == "console":
        exporter = ConsoleSpanExporter()
    elif exporter_name == "otlp":
        # Reads OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT / _HEADERS / _TIMEOUT itself.
        exporter = OTLPSpanExporter()
    else:
        log.warning("OTEL_TRACES_EXPORTER=%s is not supported (otlp, console, none); tracing stays off", exporter_name)
        return False
    # BatchSpanProcessor restarts its export thread in forked children (django-q2 workers).
    configure(BatchSpanProcessor(exporter), set_global=True)
    return True


def configure(span_processor=None, *, set_global: bool = False):
    """Switch tracing on with ``span_processor`` (or off with None); returns the previous tracer.

    Tests pass a SimpleSpanProcessor(InMemorySpanExporter()) and restore the old tracer after.
    """
    global _tracer
    previous = _tracer
    if span_processor is None:
        _tracer = None
        return previous
    provider = TracerProvider(resource=Resource.create({"service.name": settings.OTEL_SERVICE_NAME}))
    provider.add_span_processor(span_processor)
    if set_global:
        trace.set_tracer_provider(provider)
    _tracer = provider.get_tracer("syncadmin")
    return previous


def restore(previous) -> None:
    global _tracer
    _tracer = previous


def _root_context(trace_id: str):
    """A remote parent in trace ``trace_id``: the virtual root every span of that trace hangs under."""
    return trace.set_span_in_context(NonRecordingSpan(_root_span_context(trace_id)))


def _valid_trace_id(value: str) -> bool:
    try:
        return len(value) == 32 and int(value, 16) != 0
    except ValueError:
        return False


def incoming_trace_id(headers: Mapping | None) -> str:
    """The trace id of a W3C ``traceparent`` header (HTTP_TRACEPARENT in request.META), or ''."""
    if not headers:
        return ""
    value = headers.get("HTTP_TRACEPARENT") or headers.get("traceparent") or ""
    parts = value.strip().split("-")
    if len(parts) == 4 and len(parts[0]) == 2 and _valid_trace_id(parts[1]):
        return parts[1].lower()
    return ""


@contextmanager
def soap_span(operation: str, *, trace_id: str, terminal_code: str = ""):
    """A span for one SOAP call in trace ``trace_id``; yields the span (None when off)."""
    if _tracer is None:
        yield None
        return
    with _tracer.start_as_current_span(
        f"soap.{operation}",
        context=_root_context(trace_id),
        kind=_span_kind("SERVER"),
        attributes={"rpc.system": "soap", "rpc.method": operation, "syncadmin.terminal": terminal_code},
    ) as span:
        yield span


def _span_kind(name: str):
    return getattr(SpanKind, name)


def _root_span_context(trace_id: str) -> SpanContext:
    """The virtual root span of trace ``trace_id``: its span id derived from the trace id, the same
    in every process."""
    tid = int(trace_id, 16)
    return SpanContext(trace_id=tid, span_id=(tid & 0xFFFFFFFFFFFFFFFF) or 1, is_remote=True,
                       trace_flags=TraceFlags(TraceFlags.SAMPLED))  # fmt: skip


def batch_span(*, entries, start_ns: int, end_ns: int, worker: str) -> None:
    """One ``messages.batch`` span for a batch, linked to each of its messages' traces.

    ``entries`` are (message, outcome, reason). The span links to the virtual root of every
    distinct trace among the batch's messages (link attributes: the pks and ids of that trace's
    messages), so a tracing backend leads from a SOAP call's trace to the batches that applied its
    messages. When every message is in one trace (one SOAP call's batch) the span is in that
    trace too, under its virtual root; otherwise it starts a trace of its own. Attributes: the
    batch's size, its messages' pks and ids, the count per outcome, the worker; error status when
    a message failed.
    """
    if _tracer is None:
        return
    traces: dict[str, list] = {}
    outcomes: dict[str, int] = {}
    for message, outcome, _reason in entries:
        trace_id = message.trace_id if _valid_trace_id(message.trace_id or "") else ""
        if trace_id:
            traces.setdefault(trace_id.lower(), []).append(message)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    links = [
        trace.Link(_root_span_context(trace_id), {
            "syncadmin.message_pks": [m.pk for m in group], "syncadmin.message_ids": [m.message_id for m in group]})
        for trace_id, group in traces.items()
    ]  # fmt: skip
    own_trace = len(traces) == 1 and sum(len(g) for g in traces.values()) == len(entries)
    span = _tracer.start_span(
        "messages.batch",
        context=_root_context(next(iter(traces))) if own_trace else Context(),
        kind=_span_kind("CONSUMER"),
        start_time=start_ns,
        links=links,
        attributes={
            "messaging.system": "syncadmin",
            "messaging.batch.message_count": len(entries),
            "syncadmin.batch_size": len(entries),
            "syncadmin.message_pks": [m.pk for m, _, _ in entries],
            "syncadmin.message_ids": [m.message_id for m, _, _ in entries],
            "syncadmin.worker": worker,
            **{f"syncadmin.outcome.{outcome}": n for outcome, n in outcomes.items()},
        },
    )
    failed = [(m, reason) for m, outcome, reason in entries if outcome in ("failed", "dead_lettered")]
    if failed:
        m, reason = failed[0]
        span.set_status(Status(StatusCode.ERROR, f"{len(failed)} message(s) failed; {m.message_id}: {reason}"[:200]))
    span.end(end_time=end_ns)
