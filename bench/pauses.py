"""Pause benchmark: what pauses cost the claim, with and without a paused backlog at the head of the queue.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/syncadmin .venv/bin/python bench/pauses.py
    .venv/bin/python bench/pauses.py --sqlite
    .venv/bin/python bench/pauses.py --paused 200000 --due 50000

Fills a fresh database (PostgreSQL: <name>_bench_pauses next to DATABASE_URL's; SQLite: a temporary
file) with --paused due `price.upsert` messages at the head of the queue (the oldest) and --due due
`product.upsert` messages behind them, then times one claim of 100 (``message_claim``, what a drain
runs; each one rolled back, so every run claims from the same table) in these cases:

- no pause: the reference, in the same run (the statement is the one the claim ran before pauses);
- ten pauses, none of them holding a due message;
- filter-while-walking: the claim's walk of the due index with the ten pauses as a filter and the
  paused backlog still due: what every claim would cost without parking (the lock-and-read part only);
- setting the paused backlog aside: the claims, committed, that park it (once per pause, not per claim);
- ten pauses, one of them holding the (now parked) backlog.

Prints the median and 95th percentile of each, and each median against the reference. Targets: ten
pauses within 10 % of the reference.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import own_database, terminals_insert  # noqa: E402

LIMIT = 100


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--paused", type=int, default=100_000, help="due messages of the paused type, at the head")
    p.add_argument("--due", type=int, default=50_000, help="due messages of other types, behind them")
    p.add_argument("--runs", type=int, default=300, help="claims timed per case")
    p.add_argument("--sqlite", action="store_true", help="benchmark SQLite instead of PostgreSQL")
    return p.parse_args()


def setup_env(args) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "syncadmin.settings")
    os.environ["LOG_LEVEL"] = "WARNING"
    os.environ["SYNC_VAR_DIR"] = tempfile.mkdtemp(prefix="syncadmin-bench-pauses-")
    if args.sqlite:
        os.environ.pop("DATABASE_URL", None)
        return
    url = own_database(os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/syncadmin"), "_bench_pauses")
    os.environ["DATABASE_URL"] = url


# The envelope, then its state row under the same id (n read back from the message id 'm-<n>').
FILL_PG = """
WITH t AS (SELECT array_agg(id ORDER BY id) AS ids FROM terminals_terminal)
INSERT INTO queue_messages_message (terminal_id, message_id, message_type, entity_type, entity_key, sequence,
    created_at, payload, received_at, trace_id)
SELECT t.ids[1 + g %% 20], 'm-' || g, CASE WHEN g <= %s THEN 'price.upsert' ELSE 'product.upsert' END,
    CASE WHEN g <= %s THEN 'price' ELSE 'product' END, 'K-' || g, 1, now(), '{"price": "1.99"}', now(), ''
FROM generate_series(1, %s) g CROSS JOIN t
"""
FILL_STATE_PG = """
INSERT INTO queue_messages_messagestate (id, state, attempts, next_attempt_at, lease_owner, lease_expires_at,
    last_error, updated_at, processed_at, queued_at, queue_terminal_id)
SELECT id, 'Received', 0, now() - interval '3 hours' + split_part(message_id, '-', 2)::int * interval '1 millisecond',
    '', NULL, '', now(), NULL, received_at, terminal_id
FROM queue_messages_message
"""

FILL_SQLITE = """
WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < %s)
INSERT INTO queue_messages_message (terminal_id, message_id, message_type, entity_type, entity_key, sequence,
    created_at, payload, received_at, trace_id)
SELECT (SELECT min(id) FROM terminals_terminal) + n %% 20, 'm-' || n,
    CASE WHEN n <= %s THEN 'price.upsert' ELSE 'product.upsert' END,
    CASE WHEN n <= %s THEN 'price' ELSE 'product' END, 'K-' || n, 1, datetime('now'), '{"price": "1.99"}',
    datetime('now'), ''
