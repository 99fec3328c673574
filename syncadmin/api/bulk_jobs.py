"""Background bulk jobs: list, progress, pause, resume, cancel (messages/services/bulk*.py, the console's job pages)."""

# No `from __future__ import annotations`: ninja reads the endpoints' annotations through the
# idempotency wrapper, whose module cannot resolve these names from text.
from datetime import datetime
from typing import Annotated

from django.shortcuts import get_object_or_404
from ninja import Field, Path, Query, Router, Schema

from messages.models import ACTION_PERMS, BulkJob
from messages.selectors import bulk as bulk_selectors
from messages.services.bulk import BulkRefused, bulk_job_cancel
from messages.services.bulk_control import bulk_job_pause, bulk_job_resume
from syncadmin.api.auth import actor_of, require
from syncadmin.api.fields import Text
from syncadmin.api.idempotency import idempotent
from syncadmin.api.paging import LIMIT_MAX, PageInfo, page_of
from syncadmin.api.problems import COMMON, Problem, ProblemError
from syncadmin.lib.validation import ID_MAX

VIEW_JOBS = "queue_messages.view_bulkjob"
JobId = Annotated[int, Path(ge=1, le=ID_MAX)]

router = Router(tags=["bulk jobs"])


class ProgressOut(Schema):
    total: int | None
    done: int
    changed: int
    percent: float
    rate: float | None = Field(description="messages per second since the job started, paused time left out")
    eta_seconds: float | None = Field(description="time left at that rate (or the throttle); null while paused")
    elapsed_seconds: float | None
    limit: int | None = Field(None, description="the job's throttle, messages per second; null: none")
    paused_seconds: float = Field(0.0, description="time spent paused so far")


class BulkJobOut(Schema):
    id: int
    action: str
    state: str
    scope: str
    filters: dict[str, str]
    actor: str
    reason: str
    error: str
    cancel_requested: bool
    rate: int | None = Field(None, description="throttle: at most this many messages per second")
    paused_at: datetime | None = Field(None, description="Paused: since when")
    paused_by: str = ""
    pause_reason: str = ""
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    progress: ProgressOut


class BulkJobPage(Schema):
    items: list[BulkJobOut]
    page: PageInfo


def job_out(job: BulkJob) -> BulkJobOut:
    progress = bulk_selectors.bulk_job_progress(job=job)
    return BulkJobOut(
        id=job.pk, action=job.action, state=job.state, scope=str(job.params.get("scope", "")),
        filters={str(k): str(v) for k, v in (job.params.get("filters") or {}).items()},
        actor=job.actor, reason=job.reason, error=job.error, cancel_requested=job.cancel_requested,
        rate=job.rate, paused_at=job.paused_at, paused_by=job.paused_by, pause_reason=job.pause_reason,
        created_at=job.created_at, started_at=job.started_at, finished_at=job.finished_at,
        progress=ProgressOut.model_validate(progress, from_attributes=True),
    )  # fmt: skip


class ListParams(Schema):
    after: Text | None = Field(None, max_length=4096)
    before: Text | None = Field(None, max_length=4096)
    limit: int = Field(50, ge=1, le=LIMIT_MAX)


@router.get("", response={200: BulkJobPage, **COMMON}, summary="List bulk jobs, newest first")
def bulk_job_list(request, params: Query[ListParams]):
    require(request, VIEW_JOBS)
    rows, info = page_of(
        bulk_selectors.bulk_job_list_queryset(), sort=None, allowed={"created_at": "created_at"},
        default="-created_at", limit=params.limit, after=params.after, before=params.before,
    )  # fmt: skip
    return BulkJobPage(items=[job_out(j) for j in rows], page=info)


@router.get("/{job_id}", response={200: BulkJobOut, 404: Problem, **COMMON}, summary="A bulk job and its progress")
def bulk_job_get(request, job_id: JobId):
    require(request, VIEW_JOBS)
    return job_out(get_object_or_404(BulkJob, pk=job_id))


@router.post(
    "/{job_id}/cancel",
    response={200: BulkJobOut, 404: Problem, 409: Problem, 422: Problem, **COMMON},
    summary="Cancel a bulk job",
)
@idempotent
def bulk_job_cancel_endpoint(request, job_id: JobId):
    require(request, VIEW_JOBS)
    job = get_object_or_404(BulkJob, pk=job_id)
    require(request, ACTION_PERMS[job.action])  # whoever may run the action may stop it, as in the console
    try:
        job = bulk_job_cancel(job_id=job.pk, actor=actor_of(request))
    except BulkRefused as exc:
        raise ProblemError(409, str(exc), kind="illegal-transition") from exc
    return job_out(job)


class HoldIn(Schema):
    reason: Text = Field("", max_length=1000, description="why (kept in the audit log)")


def _control(request, job_id: int, act, reason: str = "") -> BulkJobOut:
    require(request, VIEW_JOBS)
    job = get_object_or_404(BulkJob, pk=job_id)
    require(request, ACTION_PERMS[job.action])  # whoever may run the action may hold it, as in the console
    try:
        job = act(job_id=job.pk, actor=actor_of(request), reason=reason)
    except BulkRefused as exc:
        raise ProblemError(409, str(exc), kind="illegal-transition") from exc
    return job_out(job)


@router.post(
    "/{job_id}/pause",
    response={200: BulkJobOut, 404: Problem, 409: Problem, 422: Problem, **COMMON},
    summary="Pause a pending or running bulk job before its next chunk",
)
@idempotent
def bulk_job_pause_endpoint(request, job_id: JobId, body: HoldIn):
    return _control(request, job_id, bulk_job_pause, body.reason)


@router.post(
    "/{job_id}/resume",
    response={200: BulkJobOut, 404: Problem, 409: Problem, 422: Problem, **COMMON},
    summary="Resume a paused bulk job where it stopped",
)
@idempotent
def bulk_job_resume_endpoint(request, job_id: JobId, body: HoldIn):
    return _control(request, job_id, bulk_job_resume, body.reason)
