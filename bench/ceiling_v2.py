"""Issue 18's v2 schema as bare SQL, for ``bench/engine_ceiling.py``: the envelope apart from the queue state.

- ``v2_envelope``: what the terminal sent (id, terminal, message id and type, entity, sequence,
  payload, times, trace id). Written once at ingest, never updated; it carries the console's
  indexes (the message table's seven less the one on state, which moves to a join).
- ``v2_state``: the queue state, one narrow row per message keyed by the envelope's id (state,
  attempts, due time, lease owner and expiry, updated_at, and optionally last_error), with only the
  claim's two partial indexes (due rows, leased rows) and a fillfactor of its own. Both name the
  state in their condition, so no transition can be a HOT update; ``lease_index=False`` keys the
  due index on ``next_attempt_at IS NOT NULL`` and drops the lease index, which lets the completion
  (it changes no indexed column) update the row in place when its page has room.
- ``v2_claim``: the claim audited once per batch, one row naming the batch's message ids with each
  one's attempt and previous state (arrays), which the lifecycle timeline would read as each
  message's claim event (``unnest``); ``per_message_audit`` instead writes one ``v2_event`` row per
  claimed message, as today.
- ``v2_event``: the other transitions' audit rows (the completion), as today's event table.
- ``batch_leases`` (the HOT design whole): the completion can be HOT and nothing the engine needs
  is given up for it. The leases live in ``v2_lease``, one row per claimed batch (keyed by its
  ``v2_claim`` row, written by the claim, deleted by the completion), which a lease sweeper would
  read instead of a lease index on the state rows; the console's count of waiting messages is
  indexed through ``waiting_state``, a copy of the state kept only while a message waits
  (Received, Failed), which the claim clears and the completion leaves alone. The retention purge
  would find old messages through the envelope's receipt time, as it has no index on the state.

The worker sends the engine's SQL per batch against these tables, with the same central upsert
and counters (passed in by the caller, so both schemas apply in exactly the same way).
"""

from __future__ import annotations

from dataclasses import dataclass

ENVELOPE, STATE, CLAIM_AUDIT, EVENT, LEASE = "v2_envelope", "v2_state", "v2_claim", "v2_event", "v2_lease"


@dataclass(frozen=True)
class Variant:
    fillfactor: int = 100
    per_message_audit: bool = False  # the claim's audit: one event row per message instead of one row per batch
    last_error: bool = True  # the state row carries the last error's text
    # False: no index names state or the lease (the due index keyed on next_attempt_at IS NOT NULL,
    # expired leases found through the claim audit), so the completion can be a HOT update.
    lease_index: bool = True
    # The HOT completion with what it would need (module docstring): leases in a row per claimed
    # batch, the waiting states indexed through a column the completion leaves alone.
    batch_leases: bool = False

    def __post_init__(self):
        if self.batch_leases and (self.lease_index or self.per_message_audit):
            raise ValueError("batch leases are the HOT design: no lease index, the claim audited per batch")

    def label(self) -> str:
        audit = "claim audited per message" if self.per_message_audit else "claim audited per batch"
        error = "" if self.last_error else ", no last_error"
        lease = "" if self.lease_index else ", HOT completion (no index on state or lease)"
        if self.batch_leases:
            lease = ", HOT completion, a lease row per batch, waiting states indexed apart"
        return f"fillfactor {self.fillfactor}, {audit}{error}{lease}"


