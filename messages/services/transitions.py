"""The one transition function: every state change of a message goes through here.

A compare-and-set UPDATE on the expected current state plus one MessageEvent row per
message, in one transaction. If any message is no longer in the expected state the whole
change rolls back, so two actors can never both win and a transition never half-happens.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from itertools import islice

from django.db import connections, transaction
from django.db.models.sql import UpdateQuery

from messages.models import TRANSITIONS, Message, MessageEvent, MessageState
from syncadmin.observability import engine as observe

S = MessageState
RETRYABLE_STATES = (S.FAILED, S.DEAD_LETTERED)
DISCARDABLE_STATES = (S.RECEIVED, S.FAILED, S.DEAD_LETTERED)


NOOP_REASON = "no-op: the central store already holds this or a newer sequence"


class IllegalTransition(Exception):
    """A state change the lifecycle does not allow, or one whose expected state was stale."""


# --- clock -----------------------------------------------------------------------------------


def db_now(using: str = "default") -> datetime:
    """The database's clock: leases and backoff must not depend on a worker's own clock."""
    conn = connections[using]
    if conn.vendor == "sqlite":
        # SQLite is a file on this machine: its clock is this machine's clock.
        from django.utils import timezone

        return timezone.now()
    sql = {"postgresql": "SELECT clock_timestamp()", "oracle": "SELECT SYSTIMESTAMP FROM DUAL"}.get(
        conn.vendor, "SELECT CURRENT_TIMESTAMP"
    )
    with conn.cursor() as cursor:
        cursor.execute(sql)
        value = cursor.fetchone()[0]
    if value.tzinfo is None:
        from django.utils import timezone

        value = timezone.make_aware(value, timezone.utc)
    return value


# --- the one transition function -------------------------------------------------------------


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
) -> int:
    """Move every message in ``message_ids`` from ``from_state`` to ``to_state``, or none.

    ``fields`` are extra column updates (values or F expressions); ``only_if`` adds
    conditions to the compare-and-set (e.g. the lease owner). Raises IllegalTransition if
    the move is not in the lifecycle or if any message was not in ``from_state``.
    """
    ids = list(dict.fromkeys(message_ids))
    if to_state not in TRANSITIONS.get(from_state, ()):
        raise IllegalTransition(f"{from_state} -> {to_state} is not a legal transition")
    if not ids:
        return 0
    with transaction.atomic():
        now = now or db_now()
        event = (from_state, to_state, now, actor, reason, error_class, traceback)
        changed = 0
        for chunk in _chunks(ids, 900):  # Oracle allows at most 1,000 items in an IN list
            qs = Message.objects.filter(pk__in=chunk, state=from_state, **(only_if or {}))
            values = {"state": to_state, "updated_at": now, **(fields or {})}
            if connections[qs.db].vendor == "postgresql":
                changed += _update_with_events(qs, values, event)
            else:
                n = qs.update(**values)
                if n == len(chunk):
                    _events_insert(chunk, *event)
                changed += n
        if changed != len(ids):
            raise IllegalTransition(
                f"{len(ids) - changed} of {len(ids)} message(s) were no longer {from_state}"
                + (f" with {only_if}" if only_if else "")
            )
        observe.transition_recorded(from_state=from_state, to_state=to_state, count=changed, error_class=error_class)
    return changed


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
            f" INSERT INTO {MessageEvent._meta.db_table}"
            " (message_id, from_state, to_state, at, actor, reason, error_class, traceback, attempt)"
            " SELECT id, %s, %s, %s, %s, %s, %s, %s, attempts FROM moved",
            [*update_params, from_state, to_state, now, actor[:150], reason, error_class[:200], traceback],
        )
        return cursor.rowcount


def _events_insert(ids, from_state, to_state, now, actor, reason, error_class, traceback) -> None:
    """One INSERT ... SELECT per chunk: the event rows are built by the database, not the ORM.

    The attempt number is read from the message row just updated, so a claim's event carries
    the attempt it started.
    """
    conn = connections[Message.objects.db]
    at = conn.ops.adapt_datetimefield_value(now)
    event, message = MessageEvent._meta.db_table, Message._meta.db_table
    with conn.cursor() as cursor:
        for chunk in _chunks(ids, 900):
            marks = ", ".join(["%s"] * len(chunk))
            cursor.execute(
                f"INSERT INTO {event}"
                " (message_id, from_state, to_state, at, actor, reason, error_class, traceback, attempt)"
                f" SELECT id, %s, %s, %s, %s, %s, %s, %s, attempts FROM {message} WHERE id IN ({marks})",
                [from_state, to_state, at, actor[:150], reason, error_class[:200], traceback, *chunk],
            )


def _chunks(ids: Iterable[int], size: int = 1000):
    it = iter(ids)
    while chunk := list(islice(it, size)):
        yield chunk
