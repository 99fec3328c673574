"""syncadmin/api/pauses.py: list, pause and resume through the API, audited as from the console."""

from datetime import UTC, datetime

import pytest

from messages.models import PARK_OFFSET, MessageState, QueuePause
from syncadmin.models import AuditEntry
from tests.factories import MessageFactory, QueuePauseFactory
from tests.syncadmin.api.conftest import assert_problem

pytestmark = pytest.mark.django_db


def test_pause_list_and_resume(admin_api):
    MessageFactory(message_type="price.upsert")
    response = admin_api.post("/pauses", {"scope": "message_type", "value": "price.upsert", "reason": "bug 42"})
    assert response.status_code == 201, response.content
    created = response.json()
    assert (created["scope"], created["value"], created["reason"]) == ("message_type", "price.upsert", "bug 42")
    items = admin_api.get("/pauses").json()["items"]
    assert [(p["id"], p["waiting"], p["waiting_more"]) for p in items] == [(created["id"], 1, False)]
    response = admin_api.post(f"/pauses/{created['id']}/resume", {"reason": "fixed"})
    assert response.status_code == 200 and response.json()["value"] == "price.upsert"
    assert not QueuePause.objects.exists()
    actions = AuditEntry.objects.filter(action__startswith="queue.").order_by("pk")
    assert list(actions.values_list("action", flat=True)) == ["queue.pause", "queue.resume"]


def test_bad_input_is_a_problem_with_the_field_at_fault(admin_api):
    assert_problem(
        admin_api.post("/pauses", {"scope": "message_type", "value": "nope", "reason": "r"}), 400, "body.value"
    )
    assert_problem(
        admin_api.post("/pauses", {"scope": "terminal", "value": "NO-SUCH", "reason": "r"}), 400, "body.value"
    )
    assert admin_api.post("/pauses", {"scope": "galaxy", "value": "x", "reason": "r"}).status_code == 400
    assert admin_api.post("/pauses", {"scope": "entity_type", "value": "price", "reason": ""}).status_code == 400
    assert not QueuePause.objects.exists()


def test_pausing_twice_is_a_conflict_and_resuming_twice_not_found(admin_api):
    pause = QueuePauseFactory()
    response = admin_api.post("/pauses", {"scope": "message_type", "value": "price.upsert", "reason": "r"})
    assert response.status_code == 409 and "paused already" in response.json()["detail"]
    assert admin_api.post(f"/pauses/{pause.pk}/resume", {}).status_code == 200
    assert admin_api.post(f"/pauses/{pause.pk}/resume", {}).status_code == 404


def test_a_parked_message_reads_with_its_own_due_time_and_paused(admin_api):
    due = datetime(2026, 12, 4, 9, 30, 15, 123456, tzinfo=UTC)
    parked = MessageFactory(state=MessageState.RECEIVED, next_attempt_at=due + PARK_OFFSET)
    waiting = MessageFactory(state=MessageState.RECEIVED, next_attempt_at=due)
    for message, paused in ((parked, True), (waiting, False)):
        body = admin_api.get(f"/messages/{message.pk}").json()
        assert (datetime.fromisoformat(body["next_attempt_at"]), body["paused"]) == (due, paused)
    listed = {m["id"]: m["paused"] for m in admin_api.get("/messages").json()["items"]}
    assert listed == {parked.pk: True, waiting.pk: False}
