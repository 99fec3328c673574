"""Message handlers: the registry that maps a message type to the code that applies it.

A project adds its own types in one place: a module listed in SYNC_HANDLER_MODULES that
registers handlers with ``@registry.register("promo.apply")``. Types without a specific
handler fall back to the entity handler when they are ``<entity>.upsert`` or
``<entity>.delete``; anything else is dead-lettered at once ("no handler").

A handler receives the parsed items of one batch and writes to the central store. It runs
inside the batch transaction, so its writes commit together with the messages' state
change or not at all. Raise ``PermanentError`` for input that will never succeed (it is
dead-lettered now); any other exception counts as transient and is retried with backoff.
A handler may be called more than once for the same attempt (a batch that fails is replayed
one message at a time); its database writes from the failed pass are rolled back.
"""

from __future__ import annotations

import importlib
import json
import re
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connections
from django.db.models import F
from django.utils import timezone

from messages.models import CentralEntity, EntityCounter, Message
from syncadmin.fastsql import server_binding_cursor
from syncadmin.routers import central_alias

ENTITY_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


class PermanentError(Exception):
    """The message can never be applied as it is: dead-letter it now, do not retry."""


@dataclass
class Item:
    message: Message
    terminal_code: str
    entity_type: str
    op: str
    payload: Any
    # Set by the handler: True when the change was written, False when it was a no-op
    # (an older or equal sequence than the one already stored).
    applied: bool = False
    note: str = ""


class Handler:
    """Base handler: override ``apply`` (one item) or ``apply_many`` (a whole batch)."""

    def apply(self, item: Item) -> None:
        raise NotImplementedError

    def apply_many(self, items: list[Item]) -> None:
        for item in items:
            self.apply(item)


class FunctionHandler(Handler):
    def __init__(self, fn: Callable[[Item], None]):
        self.fn = fn

    def apply(self, item: Item) -> None:
        self.fn(item)


def _parse_type(message_type: str) -> tuple[str, str]:
    entity, _, op = message_type.partition(".")
    return entity, op


class EntityHandler(Handler):
    """Default ``<entity>.upsert`` / ``<entity>.delete``: load into the central store.

    One batch costs a handful of queries whatever its size: lock the existing rows, insert
    the new ones, update the changed ones, then move each (terminal, type) counter once.
    """

    def transform(self, item: Item) -> dict:
        if item.op == "delete":
            return {}
        if not isinstance(item.payload, dict):
            raise PermanentError(f"payload of {item.message.message_type} must be a JSON object")
        return item.payload

    def apply_many(self, items: list[Item]) -> None:
        # No savepoint here. On PostgreSQL an entity another worker created since our lookup is
        # found by the insert itself (ON CONFLICT DO NOTHING) and its items are applied again
        # against that row; elsewhere the unique constraint fails the batch's transaction and
        # the batch runs again (processing._process_batch_once), then seeing and locking it.
        db = central_alias()
        data = {id(item): self.transform(item) for item in items}
        self._apply_once(items, data, db, first=True)

    def _apply_once(self, items: list[Item], data: dict, db: str, *, first: bool) -> None:
        keys = {(i.entity_type, i.message.entity_key, i.terminal_code) for i in items}
        current = _central_lock(keys, db=db)
        new: dict[tuple, _Row] = {}
        changed: dict[tuple, _Row] = {}
        deltas: dict[tuple, int] = defaultdict(int)  # entity key -> change of its live count
        now = timezone.now()
        # In the unique key's order (terminal included), then by sequence: every worker then
        # inserts new rows in one global order. Sorting without the terminal once let two
        # batches holding the same key from two terminals insert them in opposite orders and
        # deadlock on the unique index (found by bench/engine.py).
        for item in sorted(
            items, key=lambda i: (i.entity_type, i.message.entity_key, i.terminal_code, i.message.sequence)
        ):
            key = (item.entity_type, item.message.entity_key, item.terminal_code)
            row = current.get(key)
            seq = item.message.sequence
            if row is not None and seq <= row.last_sequence:
                item.note = f"no-op: sequence {seq} <= stored {row.last_sequence}"
                continue
            was_live = row is not None and not row.deleted
            if row is None:
                row = current[key] = new[key] = _Row(None, *key, seq, False)
            elif key not in new:
                changed[key] = row
            row.last_sequence = seq
            row.last_message_pk = item.message.pk
            if item.op == "delete":
                row.deleted = True
                row.data, row.text = {}, None
                deltas[key] -= 1 if was_live else 0
            else:
                row.deleted = False
                row.data = data[id(item)]
                # The default transform hands the payload back untouched: store the text the
                # terminal sent instead of encoding the parsed document again.
                row.text = item.message.payload if row.data is item.payload else None
                deltas[key] += 0 if was_live else 1
            item.applied = True
        taken = _central_write(new=list(new.values()), changed=list(changed.values()), now=now, db=db)
        moves: dict[tuple[str, str], int] = defaultdict(int)
        for key, delta in deltas.items():
            if key not in taken:
                moves[(key[2], key[0])] += delta
        counter_move(deltas=moves, using=db)
        if taken:
            # Created by another worker since our lookup: nothing of ours was written for these
            # keys. Apply their items again, now against that row (locked, sequences compared).
            # These locks come after the batch's others, out of the global key order: in the rare
            # case that makes a deadlock, PostgreSQL breaks it and the batch is retried whole
            # (processing.message_process_batch, 40P01).
            if not first:
                raise IntegrityError(f"central entities created concurrently twice: {sorted(taken)[:3]}")
            again = [i for i in items if (i.entity_type, i.message.entity_key, i.terminal_code) in taken]
            for item in again:
                item.applied, item.note = False, ""
            self._apply_once(again, data, db, first=False)


