"""Benchmark: a full reconciliation run and the heat-map page at scale, on PostgreSQL.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/syncadmin .venv/bin/python bench/reconciliation.py

Uses its own database (<name>_reconbench, created if missing, refilled every time) so it
never touches the data behind DATABASE_URL. Fills 500 terminals x 10 entity types with
1,000,000 central entities, counters, three reports per cell (some with gaps, some stale),
in-flight and recently applied messages, then times:
- a full run (median of 3) and each of its grouped queries,
- the matrix page (/reconciliation/) rendered through Django's test client (median of 10),
- as the same-run reference, one full scan of the central store (SELECT count(*)).
Targets: run < 5 s, matrix page < 300 ms. Add --reuse to skip the (~1 min) fill.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

TERMINALS, TYPES, KEYS_PER_CELL = 500, 10, 200  # 1,000,000 central entities
ROOT = Path(__file__).resolve().parent.parent


def bench_database_url() -> str:
    from bench._common import own_database

    return own_database(os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/syncadmin"), "_reconbench")


def setup_django() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ["DATABASE_URL"] = bench_database_url()
    os.environ.pop("CENTRAL_DATABASE_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "syncadmin.settings")
    os.environ["DJANGO_ALLOWED_HOSTS"] = "testserver,localhost"
    os.environ.setdefault("SYNC_VAR_DIR", "/tmp/var-reconbench")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, (time.perf_counter() - t0) * 1000


def fill() -> None:
    from django.db import connection

    t0 = time.perf_counter()
    with connection.cursor() as c:
        c.execute(
            "TRUNCATE reconciliation_discrepancy, reconciliation_reconciliationrun, reconciliation_reportedcount, "
            "queue_messages_messageevent, queue_messages_deadletter, queue_messages_messagestate, "
            "queue_messages_message, "
            "queue_messages_centralentity, queue_messages_entitycounter, queue_messages_outboundupdate, "
            "terminals_terminal RESTART IDENTITY CASCADE"
        )
        c.execute(
            """INSERT INTO terminals_terminal
                 (code, name, store, enabled, api_key_hash, app_version, created_at, updated_at)
               SELECT 'T' || lpad(i::text, 4, '0'), 'Till ' || i, 'Store ' || (i %% 50), true, '', '', now(), now()
               FROM generate_series(1, %s) i""",
            [TERMINALS],
        )
        # 1,000,000 entities; every 10th key is a tombstone (deleted).
        c.execute(
            """INSERT INTO queue_messages_centralentity
                 (entity_type, entity_key, terminal_code, data, last_sequence, deleted, last_message_pk, updated_at)
               SELECT 'type' || e, 'K' || k, 'T' || lpad(t::text, 4, '0'), '{}'::jsonb, 1, k %% 10 = 0, NULL, now()
               FROM generate_series(1, %s) t, generate_series(0, %s) e, generate_series(1, %s) k""",
            [TERMINALS, TYPES - 1, KEYS_PER_CELL],
        )
        c.execute(
            """INSERT INTO queue_messages_entitycounter (terminal_code, entity_type, live_count, updated_at)
               SELECT terminal_code, entity_type, count(*) FILTER (WHERE NOT deleted), now()
               FROM queue_messages_centralentity GROUP BY terminal_code, entity_type"""
        )
        # Five counters drift (a bug to find).
        c.execute(
            "UPDATE queue_messages_entitycounter SET live_count = live_count + 1 "
            "WHERE terminal_code IN ('T0007', 'T0070', 'T0170', 'T0270', 'T0370') AND entity_type = 'type3'"
        )
        # Three reports per cell; the latest equals the counter except: every 37th terminal
        # reports 3 more (a gap), every 23rd 2 more with 2 changes in flight, every 41st is stale.
        c.execute(
            """INSERT INTO reconciliation_reportedcount (terminal_id, entity_type, count, as_of, received_at)
               SELECT t.id, ec.entity_type,
                      ec.live_count + CASE WHEN r = 0 AND t.id % 37 = 0 THEN 3
                                           WHEN r = 0 AND t.id % 23 = 0 THEN 2 ELSE 0 END,
                      now() - interval '2 minutes' - r * interval '10 minutes',
                      CASE WHEN t.id % 41 = 0 THEN now() - interval '1 day' - r * interval '10 minutes'
                           ELSE now() - interval '2 minutes' - r * interval '10 minutes' END
               FROM queue_messages_entitycounter ec
               JOIN terminals_terminal t ON t.code = ec.terminal_code, generate_series(0, 2) r"""
        )
        # Each message is an envelope and its state row under the same id: one statement writes both,
        # the state (the same for every row of a statement) from the ids the envelope INSERT returns.
        env_cols = (
            "terminal_id, message_id, message_type, entity_type, entity_key, sequence, created_at, payload, "
            "received_at, trace_id"
        )

        def insert_messages(select: str, state: str, attempts: int, next_attempt_at: str) -> None:
            c.execute(
                f"""WITH env AS (INSERT INTO queue_messages_message ({env_cols}) {select}
                        RETURNING id, received_at, terminal_id)
                    INSERT INTO queue_messages_messagestate (id, state, attempts, lease_owner, last_error,
                        updated_at, next_attempt_at, queued_at, queue_terminal_id)
                    SELECT id, '{state}', {attempts}, '', '', now(), {next_attempt_at}, received_at, terminal_id
                    FROM env"""
            )

        # In flight: 2 pending changes per type for every 23rd terminal, made before the report.
        insert_messages(
            f"""SELECT t.id, 'p-' || e || '-' || k, 'type' || e || '.upsert', 'type' || e, 'NEW' || k, 2,
                       now() - interval '5 minutes', '{{}}', now() - interval '4 minutes', ''
                FROM terminals_terminal t, generate_series(0, {TYPES - 1}) e, generate_series(1, 2) k
                WHERE t.id % 23 = 0""",
            "Received",
            0,
            "now()",
        )
        # 50,000 changes applied in the last minute (made after the reports: the centre is ahead of them
        # but the counters above do not include them, so they only widen the in-flight allowance)...
        insert_messages(
            f"""SELECT 1 + i % {TERMINALS}, 'r-' || i, 'type' || (i % {TYPES}) || '.upsert', 'type' || (i % {TYPES}),
                       'K' || (i % {KEYS_PER_CELL}), 2, now() - interval '1 minute', '{{}}',
                       now() - interval '1 minute', ''
                FROM generate_series(1, 50000) i""",
            "Processed",
            1,
            "NULL",
        )
        # ...and 500,000 older processed messages: history the in-flight query must not scan.
        insert_messages(
            f"""SELECT 1 + i % {TERMINALS}, 'o-' || i, 'type' || (i % {TYPES}) || '.upsert', 'type' || (i % {TYPES}),
                       'K' || (i % {KEYS_PER_CELL}), 1, now() - interval '3 days', '{{}}',
                       now() - interval '3 days' + i * interval '1 second' / 10, ''
                FROM generate_series(1, 500000) i""",
            "Processed",
            1,
            "NULL",
        )
        c.execute("ANALYZE")
    print(
        f"fill: {TERMINALS} terminals x {TYPES} types, {TERMINALS * TYPES * KEYS_PER_CELL:,} central entities, "
        f"{TERMINALS * TYPES * 3:,} reports, ~552,000 messages in {time.perf_counter() - t0:.1f} s"
    )


def main() -> None:
    setup_django()
    if "--reuse" not in sys.argv:  # --reuse: keep the data of the previous bench run
        fill()
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client

    from reconciliation import selectors, services
    from reconciliation.models import RunTrigger

    with connection.cursor() as c:
        _, ref = timed(lambda: (c.execute("SELECT count(*) FROM queue_messages_centralentity"), c.fetchone()))
    print(f"reference: SELECT count(*) over the central store: {ref:.0f} ms")

    reports, t_reports = timed(selectors.reported_latest)
    fresh = [r.as_of for r in reports.values()]
    parts = {
        "counters": timed(selectors.counter_values)[1],
        "recount (GROUP BY)": timed(selectors.central_recount)[1],
        "latest reports (DISTINCT ON)": t_reports,
        "in flight": timed(selectors.in_flight_counts, applied_since=min(fresh))[1],
    }
    print("queries: " + ", ".join(f"{k} {v:.0f} ms" for k, v in parts.items()))

    durations, run = [], None
    for _ in range(3):
        run, ms = timed(services.run_now, trigger=RunTrigger.COMMAND, triggered_by="bench")
        durations.append(ms)
    print(
        f"full run: median {statistics.median(durations):.0f} ms (runs: {', '.join(f'{d:.0f}' for d in durations)}) "
        f"target < 5000 ms"
    )
    for line in services.summary_lines(run):
        print("  " + line)

    user, _ = User.objects.get_or_create(username="bench", defaults={"is_superuser": True, "is_staff": True})
    client = Client()
    client.force_login(user)
    page_times, size = [], 0
    for _ in range(11):
        response, ms = timed(client.get, "/reconciliation/")
        assert response.status_code == 200, response.status_code
        page_times.append(ms)
        size = len(response.content)
    page_times = page_times[1:]  # the first request warms template loading
    print(
        f"matrix page: median {statistics.median(page_times):.0f} ms, max {max(page_times):.0f} ms "
        f"({size / 1024:.0f} KB of HTML, {run.terminals_checked * run.entity_types_checked} cells) target < 300 ms"
    )
    for url in ("/reconciliation/discrepancies/", "/reconciliation/runs/"):
        times = [timed(client.get, url)[1] for _ in range(6)][1:]
        print(f"{url}: median {statistics.median(times):.0f} ms")


if __name__ == "__main__":
    main()
