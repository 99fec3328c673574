"""queue_messages 0013 moves the queue state to its own table, and its rollback moves it back, losing nothing.

A few thousand messages in every state are written through 0012's model, with attempts, leases,
errors and times to the microsecond; the migration runs as `manage.py migrate` does, in small
chunks (CHUNK is lowered so there are many chunk transactions to interleave with). On PostgreSQL
the old release's ingest keeps inserting with 0012's SQL while it runs, one message per
transaction, until the column drop refuses it (the terminal resends: terminal-api.md), and one
ingest transaction that began before the copy commits only after the chunks have passed its id,
so only the locked last pass can copy it. Both ways, a console action changes a row whose chunk
was already copied, which only the last pass can carry over. SQLite locks the whole file for a
schema change, so no writer runs there (docs/operations/upgrades.md, "0013"); the copy, the console
action and the rollback are checked on both.
"""

import importlib
import threading
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection

from messages.models import MessageState
from tests.messages.migration_load import _connect, table_locks
from tests.migrations import migrate

pytestmark = pytest.mark.django_db(transaction=True)

MIGRATION = importlib.import_module("messages.migrations.0013_queue_state_table")
BEFORE = ("queue_messages", "0012_bulkjob_rate")
AFTER = ("queue_messages", "0013_queue_state_table")
ENVELOPE, STATE = MIGRATION.ENVELOPE, MIGRATION.STATE
STATE_COLUMNS = MIGRATION.STATE_COLUMNS
ENVELOPE_COLUMNS = ("terminal_id", "message_id", "message_type", "entity_type", "entity_key", "sequence",
                    "created_at", "payload", "received_at", "trace_id")  # fmt: skip
MESSAGES = 3000
CHUNK = 200  # 15 chunk transactions for the writer to slip between
T0 = datetime(2026, 12, 1, 9, 30, 15, 123457, tzinfo=UTC)
# 0012's ingest insert, as the old release's SOAP gateway writes a message.
OLD_INSERT = (
    f"INSERT INTO {ENVELOPE} (terminal_id, message_id, message_type, entity_type, entity_key, sequence, created_at,"
    " payload, state, attempts, next_attempt_at, lease_owner, lease_expires_at, last_error, received_at,"
    " updated_at, processed_at, trace_id) VALUES (%s, %s, 'product.upsert', 'product', %s, %s, %s, '{}',"
    " 'Received', 0, %s, '', NULL, '', %s, %s, NULL, %s) RETURNING id"
)
WAIT_SECONDS = 10.0


@pytest.fixture
def back_at_head():
    yield
    call_command("migrate", interactive=False, verbosity=0)


def _state_of(n: int, state: str) -> dict:
    at = T0 + timedelta(seconds=n, microseconds=n)
    fields = {
        "state": state,
        "attempts": n % 7,
        "next_attempt_at": at + timedelta(minutes=5) if state in ("Received", "Failed") else None,
        "lease_owner": f"worker-{n % 3}@host:{n}" if state == "Processing" else "",
        "lease_expires_at": at + timedelta(seconds=30, microseconds=1) if state == "Processing" else None,
        "last_error": f"ValueError: prix {n} négatif ü€𝄞\n  line 2" if state in ("Failed", "Dead-lettered") else "",
        "updated_at": at + timedelta(microseconds=999_999 - n),
        "processed_at": at + timedelta(milliseconds=1, microseconds=3) if state == "Processed" else None,
    }
    return fields


def _fill(apps, terminal) -> dict[int, tuple]:
    """MESSAGES messages through 0012's model, every state; returns id -> the state columns written."""
    Old = apps.get_model("queue_messages", "Message")
    states = MessageState.values
    rows = []
    for n in range(MESSAGES):
        at = T0 + timedelta(seconds=n, microseconds=n)
        rows.append(
            Old(
                terminal_id=terminal.pk, message_id=f"fill-{n}", message_type="product.upsert",
                entity_type="product", entity_key=f"SKU-{n % 50}", sequence=n, created_at=at, payload='{"n": 1}',
                received_at=at, trace_id=f"{n:032x}", **_state_of(n, states[n % len(states)]),
            )
        )  # fmt: skip
    Old.objects.bulk_create(rows, batch_size=500)
    found = _states(apps, "Message")
    assert len(found) == MESSAGES and {row[0] for row in found.values()} == set(states)
    return found


