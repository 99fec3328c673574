"""Reads for reconciliation: the few GROUP BY queries a run is built from, and the console's lists.

A run over 500 terminals x 10 entity types must not issue a query per cell: every number
below comes from one grouped query over its whole table.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connections
from django.db.models import Count, F, Max, Q, Subquery, Window
from django.db.models.functions import RowNumber

from messages.models import CentralEntity, EntityCounter, Message, MessageEnvelope, MessageState
from reconciliation.models import (
    OPEN_KINDS,
    Discrepancy,
    ReconciliationRun,
    ReportedCount,
    RunStatus,
)
from syncadmin.lib.routers import central_alias
from syncadmin.lib.sql import per_vendor
from terminals.models import Terminal

Cell = tuple[str, str]  # (terminal code, entity type)

# "In flight" states: accepted by the hub, not applied yet, and still going to be tried.
IN_FLIGHT_STATES = (MessageState.RECEIVED, MessageState.PROCESSING, MessageState.FAILED)
# Terminal clocks (CreatedAt, AsOf) drift from the hub's (received_at): the received_at
# prefilter of "applied since the report" looks back this much further so skew loses nothing.
CLOCK_SKEW_MARGIN = timedelta(minutes=15)


@dataclass(frozen=True)
class Report:
    count: int
    as_of: datetime
    received_at: datetime


# --- the numbers a run compares --------------------------------------------------------------


def counter_values() -> dict[Cell, int]:
    """The live counters, as maintained by every apply."""
    rows = EntityCounter.objects.using(central_alias()).values_list("terminal_code", "entity_type", "live_count")
    return {(t, e): n for t, e, n in rows}


def central_recount(*, terminal_code: str | None = None, entity_type: str | None = None) -> dict[Cell, int]:
    """A true count of live (not deleted) central entities per cell: one GROUP BY."""
    qs = CentralEntity.objects.using(central_alias()).filter(deleted=False)
    if terminal_code is not None:
        qs = qs.filter(terminal_code=terminal_code)
    if entity_type is not None:
        qs = qs.filter(entity_type=entity_type)
    rows = qs.values_list("terminal_code", "entity_type").annotate(n=Count("pk")).order_by()
    return {(t, e): n for t, e, n in rows}


def _reported_latest_qs():
    return _latest_reports(ReportedCount.objects.db)


@per_vendor
def _latest_reports(using: str):
    return (
        ReportedCount.objects.using(using)
        .annotate(
            rn=Window(
                RowNumber(),
                partition_by=[F("terminal_id"), F("entity_type")],
                order_by=[F("as_of").desc(), F("pk").desc()],
            )
        )
        .filter(rn=1)
    )


@_latest_reports.vendor("postgresql")
def _latest_reports_postgresql(using: str):
    # DISTINCT ON: one sort of the reports, no window bookkeeping.
    return (
        ReportedCount.objects.using(using)
        .order_by("terminal_id", "entity_type", "-as_of", "-pk")
        .distinct("terminal_id", "entity_type")
    )


def reported_latest() -> dict[Cell, Report]:
    """Each terminal's latest report per entity type (latest by its as-of time)."""
    codes = terminal_codes()
    rows = _reported_latest_qs().values_list("terminal_id", "entity_type", "count", "as_of", "received_at")
    return {(codes[t], e): Report(n, as_of, recv) for t, e, n, as_of, recv in rows}


def reported_latest_ids():
    """The ids of each cell's latest report (a subquery, for pruning around them)."""
    return _reported_latest_qs().values("pk")


def terminal_codes() -> dict[int, str]:
    return dict(Terminal.objects.values_list("pk", "code"))


def in_flight_counts(*, applied_since: datetime | None) -> dict[Cell, int]:
    """Messages that can make a terminal's report and the centre differ without anything being lost.

    Both sides are compared on the terminal's own clock (CreatedAt vs the report's AsOf), so
    clock skew between terminal and hub does not matter:
    (a) changes the terminal made at or before its report that the hub has accepted but not
        applied yet (Received, Processing, Failed): counted by the terminal, not yet by the centre;
    (b) changes made after the report that the hub has already applied (Processed): counted by
        the centre, not yet in the report.
    Each such message moves a count by at most one, so |terminal - central| <= in flight is
    explainable. Dead-lettered and discarded messages are not in flight: they will never be
    applied, so the difference they leave is a real gap.
    ``applied_since`` bounds (b) to recent messages (the oldest report still worth comparing).

    Each part is one GROUP BY over messages hash-joined to the latest reports (a correlated
    subquery per message is 10x slower and, on PostgreSQL, costly enough to trigger JIT).
    """
    conn = connections[Message.objects.db]
    qn, ops = conn.ops.quote_name, conn.ops
    latest_sql, latest_params = (
        _reported_latest_qs().values("terminal_id", "entity_type", "as_of").query.sql_with_params()
    )
    # The envelope (m) holds the terminal, entity and times; the state (s) is its own row, same id.
    m_terminal, m_entity, s_state = f"m.{qn('terminal_id')}", f"m.{qn('entity_type')}", f"s.{qn('state')}"
    base = (
        f"SELECT {m_terminal}, {m_entity}, COUNT(*) FROM {qn(MessageEnvelope._meta.db_table)} m "
        f"INNER JOIN {qn(Message._meta.db_table)} s ON s.{qn('id')} = m.{qn('id')} "
        f"INNER JOIN ({latest_sql}) r ON r.{qn('terminal_id')} = {m_terminal} AND r.{qn('entity_type')} = {m_entity} "
    )
    group = f" GROUP BY {m_terminal}, {m_entity}"
    queries = [
        (
            base + f"WHERE {s_state} IN (%s, %s, %s) AND m.{qn('created_at')} <= r.{qn('as_of')}" + group,
            [*latest_params, *IN_FLIGHT_STATES],
        )
    ]
    if applied_since is not None:
        since = ops.adapt_datetimefield_value(applied_since - CLOCK_SKEW_MARGIN)
        queries.append(
            (
                base
                + f"WHERE {s_state} = %s AND m.{qn('received_at')} >= %s AND m.{qn('created_at')} > r.{qn('as_of')}"
                + group,
                [*latest_params, MessageState.PROCESSED, since],
            )
        )
    codes = terminal_codes()
    counts: dict[Cell, int] = {}
    with conn.cursor() as cursor:
        for sql, params in queries:
            cursor.execute(sql, params)
            for terminal_id, entity_type, n in cursor.fetchall():
                cell = (codes[terminal_id], entity_type)
                counts[cell] = counts.get(cell, 0) + n
    return counts


