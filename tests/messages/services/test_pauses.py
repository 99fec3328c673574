"""messages/services/pauses.py and the claim's side of it: a paused type, entity type or terminal is
not claimed (its messages stay Received, visible, parked out of the due range), a pause is one row
and audited, and resume brings the messages back to the workers in their original order."""

import time
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from messages import selectors, services
from messages.models import Message, MessageEvent, MessageState, QueuePause
from messages.services import claim
from messages.services import pauses as pause_services
from messages.services.console import ActionRefused
from syncadmin.models import AuditEntry
from tests.factories import MessageFactory, TerminalFactory
from tests.messages.helpers import env

S = MessageState
pytestmark = pytest.mark.django_db
ACTOR = "user:support"


@pytest.fixture(autouse=True)
def fresh_pauses(monkeypatch):
    monkeypatch.setattr(claim, "_next_expired_check", float("inf"))  # the periodic lease check: not here
    pause_services.pauses_forget()
    yield
    pause_services.pauses_forget()


def pause(scope="message_type", value="price.upsert", reason="handler bug, ticket 42"):
    return pause_services.queue_pause_create(scope=scope, value=value, reason=reason, actor=ACTOR)


def ingest(terminal, *specs):
    """specs: (message id, message type); due in the order given."""
    services.message_ingest_batch(terminal=terminal, envelopes=[env(mid, f"K-{mid}", mtype=t) for mid, t in specs])
    base = datetime.now(UTC) - timedelta(hours=1)
    for i, (mid, _) in enumerate(specs):
        Message.objects.filter(terminal=terminal, message_id=mid).update(next_attempt_at=base + timedelta(seconds=i))


def claimed_ids(limit=100):
    return [m.message_id for m in services.message_claim(worker="w1", limit=limit)]


def test_a_pause_is_one_row_with_its_audit_entry_and_touches_no_message(terminal):
    ingest(terminal, *[(f"p{i}", "price.upsert") for i in range(20)])
    before = list(Message.objects.order_by("pk").values_list("state", "next_attempt_at", "updated_at"))
    events = MessageEvent.objects.count()
    p = pause()
    assert QueuePause.objects.count() == 1 and (p.paused_by, p.reason) == (ACTOR, "handler bug, ticket 42")
    assert list(Message.objects.order_by("pk").values_list("state", "next_attempt_at", "updated_at")) == before
    assert MessageEvent.objects.count() == events
    entry = AuditEntry.objects.get(action="queue.pause")
    assert (entry.actor, entry.object_type, entry.object_id, entry.reason) == (
        ACTOR,
        "queue_pause:message_type",
        "price.upsert",
        "handler bug, ticket 42",
    )


@pytest.mark.parametrize(
    "scope,value,reason,field",
    [
        ("message_type", "price.upsert", "  ", "reason"),
        ("message_type", "price", "r", "value"),
        ("message_type", "Price.Upsert; DROP", "r", "value"),
        ("entity_type", "price.upsert", "r", "value"),
        ("terminal", "NO-SUCH-TILL", "r", "value"),
        ("queue", "x", "r", "scope"),
    ],
)
def test_a_pause_asked_wrongly_is_refused_and_changes_nothing(scope, value, reason, field):
    with pytest.raises(ActionRefused) as refused:
        pause(scope, value, reason)
    assert refused.value.field == field
    assert not QueuePause.objects.exists() and not AuditEntry.objects.exists()


def test_pausing_twice_says_who_paused_it_first(terminal):
    pause()
    with pytest.raises(ActionRefused, match="paused already by user:support since"):
        pause(reason="again")
    assert QueuePause.objects.count() == 1 and AuditEntry.objects.filter(action="queue.pause").count() == 1


