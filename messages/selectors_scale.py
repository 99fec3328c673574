"""Reads for background bulk jobs and retention runs (the console's progress and history)."""

from __future__ import annotations

from dataclasses import dataclass

from django.utils import timezone

from messages.models import BulkJob, BulkJobState, PurgeRun


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


def purge_run_list_queryset():
    return PurgeRun.objects.order_by("-started_at", "-pk")


def purge_totals(*, since) -> dict:
    """Rows removed by the purge runs since ``since`` (the retention page's summary)."""
    from django.db.models import Count, Sum

    return PurgeRun.objects.filter(started_at__gte=since).aggregate(
        runs=Count("pk"),
        messages=Sum("messages_removed"),
        events=Sum("events_removed"),
        dead_letters=Sum("deadletters_removed"),
    )
