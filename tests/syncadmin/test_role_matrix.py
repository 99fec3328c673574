"""Every console action × every role: forbidden answers 403 and changes nothing; allowed is not 403.

The matrix is the access model of docs/console.md, "Who may do what" (and docs/reconciliation.md):
Viewers only read; Support retry, discard, annotate dead letters and run/resync/explain
reconciliation; Terminal admins also edit payloads, restore, manage terminals, rotate keys and
recount counters.
"""

from datetime import UTC, datetime

import pytest

from messages.models import BulkJob, Message, MessageState
from reconciliation.models import AlertRule, Discrepancy, ReconciliationRun
from syncadmin.models import AuditEntry
from terminals.models import Terminal
from tests.factories import BulkJobFactory, DeadLetterFactory, MessageFactory, TerminalFactory

S = MessageState
pytestmark = pytest.mark.django_db
ROLES = ["Viewers", "Support", "Terminal admins"]
SUPPORT_UP = {"Support", "Terminal admins"}
ADMINS = {"Terminal admins"}


@pytest.fixture
def objects():
    terminal = TerminalFactory(code="ROLE-T1")
    dead = DeadLetterFactory(message__terminal=terminal).message
    discarded = MessageFactory(terminal=terminal, state=S.DISCARDED)
    job = BulkJobFactory(params={"scope": "selected", "ids": [dead.pk]})
    run = ReconciliationRun.objects.create(trigger="command", triggered_by="test", created_at=datetime.now(UTC))
    discrepancy = Discrepancy.objects.create(
        run=run, terminal_code=terminal.code, entity_type="product", kind="gap",
        terminal_count=3, central_count=1, recount=1, in_flight=0, delta=2,
    )  # fmt: skip
    rule = AlertRule.objects.get(kind="backlog_overdue")
    return {"t": terminal, "dead": dead, "disc": discarded, "job": job, "d": discrepancy, "rule": rule}


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
    ("dead-letter note", "/dead-letters/note/", {"grouping": "reason", "key": "k", "note": "n"}, SUPPORT_UP),
    ("create terminal", "/terminals/new/", {"code": "ROLE-NEW"}, ADMINS),
    ("edit terminal", "/terminals/{t}/edit/", {"name": "renamed"}, ADMINS),
    ("disable terminal", "/terminals/{t}/enabled/", {"enabled": "0", "reason": "r"}, ADMINS),
    ("rotate key", "/terminals/{t}/rotate-key/", {"reason": "r"}, ADMINS),
    ("run reconciliation", "/reconciliation/run/", {}, SUPPORT_UP),
    ("request resync", "/reconciliation/resync/", {"terminal": "ROLE-T1", "entity_type": "product", "reason": "r"},
     SUPPORT_UP),
    ("explain discrepancy", "/reconciliation/discrepancies/{d}/explain/", {"note": "known"}, SUPPORT_UP),
    ("recount", "/reconciliation/recount/", {"terminal": "ROLE-T1", "entity_type": "product", "reason": "r"}, ADMINS),
    ("edit alert rule", "/alerts/rules/{rule}/edit/", {"enabled": "on", "threshold": "99", "for_minutes": "3"}, ADMINS),
]  # fmt: skip


def fill(value, objects):
    ids = {"dead": objects["dead"].pk, "disc": objects["disc"].pk, "job": objects["job"].pk}
    ids.update(t=objects["t"].pk, d=objects["d"].pk, rule=objects["rule"].pk)
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
        Discrepancy.objects.get(pk=objects["d"].pk).explained_note if hasattr(Discrepancy, "explained_note") else None,
        ReconciliationRun.objects.count(),
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
