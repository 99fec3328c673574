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
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connections, transaction
from django.db.models import F
from django.utils import timezone

from messages.models import CentralEntity, EntityCounter, Message
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
        db = central_alias()
        data = {id(item): self.transform(item) for item in items}
        for attempt in range(3):
            try:
                with transaction.atomic(using=db):
                    return self._apply_once(items, data, db)
            except IntegrityError:
                # Another worker created one of these entities since our SELECT: run again,
                # now seeing (and locking) its row. Cheaper than replaying the whole batch
                # message by message, which is what happens if this keeps failing.
                for item in items:
                    item.applied, item.note = False, ""
                if attempt == 2:
                    raise

    def _apply_once(self, items: list[Item], data: dict, db: str) -> None:
        keys = {(i.entity_type, i.message.entity_key, i.terminal_code) for i in items}
        rows = CentralEntity.objects.using(db).select_for_update().order_by("pk")
        rows = rows.filter(
            entity_type__in={k[0] for k in keys},
            entity_key__in={k[1] for k in keys},
            terminal_code__in={k[2] for k in keys},
        )
        current = {
            (r.entity_type, r.entity_key, r.terminal_code): r
            for r in rows
            if (r.entity_type, r.entity_key, r.terminal_code) in keys
        }
        new: dict[tuple, CentralEntity] = {}
        changed: dict[tuple, CentralEntity] = {}
        deltas: dict[tuple[str, str], int] = defaultdict(int)
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
                row = CentralEntity(
                    entity_type=key[0], entity_key=key[1], terminal_code=key[2], last_sequence=seq, updated_at=now
                )
                current[key] = new[key] = row
            elif key not in new:
                changed[key] = row
            row.last_sequence = seq
            row.last_message_pk = item.message.pk
            row.updated_at = now
            if item.op == "delete":
                row.deleted = True
                row.data = {}
                deltas[(key[2], key[0])] -= 1 if was_live else 0
            else:
                row.deleted = False
                row.data = data[id(item)]
                deltas[(key[2], key[0])] += 0 if was_live else 1
            item.applied = True
        fields = ["data", "last_sequence", "deleted", "last_message_pk", "updated_at"]
        if connections[db].vendor in ("postgresql", "sqlite"):
            # A plain INSERT for the new rows on purpose: if another worker created the same
            # entity since the SELECT above, the unique constraint fails this pass and apply_many
            # runs again, now seeing that row (an upsert here would silently double-count it).
            # The changed rows exist and are locked above: INSERT ... ON CONFLICT DO UPDATE is
            # just a one-statement bulk update for them.
            _central_insert(list(new.values()), db=db, update=False)
            _central_insert(list(changed.values()), db=db, update=True)
        else:  # Oracle: no multi-row VALUES, no ON CONFLICT
            if new:
                CentralEntity.objects.using(db).bulk_create(new.values())
            if changed:
                CentralEntity.objects.using(db).bulk_update(changed.values(), fields)
        counter_move(deltas=deltas, using=db)


_CENTRAL_COLUMNS = ("entity_type", "entity_key", "terminal_code", "data", "last_sequence", "deleted",
                    "last_message_pk", "updated_at")  # fmt: skip


def _central_insert(rows: list[CentralEntity], *, db: str, update: bool) -> None:
    """One multi-row INSERT (PostgreSQL, SQLite), as an upsert of the changed columns if ``update``.

    Written by hand because it runs on every batch: bulk_create's per-value preparation cost
    more Python time than the statement took in the database (profiled).
    """
    if not rows:
        return
    conn = connections[db]
    table = CentralEntity._meta.db_table
    json_mark = "%s::jsonb" if conn.vendor == "postgresql" else "%s"
    marks = ", ".join([f"(%s, %s, %s, {json_mark}, %s, %s, %s, %s)"] * len(rows))
    sql = f"INSERT INTO {table} ({', '.join(_CENTRAL_COLUMNS)}) VALUES {marks}"
    if update:
        sql += " ON CONFLICT (entity_type, entity_key, terminal_code) DO UPDATE SET " + ", ".join(
            f"{c} = excluded.{c}" for c in ("data", "last_sequence", "deleted", "last_message_pk", "updated_at")
        )
    at = conn.ops.adapt_datetimefield_value
    params = [
        v
        for r in rows
        for v in (
            r.entity_type,
            r.entity_key,
            r.terminal_code,
            json.dumps(r.data),  # as JSONField writes it (no custom encoder)
            r.last_sequence,
            r.deleted,
            r.last_message_pk,
            at(r.updated_at),
        )
    ]
    with conn.cursor() as cursor:
        cursor.execute(sql, params)


def counter_move(*, deltas: dict[tuple[str, str], int], using: str) -> None:
    """Apply (terminal_code, entity_type) -> delta to the live counters, in a fixed order.

    One INSERT ... ON CONFLICT DO UPDATE adds every delta (creating missing counters) in a
    single statement; rows are sent sorted so concurrent batches lock counters in one order.
    """
    moves = sorted((k, d) for k, d in deltas.items() if d)
    if not moves:
        return
    now = timezone.now()
    conn = connections[using]
    if conn.vendor in ("postgresql", "sqlite"):
        table = EntityCounter._meta.db_table
        values = ", ".join(["(%s, %s, %s, %s)"] * len(moves))
        at = conn.ops.adapt_datetimefield_value(now)
        params = [v for (t, e), d in moves for v in (t, e, d, at)]
        with conn.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} (terminal_code, entity_type, live_count, updated_at) VALUES {values}"
                f" ON CONFLICT (terminal_code, entity_type) DO UPDATE"
                f" SET live_count = {table}.live_count + excluded.live_count, updated_at = excluded.updated_at",
                params,
            )
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

    def register(self, message_type: str, handler: Handler | None = None):
        """Register a Handler instance, or use as a decorator on ``fn(item)``."""
        if handler is not None:
            self.handlers[message_type] = handler
            return handler

        def decorator(fn):
            self.handlers[message_type] = FunctionHandler(fn)
            return fn

        return decorator

    def unregister(self, message_type: str) -> None:
        self.handlers.pop(message_type, None)

    def resolve(self, message_type: str) -> Handler | None:
        if message_type in self.handlers:
            return self.handlers[message_type]
        entity, op = _parse_type(message_type)
        if ENTITY_RE.match(entity) and op in ("upsert", "delete"):
            return self.entity_handler
        return None


registry = HandlerRegistry()


def load_handler_modules() -> None:
    for module in settings.SYNC_HANDLER_MODULES:
        importlib.import_module(module)
