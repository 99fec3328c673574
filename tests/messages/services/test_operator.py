"""messages/services/operator.py: retry and discard, by an operator."""

from datetime import UTC, datetime

import pytest

from messages import services
from messages.models import DeadLetter, MessageEvent, MessageState
from tests.factories import MessageFactory

S = MessageState
pytestmark = pytest.mark.django_db


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
