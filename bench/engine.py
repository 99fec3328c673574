"""Engine benchmark: batched ingest, then a real worker cluster draining the backlog.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/syncadmin .venv/bin/python bench/engine.py
    .venv/bin/python bench/engine.py --sqlite

Prints messages/s for batched ingest and for the drain by a real `qcluster` (full engine:
audited transitions, central upsert, counters), the CPU a message of the server and of the cluster
and the workers' RSS over the drain, and in the same run, on the same database and batch size, a
bare SQL loop as the reference: claim a batch (FOR UPDATE SKIP LOCKED on PostgreSQL), set the
state and insert one event row per message in one transaction; plus its lease form (claim
committed first, then the result). On PostgreSQL also the queue state table's row updates
during the drain (the only message table a transition updates: the envelope is written once) and
how many were HOT (in place, no index written), and
the peers (bench/peers/: PgQueuer draining as many jobs, no-op and doing the engine's work, from
pinned versions in a virtualenv of their own) with the engine's ratio to each; ``--no-peers``
skips them (their virtualenv is installed from PyPI on first use).

``--rounds N`` then runs N-1 more rounds of the engine's drain (on a fresh database, filled
again) alternated with PgQueuer's no-op drain, and prints each round's pair and the median of
the rounds' ratios: the two drains each move by 10-25 % from one run to the next on a shared
2-core machine, so one pair can land either side of 1.0 when the medians do not.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import (  # noqa: E402
    checkpoint,
    descendants,
    fresh_database,
    pids_cpu_seconds,
    processes_cpu_seconds,
    rss_mb,
    statements_per_message,
    statements_reset,
    table_updates,
    timed_processes,
)
from bench.peers import pgqueuer_drains  # noqa: E402

# The queue's state columns (Message) live in a narrow table joined on id to the envelope
# (MessageEnvelope, queue_messages_message), which a transition never writes.
STATE_TABLE = "queue_messages_messagestate"
ENVELOPE_TABLE = "queue_messages_message"
ENTITIES = ["product", "price", "stock", "sale", "customer"]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--messages", type=int, default=100_000)
    p.add_argument("--terminals", type=int, default=50)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batch", type=int, default=100, help="claim batch size (engine and bare loop)")
    p.add_argument("--ingest-batch", type=int, default=100, help="messages per SubmitMessages-sized ingest call")
    p.add_argument("--sqlite", action="store_true", help="benchmark SQLite + ORM broker instead of PostgreSQL")
    p.add_argument(
        "--fleet",
        action="store_true",
        help="ingest as a fleet sends: the terminals' batches in turn, not one terminal after another",
    )
    p.add_argument("--pg", default=os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432"))
    p.add_argument("--redis", default=os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/14"))
    p.add_argument("--database", default="syncadmin_bench", help="its own database (dropped and created); the "
                   "peers use <database>_peers")  # fmt: skip
    p.add_argument("--no-peers", action="store_true", help="skip the peers (their virtualenv needs PyPI once)")
    p.add_argument("--rounds", type=int, default=1, help="rounds of the engine's drain alternated with PgQueuer's "
                   "no-op drain (the first with every reference); prints the median of their ratios")  # fmt: skip
    return p.parse_args()


def rounds_summary(pairs: list[tuple[float, float]]) -> tuple[float, float, float]:
    """(median engine msg/s, median peer msg/s, median of the rounds' ratios) of (engine, peer) pairs.

    The median of the ratios, not the ratio of the medians: each ratio compares two drains run one
    after the other, under the same load from the rest of the machine.
    """
    if not pairs:
        raise ValueError("no rounds")
    return (
        statistics.median(engine for engine, _ in pairs),
        statistics.median(peer for _, peer in pairs),
        statistics.median(engine / peer for engine, peer in pairs),
    )


def peer_drains(args, noop_only: bool = False) -> list[tuple[str, float]]:
    """PgQueuer draining as many jobs as the engine drained, with the engine's workers and batch."""
    return pgqueuer_drains(pg=args.pg, database=f"{args.database}_peers", jobs=args.messages // args.terminals
                           * args.terminals, terminals=args.terminals, workers=args.workers, batch=args.batch,
                           synchronous_commit=not async_commit(), noop_only=noop_only)  # fmt: skip


def more_rounds(args, first: tuple[float, float]) -> None:
    """Rounds 2..N: the engine's drain on a fresh database, then PgQueuer's no-op drain; then the medians."""
    pairs = [first]
    for n in range(1, args.rounds + 1):
        if n > 1:
            engine = fresh_drain(args)["rate"]
            ((_, peer),) = peer_drains(args, noop_only=True)
            pairs.append((engine, peer))
        engine, peer = pairs[-1]
        print(f"  round {n}: engine {engine:8,.0f} msg/s, PgQueuer no-op {peer:8,.0f} msg/s, ratio {engine / peer:.2f}",
              flush=True)  # fmt: skip
    engine, peer, ratio = rounds_summary(pairs)
    print(f"  median of {len(pairs)} rounds: engine {engine:8,.0f} msg/s, PgQueuer no-op {peer:8,.0f} msg/s, "
          f"engine / PgQueuer no-op (median of the rounds' ratios): {ratio:.2f}; "
          f"{sum(e > p for e, p in pairs)} of {len(pairs)} rounds above 1.0", flush=True)  # fmt: skip


def fresh_drain(args, schema=None, command: list[str] | None = None, first_claim_sql: str | None = None) -> dict:
    """The cluster's drain (``drain``) on the benchmark's database made again and filled again;
    ``schema(database_url)`` first changes the migrated, empty database."""
    from django.apps import apps
    from django.db import connections

    if apps.ready:  # set up by an earlier fill
        connections.close_all()  # the benchmark's database is dropped and made again
    env = prepare_env(args)
    if schema:
        schema(env["DATABASE_URL"])
    fill(args)
    return {**drain(args, env, command=command, first_claim_sql=first_claim_sql), "env": env}


def prepare_env(args) -> dict:
    var = Path(tempfile.mkdtemp(prefix="syncadmin-bench-"))
    env = {**os.environ, "SYNC_VAR_DIR": str(var), "LOG_LEVEL": "WARNING"}
    if args.sqlite:
        env.pop("DATABASE_URL", None)
        env["Q_BROKER"] = "orm"
    else:
        env["DATABASE_URL"] = fresh_database(args.pg, args.database)
        env["Q_BROKER"] = args.redis
        import redis

        redis.from_url(args.redis).flushdb()
    env.update(
        {
            "SYNC_WORKERS": str(args.workers),
            "SYNC_CLAIM_BATCH": str(args.batch),
            "Q_CLUSTER_NAME": "bench",
            "SYNC_DRAIN_SECONDS": "20",
        }
    )
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    os.environ.update(env)
    return env


def fill(args) -> float:
    """Ingest through the real service in SubmitMessages-sized batches; returns messages/s."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "syncadmin.settings")
    django.setup()
    from messages import services
    from messages.services import ingest
    from terminals.services import terminal_create

    ingest.wake_workers = lambda: None  # the drain is started on purpose, after the fill
    terminals = [terminal_create(code=f"BENCH-{i:03d}")[0] for i in range(args.terminals)]
    rng = random.Random(7)
    per_terminal = args.messages // args.terminals
    seqs: dict = {}
    started = time.perf_counter()
    # One terminal after another (default): the two workers then take adjacent batches of the same
    # terminal and meet on its entities and counters. --fleet: every terminal's first batch, then
    # every terminal's second, as terminals sending at once would queue them.
    if args.fleet:
        order = [(t, start) for start in range(0, per_terminal, args.ingest_batch) for t in terminals]
    else:
        order = [(t, start) for t in terminals for start in range(0, per_terminal, args.ingest_batch)]
    for t, start in order:
        batch = []
        for i in range(start, min(start + args.ingest_batch, per_terminal)):
            entity = rng.choice(ENTITIES)
            key = f"{entity.upper()}-{rng.randint(1, 2000) if entity != 'sale' else i:06d}"
            seq = seqs[(t.pk, entity, key)] = seqs.get((t.pk, entity, key), 0) + 1
            op = "delete" if entity != "sale" and rng.random() < 0.03 else "upsert"
            payload = json.dumps({"key": key, "price": rng.randint(100, 99999) / 100, "qty": rng.randint(0, 500)})
            batch.append(services.Envelope(f"{t.code}-{i}", f"{entity}.{op}", key, seq, datetime.now(UTC), payload))
        services.message_ingest_batch(terminal=t, envelopes=batch)
    elapsed = time.perf_counter() - started
    return per_terminal * args.terminals / elapsed


def drain(args, env, command: list[str] | None = None, first_claim_sql: str | None = None) -> dict:
    """The cluster's drain of every pending message: its rate and what it did. ``command`` starts
    the cluster instead of ``manage.py qcluster``, and ``first_claim_sql`` reads the first claim's
    time where a claim writes no event row (bench/engine_hot_design.py)."""
    from django.db import connection

    def pending() -> int:
        with connection.cursor() as c:
            c.execute(f"SELECT count(*) FROM {STATE_TABLE} WHERE state NOT IN ('Processed','DeadLettered','Discarded')")
            return c.fetchone()[0]

    def any_pending() -> bool:
        # Polled twice a second during the drain: one index probe, not a count of the table.
        with connection.cursor() as c:
            c.execute(
                f"SELECT EXISTS (SELECT 1 FROM {STATE_TABLE} WHERE state IN ('Received', 'Failed'))"
                f" OR EXISTS (SELECT 1 FROM {STATE_TABLE} WHERE state = 'Processing')"
            )
            return c.fetchone()[0]

    total = pending()
    updates = None if args.sqlite else table_updates(connection.cursor(), STATE_TABLE)
    if not args.sqlite:
        checkpoint(env["DATABASE_URL"])
    # The server's statements over the drain, when the server loads pg_stat_statements (the drain's
    # own statements, and this process's polls, which are a few a second).
    statements = not args.sqlite and statements_reset(env["DATABASE_URL"])
    cluster = subprocess.Popen(command or [sys.executable, "manage.py", "qcluster"], cwd=ROOT, env=env,
                               start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        time.sleep(3)  # let the cluster fork its workers before the clock starts
        cluster_settled(cluster.pid, args.workers)
        samples: dict[int, list[float]] = {}
        # The drains enqueued from this process (what `manage.py sync_wake --drains N` does): a second
        # Django process starting up here shared the two cores with the drain's first second.
        from messages.services.wakeup import enqueue_drain

        # The CPU of the drain: the cluster's processes (its workers, their sentinel, pusher and
        # monitor) and the server's, from here to the drain's end.
        cluster_cpu, server_cpu = (
            pids_cpu_seconds([cluster.pid, *descendants(cluster.pid)]),
            processes_cpu_seconds("postgres"),
        )
        enqueue_drain(args.workers)
        started = time.perf_counter()
        left = total
        while left:
            time.sleep(0.5)
            for pid in descendants(cluster.pid):
                samples.setdefault(pid, []).append(rss_mb(pid))
            left = any_pending()
            if time.perf_counter() - started > 1800:
                raise SystemExit(f"drain did not finish: {pending()} left")
        server_cpu = None if args.sqlite else processes_cpu_seconds("postgres") - server_cpu  # SQLite: in the workers
        cluster_cpu = sum(
            cpu - cluster_cpu.get(pid, 0)
            for pid, cpu in pids_cpu_seconds([cluster.pid, *descendants(cluster.pid)]).items()
        )
        # The drain, read from the rows: from its first claim to its last transition. The poll above
        # notices the end up to half a second late (a third of a 30,000-message drain at 20,000
        # msg/s), and the cluster's own due check may start draining before the wake-up does.
        from django.db.models import Max, Min

        from messages.models import Message, MessageEvent, MessageState

        if first_claim_sql:
            with connection.cursor() as c:
                c.execute(first_claim_sql)
                first = c.fetchone()[0]
        else:
            first = MessageEvent.objects.filter(to_state=MessageState.PROCESSING).aggregate(at=Min("at"))["at"]
        last = Message.objects.aggregate(at=Max("updated_at"))["at"]
        elapsed = (last - first).total_seconds()
        statements = statements_per_message(env["DATABASE_URL"], total) if statements else []
        cluster.send_signal(signal.SIGTERM)  # to the cluster's main process only, as systemd's KillMode=mixed does
        try:
            cluster.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(cluster.pid, signal.SIGKILL)
        if updates:  # read once the workers' backends have exited: they flush their counts then
            time.sleep(1)
            upd, hot = table_updates(connection.cursor(), STATE_TABLE)
            updates = (upd - updates[0], hot - updates[1])
        # the busiest processes are the workers; report their RSS at start, peak and end of the drain
        workers = sorted(samples.values(), key=lambda s: max(s), reverse=True)[: args.workers]
        return {
            "rate": total / elapsed,
            "seconds": elapsed,
            "rss": [(round(s[0], 1), round(max(s), 1), round(s[-1], 1)) for s in workers if s],
            "updates": updates,
            "statements": statements,
            # CPU µs a message over the drain (the poll above notices its end up to half a second late:
            # the workers' idle polling in that half second is in it)
            "server_cpu_us": None if server_cpu is None else server_cpu * 1e6 / total,
            "workers_cpu_us": cluster_cpu * 1e6 / total,
        }
    finally:
        # Whatever happened: a cluster left running on the benchmark's broker would take the next
        # run's drain tasks and skew its figures (a failed run once left one: 12k instead of 20k msg/s).
        if cluster.poll() is None:
            os.killpg(cluster.pid, signal.SIGKILL)


def cluster_settled(pid: int, workers: int, timeout: float = 30) -> None:
    """Wait until the cluster started as ``pid`` has forked its workers and is idle (its processes used
    under 0.05 CPU seconds in each of two half seconds): its start-up, slower on a slow machine than the 3 s the
    drain waits anyway, must not be counted in the drain's CPU."""
    deadline, idle = time.monotonic() + timeout, 0
    while time.monotonic() < deadline and idle < 2:  # idle twice in a row: between two forks is not idle
        before = pids_cpu_seconds([pid, *descendants(pid)])
        time.sleep(0.5)
        after = pids_cpu_seconds([pid, *descendants(pid)])
        quiet = len(after) > workers + 1 and sum(after.values()) - sum(before.get(p, 0) for p in after) < 0.05
        idle = idle + 1 if quiet else 0


# --- bare SQL reference ---------------------------------------------------------------------------


def bare_setup(args, dsn):
    if args.sqlite:
        conn = sqlite3.connect(dsn, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(
            "DROP TABLE IF EXISTS bench_q; DROP TABLE IF EXISTS bench_ev;"
            "CREATE TABLE bench_q (id INTEGER PRIMARY KEY, state TEXT, attempts INT, lease_owner TEXT, lease_until REAL);"
            "CREATE INDEX bench_q_state ON bench_q(state, id);"
            "CREATE TABLE bench_ev (id INTEGER PRIMARY KEY, msg INT, from_state TEXT, to_state TEXT, at REAL, actor TEXT);"
        )
        conn.execute(
            "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM s WHERE i < ?) "
            "INSERT INTO bench_q SELECT i, 'R', 0, '', NULL FROM s",
            (args.messages,),
        )
        conn.close()
    else:
        import psycopg

        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(
                "DROP TABLE IF EXISTS bench_q, bench_ev;"
                "CREATE TABLE bench_q (id bigint PRIMARY KEY, state text, attempts int, lease_owner text, lease_until timestamptz);"
                "CREATE INDEX bench_q_due ON bench_q(id) WHERE state = 'R';"
                "CREATE TABLE bench_ev (id bigserial PRIMARY KEY, msg bigint, from_state text, to_state text, at timestamptz, actor text);"
            )
            conn.execute(
                "INSERT INTO bench_q SELECT i, 'R', 0, '', NULL FROM generate_series(1, %s) i", (args.messages,)
            )
            conn.execute("VACUUM ANALYZE bench_q")
        checkpoint(dsn)


def async_commit() -> bool:
    import environ  # read as settings.py reads it (the header is printed before Django is set up)

    return environ.Env().bool("SYNC_WORKER_ASYNC_COMMIT", default=True)


def same_commit_mode_as_the_engine(conn) -> None:
    """The engine's drains commit without waiting for the WAL flush (SYNC_WORKER_ASYNC_COMMIT,
    default on): the references do the same, or they would measure the disk, not the loop."""
    if async_commit():
        conn.execute("SET synchronous_commit = off")


def bare_worker(sqlite: bool, dsn: str, batch: int, lease_form: bool, name: str, per_row: bool = False):
    if sqlite:
        conn = sqlite3.connect(dsn, isolation_level=None, timeout=30)
        ph = "?"

        def begin():
            conn.execute("BEGIN IMMEDIATE")

        def claim_ids():
            return [r[0] for r in conn.execute(f"SELECT id FROM bench_q WHERE state='R' ORDER BY id LIMIT {batch}")]
    else:
        import psycopg

        conn = psycopg.connect(dsn, autocommit=True)
        ph = "%s"
        same_commit_mode_as_the_engine(conn)

        def begin():
            conn.execute("BEGIN")

        def claim_ids():
            return [r[0] for r in conn.execute(
                f"SELECT id FROM bench_q WHERE state='R' ORDER BY id LIMIT {batch} FOR UPDATE SKIP LOCKED")]  # fmt: skip

    now = "CURRENT_TIMESTAMP"
    while True:
        begin()
        ids = claim_ids()
        if not ids:
            conn.execute("COMMIT")
            break
        marks = ",".join([ph] * len(ids))
        if lease_form:
            conn.execute(f"UPDATE bench_q SET state='L', attempts=attempts+1, lease_owner={ph}, lease_until={now} "
                         f"WHERE id IN ({marks})", [name, *ids])  # fmt: skip
            conn.execute("COMMIT")
            begin()
            conn.execute(f"UPDATE bench_q SET state='P', lease_owner='' WHERE id IN ({marks}) AND lease_owner={ph}",
                         [*ids, name])  # fmt: skip
        else:
            conn.execute(f"UPDATE bench_q SET state='P', attempts=attempts+1 WHERE id IN ({marks})", ids)
        if per_row:  # one INSERT statement per message, in the same transaction
            for i in ids:
                conn.execute(f"INSERT INTO bench_ev (msg, from_state, to_state, at, actor) VALUES ({ph},'R','P',{now},{ph})",
                             [i, name])  # fmt: skip
        else:  # one multi-row INSERT per batch
            rows = ",".join([f"({ph},'R','P',{now},{ph})"] * len(ids))
            conn.execute(f"INSERT INTO bench_ev (msg, from_state, to_state, at, actor) VALUES {rows}",
                         [v for i in ids for v in (i, name)])  # fmt: skip
        conn.execute("COMMIT")
    conn.close()


def real_table_worker(sqlite: bool, dsn: str, batch: int, name: str):
    """The bare loop's shape (claim, state, one event row per message, one transaction) on the
    engine's own tables: the queue state table with its indexes (claim, lease, state), the event table.
    The envelope, which carries the console's indexes, is not written: a transition never is."""
    if sqlite:
        conn = sqlite3.connect(dsn, isolation_level=None, timeout=30)
        ph, begin, lock, now = "?", "BEGIN IMMEDIATE", "", "STRFTIME('%Y-%m-%d %H:%M:%f', 'NOW')"
        hint = "INDEXED BY message_due_idx"  # as the engine's SQLite claim: the planner sorts otherwise
    else:
        import psycopg

        conn = psycopg.connect(dsn, autocommit=True)
        same_commit_mode_as_the_engine(conn)
        ph, begin, lock, now = "%s", "BEGIN", "FOR UPDATE SKIP LOCKED", "clock_timestamp()"
        hint = ""
    while True:
        conn.execute(begin)
        ids = [r[0] for r in conn.execute(
            f"SELECT id FROM {STATE_TABLE} {hint} WHERE state IN ('Received', 'Failed') AND next_attempt_at <= "
            f"CURRENT_TIMESTAMP ORDER BY next_attempt_at LIMIT {batch} {lock}")]  # fmt: skip
        if not ids:
            conn.execute("COMMIT")
            break
        marks = ",".join([ph] * len(ids))
        conn.execute(f"UPDATE {STATE_TABLE} SET state = 'Processed', attempts = attempts + 1, updated_at = {now},"
                     f" next_attempt_at = NULL WHERE id IN ({marks})", ids)  # fmt: skip
        rows = ",".join([f"({ph}, 'Received', 'Processed', {now}, {ph}, '', '', '', 1)"] * len(ids))
        conn.execute("INSERT INTO queue_messages_messageevent (message_id, from_state, to_state, at, actor, reason,"
                     f" error_class, traceback, attempt) VALUES {rows}", [v for i in ids for v in (i, name)])  # fmt: skip
        conn.execute("COMMIT")
    conn.close()


def real_table_loop(args, dsn) -> float:
    """Put the drained messages back to Received (untimed), then time the bare loop on them."""
    from django.db import connection

    with connection.cursor() as c:
        # received_at is the envelope's: a correlated subquery, which SQLite and PostgreSQL both take.
        c.execute(f"UPDATE {STATE_TABLE} SET state = 'Received', next_attempt_at = (SELECT m.received_at"
                  f" FROM {ENVELOPE_TABLE} m WHERE m.id = {STATE_TABLE}.id)")  # fmt: skip
        total = c.rowcount
    if not args.sqlite:
        with connection.cursor() as c:
            c.execute(f"VACUUM ANALYZE {STATE_TABLE}")
        checkpoint(dsn)
    connection.close()
    workers = [(args.sqlite, dsn, args.batch, f"b{i}") for i in range(args.workers)]
    return total / timed_processes(real_table_worker, workers)


def bare_loop(args, dsn, lease_form: bool, per_row: bool = False) -> float:
    bare_setup(args, dsn)
    workers = [(args.sqlite, dsn, args.batch, lease_form, f"b{i}", per_row) for i in range(args.workers)]
    return args.messages / timed_processes(bare_worker, workers)


def main():
    args = parse_args()
    if args.rounds > 1 and (args.no_peers or args.sqlite):
        raise SystemExit("--rounds alternates the engine with PgQueuer: not with --no-peers or --sqlite")
    env = prepare_env(args)
    backend = "SQLite (WAL) + ORM broker" if args.sqlite else "PostgreSQL + Redis broker"
    commits = (
        "" if args.sqlite else f", worker commits {'asynchronous' if async_commit() else 'synchronous'} (all loops)"
    )
    print(f"SyncAdmin engine benchmark: {args.messages:,} messages, {args.terminals} terminals, {args.workers} workers, "
          f"batch {args.batch}, {backend}{commits}{', fleet arrival order' if args.fleet else ''}",
          flush=True)  # fmt: skip
    ingest = fill(args)
    print(f"  ingest (message_ingest_batch, {args.ingest_batch}/call, 1 client): {ingest:8,.0f} msg/s", flush=True)
    result = drain(args, env)
    print(f"  drain, full engine (qcluster, {args.workers} workers):        {result['rate']:8,.0f} msg/s "
          f"({result['seconds']:.1f} s)", flush=True)  # fmt: skip
    server = "" if result["server_cpu_us"] is None else f"server {result['server_cpu_us']:.1f} µs, "
    print(f"    CPU a message over the drain: {server}the cluster's processes {result['workers_cpu_us']:.1f} µs")
    for i, (start, peak, end) in enumerate(result["rss"]):
        print(f"    worker {i} RSS MB: start {start}, peak {peak}, end {end}")
    if result["updates"]:
        upd, hot = result["updates"]
        print(f"    queue state table during the drain: {upd:,} row updates, {hot:,} HOT ({hot / max(upd, 1):.0%}; "
              "pg_stat_user_tables)")  # fmt: skip
    if result["statements"]:
        print("    the server's statements during the drain (pg_stat_statements): execution µs/msg, WAL B/msg")
        for micros, wal, text in result["statements"]:
            print(f"      {micros:6.1f} {wal:7.0f}  {text}")
    peers = []
    if not (args.no_peers or args.sqlite):  # PgQueuer is PostgreSQL only
        peers = peer_drains(args)
    for label, rate in peers:
        print(f"  peer, {label} ({args.workers} workers, batch {args.batch}):{'':<8}{rate:8,.0f} msg/s", flush=True)
    dsn = str(Path(env["SYNC_VAR_DIR"]) / "syncadmin.sqlite3") if args.sqlite else env["DATABASE_URL"]
    bare = bare_loop(args, dsn, lease_form=False)
    print(
        f"  reference, bare SQL loop (claim+state+event rows, 1 txn, one multi-row INSERT): {bare:8,.0f} msg/s",
        flush=True,
    )
    per_row = bare_loop(args, dsn, lease_form=False, per_row=True)
    print(f"  reference, bare SQL loop (claim+state+event rows, 1 txn, one INSERT per row):   {per_row:8,.0f} msg/s",
          flush=True)  # fmt: skip
    lease = bare_loop(args, dsn, lease_form=True)
    print(f"  reference, bare SQL loop, lease form (claim commit, then result):   {lease:8,.0f} msg/s", flush=True)
    real = real_table_loop(args, dsn)
    print(f"  reference, bare SQL loop on the engine's own message and event tables (1 txn):  {real:8,.0f} msg/s",
          flush=True)  # fmt: skip
    rate = result["rate"]
    print(f"  engine / bare loop: {rate / bare:.0%} (multi-row INSERT), {rate / per_row:.0%} (INSERT per row)   "
          f"engine / lease form: {rate / lease:.0%}   engine / bare loop on its own tables: {rate / real:.0%}")  # fmt: skip
    if peers:
        print("  " + "   ".join(f"engine / {label}: {rate / peer:.2f}" for label, peer in peers))
        if args.rounds > 1:
            more_rounds(args, (rate, peers[0][1]))


if __name__ == "__main__":
    main()
