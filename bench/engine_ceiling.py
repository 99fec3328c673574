"""Engine ceiling: how close can this engine's database work alone come to the bare loop?

    .venv/bin/python bench/engine_ceiling.py [--batch 10] [--messages 100000]

``bench/engine.py`` measures the engine against the issue's bare SQL loop (claim a batch with
FOR UPDATE SKIP LOCKED, set the state, one row per message, one transaction). This script asks
what the engine could reach if its Python cost nothing: two processes that only send the SQL the
engine's design needs per batch, and build its arrays, on the engine's own tables in a database
of their own, in the same run as that bare loop, with the same batch size and commit mode:

- the claim as the engine does it: due rows locked with SKIP LOCKED, moved to Processing with a
  lease and the attempt counted, one event row each, committed first (the lease form);
- the apply: the batch's central rows upserted with the sequence check, the live counters moved;
- the completion: the compare-and-set to Processed on the lease owner, one event row each.

It omits work the real engine also does (metric deltas, planner settings, clock reads, the
handler registry, JSON parsing, log lines, dead-letter paths), so each figure is an upper bound.
The same work is then measured in more generous shapes: in one transaction with the attempts
journaled on a second connection (no lease commit), without the console's indexes on the message
table, and without the central store. After each form the script checks that every message
reached Processed with its two events and that the central store holds every key: a ceiling
that did less than the engine must do would prove nothing.

"Today's schema" is the pre-split wide message table, on a table of its own (bench/ceiling_wide.py),
so that the comparison with the v2 schema in the same run still measures the pre-split SQL on it.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import ceiling_v2, ceiling_wide  # noqa: E402
from bench._common import fresh_database, terminals_insert, timed_with_writes  # noqa: E402
from bench.engine import ENTITIES, async_commit, bare_loop, same_commit_mode_as_the_engine  # noqa: E402

MSG, EVENT, CENTRAL, COUNTER, TERMINAL = (
    ceiling_wide.TABLE,
    "queue_messages_messageevent",
    "queue_messages_centralentity",
    "queue_messages_entitycounter",
    "terminals_terminal",
)
JOURNAL = "ceiling_claim_journal"
# The v2 schema kept as "v2" after measuring its variations (docs/performance.md).
V2 = ceiling_v2.Variant(fillfactor=100, per_message_audit=False, last_error=True)
QUEUE_INDEXES = ceiling_wide.QUEUE_INDEXES  # the wide table's indexes the engine itself needs


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--messages", type=int, default=100_000)
    p.add_argument("--terminals", type=int, default=50)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batch", type=int, default=100, help="claim batch size (every form and the bare loop)")
    p.add_argument("--pg", default=os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432"))
    p.add_argument("--database", default="syncadmin_ceiling", help="the database of its own (dropped and created)")
    p.add_argument("--v2-fillfactor", type=int, default=V2.fillfactor, help="the v2 state table's fillfactor")
    p.add_argument("--v2-variations", action="store_true",
                   help="also measure the v2 variations: fillfactor 70/85/100, the claim audited per message, "
                        "the state table without last_error, no state or lease in any index (fillfactor 70, 85)")  # fmt: skip
    p.add_argument("--only-v2", action="store_true", help="skip the bare loops and today's schema")
    return p.parse_args(argv)


# --- the engine's statements, as bare SQL ----------------------------------------------------------

CLAIM = f"""WITH due AS (
    SELECT id, state FROM {MSG} WHERE state IN ('Received', 'Failed') AND next_attempt_at <= statement_timestamp()
    ORDER BY next_attempt_at LIMIT {{n}} FOR UPDATE SKIP LOCKED
), moved AS (
    UPDATE {MSG} AS m SET state = 'Processing', updated_at = clock_timestamp(), attempts = m.attempts + 1,
        lease_owner = %s, lease_expires_at = clock_timestamp() + interval '30 seconds', next_attempt_at = NULL
    FROM due WHERE m.id = due.id
    RETURNING m.id, m.terminal_id, due.state AS from_state, m.updated_at, m.attempts, m.entity_type, m.entity_key,
        m.sequence, m.payload
), events AS (
    INSERT INTO {EVENT} (message_id, from_state, to_state, at, actor, reason, error_class, traceback, attempt)
    SELECT id, from_state, 'Processing', updated_at, %s, '', '', '', attempts FROM moved
) SELECT moved.id, entity_type, entity_key, sequence, payload, t.code FROM moved JOIN {TERMINAL} AS t
  ON t.id = moved.terminal_id"""

COMPLETE = f"""WITH moved AS (
    UPDATE {MSG} SET state = 'Processed', updated_at = clock_timestamp(), processed_at = clock_timestamp(),
        lease_owner = '', lease_expires_at = NULL, last_error = ''
    WHERE id = ANY(%b::bigint[]) AND state = 'Processing' AND lease_owner = %s RETURNING id, attempts, updated_at
) INSERT INTO {EVENT} (message_id, from_state, to_state, at, actor, reason, error_class, traceback, attempt)
  SELECT id, 'Processing', 'Processed', updated_at, %s, 'applied', '', '', attempts FROM moved"""

# One transaction: the rows are locked, not moved, until the one update that records both events
# (Received -> Processing -> Processed) and the attempt; the attempt's durable record is a journal
# row committed on a second connection before the apply, deleted by the apply's own transaction.
LOCK_DUE = f"""SELECT m.id, m.entity_type, m.entity_key, m.sequence, m.payload, t.code
FROM {MSG} AS m JOIN {TERMINAL} AS t ON t.id = m.terminal_id
WHERE m.id IN (SELECT id FROM {MSG} WHERE state IN ('Received', 'Failed') AND next_attempt_at <= statement_timestamp()
               ORDER BY next_attempt_at LIMIT {{n}} FOR UPDATE SKIP LOCKED)"""

COMPLETE_ONE_TXN = f"""WITH moved AS (
    UPDATE {MSG} SET state = 'Processed', attempts = attempts + 1, updated_at = clock_timestamp(),
        processed_at = clock_timestamp(), next_attempt_at = NULL, last_error = ''
    WHERE id = ANY(%b::bigint[]) AND state IN ('Received', 'Failed') RETURNING id, attempts, updated_at
) INSERT INTO {EVENT} (message_id, from_state, to_state, at, actor, reason, error_class, traceback, attempt)
  SELECT id, f, t, updated_at, %s, r, '', '', attempts FROM moved,
    (VALUES ('Received', 'Processing', ''), ('Processing', 'Processed', 'applied')) AS v(f, t, r)"""

# The central apply as one statement: the WHERE is the sequence check, RETURNING tells the rows
# it created (xmax = 0), which move the counters. Less than the engine does: it first probes and
# locks each key (handlers.CENTRAL_LOCK_SQL) to tell no-ops and deletes apart.
CENTRAL_UPSERT = f"""INSERT INTO {CENTRAL} (entity_type, entity_key, terminal_code, data, last_sequence, deleted,
    last_message_pk, updated_at)