# --- runs and discrepancies for the console ----------------------------------------------------


def run_latest_done(*, with_matrix: bool = False) -> ReconciliationRun | None:
    qs = ReconciliationRun.objects.filter(status=RunStatus.DONE).order_by("-finished_at", "-pk")
    # The matrix snapshot is ~100 KB of JSON: only the heat map needs it.
    return (qs if with_matrix else qs.defer("matrix")).first()


def run_list():
    return ReconciliationRun.objects.defer("matrix").order_by("-created_at", "-pk")


def discrepancy_current():
    """The discrepancies of the latest finished run (an empty queryset before the first run)."""
    run = run_latest_done()
    if run is None:
        return Discrepancy.objects.none()
    return Discrepancy.objects.filter(run=run)


def discrepancy_open_count() -> int:
    """Discrepancies someone should look at now: the latest run's drift, gaps and stale
    reports that nobody has explained (in flight resolves itself and is not counted)."""
    run = run_latest_done()
    if run is None:
        return 0
    return Discrepancy.objects.filter(run=run, kind__in=OPEN_KINDS, explained_at__isnull=True).count()


def discrepancy_open_count_by_terminal() -> dict[str, int]:
    """``discrepancy_open_count`` per terminal code (an input of the terminal health score), in one query."""
    latest = ReconciliationRun.objects.filter(status=RunStatus.DONE).order_by("-finished_at", "-pk").values("pk")[:1]
    rows = (
        Discrepancy.objects.filter(run=Subquery(latest), kind__in=OPEN_KINDS, explained_at__isnull=True)
        .values_list("terminal_code")
        .annotate(n=Count("pk"))
        .order_by()
    )
    return dict(rows)


@dataclass
class HistoryPoint:
    run: ReconciliationRun
    discrepancy: Discrepancy | None

    @property
    def delta(self) -> int:
        return self.discrepancy.delta if self.discrepancy else 0

    @property
    def kind(self) -> str:
        return self.discrepancy.kind if self.discrepancy else "equal"


def cell_history(*, terminal_code: str, entity_type: str, limit: int = 50) -> list[HistoryPoint]:
    """The cell in each of the last ``limit`` finished runs, oldest first (no row: it agreed)."""
    runs = list(run_list().filter(status=RunStatus.DONE)[:limit])
    found = {
        d.run_id: d
        for d in Discrepancy.objects.filter(
            terminal_code=terminal_code, entity_type=entity_type, run__in=[r.pk for r in runs]
        )
    }
    return [HistoryPoint(run=r, discrepancy=found.get(r.pk)) for r in reversed(runs)]


def cell_reports(*, terminal_code: str, entity_type: str, limit: int = 20) -> list[ReportedCount]:
    return list(
        ReportedCount.objects.filter(terminal__code=terminal_code, entity_type=entity_type).order_by("-as_of", "-pk")[
            :limit
        ]
    )


def cell_recent_messages(*, terminal_code: str, entity_type: str, limit: int = 20) -> list[Message]:
    return list(
        Message.objects.filter(terminal__code=terminal_code, entity_type=entity_type)
        .only("pk", "message_id", "message_type", "entity_key", "sequence", "state", "created_at", "received_at")
        .order_by("-received_at", "-pk")[:limit]
    )


def terminal_latest_reported_counts(*, terminal: Terminal) -> list:
    """The newest ReportedCount per entity type this terminal reported."""
    latest = (
        ReportedCount.objects.filter(terminal=terminal).values("entity_type").annotate(as_of=Max("as_of")).order_by()
    )
    wanted = Q()
    for row in latest:
        wanted |= Q(entity_type=row["entity_type"], as_of=row["as_of"])
    if not latest:
        return []
    rows = ReportedCount.objects.filter(terminal=terminal).filter(wanted).order_by("entity_type", "-received_at")
    seen, out = set(), []
    for r in rows:
        if r.entity_type not in seen:
            seen.add(r.entity_type)
            out.append(r)
    return out


def cell_state(*, terminal_code: str, entity_type: str) -> dict:
    """Live numbers for one cell (counter, recount, latest report, in flight now)."""
    counter = (
        EntityCounter.objects.using(central_alias())
        .filter(terminal_code=terminal_code, entity_type=entity_type)
        .values_list("live_count", flat=True)
        .first()
    )
    recount = central_recount(terminal_code=terminal_code, entity_type=entity_type).get((terminal_code, entity_type), 0)
    report = (
        ReportedCount.objects.filter(terminal__code=terminal_code, entity_type=entity_type)
        .order_by("-as_of", "-pk")
        .first()
    )
    in_flight = Message.objects.filter(
        Q(terminal__code=terminal_code), entity_type=entity_type, state__in=IN_FLIGHT_STATES
    ).count()
    return {"counter": counter or 0, "recount": recount, "report": report, "pending": in_flight}
