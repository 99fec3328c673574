"""/metrics scrape cost at a million messages (PostgreSQL).

    .venv/bin/python bench/metrics.py                      # 1,000,000 messages, 200 terminals
    .venv/bin/python bench/metrics.py --messages 200000 --pg postgres://postgres@127.0.0.1:5432

Creates its own database (syncadmin_bench_metrics, dropped first), fills it with INSERT ...
SELECT generate_series (97% Processed, 1% Received, 0.5% Failed, 1% DeadLettered with their
dead letters, 0.5% Discarded, received over 30 days), seeds the counters (manage.py
metrics_recount), then runs a few thousand messages through the real engine so the counter
table holds real series and a minute's worth of unfolded deltas. It then times full GET
/metrics requests (view, protection, every query, text exposition) and, in the same run, the
reference queries a naive exporter would run: SELECT count(*) and a GROUP BY state.
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

from bench._common import drop_database, fresh_database  # noqa: E402

DB = "syncadmin_bench_metrics"


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--messages", type=int, default=1_000_000)
    p.add_argument("--terminals", type=int, default=200)
    p.add_argument("--scrapes", type=int, default=30)
    p.add_argument("--engine-messages", type=int, default=5_000, help="run through the real engine after the fill")
    p.add_argument("--pg", default=os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432"))
    p.add_argument("--keep", action="store_true", help="keep the benchmark database afterwards")
    return p.parse_args()


def timed(fn, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return times


def fmt(times):
    times = sorted(times)
    p95 = times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]
    return f"median {statistics.median(times):7.1f} ms   p95 {p95:7.1f} ms   max {times[-1]:7.1f} ms"


# The envelope and its state row under the same id, in one statement: the state rows are made from
# the ids the envelope INSERT returns (i read back from the message id 'b-<i>', the receipt time
# from received_at, which the state row also keeps as queued_at).
FILL = """
WITH env AS (
    INSERT INTO queue_messages_message (terminal_id, message_id, message_type, entity_type, entity_key, sequence,
        created_at, payload, received_at, trace_id)
    SELECT t.ids[1 + i %% array_length(t.ids, 1)], 'b-' || i,
        (ARRAY['product.upsert','price.upsert','stock.upsert','sale.upsert','customer.delete'])[1 + i %% 5],
        (ARRAY['product','price','stock','sale','customer'])[1 + i %% 5], 'K-' || (i %% 50000), i, r.at, '{}',
        r.at, md5(i::text)
    FROM generate_series(1, %(n)s) AS i
    CROSS JOIN (SELECT array_agg(id ORDER BY id) AS ids FROM terminals_terminal) AS t
    CROSS JOIN LATERAL (SELECT CASE
        WHEN i %% 1000 < 10 THEN now() - (i %% 600) * interval '1 second'
        ELSE now() - interval '30 days' * (i::float / %(n)s) END AS at) AS r
    RETURNING id, message_id, received_at, terminal_id
)
INSERT INTO queue_messages_messagestate (id, state, attempts, next_attempt_at, lease_owner, lease_expires_at,
    last_error, updated_at, processed_at, queued_at, queue_terminal_id)
SELECT env.id, s.state,
    CASE WHEN s.state IN ('Failed', 'DeadLettered') THEN 3 ELSE 1 END,
    CASE WHEN s.state = 'Received' THEN env.received_at WHEN s.state = 'Failed' THEN now() + interval '5 minutes' END,
    '', NULL, '', env.received_at,
    CASE WHEN s.state = 'Processed' THEN env.received_at + interval '1 second' END,
    env.received_at, env.terminal_id
FROM env
CROSS JOIN LATERAL (SELECT split_part(env.message_id, '-', 2)::int AS i) AS g
CROSS JOIN LATERAL (SELECT CASE
    WHEN g.i %% 1000 < 10 THEN 'Received' WHEN g.i %% 1000 < 15 THEN 'Failed'
    WHEN g.i %% 1000 < 25 THEN 'DeadLettered' WHEN g.i %% 1000 < 30 THEN 'Discarded'
    ELSE 'Processed' END AS state) AS s
"""

DEAD_LETTERS = """
INSERT INTO queue_messages_deadletter (message_id, reason, error_class, traceback, group_key, dead_lettered_at,
    resolution, resolved_by, note)
SELECT id, 'gave up after 3 attempts: upstream reset',
    (ARRAY['ConnectionResetError','PermanentError','TimeoutError'])[1 + id % 3], '',
    'ConnectionResetError: gave up after # attempts: upstream reset', queued_at,
    CASE WHEN id % 4 = 0 THEN 'retried' ELSE '' END, '', ''