@dataclass(slots=True)
class _Row:
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


# PostgreSQL: one unique-index probe per key, locked in the keys' sorted order (the one lock order
# of every worker). LIMIT 1 keeps the planner from merging the probes into one join, which with a
# young table's statistics it planned as a scan of whole (terminal, type) cells (measured: 4 ms
# per batch of 100). Not prepared (syncadmin/fastsql.py): its best plan depends on the table.
CENTRAL_LOCK_SQL = (
    "SELECT c.* FROM unnest(%b::text[], %b::text[], %b::text[]) AS k(t, e, term) CROSS JOIN LATERAL"
    " (SELECT id, entity_type, entity_key, terminal_code, last_sequence, deleted"
    f" FROM {CentralEntity._meta.db_table}"
    " WHERE terminal_code = k.term AND entity_type = k.t AND entity_key = k.e LIMIT 1 FOR UPDATE) c"
)


def _central_lock(keys: set[tuple[str, str, str]], *, db: str) -> dict[tuple, _Row]:
    """Lock and read the central rows of ``keys``, in one order for every worker.

    Only the columns the apply decides on: the stored data is overwritten, never read, so it
    is not loaded (decoding every stored JSON document cost more than the query).
    """
    conn = connections[db]
    if conn.vendor == "postgresql":
        # The keys as three arrays, bound on the server in binary (syncadmin/fastsql.py): one
        # short statement text whatever the batch size, where IN lists made a new text, parsed
        # and quoted again in Python, for every batch.
        ordered = sorted(keys)
        with server_binding_cursor(db) as cursor:
            cursor.execute(
                CENTRAL_LOCK_SQL, [[k[0] for k in ordered], [k[1] for k in ordered], [k[2] for k in ordered]]
            )
            rows = cursor.fetchall()
    else:
        rows = (
            CentralEntity.objects.using(db)
            .select_for_update()
            .order_by("pk")
            .filter(
                entity_type__in={k[0] for k in keys},
                entity_key__in={k[1] for k in keys},
                terminal_code__in={k[2] for k in keys},
            )
            .values_list("pk", "entity_type", "entity_key", "terminal_code", "last_sequence", "deleted")
        )
    return {(r[1], r[2], r[3]): _Row(*r) for r in rows if (r[1], r[2], r[3]) in keys}


_CENTRAL_COLUMNS = ("entity_type", "entity_key", "terminal_code", "data", "last_sequence", "deleted",
                    "last_message_pk", "updated_at")  # fmt: skip
_UPSERT = " ON CONFLICT (entity_type, entity_key, terminal_code) DO UPDATE SET " + ", ".join(
    f"{c} = excluded.{c}" for c in ("data", "last_sequence", "deleted", "last_message_pk", "updated_at")
)


def _central_write(*, new: list[_Row], changed: list[_Row], now, db: str) -> set[tuple]:
    """Write the batch's new and changed central rows; return the keys of the new rows that
    another worker created first (PostgreSQL; elsewhere that fails the pass with IntegrityError).

    The changed rows exist and are locked: INSERT … ON CONFLICT DO UPDATE is a one-statement
    bulk update. The new rows must not be upserted: a row another worker created since
    ``_central_lock`` was not seen by this batch's sequence checks and counters.
    """
    conn = connections[db]
    if conn.vendor == "postgresql":
        return _central_write_pg(new=new, changed=changed, now=now, db=db)
    if conn.vendor == "sqlite":
        _central_insert(new, db=db, update=False, now=now)
        _central_insert(changed, db=db, update=True, now=now)
    else:  # Oracle: no multi-row VALUES, no ON CONFLICT

        def model(r: _Row) -> CentralEntity:
            return CentralEntity(pk=r.pk, entity_type=r.entity_type, entity_key=r.entity_key,
                                 terminal_code=r.terminal_code, data=r.data, last_sequence=r.last_sequence,
                                 deleted=r.deleted, last_message_pk=r.last_message_pk, updated_at=now)  # fmt: skip

        if new:
            CentralEntity.objects.using(db).bulk_create([model(r) for r in new])
        if changed:
            CentralEntity.objects.using(db).bulk_update([model(r) for r in changed], _CENTRAL_COLUMNS[3:])
    return set()


