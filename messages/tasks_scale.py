"""django-q2 tasks for retention and background bulk jobs: thin wrappers around the services."""

from __future__ import annotations

import logging

from django_q.tasks import async_task

from messages.services import bulk as services_bulk
from messages.services import retention as services_retention

log = logging.getLogger(__name__)

PURGE_TASK = "messages.tasks_scale.purge"
BULK_TASK = "messages.tasks_scale.bulk_job_run"


def purge(trigger: str = "schedule") -> int:
    """Scheduled every SYNC_RETENTION_INTERVAL_MINUTES: one bounded purge run.

    When the run stops at its time budget with more to purge, a follow-up run is queued at once,
    so a large backlog (the first run on a years-old table) clears without waiting for the schedule.
    """
    run = services_retention.purge_run(trigger=trigger)
    if run is None:
        return 0
    if run.more:
        async_task(PURGE_TASK, "continuation", group="retention", q_options={"task_name": "purge"})
    return run.messages_removed


def enqueue_bulk_job(job_id: int, token: str = "") -> None:
    async_task(BULK_TASK, job_id, token, group="bulk", q_options={"task_name": f"bulk-job-{job_id}"})


def bulk_job_run(job_id: int, token: str = "") -> str:
    job = services_bulk.bulk_job_execute(job_id=job_id, token=token)
    return job.state


def bulk_jobs_resume() -> int:
    """Scheduled every minute: re-enqueue bulk jobs whose task was lost."""
    return services_bulk.bulk_jobs_resume()
