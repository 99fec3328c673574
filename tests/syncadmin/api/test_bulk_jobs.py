"""Bulk jobs through the API: list (newest first, cursors), progress, cancel (once; 409 after)."""

import pytest

from messages.models import BulkJobState
from syncadmin.models import AuditEntry
from tests.factories import BulkJobFactory
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
