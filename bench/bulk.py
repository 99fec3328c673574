"""Bulk-job benchmark: retry a failure group of 100,000 dead-lettered messages through the console.

    .venv/bin/python bench/bulk.py                       # 100,000 (the issue's size)
    .venv/bin/python bench/bulk.py --messages 20000

Fills a fresh PostgreSQL database (syncadmin_bench_bulk) with N dead-lettered messages in one
failure group (plus --background Processed messages, so the console reads a realistic table),
starts a real worker cluster (`manage.py qcluster`, Redis broker), then, in this process through
Django's test Client, confirms "Retry group" on the console exactly as an operator would. The
request only creates the BulkJob; the cluster runs it in chunks (and drains the retried messages
at the same time). While the job runs, the console pages are timed in a loop; the same pages were
timed before the job as the same-run reference.

Prints: the request's own time, the job's wall time (created -> finished) and rate, and the
median page times before and during the job. Targets: the job under 60 s, page medians under 300 ms.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import quote_plus

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import fresh_database, terminals_insert  # noqa: E402

DB = "syncadmin_bench_bulk"
GROUP = "ValueError: price # is negative"


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--messages", type=int, default=100_000, help="dead-lettered messages in the group")
    p.add_argument("--background", type=int, default=200_000, help="other (Processed) messages in the table")
    p.add_argument("--workers", type=int, default=2, help="worker processes of the cluster")
    p.add_argument("--pg", default=os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432"))
    p.add_argument("--redis", default=os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/6"))
    return p.parse_args()


def setup_env(args) -> dict:
    fresh_database(args.pg, DB)
    env = {
        "DATABASE_URL": f"{args.pg}/{DB}",
        "Q_BROKER": args.redis,
        "Q_CLUSTER_NAME": f"bench-bulk-{uuid.uuid4().hex[:6]}",
        "SYNC_WORKERS": str(args.workers),
        "SYNC_VAR_DIR": tempfile.mkdtemp(prefix="syncadmin-bench-bulk-"),
        "LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "syncadmin.settings",
    }
    os.environ.update(env)
    return {**os.environ, **env}


def fill(args) -> float:
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    t0 = time.perf_counter()
    with connection.cursor() as c:
        terminals_insert(c, prefix="T", count=50, heartbeat=True)
        # Background: Processed history. Then the group: dead-lettered, valid payloads (so the
        # retried messages apply cleanly when the workers drain them). The envelope, then its state
        # row under the same id (g read back from the message id 'm-<g>').
        c.execute(
            """
            WITH t AS (SELECT array_agg(id ORDER BY id) AS ids FROM terminals_terminal)
            INSERT INTO queue_messages_message (terminal_id, message_id, message_type, entity_type, entity_key,
                sequence, created_at, payload, received_at, trace_id)
            SELECT t.ids[1 + g %% 50], 'm-' || g, 'product.upsert', 'product', 'SKU-' || g, 1,
                   now() - g * interval '1 second', '{"name": "Item ' || g || '", "price": "1.99"}',
                   now() - g * interval '1 second', ''
            FROM generate_series(1, %s) g CROSS JOIN t
            """,
            [args.messages + args.background],
        )
        c.execute(
            """
            INSERT INTO queue_messages_messagestate (id, state, attempts, next_attempt_at, lease_owner,
                lease_expires_at, last_error, updated_at, processed_at, queued_at, queue_terminal_id)
            SELECT m.id,
                   CASE WHEN g <= %s THEN 'DeadLettered' ELSE 'Processed' END,
                   CASE WHEN g <= %s THEN 5 ELSE 1 END, NULL, '', NULL,
                   CASE WHEN g <= %s THEN 'ValueError: price ' || (g %% 97) || ' is negative' ELSE '' END,
                   m.received_at,
                   CASE WHEN g > %s THEN m.received_at END,
                   m.received_at, m.terminal_id
            FROM queue_messages_message m
            CROSS JOIN LATERAL (SELECT split_part(m.message_id, '-', 2)::int AS g) x
            """,
            [args.messages] * 4,
        )
        c.execute(
            """
            INSERT INTO queue_messages_deadletter (message_id, reason, error_class, traceback, group_key,
                dead_lettered_at, resolution, resolved_by, resolved_at, note)
            SELECT id, last_error, 'ValueError', '', %s, updated_at, '', '', NULL, ''
            FROM queue_messages_messagestate WHERE state = 'DeadLettered'
            """,
            [GROUP],
        )
    with connection.cursor() as c:
        c.execute("VACUUM ANALYZE")
    return time.perf_counter() - t0


def timed(client, url: str, **extra) -> float:
    t0 = time.perf_counter()
    response = client.get(url, **extra)
    elapsed = (time.perf_counter() - t0) * 1000
    assert response.status_code == 200, (url, response.status_code)
    return elapsed


PAGES = {
    "dashboard": ("/", {}),
    "messages, first page": ("/messages/", {}),
    "messages, state=DeadLettered": ("/messages/?state=DeadLettered", {}),
    "dead letters by reason": ("/dead-letters/", {}),
    "message detail": (None, {}),
}


def main():
    args = parse_args()
    env = setup_env(args)
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client

    from messages.models import BulkJob, Message

    print(f"filling {args.messages:,} dead letters in one group + {args.background:,} Processed ...", flush=True)
    print(f"filled in {fill(args):.0f} s", flush=True)
    sample = Message.objects.filter(state="DeadLettered").values_list("pk", flat=True).first()
    pages = {name: (url or f"/messages/{sample}/", extra) for name, (url, extra) in PAGES.items()}
    user = get_user_model().objects.create_superuser("bench", "bench@example.com", "bench-password-123")
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(user)
    hx = {"HTTP_HX_REQUEST": "true"}

    # Same-run reference: the pages before the job.
    before = {name: [] for name in pages}
    for _ in range(7):
        for name, (url, extra) in pages.items():
            before[name].append(timed(client, url, **extra))

    connection.close()
    log = open(Path(env["SYNC_VAR_DIR"]) / "cluster.log", "w")
    cluster = subprocess.Popen(
        [sys.executable, "manage.py", "qcluster"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        time.sleep(4)  # the cluster is up and polling Redis
        query = f"state=DeadLettered&group={quote_plus(GROUP)}"
        t0 = time.perf_counter()
        response = client.post(
            "/messages/bulk/",
            {"action": "retry", "scope": "filter", "query": query, "confirmed": "1", "reason": "bench"},
            **hx,
        )
        request_ms = (time.perf_counter() - t0) * 1000
        assert response.status_code == 200 and b"bulk-job-" in response.content, response.content[:500]
        job = BulkJob.objects.latest("pk")
        during = {name: [] for name in pages}
        during["bulk job progress (htmx)"] = []
        pages["bulk job progress (htmx)"] = (f"/bulk-jobs/{job.pk}/", hx)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            for name, (url, extra) in pages.items():
                during[name].append(timed(client, url, **extra))
            job.refresh_from_db()
            if job.finished:
                break
        wall = (job.finished_at - job.created_at).total_seconds()
        run = (job.finished_at - job.started_at).total_seconds()
        # End to end: the same cluster also drains the retried messages; wait until they are applied.
        pending = Message.objects.filter(state__in=("Received", "Processing", "Failed"))
        while pending.exists() and time.monotonic() < deadline:
            time.sleep(0.25)
        end_to_end = time.perf_counter() - t0
        left = pending.count()
    finally:
        cluster.send_signal(signal.SIGTERM)
        try:
            cluster.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(cluster.pid, signal.SIGKILL)
        log.close()

    still_dead = Message.objects.filter(state="DeadLettered").count()
    print()
    from django.conf import settings

    print(
        f"PostgreSQL + Redis, 2-core shared machine; qcluster with {args.workers} workers; chunk {settings.CONSOLE_BULK_JOB_CHUNK}"
    )
    print(f"console request that started the job: {request_ms:.0f} ms")
    print(
        f"job #{job.pk}: {job.state}, {job.changed:,} of {job.total:,} retried; "
        f"{wall:.1f} s from the click (queue wait {wall - run:.1f} s), {run:.1f} s running = {job.changed / run:.0f} msg/s"
    )
    print(f"dead-lettered left: {still_dead:,}")
    print(f"end to end (click -> every retried message applied by the cluster): {end_to_end:.1f} s"
          f" = {job.changed / end_to_end:.0f} msg/s; not yet applied: {left:,}")  # fmt: skip
    print(f"{'page':<30} {'before (median ms)':>19} {'during (median ms)':>19} {'during n':>9} {'during max':>11}")
    for name in during:
        b = f"{statistics.median(before[name]):.0f}" if name in before else "-"
        d = during[name]
        print(f"{name:<30} {b:>19} {statistics.median(d):>19.0f} {len(d):>9} {max(d):>11.0f}")
    worst = max(statistics.median(d) for d in during.values())
    print("targets (job < 60 s, every page median < 300 ms during the job):",
          "met" if wall < 60 and worst < 300 and job.state == "Done" else "NOT met")  # fmt: skip


if __name__ == "__main__":
    main()
