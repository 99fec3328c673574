"""Dead-letter groups through the API: counts, first/last seen, notes; an action on a whole group."""

from datetime import UTC, datetime, timedelta

import pytest

from messages.models import DeadLetterGroupNote, Message, MessageState
from syncadmin.models import AuditEntry
from tests.factories import DeadLetterFactory, TerminalFactory
from tests.syncadmin.api.conftest import assert_problem

pytestmark = pytest.mark.django_db


@pytest.fixture
def groups():
    t1, t2 = TerminalFactory(code="DL1"), TerminalFactory(code="DL2")
    early = datetime.now(UTC) - timedelta(hours=2)
    price = [DeadLetterFactory(message__terminal=t1, dead_lettered_at=early)] + [
        DeadLetterFactory(message__terminal=t2) for _ in range(2)
    ]
    other = DeadLetterFactory(message__terminal=t1, group_key="KeyError: sku #", error_class="KeyError")
    return {"price": price, "other": other, "early": early}


def test_groups_with_counts_first_last_seen_and_notes(admin_api, groups):
    DeadLetterGroupNote.objects.create(grouping="reason", key="ValueError: price # is negative", note="see INC-1")
    body = admin_api.get("/dead-letters/groups").json()
    assert body["total"] == 4 and body["grouping"] == "reason"
    first = body["groups"][0]
    assert (first["key"], first["count"], first["note"]) == ("ValueError: price # is negative", 3, "see INC-1")
    assert datetime.fromisoformat(first["first_seen"]) == groups["early"]  # exact, to the microsecond
    by_terminal = admin_api.get("/dead-letters/groups", {"by": "terminal"}).json()["groups"]
    assert {(g["key"], g["count"]) for g in by_terminal} == {("DL1", 2), ("DL2", 2)}
    assert_problem(admin_api.get("/dead-letters/groups", {"by": "colour"}), 400, "query.by")


def test_note_is_written_and_audited(admin_api, groups):
    response = admin_api.post(
        "/dead-letters/groups/note", {"grouping": "reason", "key": "KeyError: sku #", "note": "x"}
    )
    assert response.json()["note"] == "x" and response.json()["updated_by"] == f"user:{admin_api.user.username}"
    assert AuditEntry.objects.filter(action="deadletter.note", object_id="KeyError: sku #").count() == 1


def test_act_on_a_group_dry_run_then_for_real(admin_api, groups):
    body = {"by": "reason", "key": "ValueError: price # is negative", "action": "retry"}
    dry = admin_api.post("/dead-letters/groups/actions", {**body, "dry_run": True}).json()
    assert dry["count"] == 3
    done = admin_api.post("/dead-letters/groups/actions", body).json()
    assert done["changed"] == dry["count"]
    assert Message.objects.filter(state=MessageState.DEAD_LETTERED).get() == groups["other"].message
    by_terminal = {"by": "terminal", "key": "DL1", "action": "discard", "reason": "terminal replaced"}
    assert admin_api.post("/dead-letters/groups/actions", by_terminal).json()["changed"] == 1
    assert_problem(admin_api.post("/dead-letters/groups/actions", {**by_terminal, "key": "NOPE"}), 400, "body.key")
    assert_problem(admin_api.post("/dead-letters/groups/actions", {**by_terminal, "reason": ""}), 400, "body.reason")
