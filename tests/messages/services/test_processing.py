"""messages/services/processing.py: a claimed batch applied, failed messages alone, releases after errors."""

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from messages import services
from messages.handlers import PermanentError, registry
from messages.models import CentralEntity, DeadLetter, Message, MessageEvent, MessageState
from messages.services import Envelope, IllegalTransition, claim, processing
from syncadmin.lib.clock import db_now
from tests.messages.helpers import counter, drain_all, env, make_due

S = MessageState
pytestmark = pytest.mark.django_db


def test_bad_payload_and_unknown_type_are_stored_then_dead_lettered(terminal):
    results = services.message_ingest_batch(
        terminal=terminal,
        envelopes=[
            Envelope("bad", "product.upsert", "K", 1, datetime.now(UTC), "{not json"),
            Envelope("odd", "gizmo.frobnicate", "K", 1, datetime.now(UTC), "{}"),
            Envelope("list", "product.upsert", "K2", 1, datetime.now(UTC), "[1, 2]"),
            env("good", key="K3"),
        ],
    )
    assert [r.status for r in results] == ["Accepted"] * 4
    drain_all()
    states = dict(Message.objects.values_list("message_id", "state"))
    assert states == {"bad": S.DEAD_LETTERED, "odd": S.DEAD_LETTERED, "list": S.DEAD_LETTERED, "good": S.PROCESSED}
    reasons = dict(DeadLetter.objects.values_list("message__message_id", "reason"))
    assert "not valid JSON" in reasons["bad"]
    assert "no handler for message type 'gizmo.frobnicate'" in reasons["odd"]
    assert "must be a JSON object" in reasons["list"]
    assert Message.objects.get(message_id="bad").attempts == 1


def test_apply_loads_central_store_and_counts(terminal):
    services.message_ingest_batch(
        terminal=terminal, envelopes=[env("1", "A"), env("2", "B"), env("3", "A", seq=2, payload={"v": 2})]
    )
    results = drain_all()
    assert sum(r.processed for r in results) == 3
    a = CentralEntity.objects.get(entity_key="A")
    assert (a.data, a.last_sequence, a.deleted) == ({"v": 2}, 2, False)
    assert counter(terminal) == 2
    assert set(Message.objects.values_list("state", flat=True)) == {S.PROCESSED}
    m = Message.objects.get(message_id="1")
    assert m.processed_at and not m.lease_owner and m.lease_expires_at is None
    assert list(m.events.values_list("from_state", "to_state")) == [
        ("", S.RECEIVED),
        (S.RECEIVED, S.PROCESSING),
        (S.PROCESSING, S.PROCESSED),
    ]


def test_out_of_order_and_duplicate_sequences_never_overwrite_or_double_count(terminal):
    services.message_ingest_batch(terminal=terminal, envelopes=[env("n5", "A", seq=5, payload={"v": 5})])
    drain_all()
    services.message_ingest_batch(
        terminal=terminal,
        envelopes=[env("o3", "A", seq=3, payload={"v": 3}), env("d5", "A", seq=5, payload={"v": "dup"})],
    )
    drain_all()
    a = CentralEntity.objects.get(entity_key="A")
    assert (a.data, a.last_sequence) == ({"v": 5}, 5)
    assert counter(terminal) == 1
    ev = MessageEvent.objects.get(message__message_id="o3", to_state=S.PROCESSED)
    assert ev.reason == services.NOOP_REASON


def test_delete_tombstone_blocks_older_upsert_and_counts_down(terminal):
    services.message_ingest_batch(terminal=terminal, envelopes=[env("u1", "A", seq=1), env("u2", "B", seq=1)])
    drain_all()
    assert counter(terminal) == 2
    services.message_ingest_batch(
        terminal=terminal, envelopes=[env("d", "A", seq=3, mtype="product.delete", payload={})]
    )
    drain_all()
    assert counter(terminal) == 1
    services.message_ingest_batch(terminal=terminal, envelopes=[env("late", "A", seq=2)])
    drain_all()
    assert CentralEntity.objects.get(entity_key="A").deleted
    assert counter(terminal) == 1
    # deleting an entity the centre never saw keeps a tombstone and does not go negative
    services.message_ingest_batch(
        terminal=terminal, envelopes=[env("d2", "Z", seq=9, mtype="product.delete", payload={})]
    )
    drain_all()
    assert counter(terminal) == 1


