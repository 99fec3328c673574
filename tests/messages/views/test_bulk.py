"""The console's throttle field (bulk and group retry) and a job's Pause / Resume buttons (messages/views/bulk.py)."""

from datetime import UTC, datetime, timedelta

import pytest

from messages.models import BulkJob, BulkJobState, Message, MessageState
from syncadmin.models import AuditEntry
from tests.factories import BulkJobFactory, DeadLetterFactory

S = MessageState
J = BulkJobState
pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}
GROUP = {"action": "retry", "scope": "filter", "query": "state=DeadLettered&group=ValueError%3A+price+%23+is+negative"}


def test_group_retry_confirm_offers_a_rate_and_a_throttled_retry_becomes_a_job(login_as, enqueued):
    DeadLetterFactory.create_batch(6)
    client = login_as("Support")
    confirm = client.post("/messages/bulk/", GROUP, **HX)
    assert b'name="rate"' in confirm.content and not confirm.context["background"]  # 6 is under the threshold
    with_rate = client.post("/messages/bulk/", {**GROUP, "rate": "2"}, **HX)
    assert with_rate.context["background"] and b"at 2 msg/s" in with_rate.content
    started = client.post("/messages/bulk/", {**GROUP, "rate": "2", "confirmed": "1", "reason": "fixed"}, **HX)
    job = BulkJob.objects.get()
    assert job.rate == 2 and job.reason == "fixed"
    assert b"throttled to 2 msg/s" in started.content and b'id="bulk-job-pause"' in started.content
    assert Message.objects.filter(state=S.DEAD_LETTERED).count() == 6


def test_the_discard_confirm_has_no_rate(login_as):
    DeadLetterFactory.create_batch(2)
    confirm = login_as("Support").post("/messages/bulk/", {**GROUP, "action": "discard"}, **HX)
    assert b'name="rate"' not in confirm.content


@pytest.mark.parametrize(
    "rate,says",
    [("0", "at least 1 message per second"), ("10001", "at most 10,000 messages per second"),
     ("fast", "a whole number of messages per second"), ("2.5", "a whole number of messages per second")],
)  # fmt: skip
def test_a_bad_rate_is_a_form_error_and_changes_nothing(login_as, enqueued, rate, says):
    DeadLetterFactory.create_batch(3)
    response = login_as("Support").post("/messages/bulk/", {**GROUP, "rate": rate, "confirmed": "1"}, **HX)
    assert response.status_code == 200 and says in response.content.decode()
    assert not BulkJob.objects.exists() and Message.objects.filter(state=S.DEAD_LETTERED).count() == 3


def test_pause_then_resume_from_the_panel(login_as, enqueued, django_capture_on_commit_callbacks):
    job = BulkJobFactory(state=J.RUNNING, runner="t", total=100, done=40, started_at=datetime.now(UTC), rate=10)
    client = login_as("Support")
    running = client.get(f"/bulk-jobs/{job.pk}/", **HX)
    assert b'id="bulk-job-pause"' in running.content and b'id="bulk-job-resume"' not in running.content
    assert b"throttled to 10 msg/s" in running.content and b"left" in running.content
    paused = client.post(f"/bulk-jobs/{job.pk}/pause/", {"reason": "the store is slow"}, **HX)
    assert paused.status_code == 200 and BulkJob.objects.get(pk=job.pk).state == J.PAUSED
    body = paused.content.decode()
    assert 'id="bulk-job-paused"' in body and "Paused by user:support" in body and "the store is slow" in body
    assert 'id="bulk-job-resume"' in body and 'id="bulk-job-pause"' not in body and "Cancel job" in body
    assert 'hx-trigger="every 5s"' in body  # still polled (another operator may resume), less often
    again = client.post(f"/bulk-jobs/{job.pk}/pause/", **HX)
    assert again.status_code == 409 and b"only a pending or running job can be paused" in again.content
    with django_capture_on_commit_callbacks(execute=True):
        resumed = client.post(f"/bulk-jobs/{job.pk}/resume/", **HX)
    assert resumed.status_code == 200 and BulkJob.objects.get(pk=job.pk).state == J.RUNNING
    assert enqueued == [(job.pk, BulkJob.objects.get(pk=job.pk).runner)]
    assert [e.action for e in AuditEntry.objects.order_by("pk")] == ["bulk_job.pause", "bulk_job.resume"]


def test_a_too_long_pause_reason_is_a_message_not_a_pause(login_as):
    job = BulkJobFactory(state=J.RUNNING, runner="t")
    response = login_as("Support").post(f"/bulk-jobs/{job.pk}/pause/", {"reason": "x" * 1001}, **HX)
    assert response.status_code == 400 and b"at most 1000 characters" in response.content
    assert BulkJob.objects.get(pk=job.pk).state == J.RUNNING


def test_a_viewer_sees_a_paused_job_but_no_buttons(login_as):
    job = BulkJobFactory(state=J.PAUSED, paused_at=datetime.now(UTC) - timedelta(minutes=3), paused_by="user:ops")
    viewer = login_as("Viewers")
    page = viewer.get(f"/bulk-jobs/{job.pk}/")
    assert page.status_code == 200 and b"Paused by user:ops" in page.content
    assert b'id="bulk-job-resume"' not in page.content and b"Cancel job" not in page.content
    listing = viewer.get("/bulk-jobs/")
    assert b"job-paused" in listing.content and b"paused by user:ops" in listing.content
    for act in ("resume", "cancel", "pause"):
        assert viewer.post(f"/bulk-jobs/{job.pk}/{act}/", **HX).status_code == 403
    assert BulkJob.objects.get(pk=job.pk).state == J.PAUSED and not AuditEntry.objects.exists()
