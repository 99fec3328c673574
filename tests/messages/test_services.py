import dataclasses
import json
from datetime import UTC, datetime, timedelta

import pytest
from django.db import DatabaseError, connection, transaction

from messages import services
from messages.handlers import PermanentError, registry
from messages.models import CentralEntity, DeadLetter, EntityCounter, Message, MessageEvent, MessageState
from messages.services import Envelope, IllegalTransition, claim, ingest, processing
from messages.services.console import ActionRefused, message_edit_and_retry
from syncadmin.lib.clock import db_now
from tests.factories import DeadLetterFactory, MessageFactory, TerminalFactory

S = MessageState
pytestmark = pytest.mark.django_db


def env(mid, key="SKU-1", seq=1, mtype="product.upsert", payload=None):
    return Envelope(
        message_id=mid,
        message_type=mtype,
        entity_key=key,
        sequence=seq,
        created_at=datetime.now(UTC),
        payload=json.dumps(payload if payload is not None else {"name": key, "seq": seq}),
    )


def drain_all(worker="w1", limit=100):
    total = []
    while batch := services.message_claim(worker=worker, limit=limit):
        total.append(services.message_process_batch(messages=batch, worker=worker))
    return total


def make_due(*messages):
    Message.objects.filter(pk__in=[m.pk for m in messages]).update(next_attempt_at=datetime.now(UTC) - timedelta(1))


def counter(terminal, entity="product"):
    row = EntityCounter.objects.filter(terminal_code=terminal.code, entity_type=entity).first()
    return row.live_count if row else 0


# --- transitions ---------------------------------------------------------------------------------


def test_legal_transition_writes_an_event(terminal):
    m = MessageFactory(terminal=terminal)
    services.message_transition(
        message_ids=[m.pk], from_state=S.RECEIVED, to_state=S.DISCARDED, actor="user:ann", reason="test"
    )
    m.refresh_from_db()
    assert m.state == S.DISCARDED
    ev = MessageEvent.objects.get(message=m)
    assert (ev.from_state, ev.to_state, ev.actor, ev.reason) == (S.RECEIVED, S.DISCARDED, "user:ann", "test")


@pytest.mark.parametrize(
    "from_state,to_state",
    [(S.PROCESSED, S.RECEIVED), (S.RECEIVED, S.PROCESSED), (S.DISCARDED, S.PROCESSING), (S.DEAD_LETTERED, S.PROCESSED)],
)
def test_illegal_transition_raises_and_changes_nothing(terminal, from_state, to_state):
    m = MessageFactory(terminal=terminal, state=from_state)
    with pytest.raises(IllegalTransition):
        services.message_transition(message_ids=[m.pk], from_state=from_state, to_state=to_state, actor="x")
    m.refresh_from_db()
    assert m.state == from_state
    assert not MessageEvent.objects.exists()


def test_stale_expected_state_rolls_back_the_whole_change(terminal):
    a = MessageFactory(terminal=terminal)
    b = MessageFactory(terminal=terminal, state=S.PROCESSED)
    with pytest.raises(IllegalTransition):
        services.message_transition(message_ids=[a.pk, b.pk], from_state=S.RECEIVED, to_state=S.DISCARDED, actor="x")
    a.refresh_from_db()
    assert a.state == S.RECEIVED
    assert not MessageEvent.objects.exists()


# --- ingest ----------------------------------------------------------------------------------------


def test_ingest_answers_in_order_and_is_idempotent(terminal):
    batch = [env("a"), env("b", key="SKU-2"), env("", key="x"), env("a"), env("c", key="k" * 129)]
    results = services.message_ingest_batch(terminal=terminal, envelopes=batch)
    assert [(r.message_id, r.status) for r in results] == [
        ("a", "Accepted"),
        ("b", "Accepted"),
        ("", "Rejected"),
        ("a", "Duplicate"),
        ("c", "Rejected"),
    ]
    assert "MessageId is missing" in results[2].reason
    assert "EntityKey is longer than 128" in results[4].reason
    again = services.message_ingest_batch(terminal=terminal, envelopes=batch[:2])
    assert [r.status for r in again] == ["Duplicate", "Duplicate"]
    assert Message.objects.count() == 2
    assert MessageEvent.objects.filter(to_state=S.RECEIVED, from_state="").count() == 2
    m = Message.objects.get(message_id="a")
    assert (m.state, m.entity_type, m.attempts) == (S.RECEIVED, "product", 0)
    assert m.next_attempt_at is not None and m.trace_id