def test_transient_failure_backs_off_then_dead_letters_after_max_attempts(terminal, settings):
    settings.SYNC_MAX_ATTEMPTS = 3
    calls = []

    @registry.register("flaky.upsert")
    def flaky(item):
        calls.append(item.message.attempts)
        raise ConnectionResetError("upstream reset")

    try:
        services.message_ingest_batch(terminal=terminal, envelopes=[env("f", mtype="flaky.upsert"), env("ok", "B")])
        drain_all()
        m = Message.objects.get(message_id="f")
        assert m.state == S.FAILED and m.attempts == 1 and "upstream reset" in m.last_error
        assert m.next_attempt_at > datetime.now(UTC) + timedelta(seconds=1)  # backoff in the future
        assert Message.objects.get(message_id="ok").state == S.PROCESSED  # not blocked by the bad one
        assert services.message_claim(worker="w", limit=10) == []  # not due yet
        for expected in (S.FAILED, S.DEAD_LETTERED):
            make_due(m)
            drain_all()
            m.refresh_from_db()
            assert m.state == expected
        assert sorted(set(calls)) == [1, 2, 3]  # the batch's fast path and its fallback may both call it
        dl = DeadLetter.objects.get(message=m)
        assert dl.error_class == "ConnectionResetError" and "gave up after 3 attempts" in dl.reason
        assert "ConnectionResetError" in dl.traceback
        assert dl.group_key == "ConnectionResetError: gave up after # attempts: upstream reset"
    finally:
        registry.unregister("flaky.upsert")


def test_permanent_error_from_a_handler_dead_letters_at_once(terminal):
    @registry.register("strict.upsert")
    def strict(item):
        raise PermanentError("price must be positive")

    try:
        services.message_ingest_batch(terminal=terminal, envelopes=[env("p", mtype="strict.upsert")])
        drain_all()
        m = Message.objects.get(message_id="p")
        assert (m.state, m.attempts) == (S.DEAD_LETTERED, 1)
        assert DeadLetter.objects.get(message=m).reason == "price must be positive"
    finally:
        registry.unregister("strict.upsert")


def test_lost_lease_rolls_back_central_write(terminal):
    services.message_ingest_batch(terminal=terminal, envelopes=[env("a", "A")])
    batch = services.message_claim(worker="slow", limit=10)
    # another worker took it over after the lease expired
    Message.objects.update(lease_owner="other")
    with pytest.raises(IllegalTransition):
        services.message_process_batch(messages=batch, worker="slow")
    assert not CentralEntity.objects.exists()
    assert counter(terminal) == 0


def test_crash_between_central_write_and_state_change_loses_nothing(terminal, monkeypatch):
    services.message_ingest_batch(terminal=terminal, envelopes=[env("a", "A"), env("b", "B")])
    batch = services.message_claim(worker="w1", limit=10)
    real = processing.messages_complete

    def crash(**kw):
        raise SystemExit("worker killed after the central write")

    monkeypatch.setattr(processing, "messages_complete", crash)
    with pytest.raises(SystemExit):
        services.message_process_batch(messages=batch, worker="w1")
    monkeypatch.setattr(processing, "messages_complete", real)
    assert not CentralEntity.objects.exists() and counter(terminal) == 0
    assert set(Message.objects.values_list("state", flat=True)) == {S.PROCESSING}
    Message.objects.update(lease_expires_at=datetime.now(UTC) - timedelta(seconds=1))
    drain_all()
    assert set(Message.objects.values_list("state", flat=True)) == {S.PROCESSED}
    assert CentralEntity.objects.count() == 2 and counter(terminal) == 2


def test_one_bad_message_does_not_fail_its_batch(terminal):
    @registry.register("boom.upsert")
    def boom(item):
        raise ValueError("boom")

    try:
        services.message_ingest_batch(
            terminal=terminal, envelopes=[env(str(i), f"K{i}") for i in range(5)] + [env("x", mtype="boom.upsert")]
        )
        drain_all()
        states = dict(Message.objects.values_list("message_id", "state"))
        assert states.pop("x") == S.FAILED
        assert set(states.values()) == {S.PROCESSED}
        assert counter(terminal) == 5
    finally:
        registry.unregister("boom.upsert")


def test_a_payload_nested_too_deeply_is_dead_lettered_at_once(terminal):
    """Regression: json.loads raises RecursionError (not ValueError) past Python's recursion limit. It
    escaped the batch, whose messages then all waited for their lease; a few hundred KB of '[' did it."""
    deep = dataclasses.replace(env("deep", "D"), payload="[" * 100_000 + "]" * 100_000)
    services.message_ingest_batch(terminal=terminal, envelopes=[env("ok", "A"), deep])
    drain_all()
    assert Message.objects.get(message_id="ok").state == S.PROCESSED
    m = Message.objects.get(message_id="deep")
    assert (m.state, m.attempts) == (S.DEAD_LETTERED, 1)
    assert DeadLetter.objects.get(message=m).reason == "payload is not valid JSON: nested too deeply"


