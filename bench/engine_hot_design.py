"""The HOT design's upper bound on the whole engine, alternated with today's engine and PgQueuer's no-op drain.

    .venv/bin/python bench/engine_hot_design.py [--rounds 3] [--messages 100000]

``bench/ceiling_v2.py`` measures the HOT design (the claim audited once per batch, a completion
PostgreSQL can write in place) as bare SQL. This measures what it would give the whole engine,
before anyone builds it: the full engine (qcluster, handlers, central upsert, counters, metrics,
logs) drains the same messages on a database whose state table has the design's indexes, and
whose claim writes one audit row per batch instead of one event row per message. Each round runs,
one after the other on fresh databases: today's engine, the engine on the design, the same two
with no-op jobs (every message applied, nothing written to the central store: what PgQueuer's
no-op drain does), and PgQueuer's no-op drain; it prints each drain's rate, its CPU a message
(the server's processes and the cluster's) and HOT share, and the medians of the rounds' ratios.

What is emulated, and what is not (so the design's figure is an upper bound):
- The state table: fillfactor 85; the due index keyed on ``next_attempt_at IS NOT NULL`` (ingest,
  a failure and a retry set it, the claim and a dead letter clear it; a discard would have to); no
  index that names the state, the lease or ``updated_at`` (today's lease, waiting-state and
  retention indexes). The completion then changes no indexed column. Not built: the lease row
  per claimed batch that replaces the lease index (free in the ceiling: 44,383 against 44,509
  msg/s), the waiting-state column and its index (the claim clears it in a row it rewrites anyway),
  the lease sweeper, the console's reads and retention's through other indexes.
- The claim: the workers run today's claim statement with its event rows replaced by one row per
  batch (ids, attempts and previous states as arrays, GIN-indexed by id for the timeline), by
  rewriting the statement's text in the cluster's process (``--cluster``), never in the project.
- The bench's own poll (is anything left?) and the workers' expired-lease check, every 5 s, scan
  the state table without those indexes: a cost the design would not have, so again a bound.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.engine import STATE_TABLE, async_commit, fresh_drain  # noqa: E402
from bench.peers import pgqueuer_drain_results  # noqa: E402

CLAIM_AUDIT = "hot_design_claim"
# Today's claim's event rows (messages/services/claim.py), and the one row per batch that replaces them;
# both take the same two parameters (the state moved to, the worker).
CLAIM_EVENTS = re.compile(
    r"events AS \(\s*INSERT INTO queue_messages_messageevent \([^)]*\)\s*"
    r"SELECT id, from_state, %s, updated_at, %s, '', '', '', attempts FROM moved\s*\)"
)
CLAIM_PER_BATCH = (
    f"events AS (INSERT INTO {CLAIM_AUDIT} (to_state, actor, at, ids, attempts, from_states)"
    " SELECT %s, %s, max(updated_at), array_agg(id), array_agg(attempts), array_agg(from_state::text) FROM moved"
    " HAVING count(*) > 0)"
)

# The batch rows, and the timeline's lookup of a message's claims (WHERE ids @> ARRAY[id]).
CLAIM_AUDIT_DDL = (
    f"""CREATE TABLE {CLAIM_AUDIT} (id bigserial PRIMARY KEY, to_state varchar(16) NOT NULL,
    actor varchar(150) NOT NULL, at timestamptz NOT NULL, ids bigint[] NOT NULL, attempts integer[] NOT NULL,
    from_states text[] NOT NULL)""",
    f"CREATE INDEX {CLAIM_AUDIT}_ids ON {CLAIM_AUDIT} USING gin (ids)",
)


def claim_audited_per_batch(sql: str) -> str:
    """The claim's statement with its per-message event rows replaced by one row per batch; any
    other statement unchanged. Raises if a claim's statement no longer has the form it replaces."""
    if "INSERT INTO queue_messages_messageevent" not in sql or "moved AS (" not in sql:
        return sql
    rewritten, n = CLAIM_EVENTS.subn(CLAIM_PER_BATCH, sql)
    if n != 1:
        raise RuntimeError("the claim's statement changed: bench/engine_hot_design.py no longer knows its events")
    return rewritten


