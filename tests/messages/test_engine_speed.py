"""What makes the engine fast, pinned: no savepoints on a clean batch, the counters written last,
a unique-key race retried as a whole batch, and on PostgreSQL server-bound, prepared statements,
the unique-key probe and asynchronous commits for the drain only."""

import os
import subprocess
import sys
import threading

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from messages import handlers, services, tasks
from messages.central_store import central_lock_sql
from messages.models import CentralEntity, EntityCounter, Message, MessageState
from messages.services import claim, processing, wakeup
from tests.messages.helpers import counter, env
from tests.processes import ROOT

S = MessageState
STATE_TABLE = Message._meta.db_table  # queue_messages_messagestate: the row every transition updates
pytestmark = pytest.mark.django_db


@pytest.fixture
def no_lease_probe(monkeypatch):
    monkeypatch.setattr(claim, "_next_expired_check", float("inf"))  # the periodic lease check


@pytest.mark.django_db(transaction=True)  # no test transaction around it: the batch's own is the outermost
def test_a_clean_batch_uses_no_savepoint_and_moves_the_counters_last(terminal, no_lease_probe):
    services.message_ingest_batch(terminal=terminal, envelopes=[env(f"m{i}", f"K{i}") for i in range(5)])
    batch = services.message_claim(worker="w", limit=10)
    statements = []

    def spy(execute, sql, params, many, context):
        statements.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(spy):
        result = services.message_process_batch(messages=batch, worker="w")
    assert result.processed == 5
    assert not [s for s in statements if "SAVEPOINT" in s.upper()], statements
    # the hottest rows (every batch of a terminal moves the same counters) are locked last
    assert EntityCounter._meta.db_table in statements[-1], statements
    assert counter(terminal) == 5


def test_a_replayed_batch_counts_only_what_it_applied(terminal, no_lease_probe):
    """The counters are deferred only on the all-or-nothing path: in a replay, a message whose
    savepoint rolls back must take its counter move back with it."""

    @handlers.registry.register("gadget.upsert")
    def apply(item):
        handlers.EntityHandler().apply_many([item])
        if item.message.entity_key == "BAD":
            raise RuntimeError("downstream refused")

    try:
        services.message_ingest_batch(
            terminal=terminal,
            envelopes=[env("a", "A", mtype="gadget.upsert"), env("b", "BAD", mtype="gadget.upsert"),
                       env("c", "C", mtype="gadget.upsert")],
        )  # fmt: skip
        batch = services.message_claim(worker="w", limit=10)
        result = services.message_process_batch(messages=batch, worker="w")
    finally:
        handlers.registry.unregister("gadget.upsert")
    assert (result.processed, result.failed) == (2, 1)
    assert counter(terminal, "gadget") == 2
    assert set(CentralEntity.objects.values_list("entity_key", flat=True)) == {"A", "C"}
    assert Message.objects.get(message_id="b").state == S.FAILED


def test_a_unique_key_race_reruns_the_batch_not_each_message(terminal, monkeypatch, no_lease_probe):
    """Another worker created an entity between our lookup and our insert: the items of that key
    are applied again against its row (PostgreSQL: found by the insert's ON CONFLICT DO NOTHING;
    elsewhere the batch runs again), instead of the batch being replayed one message at a time."""
    services.message_ingest_batch(terminal=terminal, envelopes=[env("old", "K1", seq=1)])
    services.message_process_batch(messages=services.message_claim(worker="w", limit=10), worker="w")
    services.message_ingest_batch(terminal=terminal, envelopes=[env("new", "K1", seq=2), env("n2", "K2", seq=1)])
    real, calls = handlers.central_lock, []

    def lookup(keys, *, db):
        calls.append(keys)
        return {} if len(calls) == 1 else real(keys, db=db)  # first pass misses the row: a race

    monkeypatch.setattr(handlers, "central_lock", lookup)
    replays = []
    monkeypatch.setattr(processing, "_process_batch_replay", lambda *a, **k: replays.append(a))
    result = services.message_process_batch(messages=services.message_claim(worker="w", limit=10), worker="w")
    assert len(calls) == 2 and replays == []
    assert result.processed == 2
    assert CentralEntity.objects.get(entity_key="K1").last_sequence == 2
    assert counter(terminal) == 2  # K1 counted once, K2 once


