"""Structured logs and OpenTelemetry spans carry the message's trace id from SOAP call to apply;
the once-a-minute sample."""

import io
import json
import logging
from datetime import timedelta

import pytest
from django_q.models import Schedule
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from messages import services
from messages.models import Message
from messages.services.sampling import metric_sample_write
from syncadmin.lib import tracing
from syncadmin.lib.logs import ContextFilter, JsonFormatter, PlainFormatter, log_context
from syncadmin.lib.schedules import ensure_schedules
from syncadmin.models import MetricCounter, MetricSample
from terminals.soap.observed import soap_request
from tests.messages.helpers import drain_all, env

pytestmark = pytest.mark.django_db


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """Run the on-commit callbacks of what the block commits (the test's own transaction never does)."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    previous = tracing.configure(SimpleSpanProcessor(exporter))
    yield exporter
    tracing.restore(previous)


def test_a_processed_message_logs_a_line_with_its_trace_id_and_message_id(terminal, caplog, committed):
    services.message_ingest_batch(terminal=terminal, envelopes=[env("m-1", "A")], trace_id="ab" * 16)
    with caplog.at_level(logging.INFO, logger="messages.processing"), committed():
        drain_all()
    m = Message.objects.get(message_id="m-1")
    [record] = [r for r in caplog.records if r.name == "messages.processing"]
    assert (record.trace_id, record.message_id, record.message_pk) == ("ab" * 16, "m-1", m.pk)
    assert (record.terminal, record.outcome, record.levelno) == ("T0001", "processed", logging.INFO)
    line = json.loads(JsonFormatter().format(record))
    assert line["trace_id"] == "ab" * 16 and line["message_id"] == "m-1" and line["terminal"] == "T0001"
    assert (line["level"], line["logger"], line["message"]) == ("INFO", "messages.processing", "message processed")
    assert "ab" * 16 in PlainFormatter().format(record)


def test_a_failed_message_logs_a_warning_with_its_reason(terminal, caplog, committed):
    services.message_ingest_batch(
        terminal=terminal, envelopes=[services.Envelope("bad", "product.upsert", "K", 1, m_now(), "{x")]
    )
    with caplog.at_level(logging.INFO, logger="messages.processing"), committed():
        drain_all()
    [record] = [r for r in caplog.records if r.name == "messages.processing"]
    assert record.levelno == logging.WARNING and record.outcome == "dead_lettered"
    assert "not valid JSON" in record.reason and record.message_id == "bad"
    assert record.trace_id == Message.objects.get(message_id="bad").trace_id


def test_a_batch_that_rolls_back_logs_nothing(terminal, caplog, committed, monkeypatch):
    """The lines say what happened to each message, so they are written once the batch commits.
    They used to be written before its last statements: a batch that failed there (a lost
    connection, say) logged "message processed" for messages that were then applied again."""
    from django.db import OperationalError

    from syncadmin.lib import counters

    services.message_ingest_batch(terminal=terminal, envelopes=[env("a", "A")])
    batch = services.message_claim(worker="w", limit=10)

    def connection_lost(**kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(counters, "metric_counter_add", connection_lost)  # the batch's metric deltas
    with caplog.at_level(logging.INFO, logger="messages.processing"), committed():
        with pytest.raises(OperationalError):
            services.message_process_batch(messages=batch, worker="w")
    assert [r for r in caplog.records if r.name == "messages.processing"] == []
    assert Message.objects.get(message_id="a").state == "Processing"  # rolled back, lease still w's
    monkeypatch.undo()
    with caplog.at_level(logging.INFO, logger="messages.processing"), committed():
        services.message_process_batch(messages=batch, worker="w")
    assert [r.outcome for r in caplog.records if r.name == "messages.processing"] == ["processed"]


def m_now():
    from datetime import UTC, datetime

    return datetime.now(UTC)


def test_log_context_reaches_every_line_through_the_handler_filter():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("tests.obs.context")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with log_context(trace_id="t" * 32, terminal="T9"):
            logger.warning("inside")
            with log_context(message_id="m-7"):
                logger.warning("nested")
        logger.warning("outside")
    finally:
        logger.removeHandler(handler)
    inside, nested, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert (inside["trace_id"], inside["terminal"]) == ("t" * 32, "T9") and "message_id" not in inside
    assert (nested["trace_id"], nested["message_id"]) == ("t" * 32, "m-7")
    assert "trace_id" not in outside


def test_soap_call_and_message_processing_spans_share_the_message_trace_id(terminal, spans, caplog, committed):
    with caplog.at_level(logging.INFO), soap_request("SubmitMessages", headers={}) as call:
        call.set_terminal(terminal.code)
        logging.getLogger("terminals.soap").info("submit")
        services.message_ingest_batch(
            terminal=terminal, envelopes=[env("a", "A"), env("b", "B")], trace_id=call.trace_id
        )
    with committed():
        drain_all()
    m = Message.objects.get(message_id="a")
    assert m.trace_id == call.trace_id
    finished = spans.get_finished_spans()
    soap = [s for s in finished if s.name == "soap.SubmitMessages"]
    processed = [s for s in finished if s.name == "message.process"]
    assert len(soap) == 1 and len(processed) == 2
    assert {s.context.trace_id for s in soap + processed} == {int(m.trace_id, 16)}
    # siblings under the same virtual root: a tracing backend shows them as one trace
    assert {s.parent.span_id for s in soap + processed} == {int(m.trace_id, 16) & 0xFFFFFFFFFFFFFFFF}
    assert soap[0].attributes["syncadmin.terminal"] == terminal.code
    attrs = {s.attributes["syncadmin.message_id"]: s.attributes for s in processed}
    assert attrs["a"]["syncadmin.outcome"] == "processed" and attrs["a"]["syncadmin.message_pk"] == m.pk


def test_an_incoming_traceparent_sets_the_trace_id_and_faults_mark_the_span(spans):
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    with pytest.raises(RuntimeError), soap_request("Heartbeat", headers={"HTTP_TRACEPARENT": parent}) as call:
        call.set_fault("Client.AuthenticationFailed")
        raise RuntimeError("refused")
    assert call.trace_id == "0af7651916cd43dd8448eb211c80319c"
    [span] = spans.get_finished_spans()
    assert span.attributes["rpc.soap.fault_code"] == "Client.AuthenticationFailed"
    assert not span.status.is_ok


def test_tracing_is_off_by_default_and_costs_no_span(terminal, settings):
    assert settings.SYNC_TRACING_EXPORTER == ""
    assert not tracing.enabled()
    with soap_request("SubmitMessages") as call:
        assert call.span is None and len(call.trace_id) == 32


# --- the once-a-minute sample ----------------------------------------------------------------------


def test_sample_counts_the_last_interval_folds_counters_and_prunes_old_rows(terminal, settings):
    settings.SYNC_METRIC_SAMPLE_RETENTION_DAYS = 1
    services.message_ingest_batch(terminal=terminal, envelopes=[env(str(i), f"K{i}") for i in range(4)])
    drain_all()
    services.message_ingest_batch(
        terminal=terminal, envelopes=[env("w1", "W1"), services.Envelope("bad", "x.upsert", "K", 1, m_now(), "{")]
    )
    old = MetricSample.objects.create(at=m_now() - timedelta(days=2), backlog=0, processed_last_minute=0)
    first = metric_sample_write()
    assert (first.processed_last_minute, first.failed_last_minute, first.backlog) == (4, 0, 2)
    assert first.oldest_backlog_seconds is not None and first.oldest_backlog_seconds < 60
    assert not MetricSample.objects.filter(pk=old.pk).exists()
    assert not MetricCounter.objects.filter(base=False).exists()
    drain_all()
    second = metric_sample_write()
    assert (second.processed_last_minute, second.failed_last_minute, second.backlog) == (1, 1, 0)
    assert (second.dead_lettered_total, second.oldest_backlog_seconds) == (1, None)


def test_the_sample_schedule_is_ensured_after_migrate():
    Schedule.objects.filter(name="syncadmin-metrics-sample").delete()
    ensure_schedules()
    ensure_schedules()  # idempotent
    s = Schedule.objects.get(name="syncadmin-metrics-sample")
    assert (s.func, s.schedule_type, s.minutes, s.repeats) == (
        "syncadmin.observability.tasks.metrics_sample",
        Schedule.MINUTES,
        1,
        -1,
    )