SELECT t, e, term, d::jsonb, s, false, mpk, clock_timestamp()
FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::bigint[], %b::bigint[]) AS u(t, e, term, d, s, mpk)
ON CONFLICT (terminal_code, entity_type, entity_key) DO UPDATE SET data = excluded.data,
    last_sequence = excluded.last_sequence, deleted = excluded.deleted, last_message_pk = excluded.last_message_pk,
    updated_at = excluded.updated_at
WHERE {CENTRAL}.last_sequence < excluded.last_sequence
RETURNING terminal_code, entity_type, xmax = 0"""

COUNTERS = f"""INSERT INTO {COUNTER} (terminal_code, entity_type, live_count, updated_at)
SELECT t, e, d, clock_timestamp() FROM unnest(%b::text[], %b::text[], %b::bigint[]) AS u(t, e, d)
ON CONFLICT (terminal_code, entity_type) DO UPDATE
SET live_count = {COUNTER}.live_count + excluded.live_count, updated_at = excluded.updated_at"""


def apply_central(conn, rows) -> None:
    """Upsert the newest change of each of the batch's keys, in key order; move the counters."""
    newest: dict[tuple, tuple] = {}
    for pk, entity_type, key, seq, payload, terminal in rows:
        k = (entity_type, key, terminal)
        if k not in newest or newest[k][0] < seq:
            newest[k] = (seq, payload, pk)
    keys = sorted(newest)
    params = [*([k[i] for k in keys] for i in range(3)), *([newest[k][i] for k in keys] for i in (1, 0, 2))]
    moves: dict[tuple, int] = {}
    for terminal, entity_type, created in conn.execute(CENTRAL_UPSERT, params, prepare=True):
        if created:
            moves[(terminal, entity_type)] = moves.get((terminal, entity_type), 0) + 1
    if moves := sorted(moves.items()):
        conn.execute(COUNTERS, [[m[0][0] for m in moves], [m[0][1] for m in moves], [m[1] for m in moves]],
                     prepare=True)  # fmt: skip


