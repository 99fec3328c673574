"""messages/services/triage.py: failure-group triage (owner, status, ticket, history, recurrence) and
the discard of superseded dead letters (issue 20)."""

import threading
import time
from datetime import UTC, datetime

import pytest
from django.db import transaction

from messages import services
from messages.models import DeadLetter, DeadLetterGroupEvent, DeadLetterGroupNote, Message, MessageState, TriageStatus
from messages.services import Envelope, failures
from messages.services.console import ActionRefused, deadletter_group_note_set, message_operator_retry
from messages.services.triage import (
    deadletter_group_take,
    deadletter_group_triage_set,
    deadletter_superseded_discard,
    superseded_reason,
)
from syncadmin.lib.clock import db_now
from syncadmin.models import AuditEntry
from tests.factories import DeadLetterFactory
from tests.messages.helpers import drain_all, env
from tests.messages.test_concurrency import run_threads

S = MessageState
T = TriageStatus
pytestmark = pytest.mark.django_db
REASON_KEY = "ValueError: price # is negative"


def history(grouping="reason", key=REASON_KEY):
    return list(
        DeadLetterGroupEvent.objects.filter(grouping=grouping, key=key)
        .order_by("at", "pk")
        .values_list("kind", "from_status", "to_status")
    )


def test_a_triage_change_writes_the_group_history_and_an_audit_entry():
    deadletter_group_triage_set(
        grouping="reason", key=REASON_KEY, actor="user:sam", status=T.ON_HOLD, ticket_url="https://jira.example/OPS-1"
    )
    triage = DeadLetterGroupNote.objects.get(grouping="reason", key=REASON_KEY)
    assert (triage.status, triage.ticket_url) == (T.ON_HOLD, "https://jira.example/OPS-1")
    assert triage.updated_by == "user:sam"
    event = DeadLetterGroupEvent.objects.get()
    assert (event.kind, event.from_status, event.to_status, event.actor) == ("triage", T.NEW, T.ON_HOLD, "user:sam")
    assert "ticket: – → https://jira.example/OPS-1" in event.detail
    audit = AuditEntry.objects.get(action="deadletter.triage")
    assert audit.detail["status"] == {"from": "new", "to": "on_hold"}
    # The same values again change nothing and write nothing.
    deadletter_group_triage_set(grouping="reason", key=REASON_KEY, actor="user:sam", status=T.ON_HOLD)
    assert DeadLetterGroupEvent.objects.count() == 1
    assert AuditEntry.objects.filter(action="deadletter.triage").count() == 1


@pytest.mark.parametrize("url", ["javascript:alert(1)", "ftp://files.example/x", "not a url", "http://"])
def test_a_ticket_link_must_be_http_or_https(url):
    with pytest.raises(ActionRefused) as refused:
        deadletter_group_triage_set(grouping="reason", key=REASON_KEY, actor="user:sam", ticket_url=url)
    assert refused.value.field == "ticket_url"
    assert not DeadLetterGroupNote.objects.exists() and not DeadLetterGroupEvent.objects.exists()


def test_an_unknown_status_or_grouping_is_refused():
    with pytest.raises(ActionRefused, match="unknown status"):
        deadletter_group_triage_set(grouping="reason", key=REASON_KEY, actor="user:sam", status="closed")
    with pytest.raises(ActionRefused, match="unknown grouping"):
        deadletter_group_triage_set(grouping="colour", key=REASON_KEY, actor="user:sam", status=T.NEW)


def test_take_it_makes_the_user_the_owner_and_a_new_group_investigating():
    deadletter_group_take(grouping="reason", key=REASON_KEY, actor="user:sam", username="sam")
    triage = DeadLetterGroupNote.objects.get()
    assert (triage.owner, triage.status) == ("sam", T.INVESTIGATING)
    # A group on hold stays on hold when someone else takes it over.
    deadletter_group_triage_set(grouping="reason", key=REASON_KEY, actor="user:sam", status=T.ON_HOLD)
    deadletter_group_take(grouping="reason", key=REASON_KEY, actor="user:ann", username="ann")
    triage.refresh_from_db()
    assert (triage.owner, triage.status) == ("ann", T.ON_HOLD)


def test_the_note_keeps_working_and_is_in_the_history():
    deadletter_group_note_set(grouping="reason", key=REASON_KEY, note="price list sync bug", actor="user:sam")
    assert DeadLetterGroupEvent.objects.get().detail == "note: – → price list sync bug"


def dead_letter(terminal, mid, key="K", seq=1):
    services.message_ingest_batch(
        terminal=terminal, envelopes=[Envelope(mid, "product.upsert", key, seq, datetime.now(UTC), "{not json")]
    )
    drain_all()
    return Message.objects.get(message_id=mid)


def test_a_dead_letter_in_a_fixed_group_sends_it_back_to_new_with_a_recurred_event(terminal):
    first = dead_letter(terminal, "a")
    key = DeadLetter.objects.get(message=first).group_key
    deadletter_group_triage_set(grouping="reason", key=key, actor="user:sam", status=T.FIXED, owner="sam")
    dead_letter(terminal, "b")  # the fix did not hold: the first is still open, but the group was "fixed"
    triage = DeadLetterGroupNote.objects.get(grouping="reason", key=key)
    assert (triage.status, triage.owner) == (T.NEW, "sam")  # back to new; the owner and ticket are kept
    assert history(key=key) == [("triage", T.NEW, T.FIXED), ("recurred", T.FIXED, T.NEW)]


