"""Run a migration of the message table while a writer keeps inserting messages, and see what it locked.

For tests/messages/test_migration_locks.py and bench/migrations.py (PostgreSQL). Three
connections: the migration's (Django's), a writer's that commits one message per transaction
as ingest does, and a watcher's that reads pg_locks every couple of milliseconds for the locks
the migration's backend holds on the message tables in a mode that stops INSERT and UPDATE
(anything that conflicts with ROW EXCLUSIVE).

The message is one wide row up to migration 0012 and an envelope plus its queue-state row from
0013 on (messages/models/queue.py): the fill and the writer write the shape the database has,
as the release running against it would, and the watcher watches both tables.
"""

import io
import threading
import time
from dataclasses import dataclass, field

import psycopg
from django.core.management import call_command
from django.db import connection
from django.db.migrations import RunPython, RunSQL
from django.db.migrations.executor import MigrationExecutor

from tests.migration_lint import ACCEPTED

TABLE = "queue_messages_message"  # the wide message table up to 0012, the envelopes from 0013 on
STATE_TABLE = "queue_messages_messagestate"  # the queue state's own table, from 0013 on
# The lock modes that conflict with ROW EXCLUSIVE, the one every INSERT and UPDATE takes.
WRITE_BLOCKING = ("ShareLock", "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock")
POLL_SECONDS = 0.002


def message_table_migrations(*, accepted: bool = False) -> list[tuple[str, str]]:
    """The message app's migrations whose SQL names the table, or that run code sqlmigrate cannot show.

    Oldest first. Without ``accepted``, less the released ones the linter accepts (tests/migration_lint.py).
    """
    executor = MigrationExecutor(connection)
    found = []
    for (app, name), migration in sorted(executor.loader.disk_migrations.items()):
        if app != "queue_messages" or migration.initial or ((app, name) in ACCEPTED and not accepted):
            continue
        out = io.StringIO()
        call_command("sqlmigrate", app, name, stdout=out, stderr=io.StringIO())
        runs_code = any(isinstance(op, RunPython | RunSQL) for op in migration.operations)
        if f'"{TABLE}"' in out.getvalue() or runs_code:
            found.append((app, name))
    return found


def previous(app: str, name: str) -> str:
    """The migration before ``name`` in its app ("zero" for the first)."""
    graph = MigrationExecutor(connection).loader.graph
    parents = [parent.key for parent in graph.node_map[(app, name)].parents if parent.key[0] == app]
    return parents[0][1] if parents else "zero"


def table_locks(conn: psycopg.Connection, pid: int) -> set[tuple[str, str, bool]]:
    """(table, mode, granted) of each lock backend ``pid`` holds or waits for on the message tables."""
    rows = conn.execute(
        "SELECT c.relname, l.mode, l.granted FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
        " WHERE l.pid = %s AND c.relname = ANY(%s)",
        [pid, [TABLE, STATE_TABLE]],
    )
    return set(rows.fetchall())


def _connect() -> psycopg.Connection:
    s = connection.settings_dict
    return psycopg.connect(
        dbname=s["NAME"], user=s["USER"], password=s["PASSWORD"] or None, host=s["HOST"], port=s["PORT"] or None,
        autocommit=True,
    )  # fmt: skip


ENVELOPE_COLUMNS = ("terminal_id, message_id, message_type, entity_type, entity_key, sequence, created_at, payload,"
                    " received_at, trace_id")  # fmt: skip
STATE_COLUMNS = (
    "id, state, attempts, next_attempt_at, lease_owner, last_error, updated_at, queued_at, queue_terminal_id"
)
# Ingest's insert of one message, in each shape: 0012's wide row (what the old release sends while
# 0013 runs), and the envelope with its state row in one statement (the new release's).
WIDE_INSERT = (
    f"INSERT INTO {TABLE} ({ENVELOPE_COLUMNS}, state, attempts, next_attempt_at, lease_owner, last_error,"
    " updated_at) VALUES (%s, %s, 'product.upsert', 'product', 'SKU-W', %s, now(), '{}', now(), '',"
    " 'Received', 0, now(), '', '', now())"
)
SPLIT_INSERT = (
    f"WITH envelope AS (INSERT INTO {TABLE} ({ENVELOPE_COLUMNS}) VALUES (%s, %s, 'product.upsert', 'product',"
    " 'SKU-W', %s, now(), '{}', now(), '') RETURNING id, received_at, terminal_id)"
    f" INSERT INTO {STATE_TABLE} ({STATE_COLUMNS}) SELECT id, 'Received', 0, now(), '', '', now(), received_at,"
    " terminal_id FROM envelope"
)


def split(cursor) -> bool:
    """Whether the database has the split shape (0013 on): the message table without its state column."""
    cursor.execute(
        "SELECT NOT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema()"
        " AND table_name = %s AND column_name = 'state')",
        [TABLE],
    )
    return cursor.fetchone()[0]