def create(conn, variant: Variant) -> None:
    """(Re)create the v2 tables for ``variant``, empty."""
    conn.execute(f"DROP TABLE IF EXISTS {LEASE}, {EVENT}, {CLAIM_AUDIT}, {STATE}, {ENVELOPE} CASCADE")
    conn.execute(f"""CREATE TABLE {ENVELOPE} (id bigint PRIMARY KEY, terminal_id bigint NOT NULL
        REFERENCES terminals_terminal DEFERRABLE INITIALLY DEFERRED, message_id varchar(64) NOT NULL,
        message_type varchar(64) NOT NULL, entity_type varchar(40) NOT NULL, entity_key varchar(128) NOT NULL,
        sequence bigint NOT NULL, created_at timestamptz NOT NULL, payload text NOT NULL,
        received_at timestamptz NOT NULL, trace_id varchar(32) NOT NULL)""")  # fmt: skip
    for name, columns in (("uniq", "UNIQUE INDEX v2_envelope_uniq ON {} (terminal_id, message_id)"),
                          ("term_recv", "(terminal_id, received_at DESC)"), ("recv", "(received_at DESC)"),
                          ("entity", "(entity_type, entity_key)"), ("type_recv", "(message_type, received_at DESC)"),
                          ("trace", "(trace_id)")):  # fmt: skip
        if "{}" in columns:
            conn.execute("CREATE " + columns.format(ENVELOPE))
        else:
            conn.execute(f"CREATE INDEX v2_envelope_{name} ON {ENVELOPE} {columns}")
    error = "last_error text NOT NULL DEFAULT ''," if variant.last_error else ""
    # The HOT design's waiting states, and the receipt time they are ordered by (as the engine's
    # state row copies it today): neither changes at the completion, so their index allows HOT.
    waiting, queued = (
        ("waiting_state varchar(16),", ", queued_at timestamptz NOT NULL") if variant.batch_leases else ("", "")
    )
    conn.execute(f"""CREATE TABLE {STATE} (id bigint PRIMARY KEY REFERENCES {ENVELOPE} DEFERRABLE INITIALLY DEFERRED,
        state varchar(16) NOT NULL, {waiting} attempts integer NOT NULL, next_attempt_at timestamptz,
        lease_owner varchar(128) NOT NULL, lease_expires_at timestamptz, {error} updated_at timestamptz NOT NULL{queued})
        WITH (fillfactor = {variant.fillfactor})""")  # fmt: skip
    if variant.lease_index:
        conn.execute(f"CREATE INDEX v2_state_due ON {STATE} (next_attempt_at) WHERE state IN ('Received', 'Failed')")
        conn.execute(f"CREATE INDEX v2_state_lease ON {STATE} (lease_expires_at) WHERE state = 'Processing'")
    else:  # the engine keeps next_attempt_at set exactly while a message is Received or Failed
        conn.execute(f"CREATE INDEX v2_state_due ON {STATE} (next_attempt_at) WHERE next_attempt_at IS NOT NULL")
    if variant.batch_leases:  # the console's waiting messages by state and age (today's state_queued index)
        conn.execute(f"CREATE INDEX v2_state_waiting ON {STATE} (waiting_state, queued_at)"
                     " WHERE waiting_state IS NOT NULL")  # fmt: skip
        conn.execute(f"""CREATE TABLE {LEASE} (claim_id bigint PRIMARY KEY, owner varchar(128) NOT NULL,
            expires_at timestamptz NOT NULL)""")
    conn.execute(f"""CREATE TABLE {CLAIM_AUDIT} (id bigserial PRIMARY KEY, at timestamptz NOT NULL,
        actor varchar(150) NOT NULL, ids bigint[] NOT NULL, attempts integer[] NOT NULL, from_states text[] NOT NULL)""")
    conn.execute(f"CREATE INDEX v2_claim_ids ON {CLAIM_AUDIT} USING gin (ids)")  # the timeline's lookup by message
    conn.execute(f"""CREATE TABLE {EVENT} (id bigserial PRIMARY KEY, message_id bigint NOT NULL
        REFERENCES {ENVELOPE} DEFERRABLE INITIALLY DEFERRED, from_state varchar(16) NOT NULL,
        to_state varchar(16) NOT NULL, at timestamptz NOT NULL, actor varchar(150) NOT NULL, reason text NOT NULL,
        error_class varchar(200) NOT NULL, traceback text NOT NULL, attempt integer NOT NULL)""")  # fmt: skip
    conn.execute(f"CREATE INDEX v2_event_message_at ON {EVENT} (message_id, at)")


def reset(conn, variant: Variant) -> int:
    """Fresh v2 tables holding every source message (``ceiling_source``) in Received; their count."""
    create(conn, variant)
    conn.execute(f"""INSERT INTO {ENVELOPE} SELECT row_number() OVER (ORDER BY received_at), terminal_id, message_id,
        message_type, entity_type, entity_key, sequence, received_at, payload, received_at, trace_id
        FROM ceiling_source ORDER BY received_at""")  # fmt: skip
    error = ", ''" if variant.last_error else ""
    waiting, queued = (" 'Received',", ", received_at") if variant.batch_leases else ("", "")
    conn.execute(f"INSERT INTO {STATE} SELECT id, 'Received',{waiting} 0, received_at, '', NULL{error}, received_at{queued}"
                 f" FROM {ENVELOPE} ORDER BY id")  # fmt: skip
    for table in (ENVELOPE, STATE, CLAIM_AUDIT, EVENT, *([LEASE] if variant.batch_leases else [])):
        conn.execute(f"VACUUM ANALYZE {table}")
    return conn.execute(f"SELECT count(*) FROM {STATE}").fetchone()[0]


def claim_sql(variant: Variant, batch: int) -> str:
    """Due rows locked with SKIP LOCKED, moved to Processing with a lease and the attempt counted,
    audited (per batch or per message), returned with their envelope and terminal code."""
    if variant.per_message_audit:
        audit = f"""INSERT INTO {EVENT} (message_id, from_state, to_state, at, actor, reason, error_class, traceback,
            attempt) SELECT id, from_state, 'Processing', updated_at, %s, '', '', '', attempts FROM moved"""
    else:
        audit = f"""INSERT INTO {CLAIM_AUDIT} (at, actor, ids, attempts, from_states)
            SELECT max(updated_at), %s, array_agg(id), array_agg(attempts), array_agg(from_state) FROM moved
            HAVING count(*) > 0 RETURNING id"""
    waiting, lease, claim_id = "", "", ""
    if variant.batch_leases:  # the batch's lease in a row of its own; its id returned with every row
        waiting = "waiting_state = NULL, "
        lease = f""", lease AS (INSERT INTO {LEASE} (claim_id, owner, expires_at)
            SELECT id, %s, clock_timestamp() + interval '30 seconds' FROM audit)"""
        claim_id = ", (SELECT id FROM audit)"
    return f"""WITH due AS (
    SELECT id, state FROM {STATE} WHERE state IN ('Received', 'Failed') AND next_attempt_at <= statement_timestamp()
    ORDER BY next_attempt_at LIMIT {batch} FOR UPDATE SKIP LOCKED
), moved AS (
    UPDATE {STATE} AS s SET state = 'Processing', {waiting}updated_at = clock_timestamp(), attempts = s.attempts + 1,
        lease_owner = %s, lease_expires_at = clock_timestamp() + interval '30 seconds', next_attempt_at = NULL
    FROM due WHERE s.id = due.id RETURNING s.id, due.state AS from_state, s.updated_at, s.attempts
), audit AS ({audit}){lease}
SELECT e.id, e.entity_type, e.entity_key, e.sequence, e.payload, t.code{claim_id}
FROM moved JOIN {ENVELOPE} AS e ON e.id = moved.id JOIN terminals_terminal AS t ON t.id = e.terminal_id"""


