"""An entity's story: what each message did, read from what the real engine recorded."""

import pytest

from messages import services
from messages.models import CentralEntity, Message, MessageEvent, MessageState
from messages.selectors import entity_story
from tests.factories import MessageFactory, TerminalFactory
from tests.messages.helpers import drain_all, env

S = MessageState
pytestmark = pytest.mark.django_db


def story(key="SKU-1", entity_type="product"):
    central, total = entity_story.entity_central_rows(entity_type=entity_type, entity_key=key)
    messages = list(entity_story.entity_messages(entity_type=entity_type, entity_key=key).order_by("sequence", "pk"))
    outcomes = entity_story.entity_outcomes(messages=messages, central=central)
    return central, total, {m.message_id: outcomes[m.pk] for m in messages}


def test_applied_then_an_older_one_is_a_noop_and_a_newer_waiting_one_is_waiting():
    t1 = TerminalFactory(code="ST-1")
    services.message_ingest_batch(terminal=t1, envelopes=[env("a3", seq=3)])
    drain_all()
    services.message_ingest_batch(terminal=t1, envelopes=[env("a2", seq=2)])  # older: arrives late
    drain_all()
    services.message_ingest_batch(terminal=t1, envelopes=[env("a5", seq=5), env("a1", seq=1)])  # not drained
    central, total, outcomes = story()
    assert total == 1 and central[0].last_sequence == 3
    assert central[0].last_message_pk == Message.objects.get(message_id="a3").pk
    assert outcomes["a3"].kind == "applied" and outcomes["a3"].detail == "the stored version"
    assert outcomes["a2"].kind == "noop" and outcomes["a2"].detail == services.NOOP_REASON
    assert outcomes["a5"].kind == "waiting" and outcomes["a5"].detail == "not yet applied"
    # Waiting, but the store already holds a newer sequence from its terminal: it will change nothing.
    assert outcomes["a1"].kind == "waiting" and "will be a no-op" in outcomes["a1"].detail


def test_an_applied_version_overwritten_since_is_still_applied():
    t1 = TerminalFactory(code="ST-1")
    services.message_ingest_batch(terminal=t1, envelopes=[env("a1", seq=1)])
    drain_all()
    services.message_ingest_batch(terminal=t1, envelopes=[env("a2", seq=2)])
    drain_all()
    _, _, outcomes = story()
    assert outcomes["a1"].kind == "applied" and outcomes["a1"].detail == "overwritten since"
    assert outcomes["a2"].detail == "the stored version"


def test_every_terminal_has_its_own_row_and_sequences_are_per_terminal():
    t1, t2 = TerminalFactory(code="ST-1"), TerminalFactory(code="ST-2")
    services.message_ingest_batch(terminal=t1, envelopes=[env("a9", seq=9)])
    services.message_ingest_batch(terminal=t2, envelopes=[env("b1", seq=1, mtype="product.delete", payload={})])
    drain_all()
    central, total, outcomes = story()
    assert [(r.terminal_code, r.last_sequence, r.deleted) for r in central] == [("ST-1", 9, False), ("ST-2", 1, True)]
    assert total == 2
    # Sequence 1 from ST-2 is applied although ST-1 holds 9: the no-op rule is per terminal.
    assert outcomes["b1"].kind == "applied" and outcomes["a9"].kind == "applied"


def test_dead_lettered_and_discarded_say_so():
    t1 = TerminalFactory(code="ST-1")
    services.message_ingest_batch(terminal=t1, envelopes=[env("bad", seq=1, payload=[1, 2])])  # not an object
    drain_all()
    dropped = MessageFactory(terminal=t1, message_id="gone", entity_key="SKU-1", state=S.DISCARDED, sequence=2)
    _, _, outcomes = story()
    assert outcomes["bad"].kind == "dead_lettered" and "JSON object" in outcomes["bad"].detail
    assert outcomes[dropped.message_id].kind == "discarded"


def test_a_processed_message_without_events_falls_back_to_the_central_row():
    t1 = TerminalFactory(code="ST-1")
    services.message_ingest_batch(terminal=t1, envelopes=[env("a1", seq=1)])
    services.message_ingest_batch(terminal=t1, envelopes=[env("a2", seq=2)])
    drain_all()
    MessageEvent.objects.all().delete()
    _, _, outcomes = story()
    assert outcomes["a2"].kind == "applied"  # it wrote the stored row
    assert outcomes["a1"].kind == "unknown"  # nothing left says what it did


def test_other_entities_and_types_are_not_in_the_story():
    t1 = TerminalFactory(code="ST-1")
    services.message_ingest_batch(
        terminal=t1, envelopes=[env("a1", seq=1), env("x1", key="SKU-2"), env("c1", mtype="customer.upsert")]
    )
    drain_all()
    central, _, outcomes = story()
    assert list(outcomes) == ["a1"] and len(central) == 1
    assert CentralEntity.objects.count() == 3


def test_the_central_rows_are_bounded_and_counted(settings):
    for i in range(5):
        CentralEntity.objects.create(
            entity_type="product", entity_key="HOT", terminal_code=f"T{i}", data={}, last_sequence=1,
            updated_at="2026-01-01T00:00:00Z",
        )  # fmt: skip
    rows, total = entity_story.entity_central_rows(entity_type="product", entity_key="HOT", limit=3)
    assert [r.terminal_code for r in rows] == ["T0", "T1", "T2"] and total == 5


def test_state_counts():
    t1 = TerminalFactory(code="ST-1")
    services.message_ingest_batch(terminal=t1, envelopes=[env("a1", seq=1), env("a2", seq=2)])
    assert entity_story.entity_message_states(entity_type="product", entity_key="SKU-1") == {S.RECEIVED: 2}