def _central_write_pg(*, new: list[_Row], changed: list[_Row], now, db: str) -> set[tuple]:
    """PostgreSQL: new rows and changed rows in one statement, values as arrays.

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
    rows_sql = (
        "SELECT t, e, term, d::jsonb, s, del, mpk, %s::timestamptz FROM"
        " unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::bigint[], %b::bool[], %b::bigint[])"
        " AS u(t, e, term, d, s, del, mpk)"
    )
    parts, params = [], []
    if new:
        parts.append(
            f"new_rows AS (INSERT INTO {table} ({columns}) {rows_sql} ON CONFLICT DO NOTHING"
            " RETURNING entity_type, entity_key, terminal_code)"
        )
        params += [now, *_columns(new)]
    if changed:
        parts.append(f"changed_rows AS (INSERT INTO {table} ({columns}) {rows_sql}{_UPSERT})")
        params += [now, *_columns(changed)]
    if not parts:
        return set()
    final = "SELECT entity_type, entity_key, terminal_code FROM new_rows" if new else "SELECT 1"
    with server_binding_cursor(db, prepare=True) as cursor:
        cursor.execute(f"WITH {', '.join(parts)} {final}", params)
        inserted = {tuple(r) for r in cursor.fetchall()} if new else set()
    return {(r.entity_type, r.entity_key, r.terminal_code) for r in new} - inserted


def _columns(rows: list[_Row]) -> list[list]:
    return [
        [r.entity_type for r in rows],
        [r.entity_key for r in rows],
        [r.terminal_code for r in rows],
        [json.dumps(r.data) if r.text is None else r.text for r in rows],  # as JSONField writes it
        [r.last_sequence for r in rows],
        [r.deleted for r in rows],
        [r.last_message_pk for r in rows],
    ]


def _central_insert(rows: list[_Row], *, db: str, update: bool, now) -> None:
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


_COUNTER_TABLE = EntityCounter._meta.db_table
_COUNTER_INSERT = f"INSERT INTO {_COUNTER_TABLE} (terminal_code, entity_type, live_count, updated_at)"
_COUNTER_UPSERT = (
    " ON CONFLICT (terminal_code, entity_type) DO UPDATE"
    f" SET live_count = {_COUNTER_TABLE}.live_count + excluded.live_count, updated_at = excluded.updated_at"
)
_COUNTER_SQL_PG = (
    f"{_COUNTER_INSERT} SELECT t, e, d, %s::timestamptz"
    f" FROM unnest(%b::text[], %b::text[], %b::bigint[]) AS u(t, e, d){_COUNTER_UPSERT}"
)


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
    if not moves:
        return
    now = timezone.now()
    conn = connections[using]
    if conn.vendor == "postgresql":
        with server_binding_cursor(using, prepare=True) as cursor:
            cursor.execute(
                _COUNTER_SQL_PG, [now, [t for (t, _), _ in moves], [e for (_, e), _ in moves], [d for _, d in moves]]
            )
        return
    if conn.vendor == "sqlite":
        values = ", ".join(["(%s, %s, %s, %s)"] * len(moves))
        at = conn.ops.adapt_datetimefield_value(now)
        params = [v for (t, e), d in moves for v in (t, e, d, at)]
        with conn.cursor() as cursor:
            cursor.execute(f"{_COUNTER_INSERT} VALUES {values}{_COUNTER_UPSERT}", params)
        return
    EntityCounter.objects.using(using).bulk_create(
        [EntityCounter(terminal_code=t, entity_type=e, live_count=0, updated_at=now) for (t, e), _ in moves],
        ignore_conflicts=True,
    )
    for (terminal_code, entity_type), delta in moves:
        EntityCounter.objects.using(using).filter(terminal_code=terminal_code, entity_type=entity_type).update(
            live_count=F("live_count") + delta, updated_at=now
        )


@dataclass
class HandlerRegistry:
    handlers: dict[str, Handler] = field(default_factory=dict)
    entity_handler: Handler = field(default_factory=EntityHandler)

    # message type -> handler (or None): resolved three times per message on the hot path
    resolved: dict[str, Handler | None] = field(default_factory=dict)

    def register(self, message_type: str, handler: Handler | None = None):
        """Register a Handler instance, or use as a decorator on ``fn(item)``."""
        self.resolved.clear()
        if handler is not None:
            self.handlers[message_type] = handler
            return handler

        def decorator(fn):
            self.handlers[message_type] = FunctionHandler(fn)
            self.resolved.clear()
            return fn

        return decorator

    def unregister(self, message_type: str) -> None:
        self.resolved.clear()
        self.handlers.pop(message_type, None)

    def resolve(self, message_type: str) -> Handler | None:
        try:
            return self.resolved[message_type]
        except KeyError:
            pass
        handler = self.handlers.get(message_type)
        if handler is None:
            entity, op = _parse_type(message_type)
            if ENTITY_RE.match(entity) and op in ("upsert", "delete"):
                handler = self.entity_handler
        if len(self.resolved) < 10_000:  # types come from terminals: bound what is remembered
            self.resolved[message_type] = handler
        return handler


registry = HandlerRegistry()


def load_handler_modules() -> None:
    for module in settings.SYNC_HANDLER_MODULES:
        importlib.import_module(module)
