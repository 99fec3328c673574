from datetime import UTC, datetime, timedelta

import pytest

from messages import selectors, services
from messages.models import Message, MessageState
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
