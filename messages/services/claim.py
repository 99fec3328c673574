"""The claim: due messages leased to a worker, their attempt counted, all in one transaction.

The attempt is counted when a message is claimed, not when it fails: a message whose handler
kills its worker still reaches DeadLettered after SYNC_MAX_ATTEMPTS claims. A message whose lease
expired (its worker died) is taken alone, so a poison message cannot drag the rest of its batch
to the dead-letter queue with it. One function per database: PostgreSQL claims, moves, records
and counts in one prepared statement; SQLite reads the due ids from the due index by name; the
ORM's claim (locked rows, then the transition function) serves the others. All three honour the
pauses of services/pauses.py: a paused message met at the head of the due index is parked, not claimed.
"""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import datetime, timedelta
from itertools import islice

from django.conf import settings
from django.db import connections, transaction
from django.db.models import F

from messages import metrics as observe
from messages.models import TRANSITIONS, Message, MessageEnvelope, MessageEvent, MessageState
from messages.services.failures import message_dead_letter
from messages.services.pauses import PARK_OFFSET, PauseSet, messages_set_aside, pauses_current
from messages.services.transitions import EVENT_COLUMNS, message_transition
from syncadmin.lib.clock import db_now
from syncadmin.lib.counters import collected
from syncadmin.lib.fastsql import pipelined, server_binding_cursor
from syncadmin.lib.rows import loaded, loader
from syncadmin.lib.sql import per_vendor
from syncadmin.models import MetricCounter
from terminals.models import Terminal

S = MessageState

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
# Which of them the narrow state row holds (the rest are the envelope's, read by a join on id).
STATE_CLAIM_COLUMNS = tuple(c for c in CLAIM_COLUMNS if c in {f.name for f in Message._meta.local_concrete_fields})
CLAIMABLE_STATES = (S.RECEIVED, S.FAILED)
assert all(S.PROCESSING in TRANSITIONS[state] for state in CLAIMABLE_STATES)


# PostgreSQL: walk the claim index in order instead of sorting every due row (why:
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


