"""Reads on the message queue: due work, counts, a message's lifecycle, the console's lists and dead letters."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import connections
from django.db.models import Count, Max, Min, Q

from messages.handlers import registry
from messages.metrics import reason_label
from messages.models import (
    ACTION_STATES,
    PENDING_STATES,
    WAITING_STATES,
    CentralEntity,
    DeadLetter,
    DeadLetterGroupNote,
    Message,
    MessageEvent,
    MessageState,
    OutboundUpdate,
    UpdateState,
)
from syncadmin.lib.clock import db_now
from syncadmin.lib.jsontext import json_parse
from syncadmin.lib.routers import central_alias
from syncadmin.lib.sql import per_vendor


def message_due_count(*, limit: int) -> int:
    """How many messages are due (pending and due, or with an expired lease), up to ``limit``."""
    now = db_now()
    due = Message.objects.filter(state__in=PENDING_STATES, next_attempt_at__lte=now).values("pk")[:limit]
    expired = Message.objects.filter(state=MessageState.PROCESSING, lease_expires_at__lt=now).values("pk")[:limit]
    return len(due) + len(expired)


def message_due_exists() -> bool:
    """Whether anything is due now: a pending message whose time has come, or an expired lease.

    One query that stops at the first row it finds: a probe of the due index, then (only if that
    found nothing) of the lease index. Each worker cluster runs it every SYNC_DUE_CHECK_SECONDS
    (messages/cluster.py). Database clock.
    """
    return _due_exists(Message.objects.db)


@per_vendor
def _due_exists(using: str) -> bool:
    now = db_now(using)
    return (
        Message.objects.using(using).filter(state__in=PENDING_STATES, next_attempt_at__lte=now).exists()
        or Message.objects.using(using).filter(state=MessageState.PROCESSING, lease_expires_at__lt=now).exists()
    )


# The states as literals, not parameters: a partial index (message_due_idx, message_lease_idx) is only
# used for a WHERE its planner can see implies the index's own. Every column named is the state
# table's (Message's own table, which carries both indexes): no join to the envelope.
_DUE_EXISTS_SQL = (
    "SELECT 1 FROM {table}{due_index} WHERE state IN ('{received}', '{failed}') AND next_attempt_at <= {now}"
    " UNION ALL SELECT 1 FROM {table}{lease_index} WHERE state = '{processing}' AND lease_expires_at < {now}"
    " LIMIT 1"
)


def _due_exists_sql(using: str, *, indexed_by: bool, now: str, params: list) -> bool:
    sql = _DUE_EXISTS_SQL.format(
        table=Message._meta.db_table,
        due_index=" INDEXED BY message_due_idx" if indexed_by else "",
        lease_index=" INDEXED BY message_lease_idx" if indexed_by else "",
        received=MessageState.RECEIVED.value,
        failed=MessageState.FAILED.value,
        processing=MessageState.PROCESSING.value,
        now=now,
    )
    with connections[using].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone() is not None


@_due_exists.vendor("postgresql")
def _due_exists_postgresql(using: str) -> bool:
    return _due_exists_sql(using, indexed_by=False, now="statement_timestamp()", params=[])


@_due_exists.vendor("sqlite")
def _due_exists_sqlite(using: str) -> bool:
    # SQLite is also told the index by name.
    now = connections[using].ops.adapt_datetimefield_value(db_now(using))
    return _due_exists_sql(using, indexed_by=True, now="%s", params=[now, now])


def message_lease_expiry_seconds() -> float | None:
    """Seconds (database clock) until the earliest lease of a Processing message ends; None if none.

    Negative when a lease has already run out. One probe of the lease index.
    """
    earliest = (
        Message.objects.filter(state=MessageState.PROCESSING)
        .order_by("lease_expires_at")
        .values_list("lease_expires_at", flat=True)
        .first()
    )
    return None if earliest is None else (earliest - db_now()).total_seconds()


def message_state_counts() -> dict[str, int]:
    counts = dict(Message.objects.values_list("state").annotate(n=Count("pk")).order_by())
    return {state: counts.get(state, 0) for state in MessageState.values}


def message_backlog() -> dict:
    """Backlog = Received + Failed, and the received time of its oldest message."""
    # queued_at: the state row's copy of received_at, so the count never joins the envelopes.
    agg = Message.objects.filter(state__in=PENDING_STATES).aggregate(n=Count("pk"), oldest=Min("queued_at"))
    return {"count": agg["n"], "oldest_received_at": agg["oldest"]}


def message_lifecycle(*, message_id: int) -> list[MessageEvent]:
    return list(MessageEvent.objects.filter(message_id=message_id).order_by("at", "pk"))


def message_entity_history(*, message: Message, limit: int = 50) -> list[Message]:
    return list(
        Message.objects.filter(
            Q(terminal_id=message.terminal_id), entity_type=message.entity_type, entity_key=message.entity_key
        )
        .exclude(pk=message.pk)
        .order_by("-sequence")[:limit]
    )


def message_statuses(*, terminal, message_ids: list[str]) -> dict[str, Message]:
    """The terminal's own messages among ``message_ids``, by message id (one query).

    Scoped to the terminal: another terminal's id is simply not found.
    """
    ids = list(dict.fromkeys(m for m in message_ids if m))
    if not ids:
        return {}
    rows = Message.objects.filter(terminal=terminal, message_id__in=ids).only(
        "message_id", "state", "attempts", "last_error", "updated_at"
    )
    return {m.message_id: m for m in rows}


# --- console reads ---------------------------------------------------------------------------

# Public sort names of the message list -> NOT NULL model fields (keyset pagination needs both).
MESSAGE_SORTS = {
    "received_at": "received_at",
    "updated_at": "updated_at",
    "state": "state",
    "message_type": "message_type",
    "entity_key": "entity_key",
    "sequence": "sequence",
    "attempts": "attempts",
}


def message_list_queryset():
    """The base of every message list: filters are applied on top by MessageFilterSet."""
    return Message.objects.select_related("terminal")


def message_count_capped(*, queryset, cap: int) -> tuple[int, bool]:
    """How many rows ``queryset`` has, reading at most ``cap`` + 1 of them; (n, more_than_cap)."""
    n = queryset.order_by()[: cap + 1].count()
    return min(n, cap), n > cap


def message_actionable_ids(*, queryset, action: str):
    """The ids among ``queryset`` that ``action`` (retry|discard|restore) would change, as a values queryset."""
    return queryset.filter(state__in=ACTION_STATES[action]).order_by().values_list("pk", flat=True)


@dataclass
class RetryOutlook:
    """What a retry of one message can be expected to do, shown before the operator retries."""

    level: str  # "ok" | "noop" | "fail"
    text: str
    stored_sequence: int | None = None


def message_retry_outlook(*, message: Message) -> RetryOutlook:
    """Will a retry change anything? A newer stored sequence makes it a no-op; a bad payload fails again."""
    if registry.resolve(message.message_type) is None:
        return RetryOutlook("fail", f"No handler is registered for {message.message_type!r}: a retry will fail again.")
    if message.message_type.partition(".")[2] != "delete":
        try:
            parsed = json_parse(message.payload) if message.payload.strip() else None
        except ValueError as exc:
            return RetryOutlook("fail", f"The payload is not valid JSON ({exc}): fix it with Edit & retry.")
        if not isinstance(parsed, dict):
            return RetryOutlook("fail", "The payload is not a JSON object: fix it with Edit & retry.")
    stored = (
        CentralEntity.objects.using(central_alias())
        .filter(entity_type=message.entity_type, entity_key=message.entity_key, terminal_code=message.terminal.code)
        .values_list("last_sequence", flat=True)
        .first()
    )
    if stored is not None and stored >= message.sequence:
        return RetryOutlook(
            "noop",
            f"The central store already holds sequence {stored} for this entity (this message is "
            f"{message.sequence}): a retry will be a no-op and change nothing.",
            stored,
        )
    if stored is None:
        return RetryOutlook("ok", "The central store has no version of this entity yet: a retry will load it.")
    return RetryOutlook(
        "ok", f"The central store holds sequence {stored}; this message ({message.sequence}) is newer.", stored
    )


DEADLETTER_GROUPINGS = {
    "reason": ("group_key", "Failure reason"),
    "terminal": ("message__terminal__code", "Terminal"),
    "entity": ("message__entity_type", "Entity type"),
}


def deadletter_groups(*, grouping: str) -> list[dict]:
    """Open dead letters grouped by reason, terminal or entity type, largest group first."""
    column, _ = DEADLETTER_GROUPINGS[grouping]
    rows = (
        DeadLetter.objects.filter(resolution="")
        .values(column)
        .annotate(
            count=Count("pk"),
            first_seen=Min("dead_lettered_at"),
            last_seen=Max("dead_lettered_at"),
            sample=Max("reason"),
        )
        .order_by("-count", column)
    )
    return [
        {
            "key": r[column],
            "count": r["count"],
            "first_seen": r["first_seen"],
            "last_seen": r["last_seen"],
            "sample": r["sample"],
        }
        for r in rows
    ]


def deadletter_group_notes(*, grouping: str) -> dict[str, DeadLetterGroupNote]:
    """The operators' notes on the dead-letter groups of ``grouping``, by group key."""
    return {n.key: n for n in DeadLetterGroupNote.objects.filter(grouping=grouping)}


