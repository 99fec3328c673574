"""Bulk operator actions that never stall: restore, and background jobs for large selections.

A console retry / discard / restore over more than CONSOLE_BULK_JOB_THRESHOLD messages does not
run in the web request: it becomes a ``BulkJob`` that a django-q2 worker runs in chunks of
CONSOLE_BULK_JOB_CHUNK messages, each chunk (its state changes, through the engine's services,
and the job's progress) one transaction. The console polls the job's progress; the operator can
cancel it between chunks; it is audited once, when it ends, with its final totals and filter.

A job's selection is frozen when it starts: the ids that were then in a state the action applies
to are written to BulkJobItem in one INSERT ... SELECT (the filter runs once, whatever it costs).
Chunks walk them in id order (``last_id`` is the cursor) and delete their own items, so a job
interrupted by a lost worker resumes where it stopped, and a message that comes back into the
selection (retried, then dead-lettered again) is never acted on twice by one job.

A job may carry a rate (messages per second): its chunks are then that many messages and each
waits out its second before the next (``Pace``). An operator may pause a job (it stops before its
next chunk and keeps its cursor), resume it, or cancel it, paused or not (bulk_control.py).

Only one task may run a job at a time: the job row holds the token of the task allowed to run it
(``runner``); every chunk commits only if the token still matches, and a task that runs out of
time hands over to a new task with a new token. A redelivered, duplicated or stale task holds an
old token and does nothing.

A job on "all messages matching the filter" runs the console's message filter on its stored query
string: the caller (the console's view, the job's task) passes that filter in as ``message_filter``
(``messages.filtersets.message_filter_queryset``), so that this core never imports an interface.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Max, Q, QuerySet
from django.utils import timezone
from django_q.tasks import async_task

from messages.models import ACTION_STATES, BULK_RATE_MAX, BulkJob, BulkJobItem, BulkJobState, Message
from messages.services.bulk_pace import Pace
from messages.services.operator import message_discard, message_restore, message_retry
from syncadmin.services import audit_record

log = logging.getLogger(__name__)

J = BulkJobState
BULK_TASK = "messages.tasks.bulk_job_run"
# The console's message filter: a query string -> the messages it selects (ValueError if not valid).
MessageFilter = Callable[[str], QuerySet]
# A Pending job not started after this long, or a Running one whose last chunk is older than
# this, lost its task (broker down at enqueue, worker killed): the resume schedule re-enqueues it.
STALLED_AFTER = timedelta(seconds=90)
# A throttled job's task runs at most this long, then hands the job back to the broker's queue.
THROTTLED_SLICE_SECONDS = 10.0
# Where a job ends from, and the states an operator can still act on.
OPEN_STATES = (J.PENDING, J.RUNNING, J.PAUSED)


class BulkRefused(Exception):
    """A bulk action that cannot be done as asked; the message says why, nothing changed."""


class LostJob(Exception):
    """Another task took the job over (or it ended): this task must stop without writing."""


def bulk_rate_check(rate: int | None) -> int | None:
    """A job's throttle as given (None: no throttle), or BulkRefused saying what is wrong with it."""
    if rate is None:
        return None
    if isinstance(rate, bool) or not isinstance(rate, int) or not 1 <= rate <= BULK_RATE_MAX:
        raise BulkRefused(f"the rate must be a whole number of messages per second from 1 to {BULK_RATE_MAX:,}")
    return rate


def _apply_action(action: str, ids: list[int], actor: str, reason: str) -> int:
    """The engine's service for ``action`` on ``ids``, without auditing (the caller audits once)."""
    if action == "retry":
        return message_retry(message_ids=ids, actor=actor, reason=reason or "retried from the console")
    if action == "discard":
        return message_discard(message_ids=ids, actor=actor, reason=reason)
    if action == "restore":
        return message_restore(message_ids=ids, actor=actor, reason=reason or "restored from the console")
    raise BulkRefused(f"unknown action {action!r}")