# --- PostgreSQL -----------------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)  # two real transactions, one per thread
def test_two_workers_creating_one_entity_at_once_neither_replays_nor_double_counts(terminal, monkeypatch):
    """Regression (bench/engine.py): two workers on one terminal's new entities raced on the unique
    key; the loser's batch failed three times running and was replayed one message at a time,
    every few seconds of a drain. The loser's insert now waits for the winner, skips the row and
    applies its items against it: one pass more for that key, no failed batch."""
    monkeypatch.setattr(claim, "_next_expired_check", float("inf"))
    services.message_ingest_batch(terminal=terminal, envelopes=[env("a", "K1", seq=1)])
    services.message_ingest_batch(terminal=terminal, envelopes=[env("b", "K1", seq=2), env("c", "K2", seq=1)])
    first = services.message_claim(worker="wa", limit=1)
    second = services.message_claim(worker="wb", limit=10)
    assert [m.message_id for m in first] == ["a"] and sorted(m.message_id for m in second) == ["b", "c"]
    written, release = threading.Event(), threading.Event()
    real_write, lookups, replays = handlers.central_write, [], []

    def write_then_hold(**kwargs):  # worker a: its new row is in, uncommitted, until released
        taken = real_write(**kwargs)
        if threading.current_thread().name == "wa":
            written.set()
            release.wait(10)
        return taken

    def lookup(keys, *, db):
        lookups.append((threading.current_thread().name, sorted(keys)))
        return real_lookup(keys, db=db)

    real_lookup = handlers.central_lock
    monkeypatch.setattr(handlers, "central_write", write_then_hold)
    monkeypatch.setattr(handlers, "central_lock", lookup)
    monkeypatch.setattr(processing, "_process_batch_replay", lambda *a, **k: replays.append(a))
    results = {}

    def work(name, batch):
        try:
            results[name] = services.message_process_batch(messages=batch, worker=name)
        finally:
            connection.close()

    wa = threading.Thread(target=work, args=("wa", first), name="wa")
    wa.start()
    assert written.wait(10)
    wb = threading.Thread(target=work, args=("wb", second), name="wb")
    wb.start()
    wb.join(0.5)
    assert wb.is_alive()  # b's insert of K1 waits on a's uncommitted row
    release.set()
    wa.join(10)
    wb.join(10)
    assert replays == []
    assert (results["wa"].processed, results["wb"].processed) == (1, 2)
    # b looked K1 up twice: before a committed (missing), then against a's row
    assert [keys for name, keys in lookups if name == "wb"] == [
        [("product", "K1", terminal.code), ("product", "K2", terminal.code)],
        [("product", "K1", terminal.code)],
    ]
    assert CentralEntity.objects.get(entity_key="K1").last_sequence == 2
    assert counter(terminal) == 2  # K1 counted once, K2 once
    assert set(Message.objects.values_list("state", flat=True)) == {S.PROCESSED}


@pytest.mark.postgres
def test_hot_statements_are_bound_and_prepared_on_the_server(terminal, no_lease_probe):
    for round_ in range(2):
        services.message_ingest_batch(
            terminal=terminal, envelopes=[env(f"{round_}-{i}", f"K{round_}-{i}") for i in range(3)]
        )
        with CaptureQueriesContext(connection) as ctx:
            services.message_process_batch(messages=services.message_claim(worker="w", limit=10), worker="w")
        # Django's query log still shows a prepared statement's text (psycopg keeps none)
        logged = [q["sql"] for q in ctx.captured_queries]
        # the transitions update the narrow state row (its table, not the envelope's)
        assert None not in logged and any(f"UPDATE {STATE_TABLE} " in s for s in logged), logged
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [row[0] for row in cursor.fetchall()]
    assert any(s.startswith(f"WITH moved AS (UPDATE {STATE_TABLE} ") for s in prepared), prepared
    assert any("INSERT INTO syncadmin_metriccounter" in s for s in prepared), prepared
    assert any("INSERT INTO queue_messages_entitycounter" in s for s in prepared), prepared
    # the central lookup's best plan depends on the table's size: planned every time
    assert not any("CROSS JOIN LATERAL" in s for s in prepared), prepared


def test_prepared_statements_can_be_switched_off_for_a_transaction_pooler():
    def threshold(value):
        code = (
            "from django.conf import settings; print(settings.DATABASES['default']['OPTIONS'].get('prepare_threshold'))"
        )
        env_ = {**os.environ, "DJANGO_SETTINGS_MODULE": "syncadmin.settings", "DATABASE_URL": "postgres://u@h/db"}
        env_.pop("DATABASE_PREPARED_STATEMENTS", None)
        if value is not None:
            env_["DATABASE_PREPARED_STATEMENTS"] = value
        out = subprocess.run([sys.executable, "-c", f"import django; django.setup(); {code}"], cwd=ROOT,
                             env=env_, capture_output=True, text=True, check=True)  # fmt: skip
        return out.stdout.strip().splitlines()[-1]

    assert threshold(None) == str(2**31 - 1)  # on, but only for statements that ask for it
    assert threshold("off") == "None"


