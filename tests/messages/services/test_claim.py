"""messages/services/claim.py: PostgreSQL's one-statement claim and the due index walked in order whatever
the statistics say; a lease that ran out is claimed again with its attempt counted."""

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from messages import services
from messages.models import DeadLetter, Message, MessageEnvelope, MessageEvent, MessageState
from messages.services import claim
from tests.messages.helpers import counter, env, make_due

S = MessageState

pytestmark = pytest.mark.django_db


def claim_plan() -> str:
    qs = (
        Message.objects.filter(state__in=("Received", "Failed"), next_attempt_at__lte=timezone.now())
        .select_related("terminal")
        .only(*claim.CLAIM_FIELDS)
        .order_by("next_attempt_at")
        .select_for_update(skip_locked=True, of=("self",))
    )[:100]
    with connection.cursor() as cursor:
        sql, params = qs.query.sql_with_params()
        cursor.execute("EXPLAIN " + sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())


@pytest.mark.postgres
def test_a_backlog_is_claimed_without_sorting_it_even_when_the_planner_would(terminal):
    for start in range(0, 3000, 500):
        services.message_ingest_batch(
            terminal=terminal, envelopes=[env(f"m{i}", f"K{i}", seq=1) for i in range(start, start + 500)]
        )
    # Make the ordered index scan look expensive to the planner, as stale statistics do in the
    # field (analysed when little was due, it expects a handful of rows and sorts them all).
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL random_page_cost = 1000")
        assert "Sort" in claim_plan()  # the hazard is real on this table
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL random_page_cost = 1000")
        claim._prefer_index_order("default")
        plan = claim_plan()
    assert "Sort" not in plan and "message_due_idx" in plan, plan
    batch = services.message_claim(worker="w1", limit=100)
    assert len(batch) == 100 and all(int(m.message_id[1:]) < 500 for m in batch)  # the oldest due first


@pytest.mark.postgres
def test_the_queue_tables_are_vacuumed_and_analysed_early():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname, reloptions FROM pg_class WHERE relname IN (%s, %s)",
            ["queue_messages_message", "queue_messages_messageevent"],
        )
        options = dict(cursor.fetchall())
    for table in ("queue_messages_message", "queue_messages_messageevent"):
        assert "autovacuum_analyze_scale_factor=0.02" in options[table], options
        assert "autovacuum_vacuum_scale_factor=0.02" in options[table], options


@pytest.mark.postgres
def test_the_claim_moves_locks_and_records_in_one_statement(terminal, settings, monkeypatch):
    settings.SYNC_LEASE_SECONDS = 45
    monkeypatch.setattr(claim, "_next_expired_check", float("inf"))  # the periodic lease check
    services.message_ingest_batch(terminal=terminal, envelopes=[env("f", "F"), env("r1", "A"), env("r2", "B")])
    failed = Message.objects.get(message_id="f")
    Message.objects.filter(pk=failed.pk).update(state=S.FAILED, attempts=2)
    make_due(failed)  # due before the other two: it comes first
    with CaptureQueriesContext(connection) as ctx:
        batch = services.message_claim(worker="w1", limit=10)
        codes = [m.terminal.code for m in batch]  # loaded with the claim, no query each
    claim_statements = [q["sql"] for q in ctx.captured_queries if "FOR UPDATE SKIP LOCKED" in q["sql"]]
    assert len(claim_statements) == 1 and "INSERT INTO" in claim_statements[0]
    assert [m.message_id for m in batch] == ["f", "r1", "r2"] and codes == [terminal.code] * 3
    assert [(m.state, m.attempts, m.lease_owner) for m in batch] == [
        (S.PROCESSING, 3, "w1"),
        (S.PROCESSING, 1, "w1"),
        (S.PROCESSING, 1, "w1"),
    ]
    assert batch[0].payload and batch[0].entity_key == "F" and batch[0].sequence == 1
    for row in Message.objects.filter(pk__in=[m.pk for m in batch]):
        assert row.state == S.PROCESSING and row.lease_owner == "w1" and row.next_attempt_at is None
        # both read from the database clock after the row was locked (two reads, microseconds apart)
        assert abs(row.lease_expires_at - row.updated_at - timedelta(seconds=45)) < timedelta(seconds=1)
        event = MessageEvent.objects.filter(message_id=row.pk).latest("pk")
        expected_from = S.FAILED if row.message_id == "f" else S.RECEIVED
        assert (event.from_state, event.to_state, event.actor, event.attempt) == (
            expected_from,
            S.PROCESSING,
            "w1",
            row.attempts,
        )
        assert event.at == row.updated_at
    assert services.message_claim(worker="w2", limit=10) == []  # nothing left due