FROM queue_messages_messagestate WHERE state = 'DeadLettered'
"""


def main():
    args = parse_args()
    fresh_database(args.pg, DB)
    token = "bench-token"
    os.environ.update(
        {
            "DATABASE_URL": f"{args.pg}/{DB}",
            "SYNC_VAR_DIR": tempfile.mkdtemp(prefix="syncadmin-bench-metrics-"),
            "DJANGO_SETTINGS_MODULE": "syncadmin.settings",
            "DJANGO_ALLOWED_HOSTS": "testserver,localhost",
            "LOG_LEVEL": "WARNING",
            "LOG_MESSAGE_LEVEL": "ERROR",
            "SYNC_METRICS_TOKEN": token,
            "Q_BROKER": "orm",
        }
    )
    import django

    django.setup()
    from datetime import UTC, datetime, timedelta

    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    from messages import services
    from syncadmin.models import MetricCounter
    from terminals.models import Terminal

    call_command("migrate", verbosity=0)
    now = datetime.now(UTC)
    Terminal.objects.bulk_create(
        [
            Terminal(
                code=f"B{i:04d}",
                last_heartbeat_at=now - timedelta(seconds=30 if i % 10 else 4000),
                app_version="2.1.0",
            )
            for i in range(args.terminals)
        ]
    )
    t0 = time.perf_counter()
    with connection.cursor() as cur:
        cur.execute(FILL, {"n": args.messages})
        cur.execute(DEAD_LETTERS)
    fill_s = time.perf_counter() - t0
    with connection.cursor() as cur:
        cur.execute("VACUUM ANALYZE")
    t0 = time.perf_counter()
    call_command("metrics_recount", stdout=open(os.devnull, "w"))
    recount_s = time.perf_counter() - t0

    # Real engine traffic: real series in the counter table, then the once-a-minute sample (timed),
    # then more traffic, so a scrape also sums unfolded deltas as it would mid-minute.
    terminals = list(Terminal.objects.all()[:20])
    sent = 0

    def engine_traffic(n):
        nonlocal sent
        stop = sent + n
        while sent < stop:
            terminal = terminals[(sent // 100) % len(terminals)]
            batch = [
                services.Envelope(
                    f"e-{sent + j}",
                    ["product.upsert", "price.upsert", "sale.upsert", "x.bad"][j % 4],
                    f"E-{(sent + j) % 700}",
                    sent + j,
                    now,
                    '{"v": 1}' if j % 4 != 3 else "{",
                )
                for j in range(100)
            ]
            services.message_ingest_batch(terminal=terminal, envelopes=batch)
            sent += 100
        while claimed := services.message_claim(worker="bench", limit=100):
            services.message_process_batch(messages=claimed, worker="bench")

    from messages.services.sampling import metric_sample_write

    engine_traffic(args.engine_messages * 4 // 5)
    t0 = time.perf_counter()
    metric_sample_write()
    sample_s = time.perf_counter() - t0
    engine_traffic(args.engine_messages - args.engine_messages * 4 // 5)

    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM queue_messages_message")
        total = cur.fetchone()[0]
    counter_rows = MetricCounter.objects.count()
    client = Client()

    def scrape():
        response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}")
        assert response.status_code == 200, response.status_code
        return response

    body = scrape().content  # warm-up (connection, imports)
    series = sum(1 for line in body.decode().splitlines() if line and not line.startswith("#"))
    scrape_times = timed(scrape, args.scrapes)

    def sql(statement):
        def run():
            with connection.cursor() as cur:
                cur.execute(statement)
                cur.fetchall()

        return run

    from messages import selectors
    from reconciliation.terminal_health import terminal_health
    from syncadmin.lib import counters

    parts = {
        "counter totals (states, histograms...)": counters.metric_counter_totals,
        "backlog ages (3 index probes)": selectors.message_backlog_ages,
        "open dead letters by reason": selectors.deadletter_open_by_reason,
        "(not in a scrape) live terminal health": terminal_health,
    }
    part_times = {name: timed(fn, 10) for name, fn in parts.items()}
    count_times = timed(sql("SELECT count(*) FROM queue_messages_message"), 5)
    # The state is on the state row (the envelope table has none since migration 0013).
    group_times = timed(sql("SELECT state, count(*) FROM queue_messages_messagestate GROUP BY state"), 5)

    print(f"messages: {total:,}   terminals: {args.terminals}   open dead letters: included")
    print(f"fill (generate_series): {fill_s:.1f} s   metrics_recount (full count, once): {recount_s * 1000:.0f} ms")
    print(f"counter table: {counter_rows} rows (base + deltas)   exposition: {series} samples, {len(body):,} bytes")
    print(f"GET /metrics, {args.scrapes} scrapes:       {fmt(scrape_times)}")
    print(f"once-a-minute sample task (fold, sample, health snapshot): {sample_s * 1000:.0f} ms")
    for name, times in part_times.items():
        print(f"  of which {name:<40} median {statistics.median(times):6.1f} ms")
    print(f"reference SELECT count(*):          {fmt(count_times)}")
    print(f"reference GROUP BY state:           {fmt(group_times)}")
    verdict = "OK" if statistics.median(scrape_times) < 100 else "OVER BUDGET"
    print(f"budget 100 ms per scrape: {verdict}")
    connection.close()
    if not args.keep:
        drop_database(args.pg, DB)


if __name__ == "__main__":
    main()
