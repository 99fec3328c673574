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
from syncadmin.fastsql import server_binding_cursor
from syncadmin.models import MetricCounter
from syncadmin.observability import engine as observe
from terminals.models import Terminal

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
        conn = connections[Message.objects.db]
        if conn.vendor == "postgresql" and _plain(values, only_if):
            changed = _update_with_events_pg(conn, ids, from_state, values, only_if or {}, event)
            ids_left = []
        else:
            changed, ids_left = 0, ids
        for chunk in _chunks(ids_left, 900):  # Oracle allows at most 1,000 items in an IN list
            qs = Message.objects.filter(pk__in=chunk, state=from_state, **(only_if or {}))
            if conn.vendor == "postgresql":
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


# What applying a claimed message needs (loading fewer columns, timestamps above all, keeps the
# claim cheap), besides id, terminal_id and the terminal's code.
CLAIM_COLUMNS = (
    "message_id",
    "message_type",
    "entity_type",
    "entity_key",
    "sequence",
    "payload",
    "state",
    "attempts",
    "lease_owner",
    "trace_id",
    "received_at",  # the queue latency metric
)
CLAIMABLE_STATES = (S.RECEIVED, S.FAILED)
assert all(S.PROCESSING in TRANSITIONS[state] for state in CLAIMABLE_STATES)


# PostgreSQL: walk the claim index in order instead of sorting every due row (why: processing.py,
# _prefer_index_order). SET LOCAL lasts until the claim transaction ends.
PREFER_INDEX_ORDER_SQL = (
    "SELECT set_config('enable_sort', 'off', true), set_config('enable_bitmapscan', 'off', true),"
    " set_config('jit', 'off', true)"
)


# (name, label text) of the claim's transition counter, per state it claims from.
_CLAIM_SERIES = [observe.transition_series(from_state=s, to_state=S.PROCESSING) for s in CLAIMABLE_STATES]


# The claim's plan: made once per connection as a generic plan (message_claim_due), under the
# settings above, which last until the claim transaction ends. No sequential scans either: a
# plan made while the table was small updated the claimed rows through a hash join over a scan
# of the whole message table (found by test_claim.py), and a generic plan is kept.
_CLAIM_PLAN_SQL = PREFER_INDEX_ORDER_SQL + (
    ", set_config('enable_seqscan', 'off', true), set_config('plan_cache_mode', 'force_generic_plan', true)"
)


