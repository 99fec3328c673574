"""Messages through the API: the console's filters, keyset cursors at depth, one message with its lifecycle,
and every operator action on one message, a selection or a filter (dry run counts what the action changes)."""

from datetime import UTC, datetime, timedelta

import pytest

from messages.filtersets import message_filter_queryset
from messages.models import BulkJob, DeadLetter, Message, MessageEvent, MessageState
from messages.services.bulk import bulk_job_execute
from syncadmin.models import AuditEntry
from tests.factories import DeadLetterFactory, MessageFactory, TerminalFactory
from tests.syncadmin.api.conftest import assert_problem

S = MessageState
pytestmark = pytest.mark.django_db


def ids(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [m["id"] for m in response.json()["items"]]


def audits(action: str):
    return list(AuditEntry.objects.filter(action=action).order_by("pk"))


def test_list_uses_the_console_filters(admin_api):
    t1, t2 = TerminalFactory(code="F1"), TerminalFactory(code="F2")
    a = MessageFactory(terminal=t1, state=S.FAILED, last_error="KeyError: sku", message_type="price.upsert")
    b = MessageFactory(terminal=t2, state=S.FAILED)
    c = MessageFactory(terminal=t1, state=S.PROCESSED, received_at=datetime.now(UTC) - timedelta(days=10))
    assert set(ids(admin_api.get("/messages"))) == {a.pk, b.pk, c.pk}
    assert set(ids(admin_api.get("/messages", {"state": "Failed"}))) == {a.pk, b.pk}
    assert ids(admin_api.get("/messages", {"state": "Failed", "terminal": "F1"})) == [a.pk]
    assert ids(admin_api.get("/messages", {"error": "keyerror"})) == [a.pk]
    assert ids(admin_api.get("/messages", {"message_type": "price.upsert"})) == [a.pk]
    assert ids(admin_api.get("/messages", {"q": a.message_id})) == [a.pk]
    old = (datetime.now(UTC) - timedelta(days=5)).date().isoformat()
    assert ids(admin_api.get("/messages", {"received_before": old})) == [c.pk]
    assert_problem(admin_api.get("/messages", {"state": "Nope"}), 400, "query.state")
    assert_problem(admin_api.get("/messages", {"terminal": "NOT-A-TERMINAL"}), 400, "query.terminal")
    assert_problem(admin_api.get("/messages", {"sort": "payload"}), 400, "query.sort")


@pytest.mark.parametrize("sort", ["-received_at", "received_at", "state", "-attempts"])
def test_cursors_walk_every_row_once_at_depth_forwards_and_back(admin_api, sort):
    terminal = TerminalFactory()
    same = datetime.now(UTC)
    for i in range(95):  # ties on purpose: a third share one received time
        MessageFactory(terminal=terminal, received_at=same if i % 3 else same - timedelta(seconds=i), attempts=i % 4)
    field = sort.removeprefix("-")
    expected = list(
        Message.objects.order_by(*((f"-{field}", "-pk") if sort.startswith("-") else (field, "pk"))).values_list(
            "pk", flat=True
        )
    )
    pages, after = [], None
    while True:
        body = admin_api.get("/messages", {"sort": sort, "limit": 10, **({"after": after} if after else {})}).json()
        pages.append([m["id"] for m in body["items"]])
        after = body["page"]["next"]
        if not after:
            break
    assert [pk for page in pages for pk in page] == expected and len(pages) == 10
    # Back from the last page, page by page, to the first.
    before, back = body["page"]["previous"], [pages[-1]]
    while before:
        body = admin_api.get("/messages", {"sort": sort, "limit": 10, "before": before}).json()
        back.insert(0, [m["id"] for m in body["items"]])
        before = body["page"]["previous"]
    assert back == pages


def test_detail_has_payload_events_and_dead_letter(admin_api):
    dead = DeadLetterFactory()
    MessageEvent.objects.create(
        message=dead.message, from_state="", to_state=S.RECEIVED, at=datetime.now(UTC), actor="t"
    )
    body = admin_api.get(f"/messages/{dead.message.pk}").json()
    assert body["payload"] == dead.message.payload and body["state"] == "DeadLettered"
    assert datetime.fromisoformat(body["received_at"]) == dead.message.received_at  # to the microsecond
    assert body["events"][0]["to_state"] == "Received"
    assert body["dead_letter"]["group_key"] == dead.group_key
    assert_problem(admin_api.get("/messages/999999"), 404)
    assert_problem(admin_api.get(f"/messages/{2**70}"), 400)


def test_retry_discard_restore_one_message_audited_as_in_the_console(admin_api):
    message = DeadLetterFactory().message
    actor = f"user:{admin_api.user.username}"
    assert admin_api.post(f"/messages/{message.pk}/retry", {"reason": "fixed"}).json()["state"] == "Received"
    assert_problem(admin_api.post(f"/messages/{message.pk}/retry", {}), 409)  # Received: nothing to retry
    assert_problem(admin_api.post(f"/messages/{message.pk}/discard", {}), 400, "body.reason")
    assert_problem(admin_api.post(f"/messages/{message.pk}/discard", {"reason": "   "}), 400, "body.reason")
    assert admin_api.post(f"/messages/{message.pk}/discard", {"reason": "dup"}).json()["state"] == "Discarded"
    assert admin_api.post(f"/messages/{message.pk}/restore", {}).json()["state"] == "Received"
    for action, reason in [
        ("message.retry", "fixed"),
        ("message.discard", "dup"),
        ("message.restore", "restored from the console"),
    ]:
        (entry,) = audits(action)
        assert (entry.actor, entry.object_id, entry.count, entry.reason) == (actor, str(message.pk), 1, reason)
    assert MessageEvent.objects.filter(message=message, actor=actor).count() == 3


def test_edit_and_retry(admin_api):
    message = DeadLetterFactory().message
    bad = admin_api.post(f"/messages/{message.pk}/edit", {"payload": "{not json", "reason": "fix"})
    assert_problem(bad, 400, "body.payload")
    ok = admin_api.post(f"/messages/{message.pk}/edit", {"payload": '{"price": "2.00"}', "reason": "fix price"})
    assert ok.json()["payload"] == '{"price": "2.00"}' and ok.json()["state"] == "Received"
    assert DeadLetter.objects.get(message=message).resolution == "retried"
    assert audits("message.edit_payload")[0].detail["new_payload"] == '{"price": "2.00"}'
    assert_problem(admin_api.post(f"/messages/{message.pk}/edit", {"payload": "{}", "reason": "again"}), 409)


def test_bulk_on_a_selection_and_on_a_filter_dry_run_counts_what_then_changes(admin_api):
    terminal = TerminalFactory(code="BULK")
    failed = [MessageFactory(terminal=terminal, state=S.FAILED) for _ in range(6)]
    MessageFactory(terminal=terminal, state=S.PROCESSED)
    dry = admin_api.post("/messages/actions", {"action": "retry", "filter": {"terminal": "BULK"}, "dry_run": True})
    assert dry.json() == {"dry_run": True, "count": 6, "changed": None, "job": None}
    assert Message.objects.filter(state=S.FAILED).count() == 6  # a dry run changes nothing
    done = admin_api.post("/messages/actions", {"action": "retry", "filter": {"terminal": "BULK"}})
    assert done.json()["changed"] == 6
    (entry,) = audits("message.retry")
    assert entry.count == 6 and entry.detail["filters"] == {"terminal": "BULK"}
    selection = [failed[0].pk, failed[1].pk]
    dry = admin_api.post("/messages/actions", {"action": "discard", "ids": selection, "dry_run": True})
    assert dry.json()["count"] == 2
    assert_problem(admin_api.post("/messages/actions", {"action": "discard", "ids": selection}), 400, "body.reason")
    assert (
        admin_api.post("/messages/actions", {"action": "discard", "ids": selection, "reason": "r"}).json()["changed"]
        == 2
    )
    assert_problem(admin_api.post("/messages/actions", {"action": "retry"}), 400, "body.ids")
    assert_problem(admin_api.post("/messages/actions", {"action": "retry", "ids": [0]}), 400)
    assert_problem(
        admin_api.post("/messages/actions", {"action": "retry", "filter": {"state": "x"}}), 400, "body.filter.state"
    )


def test_a_large_action_becomes_a_bulk_job(admin_api, settings):
    settings.CONSOLE_BULK_JOB_THRESHOLD = 3
    for _ in range(5):
        MessageFactory(state=S.FAILED)
    dry = admin_api.post("/messages/actions", {"action": "retry", "filter": {"state": "Failed"}, "dry_run": True})
    response = admin_api.post("/messages/actions", {"action": "retry", "filter": {"state": "Failed"}})
    assert response.status_code == 202
    job = response.json()["job"]
    assert (
        job["state"] == "Pending" and job["action"] == "retry" and Message.objects.filter(state=S.FAILED).count() == 5
    )
    finished = bulk_job_execute(job_id=job["id"], message_filter=message_filter_queryset)
    assert finished.changed == dry.json()["count"] == 5
    progress = admin_api.get(f"/bulk-jobs/{job['id']}").json()
    assert progress["state"] == "Done" and progress["progress"]["changed"] == 5
    assert BulkJob.objects.get().actor == f"user:{admin_api.user.username}"
