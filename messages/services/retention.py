"""Retention: purge finished messages (and their events) in small batches, and record each run.

What is purged, and when:
- Processed and Discarded messages whose last change (``updated_at``) is older than
  SYNC_RETENTION_DAYS, with their MessageEvent rows;
- a message that was ever dead-lettered only once its DeadLetter is resolved (retried or
  discarded) and the resolution is older than SYNC_DEADLETTER_RETENTION_DAYS; its DeadLetter row
  goes with it. An open dead letter is never purged, whatever its age.

What is never touched: the central store (CentralEntity) and the counters (EntityCounter): they
are the data, the messages are only how it arrived. Nothing here changes a message's state, so
``message_transition`` is not involved: rows are deleted, not moved.

Why batches: each batch is one short transaction that locks at most SYNC_RETENTION_BATCH message
state rows (FOR UPDATE SKIP LOCKED, so a row a worker or an operator holds is simply left for the
next run) and deletes them by primary key, the state rows and then their envelopes. No statement
scans a table or holds a lock for long, so ingest and the workers go on at full speed; a pause
between batches leaves the database to them.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import islice

from django.conf import settings
from django.db import connections, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from messages import metrics as observe
from messages.models import DeadLetter, Message, MessageEnvelope, MessageEvent, MessageState, PurgeRun
from syncadmin.lib.clock import db_now
from syncadmin.lib.sql import IN_LIST_MAX, chunks

log = logging.getLogger(__name__)

PURGEABLE_STATES = (MessageState.PROCESSED, MessageState.DISCARDED)
# Purge runs themselves are kept this long (they are small: one row per run).
PURGE_RUN_HISTORY = timedelta(days=180)
# A run not finished after this long lost its worker; another run may start.
STALE_RUN_AFTER = timedelta(minutes=30)


@dataclass
class Cutoffs:
    messages: datetime
    dead_letters: datetime


def retention_cutoffs(*, now: datetime | None = None) -> Cutoffs:
    now = now or db_now()
    return Cutoffs(
        messages=now - timedelta(days=settings.SYNC_RETENTION_DAYS),
        dead_letters=now - timedelta(days=settings.SYNC_DEADLETTER_RETENTION_DAYS),
    )


def purge_candidates(*, cutoffs: Cutoffs):
    """Messages the purge may delete: finished, old, and with no dead letter that must be kept.

    Cheap at any size: the (state, updated_at) index gives the old finished rows in order, and the
    dead-letter test is one probe of DeadLetter's unique message_id index per row.
    """
    keep = DeadLetter.objects.filter(message_id=OuterRef("pk")).filter(
        Q(resolution="") | Q(resolved_at__isnull=True) | Q(resolved_at__gte=cutoffs.dead_letters)
    )
    return Message.objects.filter(state__in=PURGEABLE_STATES, updated_at__lt=cutoffs.messages).filter(~Exists(keep))


def _lock_batch(cutoffs: Cutoffs, limit: int) -> list[tuple[int, str]]:
    qs = purge_candidates(cutoffs=cutoffs).select_for_update(skip_locked=True, of=("self",)).values_list("pk", "state")
    if connections[qs.db].features.supports_select_for_update_with_limit:
        return list(qs[:limit])
    # Oracle refuses FOR UPDATE with FETCH FIRST; it locks rows as they are fetched.
    return list(islice(qs.iterator(chunk_size=limit), limit))


def _delete_where_in(table: str, column: str, ids: list[int], using: str = "default") -> int:
    """DELETE by an indexed column, IN lists of at most 900: no cascade collection, no SELECT."""
    removed = 0
    with connections[using].cursor() as cursor:
        for chunk in chunks(ids, IN_LIST_MAX):
            marks = ", ".join(["%s"] * len(chunk))
            cursor.execute(f"DELETE FROM {table} WHERE {column} IN ({marks})", chunk)
            removed += cursor.rowcount
    return removed


@dataclass
class BatchRemoved:
    messages: int = 0
    events: int = 0
    dead_letters: int = 0


def purge_batch(*, cutoffs: Cutoffs, limit: int) -> BatchRemoved:
    """Delete one batch of purgeable messages with their events and dead letters, in one transaction."""
    with transaction.atomic():
        rows = _lock_batch(cutoffs, limit)
        if not rows:
            return BatchRemoved()
        ids = sorted(pk for pk, _ in rows)  # delete in key order: two purges never deadlock on each other's rows
        by_state = Counter(state for _, state in rows)
        events = _delete_where_in(MessageEvent._meta.db_table, "message_id", ids)
        dead_letters = _delete_where_in(DeadLetter._meta.db_table, "message_id", ids)
        # The state row first: it references its envelope (the same id in both tables).
        messages = _delete_where_in(Message._meta.db_table, "id", ids)
        _delete_where_in(MessageEnvelope._meta.db_table, "id", ids)
        # /metrics counts messages per state from their transitions: a purged message leaves
        # its state too, in the same transaction as the delete.
        for state, n in by_state.items():
            observe.transition_recorded(from_state=state, to_state="Purged", count=n)
    return BatchRemoved(messages=messages, events=events, dead_letters=dead_letters)


def purge_run(
    *,
    trigger: str = "schedule",
    max_seconds: float | None = None,
    batch_size: int | None = None,
    pause_seconds: float | None = None,
    max_batches: int | None = None,
    duty_cycle: float | None = None,
) -> PurgeRun | None:
    """One purge run: batches until nothing is left or the time budget is spent; recorded as a PurgeRun.

    Returns None (and does nothing) while another run is still going. ``run.more`` says the
    budget ran out with work left (the task then queues a follow-up run).
    """
    budget = settings.SYNC_RETENTION_RUN_SECONDS if max_seconds is None else max_seconds
    batch_size = batch_size or settings.SYNC_RETENTION_BATCH
    pause = settings.SYNC_RETENTION_PAUSE_SECONDS if pause_seconds is None else pause_seconds
    now = db_now()
    cutoffs = retention_cutoffs(now=now)
    with transaction.atomic():
        # One run at a time: two would only compete for the same rows (SKIP LOCKED keeps that safe).
        busy = PurgeRun.objects.filter(finished_at__isnull=True, started_at__gt=now - STALE_RUN_AFTER).exists()
        if busy:
            log.info("purge skipped: another purge run is in progress")
            return None
        run = PurgeRun.objects.create(
            started_at=now, trigger=trigger[:32], cutoff=cutoffs.messages, deadletter_cutoff=cutoffs.dead_letters
        )
    t0 = time.monotonic()
    deadline = t0 + budget
    totals = BatchRemoved()
    batches = 0
    more = False
    error = ""
    duty = min(max(settings.SYNC_RETENTION_DUTY_CYCLE if duty_cycle is None else duty_cycle, 0.01), 1.0)
    try:
        while True:
            started = time.monotonic()
            removed = purge_batch(cutoffs=cutoffs, limit=batch_size)
            spent = time.monotonic() - started
            if removed.messages:
                batches += 1
                totals.messages += removed.messages
                totals.events += removed.events
                totals.dead_letters += removed.dead_letters
            if removed.messages < batch_size:
                break  # the last, partial batch: nothing is left (or everything left is locked)
            if time.monotonic() >= deadline or (max_batches and batches >= max_batches):
                more = True
                break
            wait = max(pause, spent * (1 - duty) / duty)
            time.sleep(min(wait, max(deadline - time.monotonic(), 0.0)))
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"[:2000]
        log.exception("purge run %s failed after %s batch(es)", run.pk, batches)
        raise
    finally:
        PurgeRun.objects.filter(pk=run.pk).update(
            finished_at=timezone.now(),
            duration_ms=(time.monotonic() - t0) * 1000,
            messages_removed=totals.messages,
            events_removed=totals.events,
            deadletters_removed=totals.dead_letters,
            batches=batches,
            more=more,
            error=error,
        )
        PurgeRun.objects.filter(started_at__lt=now - PURGE_RUN_HISTORY).delete()
    run.refresh_from_db()
    if totals.messages:
        log.info(
            "purge run %s removed %s message(s), %s event(s), %s dead letter(s) in %.1fs%s",
            run.pk,
            totals.messages,
            totals.events,
            totals.dead_letters,
            run.duration_ms / 1000,
            " (more to do)" if more else "",
        )
    return run
