"""Reads for background bulk jobs: a job's progress, the list of jobs, the ones still running."""

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
    rate: float | None  # messages per second since the job started
    eta_seconds: float | None
    elapsed_seconds: float | None


def bulk_job_progress(*, job: BulkJob) -> Progress:
    """done / total / rate / ETA of a job, as the progress partial shows them."""
    end = job.finished_at or timezone.now()
    elapsed = (end - job.started_at).total_seconds() if job.started_at else None
    rate = job.done / elapsed if elapsed and job.done else None
    remaining = max((job.total or 0) - job.done, 0)
    eta = remaining / rate if rate and not job.finished else None
    if job.total:
        percent = min(100.0, 100.0 * job.done / job.total)
    else:
        percent = 100.0 if job.state == BulkJobState.DONE else 0.0
    return Progress(job.total, job.done, job.changed, round(percent, 1), rate, eta, elapsed)


def bulk_job_list_queryset():
    return BulkJob.objects.order_by("-created_at", "-pk")


def bulk_jobs_active() -> list[BulkJob]:
    return list(BulkJob.objects.filter(state__in=(BulkJobState.PENDING, BulkJobState.RUNNING)).order_by("pk"))