def design_schema(dsn: str) -> None:
    """The HOT design's state table on a migrated, empty database (before the fill: the fillfactor
    applies to the pages written after it)."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"ALTER TABLE {STATE_TABLE} SET (fillfactor = 85)")
        for index in ("message_due_idx", "message_lease_idx", "message_state_queued_idx", "message_state_updated_idx"):
            conn.execute(f"DROP INDEX {index}")
        conn.execute(
            f"CREATE INDEX message_due_idx ON {STATE_TABLE} (next_attempt_at) WHERE next_attempt_at IS NOT NULL"
        )
        for statement in CLAIM_AUDIT_DDL:
            conn.execute(statement)
        # The design stands or falls by this: no index of the state table that the completion's
        # columns change (or that names them in its condition), else no completion can be HOT.
        indexes = conn.execute("SELECT indexdef FROM pg_indexes WHERE tablename = %s", [STATE_TABLE]).fetchall()
        completion = ("state", "lease_owner", "lease_expires_at", "updated_at", "processed_at", "last_error")
        named = [d for (d,) in indexes if any(re.search(rf"\b{c}\b", d.split(" USING ")[1]) for c in completion)]
        if named:
            raise SystemExit(f"the design's state table still indexes what the completion changes: {named}")


def design_checked(dsn: str, messages: int) -> str:
    """What the design's drain left: every message claimed once in the batch rows, none in an event
    row's claim; a failed check ends the run (a fast drain that lost its audit proves nothing)."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        claimed, distinct = conn.execute(
            f"SELECT count(*), count(DISTINCT m) FROM {CLAIM_AUDIT}, unnest(ids) AS m"
        ).fetchone()
        events = conn.execute(
            "SELECT count(*) FROM queue_messages_messageevent WHERE to_state = 'Processing'"
        ).fetchone()[0]
        processed = conn.execute(f"SELECT count(*) FROM {STATE_TABLE} WHERE state = 'Processed'").fetchone()[0]
        batches = conn.execute(f"SELECT count(*) FROM {CLAIM_AUDIT}").fetchone()[0]
    if events or claimed != distinct or processed != messages or claimed < messages:
        raise SystemExit(f"the design's drain is wrong: {claimed} claims of {distinct} messages in batch rows, "
                         f"{events} claim events, {processed} of {messages} processed")  # fmt: skip
    return f"{batches:,} claim rows for {claimed:,} claims"


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--messages", type=int, default=100_000)
    p.add_argument("--terminals", type=int, default=50)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--ingest-batch", type=int, default=100)
    p.add_argument(
        "--pg", default=os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
    )  # as bench/engine.py
    p.add_argument("--redis", default=os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/14"))
    p.add_argument("--database", default="syncadmin_bench_hot")
    # The cluster of one drain (run_cluster), started by this script itself.
    p.add_argument("--cluster", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--design", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--noop-jobs", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    # What bench/engine.py's fill and drain read besides these.
    args.sqlite, args.fleet, args.no_peers = False, False, False
    return args


def run_cluster(*, design: bool, noop: bool) -> None:
    """``manage.py qcluster``, with the claim audited per batch (``design``) and no-op jobs (``noop``):
    the workers are forked from this process, so what is replaced here is theirs."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "syncadmin.settings")
    django.setup()
    from django.core.management import execute_from_command_line

    if design:
        claims_audited_per_batch()
    if noop:
        from messages.handlers import registry

        registry.entity_handler = NoopJobs()
        registry.resolved.clear()
    execute_from_command_line(["manage.py", "qcluster"])


class NoopJobs:
    """The entity handler of a no-op drain, as PgQueuer's no-op jobs: every message applied, nothing
    written to the central store; the queue's work (claim, audit, completion, counters, metrics,
    logs) unchanged."""

    def apply_many(self, items) -> None:
        for item in items:
            item.applied = True


def claims_audited_per_batch() -> None:
    """This process's claims (messages/services/claim.py) write one audit row per batch from now on."""
    from messages.services import claim

    made = claim.server_binding_cursor

    def cursor(alias, **kwargs):
        c = made(alias, **kwargs)
        execute = c.execute
        c.execute = lambda sql, params=None: execute(claim_audited_per_batch(sql), params)
        return c

    claim.server_binding_cursor = cursor


def one_drain(args, *, design: bool, noop: bool = False) -> dict:
    flags = [*(["--design"] if design else []), *(["--noop-jobs"] if noop else [])]
    command = [sys.executable, str(Path(__file__).resolve()), "--cluster", *flags] if flags else None
    first = f"SELECT min(at) FROM {CLAIM_AUDIT}" if design else None
    result = fresh_drain(args, schema=design_schema if design else None, command=command, first_claim_sql=first)
    if design and not result["updates"][1]:
        raise SystemExit("the design's drain made no HOT update: its schema is not the design's")
    if design:
        result["check"] = design_checked(
            result["env"]["DATABASE_URL"], args.messages // args.terminals * args.terminals
        )
    return result


def hot(result: dict) -> str:
    upd, hot = result["updates"]
    return f"{hot / max(upd, 1):.0%} HOT"


def cpu(result: dict) -> float:
    """CPU µs a message over the drain: the server's and the workers'."""
    return result["server_cpu_us"] + result["workers_cpu_us"]


def cpu_text(result: dict) -> str:
    return (f"CPU {cpu(result):5.1f} µs/msg (server {result['server_cpu_us']:5.1f},"
            f" workers {result['workers_cpu_us']:5.1f})")  # fmt: skip


# (label, on the design, with no-op jobs): the engine's drains of each round, in this order.
FORMS = [("today", False, False), ("design", True, False), ("today, no-op jobs", False, True),
         ("design, no-op jobs", True, True)]  # fmt: skip
PEER = "PgQueuer, no-op jobs"


def main():
    args = parse_args()
    if args.cluster:
        return run_cluster(design=args.design, noop=args.noop_jobs)
    print(f"The HOT design on the whole engine: {args.messages:,} messages, {args.terminals} terminals, "
          f"{args.workers} workers, batch {args.batch}; {args.rounds} rounds of the engine's drains (today's "
          "schema and the design's, doing the work and with no-op jobs), then PgQueuer's no-op drain",
          flush=True)  # fmt: skip
    rounds = []
    for n in range(1, args.rounds + 1):
        results = {}
        print(f"  round {n}:", flush=True)
        for label, design, noop in FORMS:
            results[label] = result = one_drain(args, design=design, noop=noop)
            print(f"    engine, {label + ':':<20} {result['rate']:8,.0f} msg/s, {cpu_text(result)}, {hot(result)}"
                  f"{'; ' + result['check'] if design else ''}", flush=True)  # fmt: skip
        (results[PEER],) = pgqueuer_drain_results(
            pg=args.pg,
            database=f"{args.database}_peers",
            jobs=args.messages // args.terminals * args.terminals,
            terminals=args.terminals,
            workers=args.workers,
            batch=args.batch,
            synchronous_commit=not async_commit(),
            noop_only=True,
        )
        print(f"    {PEER + ':':<28} {results[PEER]['rate']:8,.0f} msg/s, {cpu_text(results[PEER])}", flush=True)
        rounds.append(results)
    print(f"  medians of {len(rounds)} rounds (msg/s ÷ PgQueuer's no-op drain's in the same round; CPU µs/msg):")
    for label in [*(label for label, *_ in FORMS), PEER]:
        rate = statistics.median(r[label]["rate"] / r[PEER]["rate"] for r in rounds)
        print(f"    {label + ':':<28} {rate:5.2f}, CPU {statistics.median(cpu(r[label]) for r in rounds):5.1f}")
    design = statistics.median(r["design"]["rate"] / r["today"]["rate"] for r in rounds)
    print(f"    design ÷ today, msg/s: {design:.2f}", flush=True)


if __name__ == "__main__":
    main()