FROM g
"""
FILL_STATE_SQLITE = """
INSERT INTO queue_messages_messagestate (id, state, attempts, next_attempt_at, lease_owner, lease_expires_at,
    last_error, updated_at, processed_at, queued_at, queue_terminal_id)
SELECT id, 'Received', 0,
    strftime('%%Y-%%m-%%d %%H:%%M:%%f000', 'now', '-3 hours', '+' || (substr(message_id, 3) / 1000.0) || ' seconds'),
    '', NULL, '', datetime('now'), NULL, received_at, terminal_id
FROM queue_messages_message
"""


def fill(args) -> float:
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    t0 = time.perf_counter()
    with connection.cursor() as c:
        c.execute("DELETE FROM queue_messages_queuepause")
        c.execute("DELETE FROM queue_messages_messageevent")
        c.execute("DELETE FROM queue_messages_messagestate")  # before the envelopes it references
        c.execute("DELETE FROM queue_messages_message")
        if args.sqlite:
            c.execute("DELETE FROM terminals_terminal")
            for i in range(20):
                c.execute(
                    "INSERT INTO terminals_terminal (code, name, store, enabled, api_key_hash, app_version,"
                    " created_at, updated_at) VALUES (%s, 'Till', 'Store', 1, '', '4.2', datetime('now'),"
                    " datetime('now'))",
                    [f"T{i:04d}"],
                )
            c.execute(FILL_SQLITE, [args.paused + args.due, args.paused, args.paused])
            c.execute(FILL_STATE_SQLITE, [])  # (params, so that %% reads as %)
            c.execute("ANALYZE")
        else:
            c.execute("TRUNCATE terminals_terminal CASCADE")
            terminals_insert(c, prefix="T", count=20, heartbeat=True)
            c.execute(FILL_PG, [args.paused, args.paused, args.paused + args.due])
            c.execute(FILL_STATE_PG)
            c.execute("VACUUM ANALYZE queue_messages_message")
            c.execute("VACUUM ANALYZE queue_messages_messagestate")
    return time.perf_counter() - t0


def pause_ten(*, hold_backlog: bool):
    """Ten pauses of message types (price.upsert among them when ``hold_backlog``); their PauseSet."""
    from messages.models import QueuePause
    from messages.services.pauses import pauses_load, queue_pause_create

    QueuePause.objects.all().delete()
    values = [f"other{i}.upsert" for i in range(9)] + ["price.upsert" if hold_backlog else "other9.upsert"]
    for value in values:
        queue_pause_create(scope="message_type", value=value, reason="bench", actor="bench")
    return pauses_load()


def timed_claims(runs: int, pause_sets: dict) -> dict[str, list[float]]:
    """Claims of LIMIT under each pause set, interleaved run by run (a loaded machine drifts), each
    rolled back so that every run claims from the same table; ms each, per pause set."""
    from django.db import transaction

    from messages.services import claim

    times: dict[str, list[float]] = {name: [] for name in pause_sets}
    for run in range(runs):
        order = list(pause_sets.items())
        for name, pauses in order if run % 2 else order[::-1]:  # neither case always goes first
            claim.pauses_current = lambda pauses=pauses: pauses  # what the worker's cache would hold
            with transaction.atomic():
                t0 = time.perf_counter()
                batch = claim.message_claim(worker="bench", limit=LIMIT)
                times[name].append((time.perf_counter() - t0) * 1000)
                assert len(batch) == LIMIT, len(batch)
                transaction.set_rollback(True)
    return times


def timed_filter_walk(runs: int, *, paused: bool = True) -> list[float]:
    """The due index walked with the pauses as a filter while the paused backlog is still due (ms each);
    ``paused=False``: the same walk without the backlog paused, its reference."""
    from django.db import connection, transaction

    from messages.services.claim import PREFER_INDEX_ORDER_SQL

    values = [f"'other{i}.upsert'" for i in range(9)] + ["'price.upsert'" if paused else "'other9.upsert'"]
    hint = "INDEXED BY message_due_idx" if connection.vendor == "sqlite" else ""
    lock = "" if connection.vendor == "sqlite" else "FOR UPDATE OF s SKIP LOCKED"
    sql = (
        # The state row walked in due order, the envelope joined for its type (as the claim does).
        f"SELECT s.id FROM queue_messages_messagestate AS s {hint} JOIN queue_messages_message AS e ON e.id = s.id"
        f" WHERE s.state IN ('Received', 'Failed') AND s.next_attempt_at <= %s"
        f" AND e.message_type NOT IN ({', '.join(values)}) ORDER BY s.next_attempt_at LIMIT {LIMIT} {lock}"
    )
    times = []
    for _ in range(runs):
        with transaction.atomic(), connection.cursor() as c:
            if connection.vendor == "postgresql":
                c.execute(PREFER_INDEX_ORDER_SQL)
            t0 = time.perf_counter()
            c.execute(sql, [connection.ops.adapt_datetimefield_value(now_utc())])
            assert len(c.fetchall()) == LIMIT
            times.append((time.perf_counter() - t0) * 1000)
            transaction.set_rollback(True)
    return times


def now_utc():
    from django.utils import timezone

    return timezone.now()


def set_aside(pauses) -> tuple[float, int]:
    """Claims, committed, until the first that claims something: the paused backlog parked (s, claims)."""
    from messages.services import claim

    claim.pauses_current = lambda: pauses
    t0, claims = time.perf_counter(), 0
    while True:
        claims += 1
        batch = claim.message_claim(worker="bench", limit=LIMIT)
        if batch:
            return time.perf_counter() - t0, claims


def report(title: str, times: dict[str, list[float]], reference: str) -> None:
    base = statistics.median(times[reference])
    print(f"\n{title}{'median ms':>12} {'p95 ms':>9}   vs reference")
    for name, values in times.items():
        p95 = sorted(values)[max(0, int(len(values) * 0.95) - 1)]
        median = statistics.median(values)
        print(f"  {name:<{len(title) - 2}} {median:10.3f} {p95:9.3f}   {median / base:6.2f}x")


def main():
    args = parse_args()
    setup_env(args)
    import django

    django.setup()
    from django.db import connection

    from messages.services import claim
    from messages.services.pauses import PauseSet

    print(f"filling: {args.paused:,} paused-type messages at the head, {args.due:,} others behind them ...")
    print(f"  filled in {fill(args):.1f} s ({connection.vendor})")
    claim._next_expired_check = float("inf")  # the periodic expired-lease look: not what is measured
    reference = "no pause (reference)"
    ten = pause_ten(hold_backlog=False)
    timed_claims(20, {reference: PauseSet(), "ten": ten})  # warm up: prepare both statements
    before = timed_claims(args.runs, {reference: PauseSet(), "10 pauses, none holding a due message": ten})
    walk = timed_filter_walk(max(5, args.runs // 30))
    walk_reference = timed_filter_walk(max(5, args.runs // 30), paused=False)
    held = pause_ten(hold_backlog=True)
    seconds, claims = set_aside(held)
    after = timed_claims(args.runs, {reference: PauseSet(), "10 pauses, one holding the parked backlog": held})
    title = f"claim of {LIMIT}, {connection.vendor}, {args.runs} interleaved runs each"
    report(title + " " * max(0, 64 - len(title)), before, reference)
    print(
        f"\nwithout parking: the claim's walk (lock + read of {LIMIT}) with the ten pauses as a filter, median ms\n"
        f"  past {args.paused:,} paused due messages: {statistics.median(walk):.3f}"
        f"   with none paused at the head: {statistics.median(walk_reference):.3f}"
        f"   ({statistics.median(walk) / statistics.median(walk_reference):.0f}x, on every claim)"
    )
    print(
        f"\nsetting aside the {args.paused:,} paused messages at the head: {seconds:.2f} s, {claims} claim call(s), once"
    )
    report("after parking" + " " * 51, after, reference)


if __name__ == "__main__":
    main()
