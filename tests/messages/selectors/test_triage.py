"""messages/selectors/triage.py: held groups (what alerts count) and superseded dead letters (issue 20)."""

from datetime import UTC, datetime

import pytest

from messages.models import CentralEntity, MessageState
from messages.selectors import triage
from messages.services.triage import deadletter_group_triage_set
from tests.factories import DeadLetterFactory, TerminalFactory

pytestmark = pytest.mark.django_db


def stored(terminal, key, seq, entity_type="product"):
    CentralEntity.objects.create(
        entity_type=entity_type, entity_key=key, terminal_code=terminal.code, data={}, last_sequence=seq,
        updated_at=datetime.now(UTC),
    )  # fmt: skip


def test_open_dead_letters_outside_held_groups_leave_out_every_grouping_on_hold():
    t1, t2 = TerminalFactory(code="H1"), TerminalFactory(code="H2")
    price = DeadLetterFactory(message__terminal=t1)
    sku = DeadLetterFactory(message__terminal=t1, group_key="KeyError: 'sku'")
    sale = DeadLetterFactory(message__terminal=t2, group_key="KeyError: 'sku'", message__entity_type="sale")
    DeadLetterFactory(message__terminal=t2, resolution="retried")
    assert set(triage.deadletter_open_not_on_hold()) == {price, sku, sale}
    deadletter_group_triage_set(grouping="reason", key="ValueError: price # is negative", actor="u", status="on_hold")
    assert set(triage.deadletter_open_not_on_hold()) == {sku, sale}
    deadletter_group_triage_set(grouping="entity", key="sale", actor="u", status="on_hold")
    assert set(triage.deadletter_open_not_on_hold()) == {sku}
    deadletter_group_triage_set(grouping="terminal", key="H1", actor="u", status="on_hold")
    assert not triage.deadletter_open_not_on_hold().exists()
    assert triage.deadletter_groups_on_hold().count() == 3
    assert list(triage.deadletter_groups_on_hold(grouping="entity").values_list("key", flat=True)) == ["sale"]
    deadletter_group_triage_set(grouping="terminal", key="H1", actor="u", status="investigating")  # released
    assert set(triage.deadletter_open_not_on_hold()) == {sku}


@pytest.mark.parametrize("local", [True, False], ids=["one database", "central store apart"])
def test_superseded_means_a_stored_sequence_at_or_above_from_the_same_terminal(monkeypatch, local):
    monkeypatch.setattr(triage, "_central_is_local", lambda: local)
    t1, t2 = TerminalFactory(code="S1"), TerminalFactory(code="S2")
    below = DeadLetterFactory(message__terminal=t1, message__entity_key="A", message__sequence=4)
    equal = DeadLetterFactory(message__terminal=t1, message__entity_key="B", message__sequence=7)
    above = DeadLetterFactory(message__terminal=t1, message__entity_key="C", message__sequence=9)
    other_terminal = DeadLetterFactory(message__terminal=t2, message__entity_key="A", message__sequence=1)
    other_type = DeadLetterFactory(message__terminal=t1, message__entity_key="D", message__sequence=1,
                                   message__entity_type="sale", group_key="KeyError: x")  # fmt: skip
    stored(t1, "A", 5)
    stored(t1, "B", 7)
    stored(t1, "C", 8)
    stored(t1, "D", 3)  # a product D: not the sale D
    ids = [d.message.pk for d in (below, equal, above, other_terminal, other_type)]
    assert triage.message_superseded_sequences(message_ids=ids) == {below.message.pk: 5, equal.message.pk: 7}
    assert triage.deadletter_superseded_counts(grouping="reason") == {"ValueError: price # is negative": 2}
    assert triage.deadletter_superseded_counts(grouping="terminal") == {"S1": 2}
    assert triage.deadletter_superseded_counts(grouping="entity") == {"product": 2}
    assert triage.deadletter_group_superseded(grouping="terminal", key="S1") == {
        below.message.pk: 5,
        equal.message.pk: 7,
    }
    below.message.state = MessageState.RECEIVED  # retried: no longer a dead letter, so not superseded either
    below.message.save()
    assert triage.message_superseded_sequences(message_ids=ids) == {equal.message.pk: 7}