def test_a_handler_error_quoting_a_nul_character_is_recorded(terminal):
    """Regression (PostgreSQL): a handler's error quoting a payload whose JSON holds "\\u0000" put a NUL
    into the failure's reason, which PostgreSQL refuses in text: writing the failure failed the batch
    again, and its messages waited for their lease. The NUL is now written escaped."""

    @registry.register("quoting.upsert")
    def quoting(item):
        raise ValueError(f"bad name {item.payload['name']}")

    try:
        services.message_ingest_batch(
            terminal=terminal,
            envelopes=[env("q", mtype="quoting.upsert", payload={"name": "a\x00b"}), env("ok", "B")],
        )
        assert "\\u0000" in Message.objects.get(message_id="q").payload  # stored as JSON sent it
        drain_all()
        m = Message.objects.get(message_id="q")
        assert (m.state, m.attempts) == (S.FAILED, 1)  # a handler error: backoff, as any other
        assert m.last_error == "bad name a\\x00b"
        event = m.events.get(to_state=S.FAILED)
        assert "bad name a\\x00b" in event.reason and "\x00" not in event.traceback
        assert Message.objects.get(message_id="ok").state == S.PROCESSED
    finally:
        registry.unregister("quoting.upsert")


def test_released_messages_are_due_at_once_with_the_attempt_counted(terminal, monkeypatch):
    """message_process_claimed (what a drain runs): after an error the batch does not handle, the
    messages are due again at once, not after the lease; retried, each is applied exactly once."""
    services.message_ingest_batch(terminal=terminal, envelopes=[env(k, k) for k in ("A", "B", "C")])
    batch = services.message_claim(worker="w1", limit=10)
    real = processing._finish

    def broken(*args, **kwargs):
        raise KeyError("a bug after the central writes")

    monkeypatch.setattr(processing, "_finish", broken)
    result = services.message_process_claimed(messages=batch, worker="w1")
    assert (result.released, result.processed) == (3, 0)
    now = db_now()
    for m in Message.objects.all():
        assert (m.state, m.attempts, m.lease_owner, m.lease_expires_at) == (S.FAILED, 1, "", None)
        assert m.next_attempt_at <= now and "KeyError" in m.last_error
    assert not CentralEntity.objects.exists() and counter(terminal) == 0  # rolled back with the batch
    monkeypatch.setattr(processing, "_finish", real)
    again = services.message_claim(worker="w2", limit=10)
    assert sorted(m.message_id for m in again) == ["A", "B", "C"]
    assert services.message_process_claimed(messages=again, worker="w2").processed == 3
    assert set(Message.objects.values_list("state", "attempts")) == {(S.PROCESSED, 2)}
    assert CentralEntity.objects.count() == 3 and counter(terminal) == 3
    assert MessageEvent.objects.filter(to_state=S.PROCESSED).count() == 3


def test_a_release_after_a_commit_that_went_through_changes_nothing(terminal, monkeypatch):
    """The connection can fail after the server committed (the client cannot tell). The release moves
    only messages still Processing under this worker's lease: the committed batch stays as it is,
    nothing is applied or released twice."""
    from django.db import OperationalError

    services.message_ingest_batch(terminal=terminal, envelopes=[env("a", "A"), env("b", "B")])
    batch = services.message_claim(worker="w1", limit=10)
    real = processing._process_batch_once

    def committed_then_lost(messages, worker):
        real(messages, worker)  # committed
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(processing, "_process_batch_once", committed_then_lost)
    result = services.message_process_claimed(messages=batch, worker="w1")
    assert result.released == 0
    assert set(Message.objects.values_list("state", flat=True)) == {S.PROCESSED}
    assert MessageEvent.objects.filter(to_state=S.PROCESSED).count() == 2
    assert not MessageEvent.objects.filter(to_state=S.FAILED).exists()
    assert CentralEntity.objects.count() == 2 and counter(terminal) == 2
    assert services.message_release(messages=batch, worker="w1", error=RuntimeError("late")) == 0


def test_a_batch_costs_the_same_number_of_queries_whatever_its_size(terminal, monkeypatch):
    """No per-message query on the hot path (an N+1 here once cost a query per message)."""
    monkeypatch.setattr(claim, "_next_expired_check", float("inf"))  # the periodic lease check
    from django.test.utils import CaptureQueriesContext

    def queries_for(n, prefix):
        services.message_ingest_batch(
            terminal=terminal, envelopes=[env(f"{prefix}{i}", f"{prefix}K{i}") for i in range(n)]
        )
        with CaptureQueriesContext(connection) as ctx:
            batch = services.message_claim(worker="w", limit=1000)
            services.message_process_batch(messages=batch, worker="w")
        assert len(batch) == n
        return len(ctx.captured_queries)

    assert queries_for(5, "a") == queries_for(60, "b")