def _states(apps, model_name) -> dict[int, tuple]:
    model = apps.get_model("queue_messages", model_name)
    return {pk: tuple(rest) for pk, *rest in model.objects.values_list("pk", *STATE_COLUMNS)}


def _envelopes() -> dict[int, tuple]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id, {', '.join(ENVELOPE_COLUMNS)} FROM {ENVELOPE}")  # noqa: S608 (constants)
        return {pk: tuple(rest) for pk, *rest in cursor.fetchall()}


class OldIngest:
    """The old release's ingest on a connection of its own: one message per transaction with 0012's SQL.

    Keeps inserting until stopped; an insert refused because the state columns are gone counts as
    refused (the terminal sends it again), anything else fails the test.
    """

    def __init__(self, terminal_id: int):
        self.terminal_id = terminal_id
        self.committed: dict[int, tuple] = {}  # id -> the state columns it wrote
        self.refused = 0
        self.errors: list[Exception] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run)
        self.straggler = _connect()  # one ingest transaction left open across the chunks
        self.straggler.autocommit = False
        self.straggler_id = None

    def _insert(self, conn, n: int) -> int:
        at = datetime.now(UTC).replace(microsecond=n % 1_000_000 or 1)
        row = conn.execute(OLD_INSERT, [self.terminal_id, f"w-{n}", f"SKU-W{n}", n, at, at, at, at, f"{n:032x}"])
        return row.fetchone()[0], ("Received", 0, at, "", None, "", at, None)

    def _run(self):
        with _connect() as conn:
            n = 0
            while not self.stop.is_set():
                n += 1
                try:
                    pk, fields = self._insert(conn, n)
                except psycopg.errors.UndefinedColumn:
                    self.refused += 1
                    continue
                except Exception as exc:  # noqa: BLE001 (reported by the test)
                    self.errors.append(exc)
                    return
                if self.refused:
                    self.errors.append(AssertionError(f"message {pk} accepted after a refusal"))
                self.committed[pk] = fields

    def wait_for(self, condition) -> None:
        deadline = time.monotonic() + WAIT_SECONDS
        while not condition():
            assert not self.errors and time.monotonic() < deadline, self.errors or "the writer made no progress"
            time.sleep(0.001)

    def open_straggler(self) -> None:
        """Insert in a transaction left open, then let a later id commit: the chunks will not see this one."""
        self.straggler_id, fields = self._insert(self.straggler, 999_999)
        self.straggler_fields = fields
        committed = len(self.committed)
        self.wait_for(lambda: len(self.committed) > committed + 1)
        assert max(self.committed) > self.straggler_id  # within the copy's id bounds

    def commit_straggler(self) -> None:
        self.straggler.commit()
        self.committed[self.straggler_id] = self.straggler_fields


def _hooked(monkeypatch, after_chunks, ingest: OldIngest | None = None) -> None:
    """``after_chunks()`` runs once the chunks are copied, before the locked last pass (a console action).

    With ``ingest``, each chunk also waits for the writer to commit one more message, and the
    straggler opens before the bounds are read and commits after the last chunk, so only the
    locked last pass can copy it.
    """
    id_bounds, copy_chunks = MIGRATION._id_bounds, MIGRATION._copy_chunks

    def bounds(conn, table):
        if ingest and table == ENVELOPE:
            ingest.open_straggler()
        return id_bounds(conn, table)

    def chunks(conn, sql_for_range, low, high):
        def each(lo, hi):
            if ingest:
                committed = len(ingest.committed)
                ingest.wait_for(lambda: len(ingest.committed) > committed)
            return sql_for_range(lo, hi)

        copied = copy_chunks(conn, each, low, high)
        if ingest:
            ingest.commit_straggler()
        after_chunks()
        return copied

    monkeypatch.setattr(MIGRATION, "_id_bounds", bounds)
    monkeypatch.setattr(MIGRATION, "_copy_chunks", chunks)