def test_a_paused_type_is_not_claimed_and_stays_received_and_visible(terminal):
    ingest(terminal, ("p1", "price.upsert"), ("a1", "product.upsert"), ("p2", "price.upsert"), ("a2", "product.upsert"))
    pause()
    assert claimed_ids() == ["a1", "a2"]
    paused = Message.objects.filter(message_type="price.upsert")
    assert set(paused.values_list("state", flat=True)) == {S.RECEIVED}
    assert not moved_since_receipt(paused)
    assert selectors.message_due_count(limit=100) == 0  # parked: no "is anything due?" keeps waking the workers
    assert claimed_ids() == []
    assert list(selectors.message_list_queryset().filter(state=S.RECEIVED).values_list("message_id", flat=True))


def moved_since_receipt(qs):
    """Whether any of these messages has an event other than its receipt (a pause moves none)."""
    return MessageEvent.objects.filter(message__in=qs).exclude(from_state="").exists()


def test_a_paused_backlog_at_the_head_is_set_aside_within_one_claim(terminal, monkeypatch):
    monkeypatch.setattr(claim, "PARK_WINDOW", 50)
    ingest(terminal, *[(f"p{i:03d}", "price.upsert") for i in range(300)], ("a1", "product.upsert"))
    pause()
    assert claimed_ids(limit=10) == ["a1"]  # 10, then 50 at a time: parked in one call, no claim lost
    assert Message.objects.filter(message_type="price.upsert", next_attempt_at__gt=datetime.now(UTC)).count() == 300


def test_resume_brings_the_parked_messages_back_in_their_order_and_is_audited(terminal):
    ingest(terminal, *[(f"p{i}", "price.upsert") for i in range(5)], ("a1", "product.upsert"))
    original = dict(Message.objects.values_list("message_id", "next_attempt_at"))
    p = pause()
    assert claimed_ids() == ["a1"]
    pause_services.queue_pause_resume(pause_id=p.pk, actor="user:lead", reason="fix deployed")
    assert not QueuePause.objects.exists()
    entry = AuditEntry.objects.get(action="queue.resume")
    assert (entry.actor, entry.object_id, entry.reason) == ("user:lead", "price.upsert", "fix deployed")
    assert entry.detail["paused_by"] == ACTOR and entry.detail["pause_reason"] == "handler bug, ticket 42"
    assert pause_services.message_unpark_all(settle_seconds=0) == 5
    for mid, due in Message.objects.filter(message_type="price.upsert").values_list("message_id", "next_attempt_at"):
        assert due == original[mid]
    assert claimed_ids(limit=3) == ["p0", "p1", "p2"] and claimed_ids(limit=3) == ["p3", "p4"]


def test_resume_leaves_messages_another_pause_still_holds_parked(terminal):
    ingest(terminal, ("p1", "price.upsert"), ("q1", "stock.upsert"))
    by_type, by_entity = pause(), pause("entity_type", "stock")
    assert claimed_ids() == []
    pause_services.queue_pause_resume(pause_id=by_type.pk, actor="user:lead")
    assert pause_services.message_unpark_all(settle_seconds=0) == 1
    assert claimed_ids() == ["p1"]
    pause_services.queue_pause_resume(pause_id=by_entity.pk, actor="user:lead")
    pause_services.message_unpark_all(settle_seconds=0)
    assert claimed_ids() == ["q1"]


def test_resuming_a_pause_resumed_already_is_refused(terminal):
    p = pause()
    pause_services.queue_pause_resume(pause_id=p.pk, actor=ACTOR)
    with pytest.raises(ActionRefused):
        pause_services.queue_pause_resume(pause_id=p.pk, actor=ACTOR)
    assert AuditEntry.objects.filter(action="queue.resume").count() == 1


def test_an_entity_type_pause_holds_every_type_of_that_entity(terminal):
    ingest(terminal, ("u", "price.upsert"), ("d", "price.delete"), ("a", "product.upsert"))
    pause("entity_type", "price")
    assert claimed_ids() == ["a"]


def test_a_terminal_pause_holds_only_that_terminals_messages(terminal):
    other = TerminalFactory(code="T-OTHER")
    ingest(terminal, ("mine", "product.upsert"))
    ingest(other, ("theirs", "product.upsert"))
    pause("terminal", "T-OTHER")
    assert claimed_ids() == ["mine"]


