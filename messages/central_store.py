"""The central store's SQL: lock and read entities, write them, move the live counters.

What the default entity handler (messages/handlers.py, ``EntityHandler``) writes through, one
function per database where one can do better than the ORM: PostgreSQL (arrays bound in binary,
data-modifying CTEs, ON CONFLICT), SQLite (multi-row VALUES, ON CONFLICT), and the ORM for the
others (Oracle, where the central store lives in the field). Every function takes the central
store's alias (``syncadmin.lib.routers.central_alias()``) and runs inside the batch's transaction.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.db import connections
from django.db.models import F
from django.utils import timezone

from messages.models import CentralEntity, EntityCounter
from syncadmin.lib.fastsql import server_binding_cursor, unnested
from syncadmin.lib.sql import per_vendor

Key = tuple[str, str, str]  # (entity type, entity key, terminal code): the unique key


@dataclass(slots=True)
class CentralRow:
    """A central entity as the apply needs it: its key, sequence and tombstone, then what to write."""

    pk: int | None
    entity_type: str
    entity_key: str
    terminal_code: str
    last_sequence: int
    deleted: bool
    data: Any = None
    text: str | None = None  # ``data`` as JSON text, when known without encoding it
    last_message_pk: int | None = None


# --- lock and read ------------------------------------------------------------------------------

# PostgreSQL: one unique-index probe per key, locked in the keys' sorted order (the one lock order
# of every worker). LIMIT 1 keeps the planner from merging the probes into one join, which with a
# young table's statistics it planned as a scan of whole (terminal, type) cells (measured: 4 ms
# per batch of 100). Not prepared (syncadmin/lib/fastsql.py): its best plan depends on the table.
# {keys}: the keys as three arrays (fastsql.unnested).
CENTRAL_LOCK_SQL = (
    "SELECT c.* FROM {keys} AS k(t, e, term) CROSS JOIN LATERAL"
    " (SELECT id, entity_type, entity_key, terminal_code, last_sequence, deleted"
    f" FROM {CentralEntity._meta.db_table}"
    " WHERE terminal_code = k.term AND entity_type = k.t AND entity_key = k.e LIMIT 1 FOR UPDATE) c"
)


def central_lock(keys: set[Key], *, db: str) -> dict[Key, CentralRow]:
    """Lock and read the central rows of ``keys``, in one order for every worker.

    Only the columns the apply decides on: the stored data is overwritten, never read, so it
    is not loaded (decoding every stored JSON document cost more than the query).
    """
    rows = _locked_rows(db, keys)
    return {(r[1], r[2], r[3]): CentralRow(*r) for r in rows if (r[1], r[2], r[3]) in keys}


@per_vendor
def _locked_rows(using: str, keys: set[Key]) -> list[tuple]:
    return list(
        CentralEntity.objects.using(using)
        .select_for_update()
        .order_by("pk")
        .filter(
            entity_type__in={k[0] for k in keys},
            entity_key__in={k[1] for k in keys},
            terminal_code__in={k[2] for k in keys},
        )
        .values_list("pk", "entity_type", "entity_key", "terminal_code", "last_sequence", "deleted")
    )


@_locked_rows.vendor("postgresql")
def _locked_rows_postgresql(using: str, keys: set[Key]) -> list[tuple]:
    # The keys as three arrays bound on the server (syncadmin/lib/fastsql.py): one short statement
    # text whatever the batch size, where IN lists made a new text, parsed and quoted again in
    # Python, for every batch.
    with server_binding_cursor(using) as cursor:
        cursor.execute(*central_lock_sql(keys))
        return cursor.fetchall()


def central_lock_sql(keys: Iterable[Key]) -> tuple[str, list]:
    """PostgreSQL: the lookup that locks ``keys``' central rows, as (SQL, parameters)."""
    ordered = sorted(keys)
    source, params = unnested(*(("text", [k[i] for k in ordered]) for i in range(3)))
    return CENTRAL_LOCK_SQL.format(keys=source), params


# --- write --------------------------------------------------------------------------------------

_CENTRAL_COLUMNS = ("entity_type", "entity_key", "terminal_code", "data", "last_sequence", "deleted",
                    "last_message_pk", "updated_at")  # fmt: skip
_UPSERT = " ON CONFLICT (entity_type, entity_key, terminal_code) DO UPDATE SET " + ", ".join(
    f"{c} = excluded.{c}" for c in ("data", "last_sequence", "deleted", "last_message_pk", "updated_at")
)