def _console_sets(table: str, pk: int, expected: dict, **values) -> None:
    """What a console action does to a message already copied: its state columns changed in place."""
    ops = connection.ops
    adapted = [ops.adapt_datetimefield_value(v) if isinstance(v, datetime) else v for v in values.values()]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET {', '.join(f'{name} = %s' for name in values)} WHERE id = %s",  # noqa: S608
            [*adapted, pk],
        )
    row = dict(zip(STATE_COLUMNS, expected[pk], strict=True))
    expected[pk] = tuple({**row, **values}.values())


def _old_schema_in_place() -> None:
    with connection.cursor() as cursor:
        tables = connection.introspection.table_names(cursor)
        columns = {c.name: c for c in connection.introspection.get_table_description(cursor, ENVELOPE)}
        indexes = connection.introspection.get_constraints(cursor, ENVELOPE)
    assert STATE not in tables
    assert set(STATE_COLUMNS) <= set(columns)
    assert [name for name in MIGRATION.NOT_NULL if columns[name].null_ok] == []
    assert set(MIGRATION.OLD_INDEXES) <= set(indexes), sorted(indexes)


def test_the_state_moves_to_its_own_table_and_back_with_ingest_running(terminal, back_at_head, monkeypatch):
    old_apps = migrate([BEFORE])
    expected = _fill(old_apps, terminal)
    envelopes = _envelopes()
    monkeypatch.setattr(MIGRATION, "CHUNK", CHUNK)
    ingest = OldIngest(terminal.pk) if connection.vendor == "postgresql" else None
    retried, discarded = sorted(expected)[7], sorted(expected)[8]
    retry = {"state": "Received", "attempts": 0, "next_attempt_at": T0, "last_error": "", "updated_at": T0}
    _hooked(monkeypatch, lambda: _console_sets(ENVELOPE, retried, expected, **retry), ingest)
    if ingest:
        ingest.thread.start()
    try:
        call_command("migrate", *AFTER, interactive=False, verbosity=0)
        if ingest:
            ingest.wait_for(lambda: ingest.refused > 0)  # the old ingest is refused from the drop on
    finally:
        if ingest:
            ingest.stop.set()
            ingest.thread.join()
            ingest.straggler.close()
    monkeypatch.undo()
    monkeypatch.setattr(MIGRATION, "CHUNK", CHUNK)
    if ingest:
        assert not ingest.errors, ingest.errors
        # Inserted while the chunks ran: each chunk waited for one, and the straggler is among them.
        assert len(ingest.committed) > MESSAGES // CHUNK and ingest.straggler_id in ingest.committed
        expected.update(ingest.committed)
    new_apps = migrate([AFTER])

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*), count(DISTINCT id) FROM {STATE}")  # noqa: S608 (constants)
        assert cursor.fetchone() == (len(expected), len(expected))  # one state row per message, no more
        cursor.execute(
            f"SELECT count(*) FROM {STATE} s JOIN {ENVELOPE} m ON m.id = s.id"  # noqa: S608 (constants)
            " WHERE s.queued_at = m.received_at AND s.queue_terminal_id = m.terminal_id"
        )
        assert cursor.fetchone() == (len(expected),)  # the envelope's time and terminal, copied beside the state
        columns = {c.name for c in connection.introspection.get_table_description(cursor, ENVELOPE)}
    assert _states(new_apps, "Message") == expected  # every value, times to the microsecond
    assert not columns & set(STATE_COLUMNS)
    after = _envelopes()
    assert {pk: after[pk] for pk in envelopes} == envelopes and set(after) == set(expected)  # as the terminal sent

    # The rollback, a console action on an already copied row before its last pass.
    _hooked(monkeypatch, lambda: _console_sets(STATE, discarded, expected, state="Discarded", updated_at=T0))
    call_command("migrate", *BEFORE, interactive=False, verbosity=0)
    _old_schema_in_place()
    assert _states(old_apps, "Message") == expected
    after = _envelopes()
    assert {pk: after[pk] for pk in envelopes} == envelopes and set(after) == set(expected)