def message_claim_due(
    *, worker: str, limit: int, lease_seconds: float, pauses: PauseSet | None = None, window: int | None = None
) -> tuple[list[Message], int]:
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

    With ``pauses`` set, a second statement text (prepared too): the same walk over the head of
    the due index (``window`` rows, ``limit`` by default), whose paused rows are parked in the same
    statement (services/pauses.py says why) and whose other rows are claimed, up to ``limit``.
    Returns (the claimed messages, how many were parked).
    """
    conn = connections[Message.objects.db]
    msg, env = Message._meta.db_table, MessageEnvelope._meta.db_table
    ev, term = MessageEvent._meta.db_table, Terminal._meta.db_table
    columns = ", ".join(f"m.{c}" for c in STATE_CLAIM_COLUMNS if c != "state")
    # Not updated_at: the events take it inside the statement; nothing here needs it decoded. The
    # envelope's columns are joined in by the last SELECT: the UPDATE touches the narrow row only.
    returned = ", ".join(
        [*(f"moved.{c}" for c in ("id", "from_state", "due_at", *STATE_CLAIM_COLUMNS) if c != "state"),
         *(f"e.{c}" for c in ("terminal_id", *CLAIM_COLUMNS) if c not in STATE_CLAIM_COLUMNS)]
    )  # fmt: skip
    labels = " ".join("WHEN %s THEN %s" for _ in CLAIMABLE_STATES)
    states = ", ".join(f"'{state.value}'" for state in CLAIMABLE_STATES)  # literals: see above
    if pauses:
        # The head of the due index, as today's walk; the paused rows in it parked, the others claimed.
        window = max(int(window or limit), int(limit))
        due = f"""head AS (
                SELECT s.id, s.state, s.next_attempt_at,
                    (e.message_type = ANY(%s::text[]) OR e.entity_type = ANY(%s::text[])
                     OR e.terminal_id = ANY(%s::bigint[])) AS paused
                FROM {msg} AS s JOIN {env} AS e ON e.id = s.id
                WHERE s.state IN ({states}) AND s.next_attempt_at <= statement_timestamp()
                ORDER BY s.next_attempt_at LIMIT {window} FOR UPDATE OF s SKIP LOCKED
            ), parked AS (
                UPDATE {msg} AS p SET next_attempt_at = head.next_attempt_at + %s
                FROM head WHERE p.id = head.id AND head.paused RETURNING p.id
            ), due AS (
                SELECT id, state, next_attempt_at FROM head WHERE NOT paused
                {f"ORDER BY next_attempt_at LIMIT {int(limit)}" if window > limit else ""}
            )"""
        params = [list(pauses.message_types), list(pauses.entity_types), list(pauses.terminal_ids), PARK_OFFSET]
        # One row even when nothing was claimed, to carry the parked count.
        tail = f"""SELECT {returned}, t.code, n.parked FROM (SELECT count(*) AS parked FROM parked) AS n
            LEFT JOIN (moved JOIN {env} AS e ON e.id = moved.id JOIN {term} AS t ON t.id = e.terminal_id) ON true"""
    else:
        due = f"""due AS (
                SELECT id, state, next_attempt_at FROM {msg}
                WHERE state IN ({states}) AND next_attempt_at <= statement_timestamp()
                ORDER BY next_attempt_at LIMIT {int(limit)} FOR UPDATE SKIP LOCKED
            )"""
        params = []
        tail = (
            f"SELECT {returned}, t.code, 0 AS parked FROM moved"
            f" JOIN {env} AS e ON e.id = moved.id JOIN {term} AS t ON t.id = e.terminal_id"
        )
    # The rows in binary: their times are then decoded by psycopg's C loader, where Django's text
    # loader for timestamptz parses each one in Python (4 % of a worker's time, profiled).
    cursor = server_binding_cursor(conn.alias, prepare=True, binary=True)
    # The planner settings and the claim in one round trip (psycopg's pipeline mode): the settings
    # return nothing the worker reads, and the claim's rows are read once both have run. One round
    # trip fewer per batch; errors still surface here, as Django's exceptions.
    with conn.wrap_database_errors, pipelined(conn.alias), cursor:
        cursor.execute(_CLAIM_PLAN_SQL)
        cursor.execute(
            f"""WITH {due}, moved AS (
                UPDATE {msg} AS m SET state = %s, updated_at = clock_timestamp(), attempts = m.attempts + 1,
                    lease_owner = %s, lease_expires_at = clock_timestamp() + make_interval(secs => %s),
                    next_attempt_at = NULL
                FROM due WHERE m.id = due.id
                RETURNING m.id, due.state AS from_state, due.next_attempt_at AS due_at,
                    m.updated_at, {columns}
            ), events AS (
                INSERT INTO {ev} ({EVENT_COLUMNS})
                SELECT id, from_state, %s, updated_at, %s, '', '', '', attempts FROM moved
            ), counted AS (
                INSERT INTO {MetricCounter._meta.db_table} (name, labels, value, base)
                SELECT %s, CASE from_state {labels} END, count(*), false FROM moved GROUP BY from_state
            )
            {tail}
            """,
            [*params, S.PROCESSING, worker[:128], float(lease_seconds), S.PROCESSING, worker[:150],
             _CLAIM_SERIES[0][0], *[v for state, (_, text) in zip(CLAIMABLE_STATES, _CLAIM_SERIES, strict=True)
                             for v in (state, text)]],
        )  # fmt: skip
        fetched = cursor.fetchall()  # the pipeline's sync: both statements have run
        names = [c.name for c in cursor.description]
        # Sorted here, not by the statement: sorts are switched off for the claim transaction.
        due_at, pk = names.index("due_at"), names.index("id")
        parked = fetched[0][names.index("parked")] if fetched else 0
        rows = sorted((row for row in fetched if row[pk] is not None), key=lambda row: (row[due_at], row[pk]))
    claimed = []
    # The loaded columns as the instance's values (syncadmin/lib/rows.py: what from_db makes, at a
    # seventh of its cost); the rest stay deferred.
    wanted = {"id", "terminal_id", *CLAIM_COLUMNS}
    columns = [(i, name) for i, name in enumerate(names) if name in wanted]
    terminals: dict[int, Terminal] = {}  # one instance per terminal, not one per message
    code = names.index("code")
    message = loader(Message, conn.alias)
    for row in rows:
        data = {name: row[i] for i, name in columns}
        data["state"] = S.PROCESSING
        m = message(data)
        terminal = terminals.get(data["terminal_id"])
        if terminal is None:
            terminal = terminals[data["terminal_id"]] = loaded(
                Terminal, conn.alias, {"id": data["terminal_id"], "code": row[code]}
            )
        m._state.fields_cache["terminal"] = terminal  # what assigning m.terminal does, minus its checks
        claimed.append(m)
    return claimed, parked


# The ORM form of the claim's columns (SQLite and Oracle claims, expired-lease re-claims).
CLAIM_FIELDS = ("terminal__code", *CLAIM_COLUMNS)


EXPIRED_CHECK_SECONDS = 5.0
_next_expired_check = 0.0


def _claim_expired(*, worker: str, now: datetime, lease: timedelta) -> list[Message]:
    """Re-claim one message whose lease expired, or dead-letter it if it used its attempts."""
    max_attempts = settings.SYNC_MAX_ATTEMPTS
    while expired := _locked_rows(
        Message.objects.filter(state=S.PROCESSING, lease_expires_at__lt=now)
        .select_related("terminal")
        .only(*CLAIM_FIELDS)
        .order_by("lease_expires_at"),
        1,
    ):
        m = expired[0]
        if m.attempts >= max_attempts:
            message_dead_letter(
                m,
                actor="sweeper",
                reason=f"worker lost the message {m.attempts} times (lease expired); last owner {m.lease_owner}",
                error_class="LeaseExpired",
                now=now,
            )
            continue
        message_transition(
            message_ids=[m.pk],
            from_state=S.PROCESSING,
            to_state=S.PROCESSING,
            actor=worker,
            reason=f"lease of {m.lease_owner} expired; re-claimed",
            fields={"attempts": F("attempts") + 1, "lease_owner": worker, "lease_expires_at": now + lease},
            only_if={"lease_expires_at__lt": now},
            now=now,
        )
        m.attempts += 1
        m.lease_owner = worker
        return [m]
    return []


def message_claim(*, worker: str, limit: int) -> list[Message]:
    """Claim up to ``limit`` due messages for ``worker`` with a lease; count the attempt now.

    Expired leases are looked for every few seconds and whenever nothing else is due. Paused
    messages (services/pauses.py) are not claimed: the ones met at the head are parked, and while
    a claim parks without claiming anything it goes on (a wider window, one transaction each) for
    up to PARK_BUDGET_SECONDS, so a paused backlog at the head is set aside in a few claims.
    """
    global _next_expired_check
    lease = timedelta(seconds=settings.SYNC_LEASE_SECONDS)
    pauses = pauses_current()
    window, deadline = limit, time.monotonic() + PARK_BUDGET_SECONDS
    while True:
        with transaction.atomic(), collected():
            # Expired leases are rare: look for them every few seconds and whenever nothing else
            # is due, not on every claim (it is one more query per batch on the hot path).
            if time.monotonic() >= _next_expired_check:
                _next_expired_check = time.monotonic() + EXPIRED_CHECK_SECONDS
                if reclaimed := _claim_expired(worker=worker, now=db_now(), lease=lease):
                    return reclaimed
            rows, parked = _claim_due(Message.objects.db, worker, limit, lease, pauses, window)
            if not rows and not parked:
                return _claim_expired(worker=worker, now=db_now(), lease=lease)
        if rows or time.monotonic() >= deadline:
            return rows
        window = max(limit, PARK_WINDOW)


PARK_WINDOW = 1000  # due rows a claim walks while it is parking a paused backlog
PARK_BUDGET_SECONDS = 1.0


@per_vendor
def _claim_due(using: str, worker: str, limit: int, lease: timedelta, pauses: PauseSet, window: int):
    now = db_now()
    return _claim_locked(_due(now), worker=worker, limit=limit, lease=lease, now=now, pauses=pauses, window=window)


@_claim_due.vendor("sqlite")
def _claim_due_sqlite(using: str, worker: str, limit: int, lease: timedelta, pauses: PauseSet, window: int):
    now = db_now()
    window = window if pauses else limit
    due = _due(now).filter(pk__in=_sqlite_due_ids(using, now, window))
    return _claim_locked(due, worker=worker, limit=limit, lease=lease, now=now, pauses=pauses, window=window)


@_claim_due.vendor("postgresql")
def _claim_due_postgresql(using: str, worker: str, limit: int, lease: timedelta, pauses: PauseSet, window: int):
    return message_claim_due(
        worker=worker, limit=limit, lease_seconds=lease.total_seconds(), pauses=pauses, window=window
    )


def _due(now: datetime):
    return Message.objects.filter(state__in=CLAIMABLE_STATES, next_attempt_at__lte=now)


def _claim_locked(
    due, *, worker: str, limit: int, lease: timedelta, now: datetime, pauses: PauseSet, window: int
) -> tuple[list[Message], int]:
    """The ORM's claim: lock the oldest due rows, park the paused ones, move the others with the
    transition function; returns (the claimed messages, how many were parked)."""
    window = window if pauses else limit
    rows = _locked_rows(due.select_related("terminal").only(*CLAIM_FIELDS).order_by("next_attempt_at"), window)
    rows, parked = messages_set_aside(rows, pauses=pauses, limit=limit)
    if not rows:
        return [], parked
    # Stamp the claim (events, lease) with the clock read after the row locks are held: an
    # operator action committed while we waited must not look later than the claim after it.
    now = db_now()
    by_state: dict[str, list[int]] = defaultdict(list)
    for m in rows:
        by_state[m.state].append(m.pk)
    for state, ids in by_state.items():
        message_transition(
            message_ids=ids,
            from_state=state,
            to_state=S.PROCESSING,
            actor=worker,
            fields={
                "attempts": F("attempts") + 1,
                "lease_owner": worker,
                "lease_expires_at": now + lease,
                "next_attempt_at": None,
            },
            now=now,
        )
    for m in rows:
        m.attempts += 1
        m.lease_owner = worker
        m.state = S.PROCESSING
    return rows, parked


def _locked_rows(qs, limit: int) -> list:
    # of=("self",): lock only the message rows. Without it PostgreSQL also locks the joined
    # terminal row, and every other worker then skips all of that terminal's messages.
    qs = qs.select_for_update(skip_locked=True, of=("self",))
    _prefer_index_order(qs.db)
    if connections[qs.db].features.supports_select_for_update_with_limit:
        return list(qs[:limit])
    # Oracle refuses FOR UPDATE with FETCH FIRST; it locks rows as they are fetched, so
    # reading only `limit` rows from the cursor claims only those.
    return list(islice(qs.iterator(chunk_size=limit), limit))


@per_vendor
def _prefer_index_order(using: str) -> None:
    """PostgreSQL: walk the claim index in order instead of sorting every due row.

    A queue table's statistics are nearly always stale: analysed when little was due, the
    planner expects a few rows and picks a bitmap scan plus a sort, which with a real backlog
    sorts every due message on each claim (measured: 51 ms per claim at 50,000 due, spilling
    to disk, against 0.15 ms walking the index). Turning sorts and bitmap scans off for the
    rest of the claim transaction (SET LOCAL) leaves the ordered index scan as the only plan.
    JIT goes off too: a plan that must still sort anywhere then costs more than jit_above_cost,
    and compiling it took 190 ms per claim (measured) for a query that runs in one.
    """


@_prefer_index_order.vendor("postgresql")
def _prefer_index_order_postgresql(using: str) -> None:
    with connections[using].cursor() as cursor:
        cursor.execute(PREFER_INDEX_ORDER_SQL)


def _sqlite_due_ids(using: str, now: datetime, limit: int) -> list[int]:
    """SQLite: the ids of the oldest due messages, read from the due index by name.

    The ORM's form of the claim never used the partial due index on SQLite (its states are bound
    parameters) and sorted every due message on each claim instead (measured: 72 ms per claim at
    100,000 due, against 0.07 ms). ``INDEXED BY`` has no ORM form; the claim's own transaction
    holds SQLite's write lock (BEGIN IMMEDIATE), so reading the ids first changes nothing else.
    """
    conn = connections[using]
    with conn.cursor() as cursor:
        cursor.execute(
            # The states as literals: SQLite uses a partial index only for a WHERE it can see
            # implies the index's own, which a bound parameter never does.
            f"SELECT id FROM {Message._meta.db_table} INDEXED BY message_due_idx WHERE state IN"
            f" ('{S.RECEIVED.value}', '{S.FAILED.value}') AND next_attempt_at <= %s ORDER BY next_attempt_at LIMIT %s",
            [conn.ops.adapt_datetimefield_value(now), limit],
        )
        return [row[0] for row in cursor.fetchall()]
