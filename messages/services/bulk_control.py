"""An operator's hold on a background bulk job: pause it, resume it (cancel is in bulk.py).

A pause is a compare-and-set from Pending or Running to Paused that also clears the job's runner
token: the task running it (or asleep between throttled chunks) loses its next chunk's commit and
stops, so the chunk in flight is rolled back whole and done again on resume. The cursor
(``last_id``) and the frozen selection stay; resume hands the job to a new task with a new token
(on commit), which carries on from the cursor. Both are audited with actor, time and reason; the
paused time is kept (``paused_seconds``) so the progress leaves it out of the job's rate.
"""

from __future__ import annotations

import uuid

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from messages.models import BulkJob, BulkJobState
from messages.services.bulk import BulkRefused, bulk_job_enqueue_quietly
from syncadmin.services import audit_record

J = BulkJobState


def _audit(job: BulkJob, *, actor: str, action: str, reason: str, **detail) -> None:
    audit_record(
        actor=actor,
        action=f"bulk_job.{action}",
        object_type="bulk_job",
        object_id=str(job.pk),
        count=0,
        reason=reason,
        detail={"job": job.pk, "job_action": job.action, "done": job.done, "total": job.total, **detail},
    )


def bulk_job_pause(*, job_id: int, actor: str, reason: str = "") -> BulkJob:
    """Pause a Pending or Running job before its next chunk; BulkRefused if it is in no state to."""
    reason = (reason or "").strip()
    with transaction.atomic():
        job = BulkJob.objects.select_for_update().get(pk=job_id)
        if job.state not in (J.PENDING, J.RUNNING) or job.cancel_requested:
            state = "being cancelled" if job.cancel_requested and not job.finished else job.state
            raise BulkRefused(f"only a pending or running job can be paused (this one is {state})")
        paused = BulkJob.objects.filter(pk=job_id, state=job.state, cancel_requested=False).update(
            state=J.PAUSED, runner="", paused_at=timezone.now(), paused_by=actor[:150], pause_reason=reason
        )
        if not paused:
            raise BulkRefused("the job changed meanwhile; look again")
        _audit(job, actor=actor, action="pause", reason=reason, from_state=job.state)
    return BulkJob.objects.get(pk=job_id)


def bulk_job_resume(*, job_id: int, actor: str, reason: str = "") -> BulkJob:
    """Resume a Paused job from its cursor: a new task (new token) is enqueued once this commits."""
    reason = (reason or "").strip()
    with transaction.atomic():
        job = BulkJob.objects.select_for_update().get(pk=job_id)
        if job.state != J.PAUSED:
            raise BulkRefused(f"only a paused job can be resumed (this one is {job.state})")
        now = timezone.now()
        paused_for = (now - job.paused_at).total_seconds() if job.paused_at else 0.0
        token = uuid.uuid4().hex
        resumed = BulkJob.objects.filter(pk=job_id, state=J.PAUSED).update(
            state=J.RUNNING if job.started_at else J.PENDING,
            runner=token,
            paused_at=None,
            paused_seconds=F("paused_seconds") + paused_for,
            heartbeat_at=now,  # not "stalled" to the resume schedule before its task starts
        )
        if not resumed:
            raise BulkRefused("the job changed meanwhile; look again")
        _audit(job, actor=actor, action="resume", reason=reason, paused_s=round(paused_for, 2))
        transaction.on_commit(lambda: bulk_job_enqueue_quietly(job_id, token))
    return BulkJob.objects.get(pk=job_id)
