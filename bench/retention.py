"""Retention benchmark: purge 1,000,000 old messages on PostgreSQL while ingest and drain run.

    .venv/bin/python bench/retention.py                 # 1,000,000 old messages (the issue's size)
    .venv/bin/python bench/retention.py --messages 200000 --phase-seconds 20

Fills a fresh database (syncadmin_bench_retention) with N old Processed messages (two events each,
as the engine leaves them: received and processed) with INSERT ... SELECT generate_series, then
runs ingest and drain continuously while the purge (purge_run with its own defaults:
SYNC_RETENTION_BATCH, SYNC_RETENTION_DUTY_CYCLE) is switched on and off in alternating windows
until the N old messages are gone: the windows without the purge are the same-run reference.

Ingest is message_ingest_batch in SubmitMessages-sized batches (100), as fast as it goes, from
one process; drain is message_claim + message_process_batch (what the drain task runs), from one
process; the purge is purge_run in a loop, from one process. Prints messages/s for each phase and
the drop of B against the mean of A and A'. Target: at most 20% lower with the purge.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import fresh_database, terminals_insert  # noqa: E402

DB = "syncadmin_bench_retention"


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--messages", type=int, default=1_000_000, help="old messages to purge")
    p.add_argument("--window", type=float, default=5.0, help="seconds per window (purge on / off alternately)")
    p.add_argument("--max-seconds", type=float, default=1800.0, help="give up after this long")
    p.add_argument("--terminals", type=int, default=20)
    p.add_argument("--pg", default=os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432"))
    return p.parse_args()


def setup_env(args) -> None:
    fresh_database(args.pg, DB)
    os.environ.update(
        {
            "DATABASE_URL": f"{args.pg}/{DB}",
            "Q_BROKER": "orm",  # wake-ups go nowhere: the drain process below does the draining
            "SYNC_VAR_DIR": tempfile.mkdtemp(prefix="syncadmin-bench-retention-"),
            "LOG_LEVEL": "WARNING",
            "DJANGO_SETTINGS_MODULE": "syncadmin.settings",
        }
    )


def django_setup():
    import django

    django.setup()


def fill(args) -> float:
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    t0 = time.perf_counter()
    with connection.cursor() as c:
        terminals_insert(c, prefix="B", count=args.terminals, heartbeat=False)
        # Old, finished traffic: 40..100 days ago, all Processed (what the purge is for). The envelope,
        # then its state row under the same id.
        c.execute(
            """
            WITH t AS (SELECT array_agg(id ORDER BY id) AS ids FROM terminals_terminal)
            INSERT INTO queue_messages_message (terminal_id, message_id, message_type, entity_type, entity_key,
                sequence, created_at, payload, received_at, trace_id)
            SELECT t.ids[1 + g %% %s], 'old-' || g, 'product.upsert', 'product', 'OLD-' || (g %% 5000), g,
                   ts, '{"name": "Item ' || g || '", "price": "1.99"}', ts, md5(g::text)
            FROM generate_series(1, %s) g CROSS JOIN t
            CROSS JOIN LATERAL (SELECT now() - interval '40 days' - g * interval '5 seconds' AS ts) x
            """,
            [args.terminals, args.messages],
        )
        c.execute(
            """
            INSERT INTO queue_messages_messagestate (id, state, attempts, next_attempt_at, lease_owner,
                lease_expires_at, last_error, updated_at, processed_at, queued_at, queue_terminal_id)
            SELECT id, 'Processed', 1, NULL, '', NULL, '', received_at + interval '1 second',
                   received_at + interval '1 second', received_at, terminal_id
            FROM queue_messages_message
            """
        )
        c.execute(
            """
            INSERT INTO queue_messages_messageevent (message_id, from_state, to_state, at, actor, reason,
                error_class, traceback, attempt)
            SELECT id, '', 'Received', received_at, 'terminal:bench', '', '', '', 0 FROM queue_messages_message
            UNION ALL
            SELECT id, 'Processing', 'Processed', updated_at, 'worker', 'applied', '', '', 1
            FROM queue_messages_messagestate
            """
        )
    with connection.cursor() as c:
        c.execute("VACUUM ANALYZE")
    return time.perf_counter() - t0


# --- the three activities, each in its own process ------------------------------------------------


def ingest_loop(stop, counter, terminals: int, seed: int):
    django_setup()
    from messages.services import Envelope, message_ingest_batch
    from terminals.models import Terminal

    tills = list(Terminal.objects.order_by("pk"))
    n = 0
    while not stop.is_set():
        t = tills[n % len(tills)]
        now = datetime.now(UTC)
        batch = [
            Envelope(
                message_id=f"new-{seed}-{n}-{i}",
                message_type="product.upsert",
                entity_key=f"SKU-{(n * 100 + i) % 2000}",
                sequence=n * 100 + i,
                created_at=now,
                payload=json.dumps({"name": f"Item {i}", "price": "2.50"}),
            )
            for i in range(100)
        ]
        message_ingest_batch(terminal=t, envelopes=batch)
        n += 1
        with counter.get_lock():
            counter.value += len(batch)


def drain_loop(stop, counter):
    django_setup()
    from messages.services import message_claim, message_process_batch

    while not stop.is_set():
        batch = message_claim(worker="bench:drain", limit=100)
        if not batch:
            time.sleep(0.05)
            continue
        result = message_process_batch(messages=batch, worker="bench:drain")
        with counter.get_lock():
            counter.value += result.processed + result.noop


def purge_loop(stop, enabled, counter, done):
    """The purge as the schedule runs it (purge_run, its own pacing), only while ``enabled`` is set."""
    django_setup()
    from messages.services.retention import purge_run

    while not stop.is_set():
        if not enabled.wait(timeout=0.2):
            continue
        run = purge_run(trigger="bench", max_seconds=1.0)
        if run is None:
            time.sleep(0.1)
            continue
        with counter.get_lock():
            counter.value += run.messages_removed
        if not run.more:
            done.set()
            return


def measure(args) -> list[dict]:
    """Ingest and drain run all along; the purge is switched on and off in alternating windows.

    Alternating (rather than one phase after another) cancels the drift of a long run on a shared
    machine: the backlog grows, neighbours come and go; each purge window sits between two
    windows without it.
    """
    ctx = mp.get_context("fork")
    stop, enabled, purge_done = ctx.Event(), ctx.Event(), ctx.Event()
    ingested, drained, purged = ctx.Value("q", 0), ctx.Value("q", 0), ctx.Value("q", 0)
    procs = [
        ctx.Process(target=ingest_loop, args=(stop, ingested, args.terminals, 1)),
        ctx.Process(target=drain_loop, args=(stop, drained)),
        ctx.Process(target=purge_loop, args=(stop, enabled, purged, purge_done)),
    ]
    for p in procs:
        p.start()
    time.sleep(3)  # every process connected and warm before the first window
    windows = []
    on = False
    started = time.perf_counter()
    while True:
        if on:
            enabled.set()
        else:
            enabled.clear()
        i0, d0, p0, t0 = ingested.value, drained.value, purged.value, time.perf_counter()
        time.sleep(args.window)
        t1 = time.perf_counter()
        seconds = t1 - t0
        windows.append(
            {
                "purge": on,
                "seconds": seconds,
                "ingest_per_s": (ingested.value - i0) / seconds,
                "drain_per_s": (drained.value - d0) / seconds,
                "purged": purged.value - p0,
            }
        )
        # Stop after a window without the purge once the purge has finished (so both kinds are balanced).
        if purge_done.is_set() and not on:
            break
        if time.perf_counter() - started > args.max_seconds:
            print("(stopped at --max-seconds before the purge finished)")
            break
        on = not on
    stop.set()
    enabled.set()
    for p in procs:
        p.join(timeout=60)
        if p.is_alive():
            p.terminate()
    return windows


def main():
    args = parse_args()
    setup_env(args)
    django_setup()
    from django.conf import settings
    from django.db import connection

    print(f"filling {args.messages:,} old Processed messages (+{2 * args.messages:,} events) ...", flush=True)
    print(f"filled in {fill(args):.0f} s", flush=True)
    connection.close()  # the children fork: none may inherit this connection
    windows = measure(args)
    from messages.models import Message, PurgeRun

    left = Message.objects.filter(message_id__startswith="old-").count()
    runs = PurgeRun.objects.count()
    # A window that only partly had the purge (the last batches) is neither: leave it out.
    on = [w for w in windows if w["purge"] and w["purged"]]
    off = [w for w in windows if not w["purge"]]
    purged_total = sum(w["purged"] for w in windows)
    purge_seconds = sum(w["seconds"] for w in on)

    def med(ws, key):
        return statistics.median(w[key] for w in ws) if ws else float("nan")

    print()
    print(
        f"PostgreSQL, 2-core shared machine; {len(windows)} windows of {args.window:g} s, purge on in every other; "
        f"purge batch {settings.SYNC_RETENTION_BATCH}, duty cycle {settings.SYNC_RETENTION_DUTY_CYCLE}"
    )
    print(f"{'':<22} {'windows':>8} {'ingest msg/s':>13} {'drain msg/s':>12}")
    print(
        f"{'without purge (median)':<22} {len(off):>8} {med(off, 'ingest_per_s'):>13.0f} {med(off, 'drain_per_s'):>12.0f}"
    )
    print(f"{'with purge (median)':<22} {len(on):>8} {med(on, 'ingest_per_s'):>13.0f} {med(on, 'drain_per_s'):>12.0f}")
    drop_i = 100 * (1 - med(on, "ingest_per_s") / med(off, "ingest_per_s"))
    drop_d = 100 * (1 - med(on, "drain_per_s") / med(off, "drain_per_s"))
    print(f"with the purge: ingest {drop_i:.1f}% lower, drain {drop_d:.1f}% lower")
    print(
        f"purged {purged_total:,} old messages (+{2 * purged_total:,} events) in {purge_seconds:.0f} s of purge windows "
        f"= {purged_total / purge_seconds if purge_seconds else 0:.0f} msg/s; left: {left:,}; purge runs recorded: {runs}"
    )
    ok = drop_i <= 20 and drop_d <= 20 and left == 0
    print("target (<= 20% drop, everything purged):", "met" if ok else "NOT met")


if __name__ == "__main__":
    main()