def worker(dsn: str, batch: int, name: str, one_txn: bool, central: bool, deadlocks) -> None:
    import psycopg

    conn = psycopg.connect(dsn, autocommit=True)
    same_commit_mode_as_the_engine(conn)
    # The engine's claim planner settings (transitions.PREFER_INDEX_ORDER_SQL), for the session.
    conn.execute("SET enable_sort = off; SET enable_bitmapscan = off; SET jit = off")
    journal = None
    if one_txn:
        journal = psycopg.connect(dsn, autocommit=True)
        same_commit_mode_as_the_engine(journal)
    while True:
        conn.execute("BEGIN")
        if one_txn:
            rows = conn.execute(LOCK_DUE.format(n=batch), prepare=True).fetchall()
            if not rows:
                conn.execute("COMMIT")
                break
            ids = [r[0] for r in rows]
            entry = journal.execute(f"INSERT INTO {JOURNAL} (owner, ids) VALUES (%s, %b) RETURNING id",
                                    [name, ids], prepare=True).fetchone()[0]  # fmt: skip

            def apply(rows=rows, ids=ids, entry=entry):
                if central:
                    apply_central(conn, rows)
                conn.execute(COMPLETE_ONE_TXN, [ids, name], prepare=True)
                conn.execute(f"DELETE FROM {JOURNAL} WHERE id = %s", [entry], prepare=True)
        else:
            rows = conn.execute(CLAIM.format(n=batch), [name, name], prepare=True).fetchall()
            if not rows:
                conn.execute("COMMIT")
                break
            conn.execute("COMMIT")  # the lease: the claim and its attempt are durable first
            conn.execute("BEGIN")

            def apply(rows=rows):
                if central:
                    apply_central(conn, rows)
                conn.execute(COMPLETE, [[r[0] for r in rows], name, name], prepare=True)

        while True:
            try:
                apply()
                conn.execute("COMMIT")
                break
            except psycopg.errors.DeadlockDetected:
                # The engine retries a deadlocked batch whole (processing.message_process_batch).
                conn.execute("ROLLBACK")
                with deadlocks.get_lock():
                    deadlocks.value += 1
                if one_txn:  # the locks went with the transaction: claim the batch again
                    journal.execute(f"DELETE FROM {JOURNAL} WHERE id = %s", [entry])
                    break
                conn.execute("BEGIN")
    conn.close()


# --- data ------------------------------------------------------------------------------------------


def prepare(args) -> str:
    dsn = fresh_database(args.pg, args.database)
    env = {**os.environ, "DATABASE_URL": dsn, "Q_BROKER": "orm", "LOG_LEVEL": "WARNING"}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    import psycopg

    per_terminal = args.messages // args.terminals
    with psycopg.connect(dsn, autocommit=True) as conn, conn.cursor() as cursor:
        terminals_insert(cursor, prefix="CEIL-", count=args.terminals, heartbeat=True)
        # bench/engine.py's mix, made in SQL: one terminal after another, 5 entity types, keys
        # 1..2000 repeated (so sequences matter) except sales, each key's sequence rising.
        cursor.execute(
            f"""
            CREATE TABLE ceiling_source AS
            SELECT t.id AS terminal_id, t.code || '-' || g AS message_id, e || '.upsert' AS message_type,
                e AS entity_type, k AS entity_key,
                row_number() OVER (PARTITION BY t.id, e, k ORDER BY g) AS sequence,
                json_build_object('key', k, 'price', round((g %% 9999) / 100.0, 2), 'qty', g %% 500)::text AS payload,
                timestamptz '2026-01-01' + ((t.rn - 1) * %s + g) * interval '1 millisecond' AS received_at,
                md5(t.code || g) AS trace_id
            FROM (SELECT id, code, row_number() OVER (ORDER BY id) AS rn FROM {TERMINAL}) AS t
            CROSS JOIN generate_series(1, %s) AS g
            CROSS JOIN LATERAL (SELECT (%s::text[])[1 + (hashtext(t.code || g) & 2147483647) %% 5] AS e) AS et
            CROSS JOIN LATERAL (SELECT upper(e) || '-' || lpad(CASE WHEN e = 'sale' THEN g
                ELSE 1 + (hashtext(g || t.code) & 2147483647) %% 2000 END::text, 6, '0') AS k) AS kt
            """,
            [per_terminal, per_terminal, ENTITIES],
        )
        cursor.execute(f"CREATE TABLE {JOURNAL} (id bigserial PRIMARY KEY, owner text, ids bigint[],"
                       " at timestamptz DEFAULT clock_timestamp())")  # fmt: skip
        ceiling_wide.create(cursor)
    return dsn