def test_ingest_stores_every_field_in_input_order_with_one_clock_reading(terminal):
    from datetime import timezone

    created = datetime(2025, 6, 30, 23, 59, 59, 123456, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    batch = [
        Envelope("z9", "sale.upsert", "K-9", 2**63 - 1, created, 'Thé "😀" \\ \n'),
        env("a1", key="K-1"),
        Envelope("m5", "odd", "K-5", -3, datetime(2025, 1, 1, 12, 0), None),  # naive: taken as UTC
        Envelope("x" * 64, "p" * 50 + ".upsert", "k" * 128, 0, created, ""),
    ]
    services.message_ingest_batch(terminal=terminal, envelopes=batch, trace_id="ab" * 16)
    rows = list(
        Message.objects.order_by("pk").values_list(
            "message_id", "message_type", "entity_type", "entity_key", "sequence", "created_at", "payload"
        )
    )
    assert rows == [
        ("z9", "sale.upsert", "sale", "K-9", 2**63 - 1, created, 'Thé "😀" \\ \n'),
        ("a1", "product.upsert", "product", "K-1", 1, batch[1].created_at, batch[1].payload),
        ("m5", "odd", "odd", "K-5", -3, datetime(2025, 1, 1, 12, 0, tzinfo=UTC), ""),
        ("x" * 64, "p" * 50 + ".upsert", "p" * 40, "k" * 128, 0, created, ""),
    ]
    stamps = set(Message.objects.values_list("received_at", "updated_at", "next_attempt_at"))
    assert len(stamps) == 1 and len(set(next(iter(stamps)))) == 1
    events = MessageEvent.objects.order_by("pk")
    assert sorted(e.message.message_id for e in events) == sorted(r[0] for r in rows)
    assert {(e.from_state, e.to_state, e.at, e.actor) for e in events} == {
        ("", S.RECEIVED, next(iter(stamps))[0], f"terminal:{terminal.code}")
    }
    assert set(Message.objects.values_list("state", "attempts", "trace_id")) == {(S.RECEIVED, 0, "ab" * 16)}


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


# --- apply -------------------------------------------------------------------------------------------


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


def test_backoff_grows_exponentially_with_jitter(settings):
    settings.SYNC_BACKOFF_BASE_SECONDS, settings.SYNC_BACKOFF_MAX_SECONDS = 2, 60
    for attempts, ceiling in [(1, 2), (2, 4), (3, 8), (10, 60)]:
        values = [services.backoff_seconds(attempts) for _ in range(50)]
        assert all(ceiling / 2 <= v <= ceiling for v in values)
        assert len(set(values)) > 1


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


def test_killed_worker_lease_is_recovered_with_the_attempt_recorded(terminal, settings):
    settings.SYNC_MAX_ATTEMPTS = 2
    services.message_ingest_batch(terminal=terminal, envelopes=[env("a", "A"), env("b", "B")])
    claimed = services.message_claim(worker="dead-worker", limit=10)
    assert len(claimed) == 2
    # the worker dies here; nothing else can take its messages while the lease holds
    assert services.message_claim(worker="w2", limit=10) == []
    Message.objects.update(lease_expires_at=datetime.now(UTC) - timedelta(seconds=1))
    first = services.message_claim(worker="w2", limit=10)
    assert len(first) == 1  # expired leases are taken one at a time
    ev = MessageEvent.objects.filter(message=first[0]).last()
    assert (ev.from_state, ev.to_state, ev.attempt) == (S.PROCESSING, S.PROCESSING, 2)
    assert "lease of dead-worker expired" in ev.reason
    services.message_process_batch(messages=first, worker="w2")
    # the other one dies again and has now used its attempts: dead-lettered, not re-run
    second = Message.objects.get(state=S.PROCESSING)
    Message.objects.filter(pk=second.pk).update(attempts=2)
    assert services.message_claim(worker="w3", limit=10) == []
    second.refresh_from_db()
    assert second.state == S.DEAD_LETTERED
    assert DeadLetter.objects.get(message=second).error_class == "LeaseExpired"
    assert counter(terminal) == 1


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
    real = services.message_transition

    def crash(**kw):
        if kw["to_state"] == S.PROCESSED:
            raise SystemExit("worker killed after the central write")
        return real(**kw)

    monkeypatch.setattr(processing, "message_transition", crash)
    with pytest.raises(SystemExit):
        services.message_process_batch(messages=batch, worker="w1")
    monkeypatch.setattr(processing, "message_transition", real)
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


# --- operator actions ------------------------------------------------------------------------------


def test_retry_and_discard_record_actor_and_reason(terminal):
    dl = MessageFactory(terminal=terminal, state=S.DEAD_LETTERED, attempts=5)
    DeadLetter.objects.create(message=dl, reason="x", group_key="E: x", dead_lettered_at=datetime.now(UTC))
    failed = MessageFactory(terminal=terminal, state=S.FAILED, attempts=2)
    done = MessageFactory(terminal=terminal, state=S.PROCESSED)
    assert services.message_retry(message_ids=[dl.pk, failed.pk, done.pk], actor="user:sam", reason="fixed price") == 2
    dl.refresh_from_db()
    assert (dl.state, dl.attempts) == (S.RECEIVED, 0)
    ev = dl.events.last()
    assert (ev.from_state, ev.to_state, ev.actor, ev.reason) == (S.DEAD_LETTERED, S.RECEIVED, "user:sam", "fixed price")
    letter = DeadLetter.objects.get(message=dl)
    assert (letter.resolution, letter.resolved_by, letter.note) == ("retried", "user:sam", "fixed price")
    # a second click changes nothing
    assert services.message_retry(message_ids=[dl.pk], actor="user:sam") == 0
    assert dl.events.filter(to_state=S.RECEIVED).count() == 1

    with pytest.raises(ValueError):
        services.message_discard(message_ids=[failed.pk], actor="user:sam", reason="  ")
    assert services.message_discard(message_ids=[failed.pk, done.pk], actor="user:sam", reason="test data") == 1
    ev = MessageEvent.objects.filter(message=failed).last()
    assert (ev.to_state, ev.actor, ev.reason) == (S.DISCARDED, "user:sam", "test data")
    done.refresh_from_db()
    assert done.state == S.PROCESSED


@pytest.mark.parametrize("step", ["events insert", "counters"])
def test_ingest_is_atomic_when_a_step_after_the_messages_insert_fails(terminal, monkeypatch, step):
    def broken(*a, **kw):
        raise RuntimeError("disk full")

    if step == "events insert" and connection.vendor == "postgresql":
        # One statement writes the messages and their events: make its events part fail.
        table = MessageEvent._meta.db_table
        monkeypatch.setattr(
            ingest, "_STORE_SQL", ingest._STORE_SQL.replace(f"INSERT INTO {table}", "INSERT INTO no_such")
        )
        expected = DatabaseError
    elif step == "events insert":
        monkeypatch.setattr(ingest, "_received_events_insert", broken)
        expected = RuntimeError
    else:
        monkeypatch.setattr(ingest.observe, "transition_recorded", broken)
        expected = RuntimeError
    with pytest.raises(expected):
        services.message_ingest_batch(terminal=terminal, envelopes=[env("a"), env("b", "B")])
    assert not Message.objects.exists() and not MessageEvent.objects.exists()


def test_on_commit_wakes_workers_only_after_commit(terminal, monkeypatch, django_capture_on_commit_callbacks):
    woke = []
    monkeypatch.setattr("messages.services.wakeup.enqueue_drain", lambda count=1: woke.append(count))
    with django_capture_on_commit_callbacks(execute=True):
        with transaction.atomic():
            services.message_ingest_batch(terminal=terminal, envelopes=[env("a")])
            assert woke == []
    assert woke == [1]


def test_a_batch_costs_the_same_number_of_queries_whatever_its_size(terminal, monkeypatch):
    """No per-message query on the hot path (an N+1 here once cost a query per message)."""
    monkeypatch.setattr(claim, "_next_expired_check", float("inf"))  # the periodic lease check
    from django.db import connection
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


def test_new_central_rows_are_written_in_one_global_order_whatever_the_sequences(terminal, monkeypatch):
    """Regression (found by bench/engine.py on PostgreSQL): two batches holding the same key from
    two terminals, with sequences that sort them in opposite orders, inserted the new rows in
    opposite orders and deadlocked on the unique index. Every batch now writes in key order."""
    from messages import handlers

    other = TerminalFactory(code="T-2")
    written = []
    real = handlers.central_write

    def spy(*, new, **kwargs):
        written.append([(r.entity_type, r.entity_key, r.terminal_code) for r in new])
        return real(new=new, **kwargs)

    monkeypatch.setattr(handlers, "central_write", spy)
    # batch 1: T-2's K1 has the lower sequence; batch 2: terminal's K1 has the lower one
    services.message_ingest_batch(terminal=other, envelopes=[env("a", "K1", seq=1), env("b", "K2", seq=9)])
    services.message_ingest_batch(terminal=terminal, envelopes=[env("c", "K1", seq=5), env("d", "K0", seq=2)])
    drain_all()
    services.message_ingest_batch(terminal=terminal, envelopes=[env("e", "K3", seq=1)])
    services.message_ingest_batch(terminal=other, envelopes=[env("f", "K3", seq=7)])
    drain_all()
    new_rows = [rows for rows in written if rows]
    assert new_rows and all(rows == sorted(rows) for rows in new_rows), written
    assert CentralEntity.objects.count() == 6


def test_edit_and_retry_refuses_json_nested_too_deep(terminal):
    # Any caller of the service (a form, a script, a future API) gets the service's refusal, not a RecursionError.
    dl = DeadLetterFactory(message__terminal=terminal)
    with pytest.raises(ActionRefused, match="not valid JSON: nested too deeply"):
        message_edit_and_retry(message_id=dl.message.pk, payload="[" * 100_000 + "]" * 100_000, actor="t", reason="r")
    assert Message.objects.get(pk=dl.message.pk).state == MessageState.DEAD_LETTERED
