from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, transaction

from messages import selectors, services
from messages.models import PENDING_STATES, WAITING_STATES, Message, MessageState
from messages.selectors import message_state_counts_fast
from tests.factories import MessageFactory, TerminalFactory
from tests.messages.helpers import env

S = MessageState
pytestmark = pytest.mark.django_db


def test_due_exists_sees_due_work_and_expired_leases_and_nothing_else(terminal, django_assert_num_queries):
    """The probe each worker cluster runs every SYNC_DUE_CHECK_SECONDS: one query."""

    def due() -> bool:
        with django_assert_num_queries(1):
            return selectors.message_due_exists()

    assert not due()
    services.message_ingest_batch(terminal=terminal, envelopes=[env("a", "A")])
    assert due()  # received: due at once
    [m] = services.message_claim(worker="w", limit=10)
    assert not due()  # a live lease
    Message.objects.update(lease_expires_at=datetime.now(UTC) - timedelta(seconds=1))
    assert due()  # its worker died: the lease ran out
    Message.objects.update(state=S.FAILED, lease_owner="", lease_expires_at=None,
                           next_attempt_at=datetime.now(UTC) + timedelta(minutes=5))  # fmt: skip
    assert not due()  # backing off
    Message.objects.update(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1))
    assert due()
    Message.objects.update(state=S.PROCESSED, next_attempt_at=None)
    assert not due()


def test_the_oldest_waiting_message_is_the_earliest_receipt_even_when_ids_interleave():
    base = datetime(2026, 12, 4, 9, 0, 0, 123456, tzinfo=UTC)
    terminal = TerminalFactory()
    # Ids in ingest order, receipts not quite: two batches stored at the same moment interleave.
    MessageFactory(terminal=terminal, state=MessageState.PROCESSED, received_at=base - timedelta(hours=1))
    MessageFactory(terminal=terminal, state=MessageState.RECEIVED, received_at=base + timedelta(microseconds=5))
    MessageFactory(terminal=terminal, state=MessageState.FAILED, received_at=base)
    MessageFactory(terminal=terminal, state=MessageState.DEAD_LETTERED, received_at=base - timedelta(days=1))
    assert selectors.message_backlog_ages()["oldest_received_at"] == base


def test_no_backlog_has_no_oldest_message():
    MessageFactory(state=MessageState.PROCESSED)
    assert selectors.message_backlog_ages() == {"oldest_received_at": None, "oldest_due_at": None}


# --- the partial state index (models/queue.py, message_state_queued_idx) ---------------------------


def _plan(queryset) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # a handful of rows: the planner would scan them
        sql, params = queryset.query.sql_with_params()
        cursor.execute(f"EXPLAIN {sql}", params)
        return "\n".join(row[0] for row in cursor.fetchall())


@pytest.mark.postgres
def test_the_backlog_and_state_counts_are_read_from_indexes_the_hot_path_does_not_write(terminal):
    # The index that the backlog, the dashboard's counts and the terminals list read holds the
    # waiting states only, so the claim and the completion write no entry in it; each read must
    # still be one that index (or the lease index, for Processing) can answer.
    states = {m.state for m in [MessageFactory(terminal=terminal, state=s) for s in MessageState.values]}
    assert states == set(MessageState.values)
    reads = {
        "backlog": Message.objects.filter(state__in=PENDING_STATES).values("queued_at"),
        "waiting counts": Message.objects.filter(state__in=WAITING_STATES).values("state"),
        "per terminal": Message.objects.filter(
            queue_terminal_id__in=[terminal.pk], state__in=[*PENDING_STATES, MessageState.DEAD_LETTERED]
        ).values("queue_terminal_id", "state"),
        "oldest failed": Message.objects.filter(state=MessageState.FAILED).order_by("queued_at").values("queued_at"),
    }
    with transaction.atomic():
        plans = {name: _plan(qs) for name, qs in reads.items()}
        processing = _plan(Message.objects.filter(state=MessageState.PROCESSING).values("pk"))
    # The due index holds Received and Failed too (ingest and a failure write it, the claim does not).
    unwritten = ("message_state_queued_idx", "message_due_idx")
    assert {name: any(index in plan for index in unwritten) for name, plan in plans.items()} == dict.fromkeys(
        reads, True
    ), plans
    assert "message_state_queued_idx" in plans["per terminal"] and "message_lease_idx" in processing
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'message_state_queued_idx'")
        (definition,) = cursor.fetchone()
    assert " WHERE " in definition and "Processing" not in definition and "Processed" not in definition, definition
    counts, _ = message_state_counts_fast()
    assert counts == dict.fromkeys(MessageState.values, 1)
