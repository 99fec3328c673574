"""Ingest: a terminal's batch stored in one transaction, answered per message."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import IntegrityError, connections, transaction
from django.utils import timezone

from messages import metrics as observe
from messages.models import Message, MessageEnvelope, MessageEvent, MessageState
from messages.services.transitions import EVENT_COLUMNS
from messages.services.wakeup import wake_workers
from syncadmin.lib.clock import db_now
from syncadmin.lib.sql import IN_LIST_MAX, chunks, per_vendor

S = MessageState


@dataclass
class Envelope:
    message_id: str | None
    message_type: str | None
    entity_key: str | None
    sequence: int | None
    created_at: datetime | None
    payload: str | None


@dataclass
class SubmitResult:
    message_id: str
    status: str  # Accepted | Duplicate | Rejected
    reason: str = ""


def _envelope_problem(env: Envelope) -> str:
    for name, value, limit in (
        ("MessageId", env.message_id, 64),
        ("MessageType", env.message_type, 64),
        ("EntityKey", env.entity_key, 128),
    ):
        if not value:
            return f"{name} is missing"
        if len(value) > limit:
            return f"{name} is longer than {limit} characters"
        if "\x00" in value:
            return f"{name} contains a NUL character"
    if env.sequence is None:
        return "Sequence is missing"
    if not -(2**63) <= env.sequence < 2**63:
        return "Sequence is out of range"
    if env.created_at is None:
        return "CreatedAt is missing"
    if env.payload and "\x00" in env.payload:
        return "Payload contains a NUL character"
    return ""


def message_ingest_batch(*, terminal, envelopes: Sequence[Envelope], trace_id: str = "") -> list[SubmitResult]:
    """Store a terminal's batch in one transaction and answer per message, in input order.

    Duplicates repeated within the batch are found here; those already stored are found by
    one statement that also stores the new messages and their events on PostgreSQL (see
    _store_postgresql), elsewhere by one query before the inserts.
    Idempotent: submitting the same batch again answers Duplicate for each message and
    stores nothing new.
    """
    results: list[SubmitResult | None] = [None] * len(envelopes)
    first_index: dict[str, int] = {}
    for i, env in enumerate(envelopes):
        problem = _envelope_problem(env)
        if problem:
            results[i] = SubmitResult(env.message_id or "", "Rejected", problem)
        elif env.message_id in first_index:
            results[i] = SubmitResult(env.message_id, "Duplicate")
        else:
            first_index[env.message_id] = i
    trace_id = trace_id or uuid.uuid4().hex
    candidates = [envelopes[i] for i in first_index.values()]

    for attempt in range(3):
        try:
            with transaction.atomic():
                stored = _store(Message.objects.db, terminal, candidates, trace_id) if candidates else set()
                if stored:
                    observe.transition_recorded(from_state="", to_state=S.RECEIVED, count=len(stored))
                    transaction.on_commit(wake_workers)
            break
        except IntegrityError:
            # A concurrent call stored one of these ids first; the next pass sees it as a
            # duplicate. Anything else that breaks the insert is re-raised unchanged.
            if attempt == 2:
                raise
    for message_id, i in first_index.items():
        results[i] = SubmitResult(message_id, "Accepted" if message_id in stored else "Duplicate")
    return results  # type: ignore[return-value]


@per_vendor
def _store(using: str, terminal, envelopes: list[Envelope], trace_id: str) -> set[str]:
    """Store the batch's new messages and their 'received' events; returns their ids.

    One query finds those already stored (on the envelope, which holds the unique terminal +
    message id), then the others' envelopes and their state rows (_messages_insert), then one
    INSERT ... SELECT their events.
    """
    now = db_now(using)
    existing = set(
        MessageEnvelope.objects.using(using)
        .filter(terminal=terminal, message_id__in=[e.message_id for e in envelopes])
        .values_list("message_id", flat=True)
    )
    new = [e for e in envelopes if e.message_id not in existing]
    if new:
        _messages_insert(using, terminal, new, now, trace_id)
        _received_events_insert(terminal, [e.message_id for e in new], now)
    return {e.message_id for e in new}


@_store.vendor("postgresql")
def _store_postgresql(using: str, terminal, envelopes: list[Envelope], trace_id: str) -> set[str]:
    """Store the batch's new messages and their 'received' events in one statement; returns their ids.

    One round trip instead of five (clock, duplicate lookup, envelopes, state rows, events),
    and a short constant statement with the rows as one JSON parameter (dumped and quoted in
    C) instead of a placeholder per value. The duplicate detection is the envelope insert
    itself: ``ON CONFLICT DO NOTHING`` on the unique (terminal, message_id) skips a message
    already stored, also one a concurrent call stores first (its commit is waited for), so the
    caller's retry is not needed here. The state rows and events are inserted from the
    envelopes that insert returned, so a duplicate writes none of its three rows. The database
    clock is read once (clock_timestamp(), as db_now() reads it) for every row.
    """
    rows = [
        (
            env.message_id,
            env.message_type,
            env.message_type.partition(".")[0][:40],
            env.entity_key,
            env.sequence,
            (
                timezone.make_aware(env.created_at, UTC) if timezone.is_naive(env.created_at) else env.created_at
            ).isoformat(),
            env.payload or "",
        )
        for env in envelopes
    ]
    data = json.dumps(rows, ensure_ascii=False, separators=(",", ":"))
    with connections[using].cursor() as cursor:
        cursor.execute(_STORE_SQL, [terminal.pk, trace_id, data, S.RECEIVED, S.RECEIVED, _actor(terminal)])
        return {row[0] for row in cursor.fetchall()}


def _actor(terminal) -> str:
    return f"terminal:{terminal.code}"[:150]


# A new message's two rows: what the terminal sent (the envelope), and its queue state, keyed by
# the envelope's id (the state table's primary key column is "id" too). Columns left out are NULL.
_ENVELOPE_COLUMNS = (
    "terminal_id",
    "message_id",
    "message_type",
    "entity_type",
    "entity_key",
    "sequence",
    "created_at",
    "payload",
    "received_at",
    "trace_id",
)
_STATE_COLUMNS = (
    "id",
    "state",
    "attempts",
    "next_attempt_at",
    "lease_owner",
    "last_error",
    "updated_at",
    "queued_at",
    "queue_terminal_id",
)


_STORE_SQL = f"""
WITH clock AS MATERIALIZED (SELECT clock_timestamp() AS now),
new AS (
    INSERT INTO {MessageEnvelope._meta.db_table} (
        terminal_id, message_id, message_type, entity_type, entity_key, sequence, created_at, payload,
        received_at, trace_id
    )
    SELECT %s, m.message_id, m.message_type, m.entity_type, m.entity_key, m.sequence, m.created_at, m.payload,
           clock.now, %s
    FROM (
        SELECT r->>0 AS message_id, r->>1 AS message_type, r->>2 AS entity_type, r->>3 AS entity_key,
               (r->>4)::bigint AS sequence, (r->>5)::timestamptz AS created_at, r->>6 AS payload, n
        FROM json_array_elements(%s::json) WITH ORDINALITY AS batch(r, n)
    ) AS m, clock
    ORDER BY m.n
    ON CONFLICT (terminal_id, message_id) DO NOTHING
    RETURNING id, message_id, received_at, terminal_id
), states AS (
    INSERT INTO {Message._meta.db_table} ({", ".join(_STATE_COLUMNS)})
    SELECT id, %s, 0, received_at, '', '', received_at, received_at, terminal_id FROM new ORDER BY id
), events AS (
    INSERT INTO {MessageEvent._meta.db_table} ({EVENT_COLUMNS})
    SELECT id, '', %s, received_at, %s, '', '', '', 0 FROM new ORDER BY id
)
SELECT message_id FROM new
"""


@per_vendor
def _messages_insert(using: str, terminal, envelopes: list[Envelope], now: datetime, trace_id: str) -> None:
    """Oracle has no multi-row VALUES: the envelopes by the ORM's bulk_create, then their state rows.

    Not Message's bulk_create: Django has none for a model with a parent table.
    """
    MessageEnvelope.objects.using(using).bulk_create(
        [
            MessageEnvelope(terminal=terminal, **dict(zip(_ENVELOPE_COLUMNS[1:], row[1:], strict=True)))
            for row in _envelope_rows(terminal, envelopes, now, trace_id, adapt=lambda v: v)
        ],
        batch_size=500,
    )
    _states_insert(using, terminal, [e.message_id for e in envelopes], now)


@_messages_insert.vendor("sqlite")
def _messages_insert_values(using: str, terminal, envelopes: list[Envelope], now: datetime, trace_id: str) -> None:
    """One multi-row INSERT of the batch's envelopes, then their state rows.

    Written as SQL rather than bulk_create: preparing model instances field by field cost
    half of a SubmitMessages call.
    """
    conn = connections[using]
    adapt = conn.ops.adapt_datetimefield_value
    rows = _envelope_rows(terminal, envelopes, now, trace_id, adapt=adapt)
    row_marks = "(" + ", ".join(["%s"] * len(_ENVELOPE_COLUMNS)) + ")"
    with conn.cursor() as cursor:
        for start in range(0, len(rows), 500):
            chunk = rows[start : start + 500]
            cursor.execute(
                f"INSERT INTO {MessageEnvelope._meta.db_table} ({', '.join(_ENVELOPE_COLUMNS)}) VALUES "
                + ", ".join([row_marks] * len(chunk)),
                [v for row in chunk for v in row],
            )
    _states_insert(using, terminal, [e.message_id for e in envelopes], now)


def _states_insert(using: str, terminal, message_ids: list[str], now: datetime) -> None:
    """The Received state row of each envelope just stored, built by the database from the envelopes."""
    at = connections[using].ops.adapt_datetimefield_value(now)
    _insert_from_envelopes(
        using,
        terminal,
        message_ids,
        f"INSERT INTO {Message._meta.db_table} ({', '.join(_STATE_COLUMNS)})"
        " SELECT id, %s, 0, %s, '', '', %s, received_at, terminal_id",
        [S.RECEIVED, at, at],
    )


def _insert_from_envelopes(using: str, terminal, message_ids: list[str], insert_select: str, params: list) -> None:
    """``INSERT … SELECT <columns>`` from the envelopes of ``terminal`` just stored, in chunks.

    Selected by the unique (terminal, message id): the ids the envelope insert assigned are not
    returned by every database's multi-row insert. In id order: SQLite keeps rows in insertion
    (rowid) order, and a batch's messages, all due at the same moment, are claimed in that order.
    """
    with connections[using].cursor() as cursor:
        for chunk in chunks(message_ids, IN_LIST_MAX):
            cursor.execute(
                f"{insert_select} FROM {MessageEnvelope._meta.db_table}"
                f" WHERE terminal_id = %s AND message_id IN ({', '.join(['%s'] * len(chunk))}) ORDER BY id",
                [*params, terminal.pk, *chunk],
            )


def _envelope_rows(terminal, envelopes, now, trace_id, *, adapt) -> list[tuple]:
    at = adapt(now)
    rows = []
    for env in envelopes:
        created = env.created_at
        if timezone.is_naive(created):
            created = timezone.make_aware(created, UTC)
        rows.append(
            (
                terminal.pk,
                env.message_id,
                env.message_type,
                env.message_type.partition(".")[0][:40],
                env.entity_key,
                env.sequence,
                adapt(created),
                env.payload or "",
                at,
                trace_id,
            )
        )
    return rows


def _received_events_insert(terminal, message_ids: list[str], now: datetime) -> None:
    """The 'received' lifecycle row of each new message, built by the database from the envelopes."""
    using = Message.objects.db
    _insert_from_envelopes(
        using,
        terminal,
        message_ids,
        f"INSERT INTO {MessageEvent._meta.db_table} ({EVENT_COLUMNS}) SELECT id, '', %s, %s, %s, '', '', '', 0",
        [S.RECEIVED, connections[using].ops.adapt_datetimefield_value(now), _actor(terminal)],
    )