# --- starting a bulk action ---------------------------------------------------------------------


@dataclass
class BulkOutcome:
    """Either the action ran at once (``changed``) or it became a background ``job``."""

    changed: int | None = None
    job: BulkJob | None = None


def actionable(*, queryset, action: str):
    """The ids among ``queryset`` that ``action`` would change, as a values queryset."""
    return queryset.filter(state__in=ACTION_STATES[action]).order_by().values_list("pk", flat=True)


def job_queryset(*, params: dict, message_filter: MessageFilter):
    """The messages a job (or a bulk request) runs on, rebuilt from its stored parameters."""
    if params.get("scope") == "selected":
        return Message.objects.filter(pk__in=params.get("ids") or [])
    try:
        return message_filter(params.get("query", ""))
    except ValueError as exc:
        raise BulkRefused(f"the filter is not valid: {exc}") from exc


def bulk_action_start(
    *,
    action: str,
    params: dict,
    actor: str,
    message_filter: MessageFilter,
    reason: str = "",
    threshold: int | None = None,
    rate: int | None = None,
) -> BulkOutcome:
    """Run a console bulk action: at once when it is small, as a background job otherwise.

    ``params``: {"scope": "filter", "query": <filter query string>, "filters": {...}} or
    {"scope": "selected", "ids": [...]}. How many messages it concerns is counted up to the
    threshold only (an index range read), so the request stays fast for any selection size.
    """
    if action not in ACTION_STATES:
        raise BulkRefused(f"unknown action {action!r}")
    reason = (reason or "").strip()
    if action == "discard" and not reason:
        raise BulkRefused("a reason is required to discard messages")
    rate = bulk_rate_check(rate)
    threshold = settings.CONSOLE_BULK_JOB_THRESHOLD if threshold is None else threshold
    if rate:
        threshold = min(threshold, rate)  # more than one second of the rate: a job keeps to it
    ids_qs = actionable(queryset=job_queryset(params=params, message_filter=message_filter), action=action)
    head = list(ids_qs[: threshold + 1])
    detail = {"scope": params.get("scope"), "filters": params.get("filters", {})}
    if len(head) <= threshold:
        changed = _apply_action(action, head, actor, reason) if head else 0
        audit_record(
            actor=actor,
            action=f"message.{action}",
            object_type="message",
            object_id=str(head[0]) if len(head) == 1 else "",
            count=changed,
            reason=reason,
            detail={**detail, "selected": len(head), **({"ids": head} if len(head) <= 100 else {})},
        )
        return BulkOutcome(changed=changed)
    with transaction.atomic():
        job = BulkJob.objects.create(
            action=action, params=params, actor=actor[:150], reason=reason, rate=rate, created_at=timezone.now()
        )
        transaction.on_commit(lambda: bulk_job_enqueue_quietly(job.pk, ""))
    return BulkOutcome(job=job)


def bulk_job_enqueue(job_id: int, token: str = "") -> None:
    """Hand the job to a worker (the task allowed to run it holds ``token``)."""
    async_task(BULK_TASK, job_id, token, group="bulk", q_options={"task_name": f"bulk-job-{job_id}"})


def bulk_job_enqueue_quietly(job_id: int, token: str) -> None:
    """Enqueue the job's task; if the broker is down, leave it to the resume schedule."""
    try:
        bulk_job_enqueue(job_id, token)
    except Exception:  # broker down: the job stays Pending and the resume schedule enqueues it
        log.warning("could not enqueue bulk job %s; the resume schedule will", job_id, exc_info=True)


# --- running a job ----------------------------------------------------------------------------