# The new release's ingest: the envelope, then its state row, in one transaction (migration_load.py).
NEW_ENVELOPE = (
    f"INSERT INTO {ENVELOPE} ({', '.join(ENVELOPE_COLUMNS)}) VALUES (%s, 'new-1', 'product.upsert', 'product',"
    " 'SKU-N', 1, %s, '{}', %s, '') RETURNING id"
)
NEW_STATE = (
    f"INSERT INTO {STATE} (id, state, attempts, next_attempt_at, lease_owner, last_error, updated_at, queued_at,"
    " queue_terminal_id) VALUES (%s, 'Received', 0, %s, '', '', %s, %s, %s)"
)


@pytest.mark.postgres
def test_the_state_tables_key_is_added_while_the_message_table_is_held(terminal, back_at_head):
    # Adding the state row's key locks the state table, then the message table. Added after the
    # drop had committed (where the schema editor defers it), it waited for a writer of the new
    # shape that held the message table and waited for the state table: a deadlock, and the
    # migration failed half done (the table there, the migration not recorded). It must be added
    # while the migration still holds the message table against every writer.
    migrate([BEFORE])
    seen = {}

    def watch(execute, sql, params, many, context):
        if "FOREIGN KEY" in sql and STATE in sql:
            with connection.connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                seen["locks"] = table_locks(connection.connection, cursor.fetchone()[0])
                seen["in_transaction"] = connection.in_atomic_block
        return execute(sql, params, many, context)

    with connection.execute_wrapper(watch):
        call_command("migrate", *AFTER, interactive=False, verbosity=0)
    assert seen["in_transaction"], "the key was added after the locked pass had committed"
    assert (ENVELOPE, "AccessExclusiveLock", True) in seen["locks"], seen
    with connection.cursor() as cursor:  # added NOT VALID under the lock, validated after it
        cursor.execute("SELECT convalidated FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'f'",
                       [STATE])  # fmt: skip
        assert cursor.fetchall() == [(True,)]


@pytest.mark.postgres
def test_the_rollback_waits_for_a_new_ingest_transaction_and_keeps_its_message(terminal, back_at_head, monkeypatch):
    # The new release's ingest has written an envelope and not yet its state row when the
    # rollback's last pass begins. Were the state table locked first, the drop (which also needs
    # the message table, for the key) and the writer (which needs the state table) would wait for
    # each other. The last pass must wait for the writer instead, then copy its message.
    migrate([AFTER])
    monkeypatch.setattr(MIGRATION, "CHUNK", CHUNK)
    writer = _connect()
    writer.autocommit = False
    at = datetime.now(UTC)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    written, errors = [], []

    def finish_once_the_last_pass_asks(pk: int) -> None:
        try:
            with _connect() as watcher:
                deadline = time.monotonic() + WAIT_SECONDS
                # The last pass has asked for its first lock (granted or not).
                while not any(mode.startswith("Share") for _, mode, _ in table_locks(watcher, pid)):
                    assert time.monotonic() < deadline, "the last pass never started"
                    time.sleep(0.005)
                time.sleep(0.2)  # let it take whatever it can
            writer.execute(NEW_STATE, [pk, at, at, at, terminal.pk])
            writer.commit()
            written.append(pk)
        except Exception as exc:  # noqa: BLE001 (reported by the test)
            errors.append(exc)

    threads = []

    def envelope_written():
        # After the chunks, before the last pass: the writer's transaction holds its envelope.
        pk = writer.execute(NEW_ENVELOPE, [terminal.pk, at, at]).fetchone()[0]
        threads.append(threading.Thread(target=finish_once_the_last_pass_asks, args=(pk,)))
        threads[0].start()

    _hooked(monkeypatch, envelope_written)
    try:
        call_command("migrate", *BEFORE, interactive=False, verbosity=0)
    finally:
        monkeypatch.undo()
        for thread in threads:
            thread.join()
        writer.close()
    assert written and not errors, errors
    _old_schema_in_place()
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT state, attempts FROM {ENVELOPE} WHERE id = %s", written)  # noqa: S608 (constants)
        assert cursor.fetchone() == ("Received", 0)  # copied by the last pass, not lost with the table
