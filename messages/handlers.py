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

The central store's SQL (per database) is in messages/central_store.py; this module is the
public extension API: ``Handler``, ``registry``, ``PermanentError``, ``Item``, ``EntityHandler``.
"""

from __future__ import annotations

import importlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import IntegrityError
from django.utils import timezone

from messages.central_store import CentralRow, central_lock, central_write, counter_move
from messages.models import ENTITY_RE, Message
from syncadmin.lib.routers import central_alias


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
        current = central_lock(keys, db=db)
        new: dict[tuple, CentralRow] = {}
        changed: dict[tuple, CentralRow] = {}
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
                row = current[key] = new[key] = CentralRow(None, *key, seq, False)
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
        taken = central_write(new=list(new.values()), changed=list(changed.values()), now=now, db=db)
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