@pytest.mark.postgres
def test_the_claim_is_prepared_once_with_a_plan_that_walks_the_due_index(terminal, monkeypatch):
    """Planning the claim cost more than running it, on every claim: it is prepared, with one
    generic plan per connection, made under the settings that rule out sorting the backlog."""
    monkeypatch.setattr(claim, "_next_expired_check", float("inf"))  # the periodic lease check
    services.message_ingest_batch(terminal=terminal, envelopes=[env(f"m{i}", f"K{i}") for i in range(30)])
    with connection.cursor() as cursor:
        cursor.execute("SET random_page_cost = 1000")  # the stale-statistics hazard, for the whole session
        try:
            claimed = [services.message_claim(worker="w1", limit=10) for _ in range(3)]
        finally:
            cursor.execute("RESET random_page_cost")
        assert [m.message_id for batch in claimed for m in batch] == [f"m{i}" for i in range(30)]
        cursor.execute(
            "SELECT name, generic_plans, custom_plans, cardinality(parameter_types) FROM pg_prepared_statements"
            " WHERE statement LIKE 'WITH due AS%%'"
        )
        ((name, generic, custom, arity),) = cursor.fetchall()
        assert generic >= 3 and custom == 0  # planned once, not per claim
        with transaction.atomic():
            cursor.execute("SET LOCAL random_page_cost = 1000")
            cursor.execute(claim._CLAIM_PLAN_SQL)
            values = ["Processing", "w", 60, "Processing", "w", "message_transitions", "Received", "a", "Failed", "b"]
            assert arity == len(values)
            cursor.execute(f"EXPLAIN EXECUTE {name}({', '.join(['%s'] * arity)})", values)
            plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "message_due_idx" in plan and "Sort" not in plan, plan
    # made on a small table, it must not update the claimed rows through a scan of all messages:
    # neither of their state rows nor of their envelopes (read for the claimed rows' fields)
    for table in (Message._meta.db_table, MessageEnvelope._meta.db_table):
        assert f"Seq Scan on {table} " not in plan, plan


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


def test_a_claimed_message_carries_its_values_exactly_as_stored(terminal):
    # PostgreSQL returns the claim's rows in binary (psycopg's C loaders): every value, times to
    # the microsecond and aware in UTC, must be what the ORM reads back from the same rows.
    created = datetime(2026, 3, 29, 0, 59, 59, 999_999, tzinfo=UTC)  # the night the clocks go forward
    envelope = dataclasses.replace(
        env("exact-1", "SKU-Ä ü €", seq=2**40, payload={"price": "0.10", "name": "x\\u0000y ☃"}), created_at=created
    )
    services.message_ingest_batch(terminal=terminal, envelopes=[envelope])
    (claimed,) = services.message_claim(worker="w1", limit=10)
    stored = Message.objects.select_related("terminal").get(pk=claimed.pk)
    fields = ("message_id", "message_type", "entity_type", "entity_key", "sequence", "created_at", "payload",
              "received_at", "trace_id", "attempts", "terminal_id")  # fmt: skip
    assert {f: getattr(claimed, f) for f in fields} == {f: getattr(stored, f) for f in fields}
    assert claimed.created_at == created and claimed.created_at.utcoffset() == timedelta(0)
    assert claimed.received_at.utcoffset() == timedelta(0) and claimed.terminal.code == terminal.code