def deadletter_open_count() -> int:
    return DeadLetter.objects.filter(resolution="").count()


def message_throughput(*, since) -> int:
    """Messages processed since ``since`` (live count; the dashboard prefers metric samples)."""
    return Message.objects.filter(state=MessageState.PROCESSED, processed_at__gte=since).count()


# CSV export: (header, field), in column order.
MESSAGE_EXPORT_COLUMNS = [
    ("id", "pk"),
    ("terminal", "terminal__code"),
    *((name, name) for name in ("message_id", "message_type", "entity_key", "sequence", "state", "attempts")),
    *((name, name) for name in ("created_at", "received_at", "updated_at", "processed_at", "last_error", "trace_id")),
]


def message_export_rows(*, queryset, chunk_size: int = 2000):
    """The rows of a CSV export, streamed from the database in chunks (never all in memory)."""
    return (
        queryset.order_by("-received_at", "-pk")
        .values_list(*(field for _, field in MESSAGE_EXPORT_COLUMNS))
        .iterator(chunk_size=chunk_size)
    )


def message_pending_updates(*, terminal, limit: int = 50) -> list[OutboundUpdate]:
    return list(
        OutboundUpdate.objects.filter(
            terminal=terminal, state__in=[UpdateState.PENDING, UpdateState.DELIVERED]
        ).order_by("created_at", "pk")[:limit]
    )


