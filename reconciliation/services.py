"""Writes for reconciliation: runs, discrepancies, recounts, resync requests, explanations.

A run compares, for every (terminal, entity type) cell:
1. the live counter (moved by every apply in its own transaction) with a true recount of the
   central store: they must always be equal, a difference is a bug (``counter_drift``);
2. the terminal's latest reported count with the counter, allowing for messages in flight
   (see ``selectors.in_flight_counts``): equal, ``in_flight`` (|delta| <= in flight) or ``gap``;
3. the age of that report: older than RECONCILIATION_STALE_SECONDS is ``stale``, not compared.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_q.tasks import async_task

from messages.models import ENTITY_RE, EntityCounter, OutboundUpdate
from messages.outbound import update_create
from reconciliation import selectors
from reconciliation.models import (
    Discrepancy,
    DiscrepancyKind,
    ReconciliationRun,
    ReportedCount,
    RunStatus,
    RunTrigger,
)
from syncadmin.lib.routers import central_alias
from syncadmin.services import audit_record

log = logging.getLogger(__name__)

K = DiscrepancyKind
RESYNC_UPDATE_TYPE = "resync.request"
RUN_TASK = "reconciliation.tasks.execute"
# Heat-map states, one letter each so the stored matrix stays small (5,000 cells ~ 100 KB).
STATE_EQUAL, STATE_NO_REPORT = "e", "n"
STATE_OF_KIND = {K.COUNTER_DRIFT: "d", K.GAP: "g", K.IN_FLIGHT: "i", K.STALE: "s"}
# A run still queued/running after this long lost its worker: the scheduled run closes it.
ABANDONED_AFTER = timedelta(hours=1)
# Count reports older than this are pruned, except each cell's latest: terminals report every
# few minutes, and every run reads the latest per cell, so the table must stay small.
REPORT_HISTORY = timedelta(hours=24)


class ReconciliationError(Exception):
    """Bad input to a reconciliation action (shown to the user, nothing changed)."""


# --- classifying one cell ------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    kind: str | None  # a DiscrepancyKind, or None when the cell agrees / has nothing to compare
    state: str  # heat-map letter
    delta: int


def cell_classify(
    *, counter: int, recount: int, report: selectors.Report | None, in_flight: int, stale_before: datetime
) -> Verdict:
    """The verdict for one cell; pure, so every rule is tested without a database."""
    delta = report.count - counter if report is not None else 0
    if counter != recount:
        return Verdict(K.COUNTER_DRIFT, STATE_OF_KIND[K.COUNTER_DRIFT], delta)
    if report is None:
        # The terminal never reported this type: nothing to compare (not a discrepancy).
        return Verdict(None, STATE_NO_REPORT, 0)
    if report.received_at < stale_before:
        return Verdict(K.STALE, STATE_OF_KIND[K.STALE], delta)
    if delta == 0:
        return Verdict(None, STATE_EQUAL, 0)
    # Each message in flight moves the count by at most one (an upsert +1, a delete -1).
    if abs(delta) <= in_flight:
        return Verdict(K.IN_FLIGHT, STATE_OF_KIND[K.IN_FLIGHT], delta)
    return Verdict(K.GAP, STATE_OF_KIND[K.GAP], delta)


# --- runs ----------------------------------------------------------------------------------------


def run_create(*, trigger: str, triggered_by: str) -> ReconciliationRun:
    return ReconciliationRun.objects.create(
        created_at=timezone.now(), trigger=trigger, triggered_by=triggered_by[:150], status=RunStatus.QUEUED
    )


def run_request(*, actor: str) -> ReconciliationRun:
    """ "Run now" from the console: a queued run that a worker executes after the commit."""
    with transaction.atomic():
        run = run_create(trigger=RunTrigger.CONSOLE, triggered_by=actor)
        audit_record(actor=actor, action="reconciliation.run", object_type="reconciliation_run", object_id=run.pk)
        transaction.on_commit(lambda: _enqueue(run.pk))
    return run


def run_enqueue(run_id: int) -> None:
    """Hand a queued run to a worker (the task, by its dotted path)."""
    async_task(RUN_TASK, run_id, group="reconciliation", q_options={"task_name": "reconcile"})


def _enqueue(run_id: int) -> None:
    try:
        run_enqueue(run_id)
    except Exception:  # broker down: the run stays queued and the schedule closes it later
        log.warning("could not enqueue reconciliation run %s", run_id, exc_info=True)


def run_now(*, trigger: str, triggered_by: str) -> ReconciliationRun:
    """Create and execute a run in this process (the command and the schedule)."""
    run = run_create(trigger=trigger, triggered_by=triggered_by)
    return run_execute(run_id=run.pk)


def run_execute(*, run_id: int) -> ReconciliationRun:
    """Execute a queued run. Records a failure on the run and re-raises it."""
    started = timezone.now()
    # Compare-and-set: a redelivered task finds the run no longer queued and does nothing.
    if not ReconciliationRun.objects.filter(pk=run_id, status=RunStatus.QUEUED).update(
        status=RunStatus.RUNNING, started_at=started
    ):
        return ReconciliationRun.objects.get(pk=run_id)
    t0 = time.perf_counter()
    try:
        with transaction.atomic():
            result = _compute(run_id=run_id, now=started)
            ReconciliationRun.objects.filter(pk=run_id).update(
                status=RunStatus.DONE,
                finished_at=timezone.now(),
                duration_ms=(time.perf_counter() - t0) * 1000,
                **result,
            )
            # Only the latest finished run keeps its (large) matrix snapshot.
            ReconciliationRun.objects.exclude(pk=run_id).filter(matrix__isnull=False).update(matrix=None)
    except Exception as exc:
        ReconciliationRun.objects.filter(pk=run_id).update(
            status=RunStatus.FAILED,
            finished_at=timezone.now(),
            duration_ms=(time.perf_counter() - t0) * 1000,
            error=f"{type(exc).__name__}: {exc}"[:2000],
        )
        raise
    return ReconciliationRun.objects.get(pk=run_id)


def _compute(*, run_id: int, now: datetime) -> dict:
    stale_before = now - timedelta(seconds=settings.RECONCILIATION_STALE_SECONDS)
    counters = selectors.counter_values()
    recounts = selectors.central_recount()
    reports = selectors.reported_latest()
    fresh = [r.as_of for r in reports.values() if r.received_at >= stale_before]
    in_flight = selectors.in_flight_counts(applied_since=min(fresh) if fresh else None)

    cells = set(counters) | set(recounts) | set(reports)
    terminals = sorted(set(selectors.terminal_codes().values()) | {t for t, _ in cells})
    entity_types = sorted({e for _, e in cells})
    explained = _explanations_to_carry()

    found: list[Discrepancy] = []
    tallies = {k: 0 for k in K.values}
    matrix_rows: dict[str, list] = {}
    for code in terminals:
        row = []
        for entity_type in entity_types:
            cell = (code, entity_type)
            if cell not in cells:
                row.append(None)
                continue
            counter, recount, report = counters.get(cell, 0), recounts.get(cell, 0), reports.get(cell)
            flight = in_flight.get(cell, 0)
            verdict = cell_classify(
                counter=counter, recount=recount, report=report, in_flight=flight, stale_before=stale_before
            )
            row.append([verdict.state, counter, report.count if report else None, flight, recount])
            if verdict.kind is None:
                continue
            tallies[verdict.kind] += 1
            d = Discrepancy(
                run_id=run_id,
                terminal_code=code,
                entity_type=entity_type,
                kind=verdict.kind,
                terminal_count=report.count if report else None,
                central_count=counter,
                recount=recount,
                in_flight=flight,
                delta=verdict.delta,
                reported_as_of=report.as_of if report else None,
                reported_received_at=report.received_at if report else None,
            )
            # An explanation holds while the numbers it explained stay the same.
            carried = explained.get((code, entity_type, d.kind, d.delta))
            if carried:
                d.explained_at, d.explained_by, d.note = carried
            found.append(d)
        matrix_rows[code] = row
    Discrepancy.objects.bulk_create(found, batch_size=1000)
    return {
        "terminals_checked": len(terminals),
        "entity_types_checked": len(entity_types),
        "cells_checked": len(cells),
        "counter_drift_count": tallies[K.COUNTER_DRIFT],
        "gap_count": tallies[K.GAP],
        "in_flight_count": tallies[K.IN_FLIGHT],
        "stale_count": tallies[K.STALE],
        "matrix": {"entity_types": entity_types, "terminals": terminals, "rows": matrix_rows},
    }


def _explanations_to_carry() -> dict[tuple, tuple]:
    previous = selectors.run_latest_done()
    if previous is None:
        return {}
    rows = Discrepancy.objects.filter(run=previous, explained_at__isnull=False).values_list(
        "terminal_code", "entity_type", "kind", "delta", "explained_at", "explained_by", "note"
    )
    return {(t, e, k, d): (at, by, note) for t, e, k, d, at, by, note in rows}


def run_housekeeping(*, now: datetime | None = None) -> dict:
    """Close runs whose worker vanished and prune runs past their retention."""
    now = now or timezone.now()
    abandoned = ReconciliationRun.objects.filter(
        status__in=[RunStatus.QUEUED, RunStatus.RUNNING], created_at__lt=now - ABANDONED_AFTER
    ).update(status=RunStatus.FAILED, finished_at=now, error="abandoned: no worker finished this run")
    keep_after = now - timedelta(days=settings.RECONCILIATION_RETENTION_DAYS)
    old = ReconciliationRun.objects.filter(created_at__lt=keep_after)
    latest = selectors.run_latest_done()
    if latest is not None:
        old = old.exclude(pk=latest.pk)  # never prune the run the console is showing
    pruned, _ = old.delete()
    latest_reports = selectors.reported_latest_ids()
    reports_pruned = 0
    while True:  # in chunks: never one long lock on the table the SOAP API writes to
        ids = list(
            ReportedCount.objects.filter(received_at__lt=now - REPORT_HISTORY)
            .exclude(pk__in=latest_reports)
            .values_list("pk", flat=True)[:5000]
        )
        if not ids:
            break
        reports_pruned += ReportedCount.objects.filter(pk__in=ids).delete()[0]
    return {"abandoned": abandoned, "pruned": pruned, "reports_pruned": reports_pruned}


# --- staff actions -------------------------------------------------------------------------------


def counter_rebuild(
    *, actor: str, terminal_code: str | None = None, entity_type: str | None = None, reason: str = ""
) -> dict[tuple[str, str], tuple[int, int]]:
    """Rebuild live counters from the central store in one transaction; audited.

    Returns {(terminal, entity type): (old, new)} for every counter that changed.
    Why it is safe while workers apply: the counter rows in scope are locked first, then the
    store is recounted. An apply moves its counter after writing its entities, in the same
    transaction, so an apply that has not committed yet waits for our lock and then adds its
    own delta on top of our recount (which did not see its rows); one that committed earlier
    is in the recount. Either way the rebuilt counter ends up right.
    """
    db = central_alias()
    scope = {}
    if terminal_code is not None:
        scope["terminal_code"] = terminal_code
    if entity_type is not None:
        scope["entity_type"] = entity_type
    changes: dict[tuple[str, str], tuple[int, int]] = {}
    with transaction.atomic(), transaction.atomic(using=db):
        now = timezone.now()
        # Cells with entities but no counter row get one first, so it is locked with the rest.
        have = set(EntityCounter.objects.using(db).filter(**scope).values_list("terminal_code", "entity_type"))
        missing = set(selectors.central_recount(terminal_code=terminal_code, entity_type=entity_type)) - have
        EntityCounter.objects.using(db).bulk_create(
            [EntityCounter(terminal_code=t, entity_type=e, live_count=0, updated_at=now) for t, e in sorted(missing)],
            ignore_conflicts=True,
        )
        # Same lock order as handlers.counter_move: (terminal, entity type).
        locked = list(
            EntityCounter.objects.using(db).select_for_update().filter(**scope).order_by("terminal_code", "entity_type")
        )
        truth = selectors.central_recount(terminal_code=terminal_code, entity_type=entity_type)
        changed = []
        for row in locked:
            new = truth.get((row.terminal_code, row.entity_type), 0)
            if row.live_count != new:
                changes[(row.terminal_code, row.entity_type)] = (row.live_count, new)
                row.live_count, row.updated_at = new, now
                changed.append(row)
        EntityCounter.objects.using(db).bulk_update(changed, ["live_count", "updated_at"], batch_size=1000)
        audit_record(
            actor=actor,
            action="reconciliation.recount",
            object_type="entity_counter",
            object_id=f"{terminal_code or '*'}/{entity_type or '*'}",
            count=len(changes),
            reason=reason,
            detail={"changed": [[t, e, old, new] for (t, e), (old, new) in sorted(changes.items())][:500]},
        )
    return changes


def resync_request(*, terminal, entity_type: str, actor: str, reason: str = "") -> OutboundUpdate:
    """Ask a terminal (through FetchUpdates) to resend every entity of one type; audited."""
    if not ENTITY_RE.match(entity_type or ""):
        raise ReconciliationError(f"not a valid entity type: {entity_type!r}")
    with transaction.atomic():
        update = update_create(
            terminal=terminal,
            update_type=RESYNC_UPDATE_TYPE,
            entity_key=entity_type,
            payload=json.dumps({"entity_type": entity_type, "reason": reason}),
            created_by=actor,
        )
        audit_record(
            actor=actor,
            action="reconciliation.resync",
            object_type="terminal",
            object_id=terminal.code,
            reason=reason,
            detail={"entity_type": entity_type, "update_id": update.update_id},
        )
    return update


def discrepancy_explain(*, discrepancy: Discrepancy, actor: str, note: str) -> Discrepancy:
    """Mark a discrepancy as explained; the note is required. Later runs keep the explanation
    while the cell shows the same kind and delta."""
    note = (note or "").strip()
    if not note:
        raise ReconciliationError("a note is required to mark a discrepancy as explained")
    with transaction.atomic():
        discrepancy.explained_at, discrepancy.explained_by, discrepancy.note = timezone.now(), actor[:150], note
        discrepancy.save(update_fields=["explained_at", "explained_by", "note"])
        audit_record(
            actor=actor,
            action="reconciliation.explain",
            object_type="discrepancy",
            object_id=discrepancy.pk,
            reason=note,
            detail={
                "terminal": discrepancy.terminal_code,
                "entity_type": discrepancy.entity_type,
                "kind": discrepancy.kind,
                "delta": discrepancy.delta,
            },
        )
    return discrepancy


def summary_lines(run: ReconciliationRun) -> Iterable[str]:
    """Human summary of a run (the command's output)."""
    yield (
        f"run #{run.pk} {run.status}: checked {run.terminals_checked} terminals x {run.entity_types_checked} "
        f"entity types ({run.cells_checked} cells with data) in {run.duration_ms or 0:.0f} ms"
    )
    yield (
        f"discrepancies: counter_drift={run.counter_drift_count} gap={run.gap_count} "
        f"in_flight={run.in_flight_count} stale={run.stale_count}"
    )
