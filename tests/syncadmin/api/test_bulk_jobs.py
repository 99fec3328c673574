"""Bulk jobs through the API: list (newest first, cursors), progress, cancel (once; 409 after), pause, resume, rate."""

from datetime import UTC, datetime

import pytest

from messages.models import BulkJob, BulkJobState
from syncadmin.models import AuditEntry
from tests.factories import BulkJobFactory, DeadLetterFactory
from tests.syncadmin.api.conftest import assert_problem

pytestmark = pytest.mark.django_db


def test_list_get_and_cancel(admin_api):
    jobs = [BulkJobFactory() for _ in range(3)]
    listed = admin_api.get("/bulk-jobs", {"limit": 2}).json()
    assert [j["id"] for j in listed["items"]] == [jobs[2].pk, jobs[1].pk]
    rest = admin_api.get("/bulk-jobs", {"limit": 2, "after": listed["page"]["next"]}).json()
    assert [j["id"] for j in rest["items"]] == [jobs[0].pk]
    one = admin_api.get(f"/bulk-jobs/{jobs[0].pk}").json()
    assert one["state"] == "Pending" and one["progress"]["done"] == 0 and one["progress"]["total"] is None
    cancelled = admin_api.post(f"/bulk-jobs/{jobs[0].pk}/cancel").json()
    assert cancelled["state"] == BulkJobState.CANCELLED and cancelled["cancel_requested"] is True
    assert_problem(admin_api.post(f"/bulk-jobs/{jobs[0].pk}/cancel"), 409)
    assert AuditEntry.objects.get(object_type="bulk_job").detail["cancelled_by"] == f"user:{admin_api.user.username}"
    assert_problem(admin_api.get("/bulk-jobs/424242"), 404)


def test_support_may_not_cancel_a_restore_job(api_as):
    job = BulkJobFactory(action="restore")
    assert_problem(api_as("Support").post(f"/bulk-jobs/{job.pk}/cancel"), 403)
    job.refresh_from_db()
    assert job.state == BulkJobState.PENDING


def test_pause_resume_and_cancel_a_paused_job(admin_api, django_capture_on_commit_callbacks):
    job = BulkJobFactory(state=BulkJobState.RUNNING, runner="t", total=10, done=4, rate=5, started_at=datetime.now(UTC))
    paused = admin_api.post(f"/bulk-jobs/{job.pk}/pause", {"reason": "store is slow"}).json()
    assert paused["state"] == "Paused" and paused["pause_reason"] == "store is slow" and paused["paused_at"]
    assert paused["rate"] == 5 and paused["progress"]["limit"] == 5 and paused["progress"]["eta_seconds"] is None
    assert_problem(admin_api.post(f"/bulk-jobs/{job.pk}/pause", {}), 409)
    with django_capture_on_commit_callbacks(execute=False):
        resumed = admin_api.post(f"/bulk-jobs/{job.pk}/resume", {}).json()
    assert resumed["state"] == "Running" and resumed["paused_at"] is None
    assert_problem(admin_api.post(f"/bulk-jobs/{job.pk}/resume", {}), 409)
    admin_api.post(f"/bulk-jobs/{job.pk}/pause", {})
    assert admin_api.post(f"/bulk-jobs/{job.pk}/cancel").json()["state"] == BulkJobState.CANCELLED
    actions = list(AuditEntry.objects.filter(object_type="bulk_job").order_by("pk").values_list("action", flat=True))
    assert actions == ["bulk_job.pause", "bulk_job.resume", "bulk_job.pause", "message.retry"]


@pytest.mark.parametrize("rate", [0, 10_001, 2.5, "fast"])
def test_a_bad_rate_is_a_400_that_names_the_field(admin_api, rate):
    assert_problem(admin_api.post("/messages/actions", {"action": "retry", "ids": [1], "rate": rate}), 400, "body.rate")
    group = {"by": "reason", "key": "k", "action": "retry", "rate": rate}
    assert_problem(admin_api.post("/dead-letters/groups/actions", group), 400, "body.rate")
    assert not BulkJob.objects.exists()


def test_a_throttled_group_retry_becomes_a_job_with_its_rate(admin_api, settings):
    DeadLetterFactory.create_batch(3)
    body = {"by": "reason", "key": "ValueError: price # is negative", "action": "retry", "rate": 2}
    response = admin_api.post("/dead-letters/groups/actions", body)
    assert response.status_code == 202
    job = response.json()["job"]
    assert job["rate"] == 2 and job["progress"]["limit"] == 2