def message_counts_for_terminals(*, terminal_ids: list[int] | None) -> dict[int, dict]:
    """Per terminal (every terminal with waiting messages if ``terminal_ids`` is None): the backlog
    (Received + Failed), its oldest receipt time, and the dead letters, in one grouped read.

    The one place that counts a terminal's waiting messages: the terminals list and the health score
    (reconciliation/terminal_health.py) read it, the terminal's page too.
    """
    # The state row's copies of terminal and receipt time: counted from its index, no join to the envelopes.
    waiting = Message.objects.filter(state__in=[*PENDING_STATES, MessageState.DEAD_LETTERED])
    if terminal_ids is not None:
        waiting = waiting.filter(queue_terminal_id__in=terminal_ids)
    rows = waiting.values_list("queue_terminal_id", "state").annotate(n=Count("pk"), oldest=Min("queued_at")).order_by()
    out: dict[int, dict] = {pk: {"backlog": 0, "dead": 0, "oldest": None} for pk in terminal_ids or ()}
    # Grouped by state too and folded here: a FILTER per aggregate cost 10-50 % more at 1,000,000 messages.
    for terminal_id, state, n, oldest in rows:
        counts = out.setdefault(terminal_id, {"backlog": 0, "dead": 0, "oldest": None})
        if state == MessageState.DEAD_LETTERED:
            counts["dead"] = n
        else:  # Received and Failed: the backlog, and its oldest message
            counts["backlog"] += n
            counts["oldest"] = min(oldest, counts["oldest"] or oldest)
    return out


