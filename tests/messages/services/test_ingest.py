"""messages/services/ingest.py: a terminal's batch stored in one transaction, answered per message."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import DatabaseError, connection, transaction

from messages import services
from messages.models import Message, MessageEnvelope, MessageEvent, MessageState
from messages.services import Envelope, ingest
from tests.messages.helpers import env

S = MessageState
pytestmark = pytest.mark.django_db


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
    assert not MessageEnvelope.objects.exists()  # no envelope left without its state row either


def test_on_commit_wakes_workers_only_after_commit(terminal, monkeypatch, django_capture_on_commit_callbacks):
    woke = []
    monkeypatch.setattr("messages.services.wakeup.enqueue_drain", lambda count=1: woke.append(count))
    with django_capture_on_commit_callbacks(execute=True):
        with transaction.atomic():
            services.message_ingest_batch(terminal=terminal, envelopes=[env("a")])
            assert woke == []
    assert woke == [1]
