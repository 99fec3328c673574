"""Every console action × every role: forbidden answers 403 and changes nothing; allowed is not 403.

The matrix is the access model of docs/console.md, "Who may do what" (and docs/reconciliation.md):
Viewers only read (dead-letter groups and their triage, pauses, bulk jobs: they see a paused job but cannot
pause, resume or cancel it) and keep their own saved views; Support retry, discard (superseded dead letters
too), pause/resume/cancel their bulk jobs, pause and resume processing, annotate and triage dead-letter groups
and run/resync/explain reconciliation; Terminal admins also edit payloads, restore, manage terminals, rotate
keys, recount counters and save or delete the team's saved views.
"""

from datetime import UTC, datetime

import pytest

from messages.models import (
    BulkJob,
    BulkJobState,
    CentralEntity,
    DeadLetterGroupEvent,
    DeadLetterGroupNote,
    Message,
    MessageState,
    QueuePause,
    SavedView,
)
from reconciliation.models import AlertRule, Discrepancy, ReconciliationRun
from syncadmin.models import AuditEntry
from terminals.models import Terminal
from tests.factories import (
    BulkJobFactory,
    DeadLetterFactory,
    MessageFactory,
    QueuePauseFactory,
    SavedViewFactory,
    TerminalFactory,
    UserFactory,
)

S = MessageState
pytestmark = pytest.mark.django_db
ROLES = ["Viewers", "Support", "Terminal admins"]
SUPPORT_UP = {"Support", "Terminal admins"}
ADMINS = {"Terminal admins"}


@pytest.fixture
def objects():
    terminal = TerminalFactory(code="ROLE-T1")
    dead = DeadLetterFactory(message__terminal=terminal).message
    CentralEntity.objects.create(  # the dead letter is superseded: a discard of the superseded ones would take it
        entity_type=dead.entity_type, entity_key=dead.entity_key, terminal_code=terminal.code, data={},
        last_sequence=dead.sequence, updated_at=datetime.now(UTC),
    )  # fmt: skip
    discarded = MessageFactory(terminal=terminal, state=S.DISCARDED)
    job = BulkJobFactory(params={"scope": "selected", "ids": [dead.pk]})
    paused = BulkJobFactory(params={"scope": "selected", "ids": [dead.pk]}, state=BulkJobState.PAUSED)
    run = ReconciliationRun.objects.create(trigger="command", triggered_by="test", created_at=datetime.now(UTC))
    discrepancy = Discrepancy.objects.create(
        run=run, terminal_code=terminal.code, entity_type="product", kind="gap",
        terminal_count=3, central_count=1, recount=1, in_flight=0, delta=2,
    )  # fmt: skip
    team_view = SavedViewFactory(name="team", shared=True, owner=UserFactory(username="lead", group="Terminal admins"))
    pause = QueuePauseFactory(scope="entity_type", value="stock")
    rule = AlertRule.objects.get(kind="backlog_overdue")
    return {
        "t": terminal, "dead": dead, "disc": discarded, "job": job, "paused": paused, "d": discrepancy, "tv": team_view,
        "pause": pause, "rule": rule,
    }  # fmt: skip