def test_a_failed_message_of_a_paused_type_is_not_retried_by_the_workers(terminal):
    failed = MessageFactory(terminal=terminal, message_type="price.upsert", state=S.FAILED, attempts=1)
    pause()
    assert claimed_ids() == []
    failed.refresh_from_db()
    assert failed.state == S.FAILED and failed.attempts == 1


def test_a_batch_claimed_before_the_pause_finishes(terminal):
    ingest(terminal, ("p1", "price.upsert"))
    batch = services.message_claim(worker="w1", limit=10)
    pause()
    services.message_process_batch(messages=batch, worker="w1")
    assert Message.objects.get(message_id="p1").state == S.PROCESSED


def test_a_worker_sees_a_pause_set_elsewhere_within_the_cache_time(terminal, monkeypatch):
    ingest(terminal, ("p1", "price.upsert"), ("p2", "price.upsert"))
    assert pause_services.pauses_current().message_types == ()  # read and kept for a second
    QueuePause.objects.create(
        scope="message_type", value="price.upsert", reason="r", paused_by="x", paused_at=datetime.now(UTC)
    )
    assert pause_services.pauses_current().message_types == ()  # not yet: the cached set
    later = time.monotonic() + pause_services.PAUSE_CACHE_SECONDS
    monkeypatch.setattr(pause_services.time, "monotonic", lambda: later)
    assert pause_services.pauses_current().message_types == ("price.upsert",)
    assert claimed_ids() == []


@pytest.mark.postgres
def test_with_pauses_the_claim_is_one_prepared_statement_that_walks_the_due_index(terminal):
    ingest(terminal, *[(f"p{i}", "price.upsert") for i in range(10)], *[(f"a{i}", "product.upsert") for i in range(30)])
    pause()
    with CaptureQueriesContext(connection) as ctx:
        claimed = [claimed_ids(limit=10) for _ in range(3)]
    # the first claim parks the ten paused and claims nothing in its first window, then carries on
    assert [m for batch in claimed for m in batch] == [f"a{i}" for i in range(30)]
    statements = [q["sql"] for q in ctx.captured_queries if "SKIP LOCKED" in q["sql"]]
    assert all(s.startswith("WITH head AS") for s in statements) and len(statements) == 4
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT name, generic_plans, custom_plans, cardinality(parameter_types) FROM pg_prepared_statements"
            " WHERE statement LIKE 'WITH head AS%%' ORDER BY generic_plans DESC"
        )
        (name, generic, custom, arity), *_ = cursor.fetchall()
        assert generic >= 2 and custom == 0
        with transaction.atomic():
            cursor.execute(claim._CLAIM_PLAN_SQL)  # the settings the claim plans under
            values = ["{price.upsert}", "{}", "{}", "365000 days", "Processing", "w", 60, "Processing", "w"]
            values += ["message_transitions", "Received", "a", "Failed", "b"]
            assert arity == len(values)
            cursor.execute(f"EXPLAIN EXECUTE {name}({', '.join(['%s'] * arity)})", values)
            plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "message_due_idx" in plan and "Seq Scan on queue_messages_message" not in plan, plan


def test_the_sweep_brings_back_messages_a_lost_unpark_task_left_parked(terminal, monkeypatch):
    ingest(terminal, ("p1", "price.upsert"), ("p2", "price.upsert"))
    p = pause()
    assert claimed_ids() == []
    pause_services.queue_pause_resume(pause_id=p.pk, actor=ACTOR)  # its task never runs here
    assert pause_services.message_unpark_stray() == 2
    assert claimed_ids() == ["p1", "p2"]
    assert pause_services.message_unpark_stray() == 0


def test_the_sweep_leaves_parked_messages_alone_while_anything_is_paused(terminal):
    ingest(terminal, ("p1", "price.upsert"))
    pause()
    assert claimed_ids() == []
    assert pause_services.message_unpark_stray() == 0
    assert Message.objects.get(message_id="p1").next_attempt_at > datetime.now(UTC) + timedelta(days=365)
