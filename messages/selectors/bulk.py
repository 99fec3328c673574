"""Reads for background bulk jobs: a job's progress, the list of jobs, the ones not ended (paused too)."""

from __future__ import annotations

from dataclasses import dataclass

from django.utils import timezone

from messages.models import BulkJob, BulkJobState


@dataclass
class Progress:
    total: int | None  # None until the worker has counted the selection
    done: int
    changed: int
    percent: float
    rate: float | None  # messages per second since the job started, paused time left out
    eta_seconds: float | None  # None while paused or before the job has a pace
    elapsed_seconds: float | None  # since it started, paused time included
    limit: int | None  # the job's throttle (messages per second), None: none
    paused_seconds: float  # paused so far, the pause under way included


def bulk_job_progress(*, job: BulkJob) -> Progress:
    """done / total / rate / time left of a job, as the progress partial shows them.

    The rate is over the time the job ran (a pause is not slowness); the time left is the
    messages left at that rate, or at the throttle while the job has no rate of its own yet.
    """
    end = job.finished_at or timezone.now()
    elapsed = (end - job.started_at).total_seconds() if job.started_at else None
    paused = job.paused_seconds or 0.0
    if job.state == BulkJobState.PAUSED and job.paused_at:
        paused += max((end - job.paused_at).total_seconds(), 0.0)
    running = max(elapsed - paused, 0.0) if elapsed is not None else None
    rate = job.done / running if running and job.done else None
    pace = min(rate, job.rate) if rate and job.rate else rate or job.rate
    remaining = max((job.total or 0) - job.done, 0)
    eta = (
        remaining / pace
        if pace and job.total is not None and not job.finished and job.state != BulkJobState.PAUSED
        else None
    )
    if job.total:
        percent = min(100.0, 100.0 * job.done / job.total)
    else:
        percent = 100.0 if job.state == BulkJobState.DONE else 0.0
    return Progress(job.total, job.done, job.changed, round(percent, 1), rate, eta, elapsed, job.rate, round(paused, 2))


def bulk_job_list_queryset():
    return BulkJob.objects.order_by("-created_at", "-pk")


def bulk_jobs_active() -> list[BulkJob]:
    open_states = (BulkJobState.PENDING, BulkJobState.RUNNING, BulkJobState.PAUSED)
    return list(BulkJob.objects.filter(state__in=open_states).order_by("pk"))
