"""Migrations benchmark: each migration of the message table on 1,000,000 messages while a writer inserts (PostgreSQL).

    .venv/bin/python bench/migrations.py                    # 1,000,000 messages (the issue's size)
    .venv/bin/python bench/migrations.py --messages 200000
    .venv/bin/python bench/migrations.py --state-split-only  # 0013 alone, on 1,000,000 messages


Fills a fresh database (syncadmin_bench_migrations) up to the migration before the first one of
the message table with N messages (INSERT ... SELECT generate_series), then runs each
message-table migration forwards (tests/messages/migration_load.py finds them, the released ones
the linter accepts included) while a writer commits one message per transaction and a watcher
reads pg_locks. Prints, per migration: its time, how long it held a lock that stops writes, the
writer's inserts per second and its slowest insert; first the same writer for a few seconds with
no migration running, as the same-run reference.

0013 (the queue state's own table) is run apart, from 0012 on the same messages: the old
release's ingest keeps inserting with 0012's SQL until the column drop refuses it (as the
terminals' resends would), and the run prints the chunked copy's time, the locked last pass's
(the ingest's longest stall), the messages ingest committed meanwhile, and checks that each of
them has its state row (docs/operations/upgrades.md, "0013").
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import importlib  # noqa: E402
import threading  # noqa: E402
from datetime import UTC, datetime  # noqa: E402

import psycopg  # noqa: E402

from bench._common import fresh_database  # noqa: E402

DB = "syncadmin_bench_migrations"
STATE_SPLIT = ("queue_messages", "0013_queue_state_table")
# 0012's ingest insert, as the old release's SOAP gateway writes a message.
OLD_INSERT = (
    "INSERT INTO queue_messages_message (terminal_id, message_id, message_type, entity_type, entity_key, sequence,"
    " created_at, payload, state, attempts, next_attempt_at, lease_owner, last_error, received_at, updated_at,"
    " trace_id) VALUES (%s, %s, 'product.upsert', 'product', 'SKU-W', %s, %s, '{}', 'Received', 0, %s, '', '', %s,"
    " %s, '') RETURNING id"
)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--messages", type=int, default=1_000_000)
    p.add_argument("--reference-seconds", type=float, default=5.0)
    p.add_argument("--pg", default=os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432"))
    p.add_argument("--db", default=DB, help="the database to (re)create on that server")
    p.add_argument("--state-split-only", action="store_true", help="only 0013, from 0012")
    return p.parse_args()


class OldIngest(threading.Thread):
    """One message per transaction with 0012's SQL until stopped; records each insert's time and what committed."""

    def __init__(self, connect, terminal_id: int):
        super().__init__()
        self.connect, self.terminal_id = connect, terminal_id
        self.stop = threading.Event()
        self.committed: list[int] = []
        self.refused = 0
        self.slowest = 0.0  # the longest insert, refused ones included: the stall the lock caused
        self.error: Exception | None = None

    def run(self):
        with self.connect() as conn:
            n = 0
            while not self.stop.is_set():
                n += 1
                at = datetime.now(UTC)
                started = time.monotonic()
                try:
                    row = conn.execute(OLD_INSERT, [self.terminal_id, f"w-{n}", n, at, at, at, at]).fetchone()
                except psycopg.errors.UndefinedColumn:
                    self.refused += 1  # the columns are gone: the terminal sends it again to the new release
                    time.sleep(0.01)
                    continue
                except Exception as exc:  # noqa: BLE001 (printed by the run)
                    self.error = exc
                    return
                finally:
                    self.slowest = max(self.slowest, time.monotonic() - started)
                self.committed.append(row[0])


def state_split(connect) -> None:
    """0013 from 0012 with the old ingest running; prints its phases and checks what ingest committed."""
    from django.core.management import call_command
    from django.db import connection

    migration = importlib.import_module("messages.migrations.0013_queue_state_table")
    phases = {}
    copy_chunks, lock = migration._copy_chunks, migration._lock

    def timed_copy(*args):
        started = time.monotonic()
        copied = copy_chunks(*args)
        phases.setdefault("chunks", (time.monotonic() - started, copied))
        return copied

    def timed_lock(*args):
        phases.setdefault("locked_at", time.monotonic())
        return lock(*args)

    migration._copy_chunks, migration._lock = timed_copy, timed_lock
    with connection.cursor() as cursor:
        cursor.execute("SELECT id FROM terminals_terminal WHERE code = 'T-LOAD'")
        ingest = OldIngest(connect, cursor.fetchone()[0])
        cursor.execute("SELECT count(*) FROM queue_messages_message")
        before = cursor.fetchone()[0]
    ingest.start()
    try:
        time.sleep(0.5)  # ingest running before the migration starts
        started = time.monotonic()
        call_command("migrate", *STATE_SPLIT, interactive=False, verbosity=0)
        ended = time.monotonic()
        while not ingest.refused and ingest.error is None and time.monotonic() < ended + 10:
            time.sleep(0.01)
    finally:
        ingest.stop.set()
        ingest.join()
        migration._copy_chunks, migration._lock = copy_chunks, lock
    assert ingest.error is None, ingest.error
    chunk_seconds, chunk_rows = phases["chunks"]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM queue_messages_messagestate s JOIN queue_messages_message m ON m.id = s.id"
            " WHERE s.id = ANY(%s) AND s.state = 'Received' AND s.attempts = 0",
            [ingest.committed],
        )
        present = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM queue_messages_messagestate")
        states = cursor.fetchone()[0]
    print(f"0013 on {before:,} messages: {ended - started:.2f} s in all")
    print(f"  chunked copy: {chunk_seconds:.2f} s ({chunk_rows:,} rows, CHUNK {migration.CHUNK:,})")
    print(f"  locked last pass to the end (drop, new table's indexes and key): {ended - phases['locked_at']:.2f} s")
    print(f"  ingest's longest stall: {ingest.slowest:.3f} s; refused from the drop on: {ingest.refused}")
    print(f"  committed by ingest while it ran: {len(ingest.committed):,}, with their state row: {present:,}")
    print(f"  state rows: {states:,} for {before + len(ingest.committed):,} messages")
    assert present == len(ingest.committed) and states == before + len(ingest.committed)


def main() -> None:
    args = parse_args()
    fresh_database(args.pg, args.db)
    os.environ.update(
        {
            "DATABASE_URL": f"{args.pg}/{args.db}",
            "Q_BROKER": "orm",
            "SYNC_VAR_DIR": tempfile.mkdtemp(prefix="syncadmin-bench-migrations-"),
            "LOG_LEVEL": "WARNING",
            "DJANGO_SETTINGS_MODULE": "syncadmin.settings",
        }
    )
    import django

    django.setup()
    from django.core.management import call_command

    from tests.messages.migration_load import _connect, message_table_migrations, messages_fill, previous, under_load

    call_command("migrate", interactive=False, verbosity=0)
    nodes = [node for node in message_table_migrations(accepted=True) if node != STATE_SPLIT]
    if args.state_split_only:
        nodes = []
    first = previous(*nodes[0]) if nodes else previous(*STATE_SPLIT)
    call_command("migrate", "queue_messages", first, interactive=False, verbosity=0)
    started = time.monotonic()
    messages_fill(args.messages)
    print(f"{args.messages:,} messages written in {time.monotonic() - started:.1f} s")
    reference = under_load(lambda: time.sleep(args.reference_seconds))
    print(f"{'migration':<50} {'seconds':>8} {'writes held':>12} {'writes/s':>9} {'slowest write':>14}")
    print(
        f"{'(reference: none, same writer)':<50} {reference.seconds:>8.2f} {reference.longest_block:>11.2f}s"
        f" {reference.writes / reference.seconds:>9.0f} {reference.slowest_write:>13.3f}s"
    )
    for app, name in nodes:
        call_command("migrate", app, previous(app, name), interactive=False, verbosity=0)
        seen = under_load(lambda app=app, name=name: call_command("migrate", app, name, interactive=False, verbosity=0))
        print(
            f"{app + ' ' + name:<50} {seen.seconds:>8.2f} {seen.longest_block:>11.2f}s"
            f" {seen.writes / seen.seconds:>9.0f} {seen.slowest_write:>13.3f}s"
        )
    call_command("migrate", "queue_messages", previous(*STATE_SPLIT), interactive=False, verbosity=0)
    state_split(_connect)


if __name__ == "__main__":
    main()