def message_claim_due(*, worker: str, limit: int, lease_seconds: float) -> list[Message]:
    """PostgreSQL: claim up to ``limit`` due messages in one statement and return them.

    The claim as a transition, compare-and-set included: the rows locked (SKIP LOCKED) are
    exactly the rows moved to Processing, each gets its event row, and the transition counter
    its delta, in one statement instead of a SELECT, a clock read, an UPDATE and two INSERTs.
    Leases and event times are the database clock read per row after its lock is held (an
    operator action committed just before can never look later than the claim that follows it).
    Returned in due order, the order a failed batch is replayed in one message at a time. Call
    inside a transaction.

    Prepared, with one generic plan per connection (_CLAIM_PLAN_SQL): planning this statement
    cost more than running it (0.5 ms against 0.2 ms, measured), on every claim. The plan is
    made under the planner settings that keep the due index walked in order, so it is that walk
    whatever the table's size; the states and the batch size are literals in its text, so the
    generic plan can still prove the partial due index applies.
    """
    conn = connections[Message.objects.db]
    msg, ev, term = Message._meta.db_table, MessageEvent._meta.db_table, Terminal._meta.db_table
    columns = ", ".join(f"m.{c}" for c in CLAIM_COLUMNS if c != "state")
    # Not updated_at: the events take it inside the statement; nothing here needs it decoded.
    returned = ", ".join(
        f"moved.{c}" for c in ("id", "terminal_id", "from_state", "due_at", *CLAIM_COLUMNS) if c != "state"
    )
    labels = " ".join("WHEN %s THEN %s" for _ in CLAIMABLE_STATES)
    states = ", ".join(f"'{state.value}'" for state in CLAIMABLE_STATES)  # literals: see above
    with conn.cursor() as cursor:
        cursor.execute(_CLAIM_PLAN_SQL)
    with server_binding_cursor(conn.alias, prepare=True) as cursor:
        cursor.execute(
            f"""WITH due AS (
                SELECT id, state, next_attempt_at FROM {msg}
                WHERE state IN ({states}) AND next_attempt_at <= statement_timestamp()
                ORDER BY next_attempt_at LIMIT {int(limit)} FOR UPDATE SKIP LOCKED
            ), moved AS (
                UPDATE {msg} AS m SET state = %s, updated_at = clock_timestamp(), attempts = m.attempts + 1,
                    lease_owner = %s, lease_expires_at = clock_timestamp() + make_interval(secs => %s),
                    next_attempt_at = NULL
                FROM due WHERE m.id = due.id
                RETURNING m.id, m.terminal_id, due.state AS from_state, due.next_attempt_at AS due_at,
                    m.updated_at, {columns}
            ), events AS (
                INSERT INTO {ev} ({_EVENT_COLUMNS})
                SELECT id, from_state, %s, updated_at, %s, '', '', '', attempts FROM moved
            ), counted AS (
                INSERT INTO {MetricCounter._meta.db_table} (name, labels, value, base)
                SELECT %s, CASE from_state {labels} END, count(*), false FROM moved GROUP BY from_state
            )
            SELECT {returned}, t.code FROM moved JOIN {term} AS t ON t.id = moved.terminal_id
            """,
            [S.PROCESSING, worker[:128], float(lease_seconds), S.PROCESSING, worker[:150],
             _CLAIM_SERIES[0][0], *[v for state, (_, text) in zip(CLAIMABLE_STATES, _CLAIM_SERIES, strict=True)
                             for v in (state, text)]],
        )  # fmt: skip
        names = [c.name for c in cursor.description]
        # Sorted here, not by the statement: sorts are switched off for the claim transaction.
        due_at, pk = names.index("due_at"), names.index("id")
        rows = sorted(cursor.fetchall(), key=lambda row: (row[due_at], row[pk]))
    claimed = []
    # from_db takes the loaded values in the model's field order; the rest stay deferred.
    wanted = {"id", "terminal_id", *CLAIM_COLUMNS}
    fields = [f.attname for f in Message._meta.concrete_fields if f.attname in wanted]
    terminals: dict[int, Terminal] = {}  # one instance per terminal, not one per message
    for row in rows:
        data = dict(zip(names, row, strict=True))
        data["state"] = S.PROCESSING
        m = Message.from_db(conn.alias, fields, [data[f] for f in fields])
        terminal = terminals.get(data["terminal_id"])
        if terminal is None:
            terminal = terminals[data["terminal_id"]] = Terminal.from_db(
                conn.alias, ["id", "code"], [data["terminal_id"], data["code"]]
            )
        m._state.fields_cache["terminal"] = terminal  # what assigning m.terminal does, minus its checks
        claimed.append(m)
    return claimed


_FIELDS = {f.name: f for f in Message._meta.concrete_fields}
_EVENT_COLUMNS = "message_id, from_state, to_state, at, actor, reason, error_class, traceback, attempt"


def _plain(values: dict, only_if: dict | None) -> bool:
    """Plain column values and equality conditions only: no expressions, no lookups."""
    return all(k in _FIELDS and not hasattr(v, "resolve_expression") for k, v in values.items()) and all(
        k in _FIELDS and v is not None and not hasattr(v, "resolve_expression") for k, v in (only_if or {}).items()
    )


def _update_with_events_pg(conn, ids: list[int], from_state: str, values: dict, only_if: dict, event: tuple) -> int:
    """PostgreSQL, plain values: the compare-and-set UPDATE and its events in one statement.

    The ids go as one array bound in binary (``id = ANY(%b)``, syncadmin/fastsql.py), so the
    statement's text is the same for any number of messages, where an ``IN (%s, …)`` list was
    a new text to parse and quote in Python on every batch (a sixth of a worker's CPU,
    profiled), and the ORM no longer compiles an UpdateQuery per call.
    """
    sets = ", ".join(f"{_FIELDS[k].column} = %s" for k in values)
    conds = "".join(f" AND {_FIELDS[k].column} = %s" for k in only_if)
    prep = [_FIELDS[k].get_db_prep_save(v, conn) for k, v in values.items()]
    prep_if = [_FIELDS[k].get_db_prep_save(v, conn) for k, v in only_if.items()]
    from_state, to_state, now, actor, reason, error_class, traceback = event
    with server_binding_cursor(conn.alias, prepare=True) as cursor:
        cursor.execute(
            f"WITH moved AS (UPDATE {Message._meta.db_table} SET {sets}"
            f" WHERE id = ANY(%b::bigint[]) AND state = %s{conds} RETURNING id, attempts)"
            f" INSERT INTO {MessageEvent._meta.db_table} ({_EVENT_COLUMNS})"
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
