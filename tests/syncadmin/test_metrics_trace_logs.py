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

from messages import metrics, services
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


def test_a_processed_batch_logs_one_line_naming_its_messages_and_trace_ids(terminal, caplog, committed):
    """One INFO record per batch, not per message: a search for a message's id or trace id still
    finds it (message_ids, trace_ids, message_pks in the JSON line and in the plain one)."""
    services.message_ingest_batch(
        terminal=terminal, envelopes=[env("m-1", "A"), env("m-2", "B"), env("m-3", "C")], trace_id="ab" * 16
    )
    services.message_ingest_batch(terminal=terminal, envelopes=[env("m-4", "D")], trace_id="cd" * 16)
    with caplog.at_level(logging.INFO, logger="messages.processing"), committed():
        drain_all()
    pks = dict(Message.objects.values_list("message_id", "pk"))
    [record] = [r for r in caplog.records if r.name == "messages.processing"]
    assert (record.outcome, record.levelno, record.count, record.worker) == ("processed", logging.INFO, 4, "w1")
    assert record.message_ids == ["m-1", "m-2", "m-3", "m-4"]
    assert record.message_pks == [pks["m-1"], pks["m-2"], pks["m-3"], pks["m-4"]]
    assert record.trace_ids == ["ab" * 16] * 3 + ["cd" * 16] and record.attempts == [1, 1, 1, 1]
    assert (record.terminals, record.terminal) == (["T0001"], "T0001")
    assert not hasattr(record, "trace_id")  # two traces: no single trace id to claim
    line = json.loads(JsonFormatter().format(record))
    assert line["message_ids"] == ["m-1", "m-2", "m-3", "m-4"] and line["trace_ids"][3] == "cd" * 16
    assert (line["level"], line["logger"], line["message"]) == ("INFO", "messages.processing", "messages processed")
    plain = PlainFormatter().format(record)
    assert "m-3" in plain and "cd" * 16 in plain and "ab" * 16 in plain


def test_a_batch_of_one_trace_carries_its_trace_id_and_noops_get_their_own_record(terminal, caplog, committed):
    services.message_ingest_batch(terminal=terminal, envelopes=[env("n-1", "A", seq=2)], trace_id="ef" * 16)
    drain_all()
    services.message_ingest_batch(
        terminal=terminal, envelopes=[env("n-2", "A", seq=1), env("n-3", "B", seq=1)], trace_id="ef" * 16
    )
    with caplog.at_level(logging.INFO, logger="messages.processing"), committed():
        drain_all()
    records = {r.outcome: r for r in caplog.records if r.name == "messages.processing"}
    assert set(records) == {"processed", "noop"}
    assert (records["processed"].message_ids, records["noop"].message_ids) == (["n-3"], ["n-2"])
    assert records["noop"].reason.startswith("no-op") and records["noop"].message == "messages processed (no-op)"
    assert records["processed"].trace_id == records["noop"].trace_id == "ef" * 16


def test_no_record_is_built_when_the_level_filters_it_out(terminal, caplog, committed, monkeypatch):
    built = []
    real = metrics._log_records
    monkeypatch.setattr(metrics, "_log_records", lambda *a: built.append(real(*a)) or built[-1])
    services.message_ingest_batch(terminal=terminal, envelopes=[env("q-1", "A"), env("q-2", "B")])
    with caplog.at_level(logging.WARNING, logger="messages.processing"), committed() as callbacks:
        drain_all()
    assert [r for r in caplog.records if r.name == "messages.processing"] == []
    assert built == [[]] and callbacks == []  # no record, and no on-commit hook for nothing


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
    assert [(r.outcome, r.message_ids) for r in caplog.records if r.name == "messages.processing"] == [
        ("processed", ["a"])
    ]


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


def test_soap_call_and_the_batch_span_share_the_message_trace_id(terminal, spans, caplog, committed):
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
    [batch] = [s for s in finished if s.name == "messages.batch"]  # one span for the batch, not one per message
    assert len(soap) == 1
    assert {s.context.trace_id for s in [*soap, batch]} == {int(m.trace_id, 16)}
    # siblings under the same virtual root: a tracing backend shows them as one trace
    root = int(m.trace_id, 16) & 0xFFFFFFFFFFFFFFFF
    assert {s.parent.span_id for s in [*soap, batch]} == {root}
    assert soap[0].attributes["syncadmin.terminal"] == terminal.code
    assert batch.attributes["syncadmin.batch_size"] == 2 and batch.attributes["syncadmin.outcome.processed"] == 2
    assert list(batch.attributes["syncadmin.message_ids"]) == ["a", "b"]
    assert list(batch.attributes["syncadmin.message_pks"])[0] == m.pk
    [link] = batch.links
    assert (link.context.trace_id, link.context.span_id) == (int(m.trace_id, 16), root)
    assert list(link.attributes["syncadmin.message_ids"]) == ["a", "b"]


def test_a_batch_of_several_traces_starts_its_own_trace_linked_to_each(terminal, spans, committed):
    services.message_ingest_batch(terminal=terminal, envelopes=[env("a", "A")], trace_id="12" * 16)
    services.message_ingest_batch(
        terminal=terminal, envelopes=[env("b", "B"), services.Envelope("bad", "x.upsert", "K", 1, m_now(), "{")],
        trace_id="34" * 16,
    )  # fmt: skip
    with committed():
        drain_all()
    [batch] = [s for s in spans.get_finished_spans() if s.name == "messages.batch"]
    assert batch.context.trace_id not in (int("12" * 16, 16), int("34" * 16, 16)) and batch.parent is None
    linked = {link.context.trace_id: list(link.attributes["syncadmin.message_ids"]) for link in batch.links}
    assert linked == {int("12" * 16, 16): ["a"], int("34" * 16, 16): ["b", "bad"]}
    assert batch.attributes["syncadmin.outcome.dead_lettered"] == 1 and not batch.status.is_ok
    assert "bad" in batch.status.description


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