def test_a_group_that_had_gone_recurs_whatever_its_status_and_an_open_one_does_not(terminal):
    first = dead_letter(terminal, "a")
    key = DeadLetter.objects.get(message=first).group_key
    deadletter_group_triage_set(grouping="reason", key=key, actor="user:sam", status=T.INVESTIGATING)
    deadletter_group_triage_set(grouping="terminal", key=terminal.code, actor="user:sam", status=T.ON_HOLD)
    dead_letter(terminal, "b")  # the group is still open and not fixed: nothing recurs
    assert set(DeadLetterGroupNote.objects.values_list("status", flat=True)) == {T.INVESTIGATING, T.ON_HOLD}
    message_operator_retry(message_ids=list(Message.objects.values_list("pk", flat=True)), actor="user:sam")
    drain_all()  # the retries dead-letter again (bad JSON): each lands in a group whose others were resolved
    assert set(DeadLetterGroupNote.objects.values_list("status", flat=True)) == {T.NEW}
    assert history(key=key)[-1] == ("recurred", T.INVESTIGATING, T.NEW)
    assert history("terminal", terminal.code)[-1] == ("recurred", T.ON_HOLD, T.NEW)
    assert DeadLetterGroupEvent.objects.filter(kind="recurred").count() == 2  # once per group, not per message


def test_superseded_dead_letters_are_discarded_after_a_recheck_and_can_be_restored(terminal):
    services.message_ingest_batch(terminal=terminal, envelopes=[env("applied", key="K", seq=5)])
    drain_all()
    older = dead_letter(terminal, "older", key="K", seq=3)
    equal = dead_letter(terminal, "equal", key="K", seq=5)  # an equal sequence is a no-op too
    newer = dead_letter(terminal, "newer", key="K", seq=7)
    other = dead_letter(terminal, "other", key="OTHER", seq=1)
    retried = dead_letter(terminal, "retried", key="K", seq=2)
    message_operator_retry(message_ids=[retried.pk], actor="user:ann")  # retried after the operator counted
    ids = [older.pk, equal.pk, newer.pk, other.pk, retried.pk]
    reason = superseded_reason({older.pk: 5, equal.pk: 5})
    assert reason.startswith("superseded: the entity already holds sequence 5 from the same terminal")
    outcome = deadletter_superseded_discard(message_ids=ids, actor="user:sam", reason=reason, detail={"group": "x"})
    assert (outcome.candidates, outcome.superseded, outcome.discarded) == (4, 2, 2)
    states = dict(Message.objects.filter(pk__in=ids).values_list("message_id", "state"))
    assert states == {"older": S.DISCARDED, "equal": S.DISCARDED, "newer": S.DEAD_LETTERED,
                      "other": S.DEAD_LETTERED, "retried": S.RECEIVED}  # fmt: skip
    assert set(DeadLetter.objects.filter(resolution="discarded").values_list("message__message_id", flat=True)) == {
        "older",
        "equal",
    }
    audit = AuditEntry.objects.get(action="message.discard")
    assert (audit.count, audit.reason, audit.actor) == (2, reason, "user:sam")
    assert audit.detail["superseded"] is True and sorted(audit.detail["ids"]) == sorted([older.pk, equal.pk])
    assert services.message_restore(message_ids=[older.pk], actor="user:sam") == 1  # still restorable


def test_discarding_superseded_ones_needs_a_reason(terminal):
    dl = DeadLetterFactory(message__terminal=terminal)
    with pytest.raises(ActionRefused):
        deadletter_superseded_discard(message_ids=[dl.message.pk], actor="user:sam", reason="  ")
    assert Message.objects.get(pk=dl.message.pk).state == S.DEAD_LETTERED


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_dead_letters_racing_into_a_fixed_group_recur_it_once(terminal):
    """The second worker read "fixed" before the first committed: its compare-and-set finds "new" and writes nothing."""
    services.message_ingest_batch(
        terminal=terminal,
        envelopes=[Envelope(m, "product.upsert", m, 1, datetime.now(UTC), "{}") for m in ("a", "b")],
    )
    first, second = services.message_claim(worker="w1", limit=2)
    deadletter_group_triage_set(grouping="terminal", key=terminal.code, actor="user:sam", status=T.FIXED)
    first_done = threading.Event()

    def worker(i):
        message = (first, second)[i]
        if i == 1:
            first_done.wait(10)  # the first holds the group's row, uncommitted
        with transaction.atomic():
            failures.message_dead_letter(message, actor=f"w{i}", reason="boom", error_class="ValueError", now=db_now())
            if i == 0:
                first_done.set()
                time.sleep(0.5)  # the second reads "fixed" meanwhile, then waits for this row lock

    run_threads(2, worker)
    assert set(Message.objects.values_list("state", flat=True)) == {S.DEAD_LETTERED}
    assert history("terminal", terminal.code) == [("triage", T.NEW, T.FIXED), ("recurred", T.FIXED, T.NEW)]
