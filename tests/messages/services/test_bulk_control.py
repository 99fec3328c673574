"""Pausing and resuming a background bulk job (messages/services/bulk_control.py), and cancelling a paused one."""

from datetime import UTC, datetime, timedelta

import pytest

from messages import tasks
from messages.filtersets import message_filter_queryset
from messages.models import BulkJob, BulkJobState, Message, MessageState
from messages.services.bulk import BulkRefused, bulk_job_cancel, bulk_job_execute
from messages.services.bulk_control import bulk_job_pause, bulk_job_resume
from messages.services.bulk_pace import Pace
from syncadmin.models import AuditEntry
from tests.factories import BulkJobFactory, DeadLetterFactory

S = MessageState
J = BulkJobState
pytestmark = pytest.mark.django_db


def execute(**kwargs):
    return bulk_job_execute(message_filter=message_filter_queryset, **kwargs)


@pytest.fixture
def pause_after_first_chunk(monkeypatch):
    """An operator pauses the job while its task waits between its first and second chunk."""
    real = Pace.wait
    seen = []

    def wait(self, count):
        real(self, count)
        if not seen:
            seen.append(count)
            bulk_job_pause(job_id=BulkJob.objects.get().pk, actor="user:ops", reason="central store is slow")

    monkeypatch.setattr(Pace, "wait", wait)
    return seen


def audits(action):
    return list(AuditEntry.objects.filter(action=action).order_by("pk"))


def test_pause_stops_a_running_job_before_its_next_chunk_and_keeps_its_cursor(
    small_jobs, enqueued, pause_after_first_chunk
):
    DeadLetterFactory.create_batch(5)
    job = execute(job_id=BulkJobFactory().pk)
    assert (job.state, job.done, job.changed, job.runner) == (J.PAUSED, 2, 2, "")
    assert (job.paused_by, job.pause_reason) == ("user:ops", "central store is slow") and job.paused_at
    assert Message.objects.filter(state=S.DEAD_LETTERED).count() == 3
    entry = audits("bulk_job.pause")[0]
    assert (entry.actor, entry.object_id, entry.reason) == ("user:ops", str(job.pk), "central store is slow")
    assert entry.detail["from_state"] == J.RUNNING and entry.detail["done"] == 2
    assert not audits("message.retry")  # the job's own entry is written once, when it ends
    # A redelivered task (any old token) does nothing to a paused job.
    assert execute(job_id=job.pk, token="").done == 2


def test_resume_carries_on_from_the_cursor_with_a_new_task_once_committed(
    small_jobs, enqueued, pause_after_first_chunk, django_capture_on_commit_callbacks
):
    DeadLetterFactory.create_batch(5)
    job = execute(job_id=BulkJobFactory().pk)
    BulkJob.objects.filter(pk=job.pk).update(paused_at=datetime.now(UTC) - timedelta(seconds=30))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job = bulk_job_resume(job_id=job.pk, actor="user:lead", reason="store is back")
    assert not enqueued and len(callbacks) == 1  # enqueued only once the resume is committed
    callbacks[0]()
    assert enqueued == [(job.pk, job.runner)] and job.runner
    assert (job.state, job.paused_at) == (J.RUNNING, None) and job.paused_seconds >= 30
    entry = audits("bulk_job.resume")[0]
    assert (entry.actor, entry.reason) == ("user:lead", "store is back") and entry.detail["paused_s"] >= 30
    job = execute(job_id=job.pk, token=job.runner)
    assert (job.state, job.done, job.changed) == (J.DONE, 5, 5)
    assert Message.objects.filter(state=S.RECEIVED).count() == 5
    assert audits("message.retry")[0].detail["paused_s"] >= 30


def test_a_pending_job_can_be_paused_and_resumed_before_it_starts(small_jobs, enqueued):
    DeadLetterFactory.create_batch(4)
    job = bulk_job_pause(job_id=BulkJobFactory().pk, actor="user:ops")
    assert job.state == J.PAUSED and job.pause_reason == ""
    assert execute(job_id=job.pk).state == J.PAUSED  # its first task arrives: nothing happens
    assert Message.objects.filter(state=S.DEAD_LETTERED).count() == 4
    job = bulk_job_resume(job_id=job.pk, actor="user:ops")
    assert job.state == J.PENDING and job.started_at is None
    assert execute(job_id=job.pk, token="").state == J.PENDING  # the old task's token is void
    assert execute(job_id=job.pk, token=job.runner).state == J.DONE


@pytest.mark.parametrize("state", [J.PAUSED, J.DONE, J.CANCELLED, J.FAILED])
def test_only_a_pending_or_running_job_can_be_paused(state):
    job = BulkJobFactory(state=state)
    with pytest.raises(BulkRefused, match="only a pending or running job can be paused"):
        bulk_job_pause(job_id=job.pk, actor="user:ops")
    assert BulkJob.objects.get(pk=job.pk).state == state and not audits("bulk_job.pause")


def test_a_job_being_cancelled_cannot_be_paused():
    job = BulkJobFactory(state=J.RUNNING, runner="t", cancel_requested=True)
    with pytest.raises(BulkRefused, match="being cancelled"):
        bulk_job_pause(job_id=job.pk, actor="user:ops")
    assert BulkJob.objects.get(pk=job.pk).runner == "t"


@pytest.mark.parametrize("state", [J.PENDING, J.RUNNING, J.DONE, J.CANCELLED, J.FAILED])
def test_only_a_paused_job_can_be_resumed(state, enqueued):
    job = BulkJobFactory(state=state, runner="t")
    with pytest.raises(BulkRefused, match="only a paused job can be resumed"):
        bulk_job_resume(job_id=job.pk, actor="user:ops")
    assert BulkJob.objects.get(pk=job.pk).runner == "t" and not enqueued and not audits("bulk_job.resume")


def test_cancel_a_paused_job_ends_it_at_once_counting_its_pause(small_jobs, enqueued, pause_after_first_chunk):
    DeadLetterFactory.create_batch(5)
    job = execute(job_id=BulkJobFactory().pk)
    BulkJob.objects.filter(pk=job.pk).update(paused_at=datetime.now(UTC) - timedelta(seconds=20))
    job = bulk_job_cancel(job_id=job.pk, actor="user:boss")
    assert (job.state, job.done, job.cancelled_by) == (J.CANCELLED, 2, "user:boss") and job.paused_seconds >= 20
    assert not job.items.exists()
    entry = audits("message.retry")[0]
    assert entry.detail["state"] == J.CANCELLED and entry.detail["paused_s"] >= 20
    with pytest.raises(BulkRefused):
        bulk_job_resume(job_id=job.pk, actor="user:ops")
    assert Message.objects.filter(state=S.DEAD_LETTERED).count() == 3


def test_the_resume_schedule_leaves_a_paused_job_alone(enqueued):
    old = datetime.now(UTC) - timedelta(hours=1)
    BulkJobFactory(state=J.PAUSED, created_at=old, heartbeat_at=old, paused_at=old)
    assert tasks.bulk_jobs_resume() == 0 and not enqueued