def complete_sql(variant: Variant) -> str:
    """The compare-and-set to Processed on the lease owner, one event row each (the outcome)."""
    error = ", last_error = ''" if variant.last_error else ""
    # The batch's lease row goes with its completion (a data-modifying CTE runs unreferenced).
    released = f", released AS (DELETE FROM {LEASE} WHERE claim_id = %s)" if variant.batch_leases else ""
    return f"""WITH moved AS (
    UPDATE {STATE} SET state = 'Processed', updated_at = clock_timestamp(), lease_owner = '',
        lease_expires_at = NULL{error}
    WHERE id = ANY(%b::bigint[]) AND state = 'Processing' AND lease_owner = %s RETURNING id, attempts, updated_at
){released} INSERT INTO {EVENT} (message_id, from_state, to_state, at, actor, reason, error_class, traceback, attempt)
  SELECT id, 'Processing', 'Processed', updated_at, %s, 'applied', '', '', attempts FROM moved"""


def worker(dsn: str, batch: int, name: str, variant: Variant, apply_central, async_commit: bool, deadlocks) -> None:
    """The engine's shape on the v2 tables: the claim committed first (the lease), then the central
    apply and the completion in one transaction, a deadlocked batch retried whole."""
    import psycopg

    conn = psycopg.connect(dsn, autocommit=True)
    if async_commit:
        conn.execute("SET synchronous_commit = off")
    conn.execute("SET enable_sort = off; SET enable_bitmapscan = off; SET jit = off")
    claim, complete = claim_sql(variant, batch), complete_sql(variant)
    while True:
        conn.execute("BEGIN")
        rows = conn.execute(claim, [name, name, *([name] if variant.batch_leases else [])], prepare=True).fetchall()
        conn.execute("COMMIT")
        if not rows:
            break
        lease = []  # batch leases: the claim row's id, which the completion releases
        if variant.batch_leases:
            lease, rows = [rows[0][-1]], [row[:-1] for row in rows]
        while True:
            conn.execute("BEGIN")
            try:
                apply_central(conn, rows)
                conn.execute(complete, [[r[0] for r in rows], name, *lease, name], prepare=True)
                conn.execute("COMMIT")
                break
            except psycopg.errors.DeadlockDetected:
                conn.execute("ROLLBACK")
                with deadlocks.get_lock():
                    deadlocks.value += 1
    conn.close()


def problems(conn, variant: Variant, total: int) -> list[str]:
    """What the v2 drain left undone: every message Processed after exactly one attempt, claimed
    exactly once in the audit (per batch or per message) and completed with one event."""
    left = conn.execute(f"SELECT count(*) FROM {STATE} WHERE state <> 'Processed' OR attempts <> 1").fetchone()[0]
    if variant.per_message_audit:
        claims = f"SELECT message_id AS id FROM {EVENT} WHERE to_state = 'Processing'"
    else:
        claims = f"SELECT unnest(ids) AS id FROM {CLAIM_AUDIT}"
    claimed, distinct = conn.execute(f"SELECT count(*), count(DISTINCT id) FROM ({claims}) AS c").fetchone()
    done, done_distinct = conn.execute(
        f"SELECT count(*), count(DISTINCT message_id) FROM {EVENT} WHERE to_state = 'Processed'"
    ).fetchone()
    leases = waiting = 0
    if variant.batch_leases:  # every batch's lease released, no processed message counted as waiting
        leases = conn.execute(f"SELECT count(*) FROM {LEASE}").fetchone()[0]
        waiting = conn.execute(f"SELECT count(*) FROM {STATE} WHERE waiting_state IS NOT NULL").fetchone()[0]
    found = [
        f"{left} messages not Processed exactly once" if left else "",
        f"{leases} batch leases left after the drain" if leases else "",
        f"{waiting} messages still indexed as waiting" if waiting else "",
        f"{claimed} claim audits for {distinct} of {total} messages" if (claimed, distinct) != (total, total) else "",
        f"{done} completion events for {done_distinct} of {total} messages"
        if (done, done_distinct) != (total, total)
        else "",
    ]
    return [p for p in found if p]