def messages_fill(rows: int) -> None:
    """``rows`` messages of one terminal, in one statement (and the terminal, if missing), in the
    shape the database has: wide rows, or envelopes each with its state row."""
    fill = (
        "SELECT t.id, 'fill-' || g, 'product.upsert', 'product', 'SKU-' || (g %% 5000), g, now(),"
        ' \'{"name": "item", "price": "1.99"}\', now() - g * interval \'1 ms\', md5(g::text),'
        " (ARRAY['Processed', 'Received', 'Failed', 'Discarded'])[g %% 4 + 1]"
        " FROM terminals_terminal t, generate_series(1, %s) g WHERE t.code = 'T-LOAD'"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO terminals_terminal (code, name, store, enabled, api_key_hash, app_version, created_at,"
            " updated_at) VALUES ('T-LOAD', '', '', true, '', '', now(), now()) ON CONFLICT (code) DO NOTHING"
        )
        if split(cursor):
            cursor.execute(
                f"WITH f (terminal_id, message_id, message_type, entity_type, entity_key, sequence, created_at,"
                f" payload, received_at, trace_id, state) AS MATERIALIZED ({fill}),"
                f" envelope AS (INSERT INTO {TABLE} ({ENVELOPE_COLUMNS}) SELECT {ENVELOPE_COLUMNS} FROM f"
                " RETURNING id, message_id, received_at, terminal_id)"
                f" INSERT INTO {STATE_TABLE} ({STATE_COLUMNS}) SELECT e.id, f.state, 0, now(), '', '', now(),"
                " e.received_at, e.terminal_id FROM envelope e JOIN f ON f.message_id = e.message_id",
                [rows],
            )  # fmt: skip
            cursor.execute(f"ANALYZE {STATE_TABLE}")
        else:
            cursor.execute(
                f"INSERT INTO {TABLE} ({ENVELOPE_COLUMNS}, state, attempts, next_attempt_at, lease_owner,"
                f" last_error, updated_at) SELECT *, 0, now(), '', '', now() FROM ({fill}) f",
                [rows],
            )  # fmt: skip
        cursor.execute(f"ANALYZE {TABLE}")


@dataclass
class Observed:
    seconds: float = 0.0  # how long the migration took
    longest_block: float = 0.0  # the longest run of samples in which it held a write-blocking lock
    modes: set[str] = field(default_factory=set)  # every lock mode it was seen holding on the tables
    writes: int = 0  # messages the writer committed while it ran
    slowest_write: float = 0.0  # the writer's longest insert
    # Wide inserts refused because the state columns were dropped under them (0013: the old
    # release's ingest fails from the drop on, the terminal resends); the writer then writes the
    # split shape, as the new release does.
    refused: int = 0
    errors: list[Exception] = field(default_factory=list)  # what stopped the writer early (none, or it saw nothing)


def under_load(run) -> Observed:
    """Call ``run()`` (the migration, on Django's connection) with the writer and the watcher running."""
    observed = Observed()
    stop = threading.Event()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
        cursor.execute("SELECT id FROM terminals_terminal WHERE code = 'T-LOAD'")
        terminal_id = cursor.fetchone()[0]
        insert = SPLIT_INSERT if split(cursor) else WIDE_INSERT

    def writer():
        nonlocal insert
        with _connect() as conn:
            n = 0
            while not stop.is_set():
                n += 1
                started = time.monotonic()
                try:
                    conn.execute(insert, [terminal_id, f"w-{time.time_ns()}", n])
                except psycopg.errors.UndefinedColumn as exc:
                    if insert is SPLIT_INSERT:
                        observed.errors.append(exc)
                        return
                    observed.refused += 1
                    insert = SPLIT_INSERT
                except Exception as exc:  # noqa: BLE001 (reported by the caller: a dead writer sees no lock)
                    observed.errors.append(exc)
                    return
                else:
                    observed.writes += 1
                # A refused insert counts too: it waited for the lock before it was refused.
                observed.slowest_write = max(observed.slowest_write, time.monotonic() - started)

    def watcher():
        with _connect() as conn:
            blocking_since = None
            while not stop.is_set():
                now = time.monotonic()
                modes = {mode for _, mode, granted in table_locks(conn, pid) if granted}
                observed.modes |= modes
                if modes & set(WRITE_BLOCKING):
                    blocking_since = blocking_since or now
                    observed.longest_block = max(observed.longest_block, now - blocking_since)
                else:
                    blocking_since = None
                time.sleep(POLL_SECONDS)

    threads = [threading.Thread(target=writer), threading.Thread(target=watcher)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.2)  # both running before the migration starts
        writes_before = observed.writes
        started = time.monotonic()
        run()
        observed.seconds = time.monotonic() - started
        observed.writes -= writes_before
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    return observed
