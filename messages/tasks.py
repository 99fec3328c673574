"""django-q2 tasks: thin wrappers that drain the queue, sweep for due work, purge, and run bulk jobs.

The message table, not django-q2's task bookkeeping, is the source of truth: a drain task
only claims whatever is due, so losing, duplicating or redelivering a drain task is
harmless. Each worker cluster looks at the due index itself (messages/cluster.py), and the
sweep schedule wakes drains too, so due work is never left waiting for a lost wake-up.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid

from django.conf import settings
from django.db import DatabaseError
from django_q.tasks import async_task

from messages import services
from messages.drain_slots import drain_registered
from messages.filtersets import message_filter_queryset
from messages.selectors import message_lease_expiry_seconds
from messages.services import bulk as services_bulk
from messages.services import pauses as services_pauses
from messages.services import retention as services_retention
from messages.services.wakeup import enqueue_drain
from messages.services.wakeup import sweep as wakeup_sweep

log = logging.getLogger(__name__)

LEASE_WATCH_NAP = 0.5  # seconds between looks for due work while a lease is about to run out


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def drain(max_seconds: float | None = None) -> dict:
    """Claim and apply batches until nothing is due or the time budget is spent."""
    worker = worker_id()
    budget = settings.SYNC_DRAIN_SECONDS if max_seconds is None else max_seconds
    deadline = time.monotonic() + budget
    totals = {"claimed": 0, "processed": 0, "noop": 0, "failed": 0, "dead_lettered": 0, "released": 0}
    with drain_registered(), services.engine_session():
        _drain_loop(worker, deadline, totals)
    if totals["claimed"]:
        log.info("drain %s finished: %s", worker, totals)
    return totals


def _drain_loop(worker: str, deadline: float, totals: dict) -> None:
    while True:
        if time.monotonic() >= deadline:
            # Work may remain: hand over to a fresh task instead of overrunning the timeout.
            enqueue_drain()
            break
        batch = services.message_claim(worker=worker, limit=settings.SYNC_CLAIM_BATCH)
        if not batch:
            # Nothing due. If a lease runs out within this drain's budget (its worker may have
            # died mid-batch), stay and take the message up then: otherwise it waits for the
            # next sweep, and a sweep task can itself be lost with a killed cluster (django-q2's
            # Redis broker does not redeliver). Short naps keep new work from waiting on us.
            expires_in = message_lease_expiry_seconds()
            if expires_in is None or expires_in < 0 or time.monotonic() + expires_in >= deadline:
                break
            time.sleep(min(expires_in + 0.05, LEASE_WATCH_NAP))
            continue
        totals["claimed"] += len(batch)
        try:
            result = services.message_process_claimed(messages=batch, worker=worker)
        except services.IllegalTransition as exc:
            # Our lease ran out and another worker re-claimed part of the batch: everything
            # this batch wrote was rolled back, and its messages are that worker's (or come
            # back when our lease ends). Carry on with the next batch.
            log.warning("drain %s lost its lease on a batch of %s: %s", worker, len(batch), exc)
            continue
        except DatabaseError as exc:
            # The batch failed and not even its release reached the database: it is down. The
            # messages left keep their lease and come back when it ends; a claim would fail too.
            log.warning(
                "drain %s stops: the database did not answer (%s); the messages it still holds come back when"
                " their lease ends (SYNC_LEASE_SECONDS)",
                worker,
                exc,
            )
            break
        for key in ("processed", "noop", "failed", "dead_lettered", "released"):
            totals[key] += getattr(result, key)
        if result.database_failed:
            # The batch met a failing database (the central store, say) and was released with backoff:
            # another claim now would only spend more messages' attempts. The next wake-up tries again.
            log.warning("drain %s stops: the database failed; its batch was released", worker)
            break


def sweep() -> int:
    """Scheduled every minute: wake enough drains for due work and expired leases, forget old nonces,
    bring back parked messages a lost unpark task left behind (services/pauses.py)."""
    due = wakeup_sweep()
    services_pauses.message_unpark_stray()
    return due


# --- retention and background bulk jobs --------------------------------------------------------

PURGE_TASK = "messages.tasks.purge"


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


def bulk_job_run(job_id: int, token: str = "") -> str:
    job = services_bulk.bulk_job_execute(job_id=job_id, token=token, message_filter=message_filter_queryset)
    return job.state


def bulk_jobs_resume() -> int:
    """Scheduled every minute: re-enqueue bulk jobs whose task was lost."""
    return services_bulk.bulk_jobs_resume()


def queue_unpark() -> int:
    """Enqueued when a pause is resumed: its parked messages back to the workers, oldest first."""
    return services_pauses.message_unpark_all()
