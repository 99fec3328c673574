"""The one transition function: every state change of a message goes through here.

A compare-and-set UPDATE on the expected current state plus one MessageEvent row per
message, in one transaction. If any message is no longer in the expected state the whole
change rolls back, so two actors can never both win and a transition never half-happens.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from django.db import connections, transaction
from django.db.models.sql import UpdateQuery

from messages import metrics as observe
from messages.models import TRANSITIONS, Message, MessageEnvelope, MessageEvent, MessageState
from syncadmin.lib.clock import db_now
from syncadmin.lib.fastsql import numbers, server_binding_cursor
from syncadmin.lib.sql import IN_LIST_MAX, chunks, per_vendor

S = MessageState
NOOP_REASON = "no-op: the central store already holds this or a newer sequence"

# The event table's columns as every INSERT ... SELECT of the engine writes them (ingest, transitions, claim).
EVENT_COLUMNS = "message_id, from_state, to_state, at, actor, reason, error_class, traceback, attempt"


class IllegalTransition(Exception):
    """A state change the lifecycle does not allow, or one whose expected state was stale."""


def message_transition(
    *,
    message_ids: Sequence[int],
    from_state: str,
    to_state: str,
    actor: str,
    reason: str = "",
    error_class: str = "",
    traceback: str = "",
    fields: dict | None = None,
    only_if: dict | None = None,
    now: datetime | None = None,
    savepoint: bool = True,
) -> int:
    """Move every message in ``message_ids`` from ``from_state`` to ``to_state``, or none.

    ``fields`` are extra column updates (values or F expressions); ``only_if`` adds
    conditions to the compare-and-set (e.g. the lease owner). Raises IllegalTransition if
    the move is not in the lifecycle or if any message was not in ``from_state``.
    ``savepoint=False`` (the worker's batch, whose whole transaction fails with any of its
    transitions) saves the SAVEPOINT and RELEASE round trips inside a caller's transaction;
    the caller then cannot catch IllegalTransition and carry on in that transaction.
    """
    ids = list(dict.fromkeys(message_ids))
    if to_state not in TRANSITIONS.get(from_state, ()):
        raise IllegalTransition(f"{from_state} -> {to_state} is not a legal transition")
    if not ids:
        return 0
    with transaction.atomic(savepoint=savepoint):
        now = now or db_now()
        event = (from_state, to_state, now, actor, reason, error_class, traceback)
        values = {"state": to_state, "updated_at": now, **(fields or {})}
        # The envelope's fields (an operator's edited payload) are written apart: the move's one
        # statement updates the state row only.
        envelope = {k: values.pop(k) for k in list(values) if k not in _FIELDS}
        changed = _move(Message.objects.db, ids, from_state, values, only_if or {}, event)
        if changed != len(ids):
            raise IllegalTransition(
                f"{len(ids) - changed} of {len(ids)} message(s) were no longer {from_state}"
                + (f" with {only_if}" if only_if else "")
            )
        if envelope:
            MessageEnvelope.objects.filter(pk__in=ids).update(**envelope)
        observe.transition_recorded(from_state=from_state, to_state=to_state, count=changed, error_class=error_class)
    return changed


def messages_complete(*, applied: Sequence[int], noop: Sequence[int], worker: str, reason: str) -> datetime:
    """Processing -> Processed for a batch's messages under ``worker``'s lease, all or none; the time stamped.

    ``applied`` get the reason "applied", ``noop`` get ``reason``. Returns the database time written
    on the rows and their events, which the batch's other outcomes and its metrics then use. On
    PostgreSQL this is one statement with the database's clock read inside it (a round trip for
    ``db_now()`` fewer per batch, and one for the second reason); elsewhere two transitions.
    Raises IllegalTransition, as ``message_transition`` does, if any message is not Processing
    under that lease.
    """
    applied, noop = list(dict.fromkeys(applied)), list(dict.fromkeys(noop))
    if not applied and not noop:
        return db_now()
    return _complete(Message.objects.db, applied, noop, worker, reason)


@per_vendor
def _complete(using: str, applied: list[int], noop: list[int], worker: str, reason: str) -> datetime:
    now = db_now(using)
    done = {"processed_at": now, "lease_owner": "", "lease_expires_at": None, "last_error": ""}
    for ids, why in ((applied, "applied"), (noop, reason)):
        message_transition(
            message_ids=ids,
            from_state=S.PROCESSING,
            to_state=S.PROCESSED,
            actor=worker,
            reason=why,
            fields=done,
            only_if={"lease_owner": worker},
            now=now,
            savepoint=False,
        )
    return now


@_complete.vendor("postgresql")
def _complete_postgresql(using: str, applied: list[int], noop: list[int], worker: str, reason: str) -> datetime:
    ids = applied + noop
    (all_ids, ids_param), (noop_ids, noop_param) = numbers(ids, "bigint"), numbers(noop, "bigint")
    with server_binding_cursor(using, prepare=True) as cursor:
        # statement_timestamp(): when this statement began, the same value everywhere in it.
        cursor.execute(
            f"WITH moved AS (UPDATE {Message._meta.db_table} SET state = %s, updated_at = statement_timestamp(),"
            " processed_at = statement_timestamp(), lease_owner = '', lease_expires_at = NULL, last_error = ''"
            f" WHERE id = ANY({all_ids}) AND state = %s AND lease_owner = %s RETURNING id, attempts),"
            f" events AS (INSERT INTO {MessageEvent._meta.db_table} ({EVENT_COLUMNS})"
            f" SELECT id, %s, %s, statement_timestamp(), %s, CASE WHEN id = ANY({noop_ids}) THEN %s ELSE %s END,"
            " '', '', attempts FROM moved)"
            " SELECT count(*), statement_timestamp() FROM moved",
            [S.PROCESSED, ids_param, S.PROCESSING, worker[:128], S.PROCESSING, S.PROCESSED, worker[:150], noop_param,
             reason, "applied"],
        )  # fmt: skip
        changed, now = cursor.fetchone()
    if changed != len(ids):
        raise IllegalTransition(
            f"{len(ids) - changed} of {len(ids)} message(s) were no longer {S.PROCESSING} with lease owner {worker}"
        )
    observe.transition_recorded(from_state=S.PROCESSING, to_state=S.PROCESSED, count=changed)
    return now


@per_vendor
def _move(using: str, ids: list[int], from_state: str, values: dict, only_if: dict, event: tuple) -> int:
    """The compare-and-set UPDATE, then the events of the messages it moved; how many moved.

    Events are written only for a chunk whose every message moved: otherwise the transition
    fails as a whole anyway.
    """
    changed = 0
    for chunk in chunks(ids, IN_LIST_MAX):
        n = Message.objects.using(using).filter(pk__in=chunk, state=from_state, **only_if).update(**values)
        if n == len(chunk):
            _events_insert(using, chunk, *event)
        changed += n
    return changed


@_move.vendor("postgresql")
def _move_postgresql(using: str, ids: list[int], from_state: str, values: dict, only_if: dict, event: tuple) -> int:
    if _plain(values, only_if):
        return _update_with_events_arrays(using, ids, from_state, values, only_if, event)
    changed = 0
    for chunk in chunks(ids, IN_LIST_MAX):
        qs = Message.objects.using(using).filter(pk__in=chunk, state=from_state, **only_if)
        changed += _update_with_events(qs, values, event)
    return changed


# The narrow state row's columns (the envelope's are never updated): what the one-statement form may set.
_FIELDS = {f.name: f for f in Message._meta.local_concrete_fields}


def _plain(values: dict, only_if: dict | None) -> bool:
    """Plain column values and equality conditions only: no expressions, no lookups."""
    return all(k in _FIELDS and not hasattr(v, "resolve_expression") for k, v in values.items()) and all(
        k in _FIELDS and v is not None and not hasattr(v, "resolve_expression") for k, v in (only_if or {}).items()
    )


def _update_with_events_arrays(
    using: str, ids: list[int], from_state: str, values: dict, only_if: dict, event: tuple
) -> int:
    """PostgreSQL, plain values: the compare-and-set UPDATE and its events in one statement.

    The ids go as one array bound in binary (``id = ANY(%b)``, syncadmin/lib/fastsql.py), so the
    statement's text is the same for any number of messages, where an ``IN (%s, …)`` list was
    a new text to parse and quote in Python on every batch (a sixth of a worker's CPU,
    profiled), and the ORM no longer compiles an UpdateQuery per call.
    """
    sets = ", ".join(f"{_FIELDS[k].column} = %s" for k in values)
    conds = "".join(f" AND {_FIELDS[k].column} = %s" for k in only_if)
    conn = connections[using]
    prep = [_FIELDS[k].get_db_prep_save(v, conn) for k, v in values.items()]
    prep_if = [_FIELDS[k].get_db_prep_save(v, conn) for k, v in only_if.items()]
    from_state, to_state, now, actor, reason, error_class, traceback = event
    with server_binding_cursor(using, prepare=True) as cursor:
        cursor.execute(
            f"WITH moved AS (UPDATE {Message._meta.db_table} SET {sets}"
            f" WHERE id = ANY(%b::bigint[]) AND state = %s{conds} RETURNING id, attempts)"
            f" INSERT INTO {MessageEvent._meta.db_table} ({EVENT_COLUMNS})"
            " SELECT id, %s, %s, %s, %s, %s, %s, %s, attempts FROM moved",
            [*prep, ids, from_state, *prep_if, from_state, to_state, now, actor[:150], reason, error_class[:200],
             traceback],
        )  # fmt: skip
        return cursor.rowcount


def _update_with_events(qs, values: dict, event: tuple) -> int:
    """PostgreSQL: the compare-and-set UPDATE and its event rows in one statement.

    ``WITH moved AS (UPDATE … RETURNING id, attempts) INSERT INTO event SELECT … FROM moved``:
    one round trip instead of two, and the events are exactly the rows that moved.
    """
    query = qs.query.chain(UpdateQuery)
    query.add_update_values(values)
    update_sql, update_params = query.get_compiler(qs.db).as_sql()
    from_state, to_state, now, actor, reason, error_class, traceback = event
    with connections[qs.db].cursor() as cursor:
        cursor.execute(
            f"WITH moved AS ({update_sql} RETURNING id, attempts)"
            f" INSERT INTO {MessageEvent._meta.db_table} ({EVENT_COLUMNS})"
            " SELECT id, %s, %s, %s, %s, %s, %s, %s, attempts FROM moved",
            [*update_params, from_state, to_state, now, actor[:150], reason, error_class[:200], traceback],
        )
        return cursor.rowcount


def _events_insert(using: str, ids, from_state, to_state, now, actor, reason, error_class, traceback) -> None:
    """One INSERT ... SELECT per chunk: the event rows are built by the database, not the ORM.

    The attempt number is read from the message row just updated, so a claim's event carries
    the attempt it started.
    """
    conn = connections[using]
    at = conn.ops.adapt_datetimefield_value(now)
    event, message = MessageEvent._meta.db_table, Message._meta.db_table
    with conn.cursor() as cursor:
        for chunk in chunks(ids, IN_LIST_MAX):
            marks = ", ".join(["%s"] * len(chunk))
            cursor.execute(
                f"INSERT INTO {event} ({EVENT_COLUMNS})"
                f" SELECT id, %s, %s, %s, %s, %s, %s, %s, attempts FROM {message} WHERE id IN ({marks})",
                [from_state, to_state, at, actor[:150], reason, error_class[:200], traceback, *chunk],
            )