# (name, url template, POST data, roles allowed)
ACTIONS = [
    ("retry", "/messages/{dead}/retry/", {"reason": "r"}, SUPPORT_UP),
    ("discard", "/messages/{dead}/discard/", {"reason": "r"}, SUPPORT_UP),
    ("edit & retry", "/messages/{dead}/edit/", {"payload": '{"a": 1}', "reason": "fix"}, ADMINS),
    ("restore", "/messages/{disc}/restore/", {"reason": "r"}, ADMINS),
    ("bulk retry", "/messages/bulk/", {"action": "retry", "scope": "selected", "select": ["{dead}"]}, SUPPORT_UP),
    ("bulk discard", "/messages/bulk/", {"action": "discard", "scope": "selected", "select": ["{dead}"], "reason": "r"},
     SUPPORT_UP),
    ("bulk restore", "/messages/bulk/", {"action": "restore", "scope": "selected", "select": ["{disc}"]}, ADMINS),
    ("cancel bulk job", "/bulk-jobs/{job}/cancel/", {}, SUPPORT_UP),
    ("pause bulk job", "/bulk-jobs/{job}/pause/", {"reason": "r"}, SUPPORT_UP),
    ("resume bulk job", "/bulk-jobs/{paused}/resume/", {"reason": "r"}, SUPPORT_UP),
    ("cancel paused bulk job", "/bulk-jobs/{paused}/cancel/", {}, SUPPORT_UP),
    ("throttled bulk retry", "/messages/bulk/",
     {"action": "retry", "scope": "selected", "select": ["{dead}"], "rate": "5", "confirmed": "1"}, SUPPORT_UP),
    ("dead-letter note", "/dead-letters/note/", {"grouping": "reason", "key": "k", "note": "n"}, SUPPORT_UP),
    ("take a dead-letter group", "/dead-letters/group/take/", {"by": "reason", "key": "k"}, SUPPORT_UP),
    ("triage a dead-letter group", "/dead-letters/group/triage/",
     {"by": "reason", "key": "k", "status": "on_hold", "owner": "x", "ticket_url": "https://t.example/1"}, SUPPORT_UP),
    ("discard superseded of a group", "/dead-letters/superseded/",
     {"by": "terminal", "key": "ROLE-T1", "confirmed": "1", "reason": "r"}, SUPPORT_UP),
    ("discard superseded of a selection", "/dead-letters/superseded/",
     {"select": ["{dead}"], "confirmed": "1", "reason": "r"}, SUPPORT_UP),
    ("create terminal", "/terminals/new/", {"code": "ROLE-NEW"}, ADMINS),
    ("edit terminal", "/terminals/{t}/edit/", {"name": "renamed"}, ADMINS),
    ("disable terminal", "/terminals/{t}/enabled/", {"enabled": "0", "reason": "r"}, ADMINS),
    ("rotate key", "/terminals/{t}/rotate-key/", {"reason": "r"}, ADMINS),
    ("run reconciliation", "/reconciliation/run/", {}, SUPPORT_UP),
    ("request resync", "/reconciliation/resync/", {"terminal": "ROLE-T1", "entity_type": "product", "reason": "r"},
     SUPPORT_UP),
    ("explain discrepancy", "/reconciliation/discrepancies/{d}/explain/", {"note": "known"}, SUPPORT_UP),
    ("pause", "/pauses/", {"scope": "message_type", "value": "price.upsert", "reason": "r"}, SUPPORT_UP),
    ("resume", "/pauses/{pause}/resume/", {"reason": "fixed"}, SUPPORT_UP),
    ("recount", "/reconciliation/recount/", {"terminal": "ROLE-T1", "entity_type": "product", "reason": "r"}, ADMINS),
    ("save a personal view", "/views/save/", {"name": "mine", "query": "state=Failed"}, set(ROLES)),
    ("save a team view", "/views/save/", {"name": "ours", "query": "state=Failed", "shared": "on"}, ADMINS),
    ("delete a team view", "/views/{tv}/delete/", {}, ADMINS),
    ("edit alert rule", "/alerts/rules/{rule}/edit/", {"enabled": "on", "threshold": "99", "for_minutes": "3"}, ADMINS),
]  # fmt: skip


def fill(value, objects):
    ids = {"dead": objects["dead"].pk, "disc": objects["disc"].pk, "job": objects["job"].pk}
    ids["paused"] = objects["paused"].pk
    ids.update(
        t=objects["t"].pk, d=objects["d"].pk, tv=objects["tv"].pk, pause=objects["pause"].pk, rule=objects["rule"].pk
    )
    if isinstance(value, list):
        return [fill(v, objects) for v in value]
    if isinstance(value, str):
        for key, pk in ids.items():
            value = value.replace("{" + key + "}", str(pk))
    return value


def snapshot(objects):
    t = Terminal.objects.get(pk=objects["t"].pk)
    return (
        list(Message.objects.order_by("pk").values_list("state", "payload")),
        (t.name, t.enabled, t.api_key_hash),
        Terminal.objects.count(),
        AuditEntry.objects.count(),
        BulkJob.objects.get(pk=objects["job"].pk).state,
        BulkJob.objects.get(pk=objects["paused"].pk).state,
        BulkJob.objects.count(),
        Discrepancy.objects.get(pk=objects["d"].pk).explained_note if hasattr(Discrepancy, "explained_note") else None,
        ReconciliationRun.objects.count(),
        list(DeadLetterGroupNote.objects.values_list("grouping", "key", "status", "owner", "ticket_url", "note")),
        DeadLetterGroupEvent.objects.count(),
        list(SavedView.objects.order_by("pk").values_list("name", "shared")),
        list(QueuePause.objects.order_by("pk").values_list("scope", "value")),
        list(AlertRule.objects.order_by("pk").values_list("enabled", "threshold", "for_minutes")),
    )


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name,url,data,allowed", ACTIONS, ids=[a[0] for a in ACTIONS])
def test_every_action_for_every_role(login_as, objects, role, name, url, data, allowed):
    client = login_as(role)
    before = snapshot(objects)
    response = client.post(fill(url, objects), {k: fill(v, objects) for k, v in data.items()})
    if role in allowed:
        assert response.status_code != 403, f"{role} should be allowed to {name}"
    else:
        assert response.status_code == 403, f"{role} must not {name}: got {response.status_code}"
        assert snapshot(objects) == before, f"a refused {name} changed something"


@pytest.mark.parametrize("role", ROLES)
def test_every_role_sees_a_dead_letter_group_and_only_support_gets_its_controls(login_as, objects, role):
    page = login_as(role).get("/dead-letters/group/?by=terminal&key=ROLE-T1")
    assert page.status_code == 200
    body = page.content.decode()
    assert 'id="superseded-count"' in body
    controls = ("triage-form", 'id="take-it"', 'id="discard-superseded"')
    assert all((c in body) == (role in SUPPORT_UP) for c in controls), role