def reset(dsn: str) -> int:
    """A fresh backlog of every source message in Received, empty central store and events."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {MSG}, {EVENT}, {CENTRAL}, {COUNTER}, {JOURNAL} CASCADE")
        conn.execute(f"""INSERT INTO {MSG} (terminal_id, message_id, message_type, entity_type, entity_key, sequence,
            created_at, payload, state, attempts, next_attempt_at, lease_owner, lease_expires_at, last_error,
            received_at, updated_at, processed_at, trace_id)
            SELECT terminal_id, message_id, message_type, entity_type, entity_key, sequence, received_at, payload,
                'Received', 0, received_at, '', NULL, '', received_at, received_at, NULL, trace_id
            FROM ceiling_source ORDER BY received_at""")  # fmt: skip
        for table in (MSG, EVENT, CENTRAL, COUNTER):
            conn.execute(f"VACUUM ANALYZE {table}")
        return conn.execute(f"SELECT count(*) FROM {MSG}").fetchone()[0]


def verify(dsn: str, total: int) -> None:
    """Exit if a form did less than the engine must: every message Processed with two events and
    one attempt, every key in the central store at its newest sequence, counters summing to it."""
    import psycopg

    with psycopg.connect(dsn) as conn:
        left = conn.execute(f"SELECT count(*) FROM {MSG} WHERE state <> 'Processed' OR attempts <> 1").fetchone()[0]
        events = conn.execute(f"SELECT count(*) FROM {EVENT}").fetchone()[0]
        problems = [
            f"{left} messages not Processed exactly once" if left else "",
            f"{events} events for {total} messages (want {2 * total})" if events != 2 * total else "",
            *central_problems(conn),
        ]
    if problems := [p for p in problems if p]:
        raise SystemExit("ceiling form did not do the engine's work: " + "; ".join(problems))


def central_problems(conn) -> list[str]:
    """Every source key in the central store at its newest sequence, the counters summing to it."""
    stale = conn.execute(f"""SELECT count(*) FROM (SELECT terminal_id, entity_type, entity_key, max(sequence) AS s
        FROM ceiling_source GROUP BY 1, 2, 3) AS want JOIN {TERMINAL} AS t ON t.id = want.terminal_id
        LEFT JOIN {CENTRAL} AS c ON (c.terminal_code, c.entity_type, c.entity_key) = (t.code, want.entity_type,
            want.entity_key) AND c.last_sequence = want.s WHERE c.id IS NULL""").fetchone()[0]  # fmt: skip
    counted = conn.execute(f"SELECT coalesce(sum(live_count), 0) FROM {COUNTER}").fetchone()[0]
    keys = conn.execute(f"SELECT count(*) FROM {CENTRAL}").fetchone()[0]
    return [
        f"{stale} keys missing or stale in the central store" if stale else "",
        f"counters sum to {counted}, central store has {keys} keys" if counted != keys else "",
    ]


def verify_v2(dsn: str, variant: ceiling_v2.Variant, total: int) -> None:
    """Exit if the v2 drain did less than the engine must (ceiling_v2.problems, the central store)."""
    import psycopg

    with psycopg.connect(dsn) as conn:
        if problems := [p for p in [*ceiling_v2.problems(conn, variant, total), *central_problems(conn)] if p]:
            raise SystemExit(f"{variant.label()} did not do the engine's work: " + "; ".join(problems))


def console_indexes(dsn: str) -> list[str]:
    import psycopg

    with psycopg.connect(dsn) as conn:
        return [r[0] for r in conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = %s ORDER BY 1", [MSG])
                if r[0] not in QUEUE_INDEXES]  # fmt: skip


def drop_indexes(dsn: str, names: list[str]) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        for name in names:
            conn.execute(f'DROP INDEX "{name}"')


def measure(args, dsn: str, *, one_txn: bool, central: bool) -> tuple[float, int, str]:
    total = reset(dsn)
    deadlocks = mp.Value("i", 0)
    workers = [(dsn, args.batch, f"c{i}", one_txn, central, deadlocks) for i in range(args.workers)]
    rate, writes = timed_with_writes(dsn, MSG, total, worker, workers)
    if central:
        verify(dsn, total)
    return rate, deadlocks.value, writes


def measure_v2(args, dsn: str, variant: ceiling_v2.Variant) -> tuple[float, int, str]:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {CENTRAL}, {COUNTER}")
        total = ceiling_v2.reset(conn, variant)
        for table in (CENTRAL, COUNTER):
            conn.execute(f"VACUUM ANALYZE {table}")
    deadlocks = mp.Value("i", 0)
    workers = [(dsn, args.batch, f"c{i}", variant, apply_central, async_commit(), deadlocks)
               for i in range(args.workers)]  # fmt: skip
    rate, writes = timed_with_writes(dsn, ceiling_v2.STATE, total, ceiling_v2.worker, workers)
    verify_v2(dsn, variant, total)
    return rate, deadlocks.value, writes


def v2_variants(args) -> list[ceiling_v2.Variant]:
    """The kept "v2" first; with --v2-variations, each variation of it that matters."""
    best = replace(V2, fillfactor=args.v2_fillfactor)
    if not args.v2_variations:
        return [best]
    others = [replace(best, fillfactor=f) for f in (70, 85, 100) if f != best.fillfactor]
    return [best, *others, replace(best, per_message_audit=not best.per_message_audit),
            replace(best, last_error=not best.last_error), replace(best, fillfactor=70, lease_index=False),
            replace(best, fillfactor=85, lease_index=False),
            replace(best, fillfactor=85, lease_index=False, per_message_audit=False, batch_leases=True)]  # fmt: skip


def main(argv=None):
    args = parse_args(argv)
    print(f"SyncAdmin engine ceiling: {args.messages:,} messages, {args.terminals} terminals, {args.workers} workers, "
          f"batch {args.batch}, PostgreSQL, commits {'asynchronous' if async_commit() else 'synchronous'} (all loops); "
          "the engine's SQL with no Python beyond sending it; after each: the message (v2: state) table's row "
          "updates and the server's WAL per message", flush=True)  # fmt: skip
    dsn = prepare(args)
    bare_args = SimpleNamespace(sqlite=False, messages=args.messages, workers=args.workers, batch=args.batch)
    first = 0.0 if args.only_v2 else bare_loop(bare_args, dsn, lease_form=False)
    if first:
        print(f"  reference, bare SQL loop (bench/engine.py's, 1 txn, one multi-row INSERT): {first:8,.0f} msg/s",
              flush=True)  # fmt: skip
    results = []
    console = console_indexes(dsn)
    forms = [
        ("pre-split wide table, claim committed first (the engine's shape)", False, True, False),
        ("pre-split wide table, one transaction, attempts journaled outside it", True, True, False),
        (f"without the console's {len(console)} indexes, claim committed first", False, True, True),
        (f"without the console's {len(console)} indexes, one transaction", True, True, True),
        ("without the console's indexes and without the central store", False, False, True),
    ]
    runs = [] if args.only_v2 else [(label, lambda o=o, c=c: measure(args, dsn, one_txn=o, central=c), lean)
                                    for label, o, c, lean in forms]  # fmt: skip
    runs += [("v2 schema, " + v.label() if i == 0 else "  v2 variation, " + v.label(), lambda v=v: measure_v2(args, dsn, v), False)
             for i, v in enumerate(v2_variants(args))]  # fmt: skip
    for label, run, lean in runs:
        if lean and console:
            drop_indexes(dsn, console)
            console = []
        rate, deadlocks, writes = run()
        results.append((label, rate))
        note = f", {deadlocks} deadlocked batches retried" if deadlocks else ""
        print(f"    {label + ':':<84} {rate:8,.0f} msg/s  ({writes}{note})", flush=True)
    if args.only_v2:
        return
    second = bare_loop(bare_args, dsn, lease_form=False)
    reference = (first + second) / 2
    print(f"  reference again: {second:,.0f} msg/s; shares of the two references' mean ({reference:,.0f} msg/s):")
    for label, rate in results:
        print(f"    {label + ':':<84} {rate / reference:5.0%}")


if __name__ == "__main__":
    main()