@pytest.mark.postgres
def test_the_central_lookup_probes_the_unique_key_even_on_a_young_table(terminal):
    """Planned on a table that was empty when last analysed, the lookup once walked a counting
    index over a whole (terminal, type) cell for every key of the batch."""
    CentralEntity.objects.bulk_create(
        CentralEntity(entity_type="product", entity_key=f"K{i}", terminal_code=terminal.code, last_sequence=1,
                      updated_at="2026-01-01T00:00Z") for i in range(3000)
    )  # fmt: skip
    sql, params = central_lock_sql({("product", key, terminal.code) for key in ("K1", "K2", "NOPE")})
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE pg_class SET reltuples = 0, relpages = 0 WHERE relname = %s", ["queue_messages_centralentity"]
        )
        from syncadmin.lib.fastsql import server_binding_cursor

        with server_binding_cursor("default") as fast:
            fast.execute("EXPLAIN " + sql, params)
            plan = "\n".join(row[0] for row in fast.fetchall())
            fast.execute(sql, params)
            found = sorted(row[2] for row in fast.fetchall())
    assert "central_entity_uniq" in plan and "Seq Scan" not in plan, plan
    assert found == ["K1", "K2"]


@pytest.mark.postgres
def test_a_drain_commits_asynchronously_and_gives_the_session_back(terminal, settings, monkeypatch):
    seen = []

    @handlers.registry.register("probe.upsert")
    def apply(item):
        with connection.cursor() as cursor:
            cursor.execute("SHOW synchronous_commit")
            seen.append(cursor.fetchone()[0])

    monkeypatch.setattr(wakeup, "async_task", lambda *a, **k: None)
    try:
        services.message_ingest_batch(terminal=terminal, envelopes=[env("p1", mtype="probe.upsert")])
        tasks.drain()
        settings.SYNC_WORKER_ASYNC_COMMIT = False
        services.message_ingest_batch(terminal=terminal, envelopes=[env("p2", mtype="probe.upsert")])
        tasks.drain()
    finally:
        handlers.registry.unregister("probe.upsert")
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        after = cursor.fetchone()[0]
    assert seen == ["off", "on"]
    assert after == "on"  # other tasks on this worker keep synchronous commits


@pytest.mark.postgres
def test_the_claim_and_the_finish_write_fewer_indexes():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE tablename IN (%s, %s, %s)",
            [STATE_TABLE, "queue_messages_messageevent", "queue_messages_centralentity"],
        )
        indexes = {(t, name): d for t, name, d in cursor.fetchall()}
    # the retention index holds finished rows only: a claim (to Processing) does not write it
    assert "WHERE" in indexes[(STATE_TABLE, "message_state_updated_idx")]
    # one index per event besides its key: (message, at) serves every lookup by message
    assert sorted(n for t, n in indexes if t == "queue_messages_messageevent") == [
        "event_message_at_idx",
        "queue_messages_messageevent_pkey",
    ]
    # the central store: its key and the unique index (terminal first) only
    central = indexes[("queue_messages_centralentity", "central_entity_uniq")]
    assert "(terminal_code, entity_type, entity_key)" in central
    assert sorted(n for t, n in indexes if t == "queue_messages_centralentity") == [
        "central_entity_uniq",
        "queue_messages_centralentity_pkey",
    ]


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's own claim path (PostgreSQL: test_claim.py)")
def test_the_sqlite_claim_reads_the_due_index_without_sorting(terminal):
    """Regression: with its states as bound parameters the claim never used the partial due index
    on SQLite and sorted every due message on each claim (72 ms per claim at 100,000 due)."""
    services.message_ingest_batch(terminal=terminal, envelopes=[env(f"m{i}", f"K{i}") for i in range(20)])
    seen = []

    def spy(execute, sql, params, many, context):
        if "INDEXED BY" in sql:
            seen.append((sql, params))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(spy):
        batch = services.message_claim(worker="w", limit=5)
    assert [m.message_id for m in batch] == [f"m{i}" for i in range(5)]  # the oldest due first
    ((sql, params),) = seen
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN QUERY PLAN " + sql, params)
        plan = " ".join(str(row[-1]) for row in cursor.fetchall())
    assert "message_due_idx" in plan and "TEMP B-TREE" not in plan, plan