def bulk_job_finish(job_id: int, *, state: str, token: str | None, error: str = "") -> bool:
    """End the job (compare-and-set, so it ends once) and write its one audit entry.

    ``token`` None: no task runs it (Pending or Paused), so whoever ends it need not hold one.
    """
    with transaction.atomic():
        qs = BulkJob.objects.filter(pk=job_id, state__in=OPEN_STATES)
        if token is not None:
            qs = qs.filter(runner=token)
        if not qs.update(state=state, finished_at=timezone.now(), error=error[:2000], runner=""):
            return False
        BulkJobItem.objects.filter(job_id=job_id).delete()  # a cancelled/failed job's leftovers
        job = BulkJob.objects.get(pk=job_id)
        duration = (job.finished_at - job.started_at).total_seconds() if job.started_at else 0.0
        audit_record(
            actor=job.actor,
            action=f"message.{job.action}",
            object_type="bulk_job",
            object_id=str(job.pk),
            count=job.changed,
            reason=job.reason,
            detail={
                "background": True,
                "job": job.pk,
                "state": state,
                "total": job.total,
                "done": job.done,
                "changed": job.changed,
                "scope": job.params.get("scope"),
                "filters": job.params.get("filters", {}),
                **({"query": job.params["query"]} if "query" in job.params else {}),
                **({"cancelled_by": job.cancelled_by} if job.cancelled_by else {}),
                **({"rate": job.rate} if job.rate else {}),
                **({"paused_s": round(job.paused_seconds, 2)} if job.paused_seconds else {}),
                **({"error": error[:500]} if error else {}),
                "duration_s": round(duration, 2),
            },
        )
    return True


def _snapshot(job: BulkJob, message_filter: MessageFilter) -> tuple[int, int]:
    """Freeze the job's selection into BulkJobItem with one INSERT ... SELECT; returns (total, max id).

    The filter (however costly: an error-text search scans) runs once here, not once per chunk.
    """
    ids = (
        job_queryset(params=job.params, message_filter=message_filter)
        .filter(state__in=ACTION_STATES[job.action])
        .order_by()
        .annotate(sel_id=F("pk"))
        .values_list("sel_id", flat=True)
    )
    sql, params = ids.query.sql_with_params()
    table = BulkJobItem._meta.db_table
    BulkJobItem.objects.filter(job=job).delete()  # a half-done earlier snapshot never doubles up
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (job_id, message_id) SELECT %s, sel.sel_id FROM ({sql}) sel", [job.pk, *params]
        )
        total = cursor.rowcount
    max_id = BulkJobItem.objects.filter(job=job).aggregate(m=Max("message_id"))["m"] or 0
    return total, max_id


def _next_ids(job: BulkJob, limit: int) -> list[int]:
    """The next chunk of the frozen selection after the cursor, in id order."""
    return list(
        BulkJobItem.objects.filter(job=job, message_id__gt=job.last_id)
        .order_by("message_id")
        .values_list("message_id", flat=True)[:limit]
    )