def central_write(*, new: list[CentralRow], changed: list[CentralRow], now, db: str) -> set[Key]:
    """Write the batch's new and changed central rows; return the keys of the new rows that
    another worker created first (PostgreSQL; elsewhere that fails the pass with IntegrityError).

    The changed rows exist and are locked: INSERT … ON CONFLICT DO UPDATE is a one-statement
    bulk update. The new rows must not be upserted: a row another worker created since
    ``central_lock`` was not seen by this batch's sequence checks and counters.
    """
    return _write(db, new, changed, now)


@per_vendor
def _write(using: str, new: list[CentralRow], changed: list[CentralRow], now) -> set[Key]:
    # Oracle: no multi-row VALUES, no ON CONFLICT.
    def model(r: CentralRow) -> CentralEntity:
        return CentralEntity(pk=r.pk, entity_type=r.entity_type, entity_key=r.entity_key,
                             terminal_code=r.terminal_code, data=r.data, last_sequence=r.last_sequence,
                             deleted=r.deleted, last_message_pk=r.last_message_pk, updated_at=now)  # fmt: skip

    if new:
        CentralEntity.objects.using(using).bulk_create([model(r) for r in new])
    if changed:
        CentralEntity.objects.using(using).bulk_update([model(r) for r in changed], _CENTRAL_COLUMNS[3:])
    return set()


@_write.vendor("sqlite")
def _write_sqlite(using: str, new: list[CentralRow], changed: list[CentralRow], now) -> set[Key]:
    _insert_sqlite(new, db=using, update=False, now=now)
    _insert_sqlite(changed, db=using, update=True, now=now)
    return set()


@_write.vendor("postgresql")
def _write_postgresql(using: str, new: list[CentralRow], changed: list[CentralRow], now) -> set[Key]:
    """New rows and changed rows in one statement, values as arrays.

    One round trip instead of two, and a statement text that does not grow with the batch.
    The parts touch disjoint rows (new and changed keys never overlap), which is what lets
    data-modifying CTEs share one statement. New rows go in with ON CONFLICT DO NOTHING: one
    another worker is inserting waits for that worker's commit, then is skipped and reported,
    where a plain INSERT failed the whole batch (and, three times running, sent it to a replay
    one message at a time: two workers on one terminal's new entities did that every few
    seconds, found by bench/engine.py).
    """
    table = CentralEntity._meta.db_table
    columns = ", ".join(_CENTRAL_COLUMNS)

    def rows_sql(rows: list[CentralRow]) -> tuple[str, list]:
        cols = _columns(rows)
        types = ("text", "text", "text", "text", "bigint", "bool", "bigint")
        source, params = unnested(*zip(types, cols, strict=True))
        return (
            f"SELECT t, e, term, d::jsonb, s, del, mpk, %s::timestamptz FROM {source} AS u(t, e, term, d, s, del, mpk)",
            [now, *params],
        )

    parts, params = [], []
    if new:
        sql, values = rows_sql(new)
        parts.append(
            f"new_rows AS (INSERT INTO {table} ({columns}) {sql} ON CONFLICT DO NOTHING"
            " RETURNING entity_type, entity_key, terminal_code)"
        )
        params += values
    if changed:
        sql, values = rows_sql(changed)
        parts.append(f"changed_rows AS (INSERT INTO {table} ({columns}) {sql}{_UPSERT})")
        params += values
    if not parts:
        return set()
    final = "SELECT entity_type, entity_key, terminal_code FROM new_rows" if new else "SELECT 1"
    with server_binding_cursor(using, prepare=True) as cursor:
        cursor.execute(f"WITH {', '.join(parts)} {final}", params)
        inserted = {tuple(r) for r in cursor.fetchall()} if new else set()
    return {(r.entity_type, r.entity_key, r.terminal_code) for r in new} - inserted


def _columns(rows: list[CentralRow]) -> list[list]:
    return [
        [r.entity_type for r in rows],
        [r.entity_key for r in rows],
        [r.terminal_code for r in rows],
        [json.dumps(r.data) if r.text is None else r.text for r in rows],  # as JSONField writes it
        [r.last_sequence for r in rows],
        [r.deleted for r in rows],
        [r.last_message_pk for r in rows],
    ]