def message_state_counts_fast(*, exact_below: int = 200_000) -> tuple[dict[str, int], set[str]]:
    """Messages per state for the dashboard, without scanning the whole table.

    Every state but Processed is counted exactly: the waiting states through the partial (state,
    queued_at) index, Processing through the lease index (neither the claim nor the completion
    writes the first, models/queue.py); those are the states an operator acts on, and they stay
    small. Processed is the bulk of a large table;
    on PostgreSQL, once the planner's row estimate passes ``exact_below``, it is the estimated
    total minus the exact others (returned in the second value as "estimated") instead of a
    GROUP BY over a million rows. Smaller tables and other databases are counted exactly.
    """
    counts = dict(
        Message.objects.filter(state__in=WAITING_STATES).values_list("state").annotate(n=Count("pk")).order_by()
    )
    counts = {s: counts.get(s, 0) for s in MessageState.values}
    counts[MessageState.PROCESSING] = Message.objects.filter(state=MessageState.PROCESSING).count()
    estimated: set[str] = set()
    total = _message_rows_estimate(Message.objects.db)
    if total is not None and total >= exact_below:
        counts[MessageState.PROCESSED] = max(total - sum(counts.values()), 0)
        estimated.add(MessageState.PROCESSED)
    else:
        counts[MessageState.PROCESSED] = Message.objects.filter(state=MessageState.PROCESSED).count()
    return counts, estimated


@per_vendor
def _message_rows_estimate(using: str) -> int | None:
    """The planner's estimate of the number of messages, where the database keeps one (else None)."""
    return None


@_message_rows_estimate.vendor("postgresql")
def _message_rows_estimate_postgresql(using: str) -> int | None:
    # The state table's: one row per message, like the envelope's, but the one the counts above
    # read; and every transition writes it, so autovacuum analyzes it (refreshing reltuples)
    # more often than the envelope table, which is only inserted into and purged.
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [Message._meta.db_table])
        row = cursor.fetchone()
    return row[0] if row and row[0] and row[0] > 0 else None


# --- for /metrics, /healthz and the sample (each one an index probe or a small scan) ------------


def message_backlog_ages() -> dict[str, datetime | None]:
    """The oldest waiting message's receipt time and the earliest due time of the backlog.

    One LIMIT 1 probe per pending state on the state row's (state, queued_at) index (queued_at
    is the envelope's received_at, copied), and one on the partial index of due work: constant
    time whatever the table or backlog size.
    """
    firsts = [
        Message.objects.filter(state=state).order_by("queued_at").values_list("queued_at", flat=True).first()
        for state in PENDING_STATES
    ]
    oldest = min((t for t in firsts if t is not None), default=None)
    due = (
        Message.objects.filter(state__in=PENDING_STATES, next_attempt_at__isnull=False)
        .order_by("next_attempt_at")
        .values_list("next_attempt_at", flat=True)
        .first()
    )
    return {"oldest_received_at": oldest, "oldest_due_at": due}


def deadletter_open_by_reason() -> list[tuple[str, int]]:
    """Unresolved dead letters grouped by error class (the open ones only: a small set)."""
    counts: dict[str, int] = {}
    for error_class, n in (
        DeadLetter.objects.filter(resolution="").values_list("error_class").annotate(n=Count("pk")).order_by()
    ):
        label = reason_label(error_class)
        counts[label] = counts.get(label, 0) + n
    return sorted(counts.items())
