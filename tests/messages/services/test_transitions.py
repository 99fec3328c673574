"""messages/services/transitions.py: the one transition function (compare-and-set, events, all or nothing)."""

import pytest

from messages import services
from messages.models import MessageEvent, MessageState
from messages.services import IllegalTransition
from tests.factories import MessageFactory

S = MessageState
pytestmark = pytest.mark.django_db


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
