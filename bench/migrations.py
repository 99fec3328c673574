"""Migrations benchmark: each migration of the message table on 1,000,000 messages while a writer inserts (PostgreSQL).

    .venv/bin/python bench/migrations.py                    # 1,000,000 messages (the issue's size)
    .venv/bin/python bench/migrations.py --messages 200000

Fills a fresh database (syncadmin_bench_migrations) up to the migration before the first one of
the message table with N messages (INSERT ... SELECT generate_series), then runs each
message-table migration forwards (tests/messages/migration_load.py finds them, the released ones
the linter accepts included) while a writer commits one message per transaction and a watcher
reads pg_locks. Prints, per migration: its time, how long it held a lock that stops writes, the
writer's inserts per second and its slowest insert; first the same writer for a few seconds with
no migration running, as the same-run reference.
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

from bench._common import fresh_database  # noqa: E402

DB = "syncadmin_bench_migrations"


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--messages", type=int, default=1_000_000)
    p.add_argument("--reference-seconds", type=float, default=5.0)
    p.add_argument("--pg", default=os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432"))
    return p.parse_args()


def main() -> None:
    args = parse_args()
    fresh_database(args.pg, DB)
    os.environ.update(
        {
            "DATABASE_URL": f"{args.pg}/{DB}",
            "Q_BROKER": "orm",
            "SYNC_VAR_DIR": tempfile.mkdtemp(prefix="syncadmin-bench-migrations-"),
            "LOG_LEVEL": "WARNING",
            "DJANGO_SETTINGS_MODULE": "syncadmin.settings",
        }
    )
    import django

    django.setup()
    from django.core.management import call_command

    from tests.messages.migration_load import message_table_migrations, messages_fill, previous, under_load

    call_command("migrate", interactive=False, verbosity=0)
    nodes = message_table_migrations(accepted=True)
    call_command("migrate", "queue_messages", previous(*nodes[0]), interactive=False, verbosity=0)
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


if __name__ == "__main__":
    main()