def bulk_job_execute(
    *, job_id: int, message_filter: MessageFilter, token: str = "", max_seconds: float | None = None
) -> BulkJob:
    """Run a job's chunks until it is done, cancelled, or this task's time is up (then hand over).

    ``token`` must match the job's ``runner`` (see the module docstring); a task with a stale
    token returns at once without touching anything.
    """
    budget = settings.Q_TIMEOUT * 0.6 if max_seconds is None else max_seconds
    mine = uuid.uuid4().hex
    now = timezone.now()
    claimed = BulkJob.objects.filter(pk=job_id, state__in=(J.PENDING, J.RUNNING), runner=token).update(
        state=J.RUNNING, runner=mine, heartbeat_at=now
    )
    if not claimed:
        return BulkJob.objects.get(pk=job_id)
    BulkJob.objects.filter(pk=job_id, started_at__isnull=True).update(started_at=now)
    job = BulkJob.objects.get(pk=job_id)
    deadline = time.monotonic() + (min(budget, THROTTLED_SLICE_SECONDS) if job.rate else budget)
    pace = Pace(job.rate)
    try:
        if job.max_id is None:
            with transaction.atomic():
                total, max_id = _snapshot(job, message_filter)
                if not BulkJob.objects.filter(pk=job_id, runner=mine).update(max_id=max_id, total=total):
                    raise LostJob
            job.max_id, job.total = max_id, total
        chunk = pace.chunk(settings.CONSOLE_BULK_JOB_CHUNK)
        while True:
            job.refresh_from_db(fields=["cancel_requested", "runner", "state", "last_id", "done", "changed"])
            if job.runner != mine or job.state != J.RUNNING:
                raise LostJob
            if job.cancel_requested:
                bulk_job_finish(job_id, state=J.CANCELLED, token=mine)
                break
            if time.monotonic() >= deadline:
                # Hand over to a fresh task rather than overrun Q_TIMEOUT (throttled: hold a slot long).
                nxt = uuid.uuid4().hex
                if BulkJob.objects.filter(pk=job_id, runner=mine).update(runner=nxt):
                    bulk_job_enqueue_quietly(job_id, nxt)
                break
            with transaction.atomic():
                ids = _next_ids(job, chunk)
                if ids:
                    changed = _apply_action(job.action, ids, job.actor, job.reason)
                    BulkJobItem.objects.filter(job_id=job_id, message_id__lte=ids[-1]).delete()
                    progressed = BulkJob.objects.filter(pk=job_id, runner=mine).update(
                        done=F("done") + len(ids),
                        changed=F("changed") + changed,
                        last_id=ids[-1],
                        heartbeat_at=timezone.now(),
                    )
                    if not progressed:
                        raise LostJob  # rolls this chunk back: the new runner does it
            if ids:
                pace.wait(len(ids))  # a pause or cancel meanwhile is seen at the top of the loop
            else:
                bulk_job_finish(job_id, state=J.DONE, token=mine)
                break
    except LostJob:
        log.info("bulk job %s: another task took over; this one stops", job_id)
    except Exception as exc:
        log.exception("bulk job %s failed", job_id)
        bulk_job_finish(job_id, state=J.FAILED, token=mine, error=f"{type(exc).__name__}: {exc}")
    return BulkJob.objects.get(pk=job_id)


def bulk_job_cancel(*, job_id: int, actor: str) -> BulkJob:
    """Cancel a job: a Pending or Paused one ends at once; a Running one stops before its next chunk."""
    with transaction.atomic():
        job = BulkJob.objects.select_for_update().get(pk=job_id)
        if job.finished:
            raise BulkRefused(f"the job has already ended ({job.state})")
        changes = {"cancel_requested": True, "cancelled_by": actor[:150]}
        if job.state == J.PAUSED and job.paused_at:  # its last pause counts as paused time
            changes["paused_seconds"] = job.paused_seconds + (timezone.now() - job.paused_at).total_seconds()
        BulkJob.objects.filter(pk=job_id).update(**changes)
        if job.state in (J.PENDING, J.PAUSED):
            # No task runs it: end it here (a task that arrives later finds it ended).
            bulk_job_finish(job_id, state=J.CANCELLED, token=None)
    return BulkJob.objects.get(pk=job_id)


def bulk_jobs_resume() -> int:
    """Re-enqueue jobs whose task was lost (never enqueued, or its worker died); returns how many."""
    cutoff = timezone.now() - STALLED_AFTER
    quiet = Q(heartbeat_at__isnull=True) | Q(heartbeat_at__lt=cutoff)
    stalled = list(
        BulkJob.objects.filter(quiet, state__in=(J.PENDING, J.RUNNING), created_at__lt=cutoff).values_list(
            "pk", "runner"
        )
    )
    resumed = 0
    for pk, runner in stalled:
        nxt = uuid.uuid4().hex
        # Compare-and-set on the old runner: a task still alive loses its next chunk's commit.
        if BulkJob.objects.filter(pk=pk, runner=runner, state__in=(J.PENDING, J.RUNNING)).update(
            runner=nxt, heartbeat_at=timezone.now()
        ):
            bulk_job_enqueue_quietly(pk, nxt)
            resumed += 1
    if resumed:
        log.warning("resumed %s stalled bulk job(s)", resumed)
    return resumed