def _insert_sqlite(rows: list[CentralRow], *, db: str, update: bool, now) -> None:
    """SQLite: one multi-row INSERT, as an upsert of the changed columns if ``update``."""
    if not rows:
        return
    conn = connections[db]
    marks = ", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s)"] * len(rows))
    sql = f"INSERT INTO {CentralEntity._meta.db_table} ({', '.join(_CENTRAL_COLUMNS)}) VALUES {marks}"
    at = conn.ops.adapt_datetimefield_value(now)
    params = [v for values in zip(*_columns(rows), strict=True) for v in (*values, at)]
    with conn.cursor() as cursor:
        cursor.execute(sql + (_UPSERT if update else ""), params)


# --- the live counters ----------------------------------------------------------------------------

_COUNTER_TABLE = EntityCounter._meta.db_table
_COUNTER_INSERT = f"INSERT INTO {_COUNTER_TABLE} (terminal_code, entity_type, live_count, updated_at)"
_COUNTER_UPSERT = (
    " ON CONFLICT (terminal_code, entity_type) DO UPDATE"
    f" SET live_count = {_COUNTER_TABLE}.live_count + excluded.live_count, updated_at = excluded.updated_at"
)
_COUNTER_SQL_PG = f"{_COUNTER_INSERT} SELECT t, e, d, %s::timestamptz FROM {{rows}} AS u(t, e, d)" + _COUNTER_UPSERT


_deferred = threading.local()


@contextmanager
def counters_at_end(using: str) -> Iterator[None]:
    """Sum the counter moves made inside the block and write them when it ends without error.

    The counters are a batch's hottest rows: every batch from one terminal moves the same few,
    so a counter locked early in an apply held every other worker on that terminal until the
    batch committed. Written last, a counter is held for the commit only. For all-or-nothing
    blocks only: a savepoint rolled back inside would not take its moves back with it.
    """
    pending: dict[tuple[str, str], int] = defaultdict(int)
    stack = _deferred.__dict__.setdefault("stack", [])
    stack.append((using, pending))
    try:
        yield
    finally:
        stack.pop()
    counter_move(deltas=pending, using=using)


def counter_move(*, deltas: dict[tuple[str, str], int], using: str) -> None:
    """Apply (terminal_code, entity_type) -> delta to the live counters, in a fixed order.

    One INSERT ... ON CONFLICT DO UPDATE adds every delta (creating missing counters) in a
    single statement; rows are sent sorted so concurrent batches lock counters in one order.
    Inside ``counters_at_end`` the deltas are only added up, and written when it ends.
    """
    stack = getattr(_deferred, "stack", None)
    if stack and stack[-1][0] == using:
        for key, delta in deltas.items():
            stack[-1][1][key] += delta
        return
    moves = sorted((k, d) for k, d in deltas.items() if d)
    if moves:
        _counters_add(using, moves, timezone.now())


@per_vendor
def _counters_add(using: str, moves: list[tuple[tuple[str, str], int]], now) -> None:
    EntityCounter.objects.using(using).bulk_create(
        [EntityCounter(terminal_code=t, entity_type=e, live_count=0, updated_at=now) for (t, e), _ in moves],
        ignore_conflicts=True,
    )
    for (terminal_code, entity_type), delta in moves:
        EntityCounter.objects.using(using).filter(terminal_code=terminal_code, entity_type=entity_type).update(
            live_count=F("live_count") + delta, updated_at=now
        )


@_counters_add.vendor("postgresql")
def _counters_add_postgresql(using: str, moves: list[tuple[tuple[str, str], int]], now) -> None:
    rows, params = unnested(
        ("text", [t for (t, _), _ in moves]), ("text", [e for (_, e), _ in moves]), ("bigint", [d for _, d in moves])
    )
    with server_binding_cursor(using, prepare=True) as cursor:
        cursor.execute(_COUNTER_SQL_PG.format(rows=rows), [now, *params])


@_counters_add.vendor("sqlite")
def _counters_add_sqlite(using: str, moves: list[tuple[tuple[str, str], int]], now) -> None:
    conn = connections[using]
    values = ", ".join(["(%s, %s, %s, %s)"] * len(moves))
    at = conn.ops.adapt_datetimefield_value(now)
    params = [v for (t, e), d in moves for v in (t, e, d, at)]
    with conn.cursor() as cursor:
        cursor.execute(f"{_COUNTER_INSERT} VALUES {values}{_COUNTER_UPSERT}", params)
