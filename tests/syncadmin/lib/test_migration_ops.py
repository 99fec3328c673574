"""syncadmin/lib/migration_ops.py: an index built and dropped CONCURRENTLY on PostgreSQL, plainly elsewhere.

Run on the real message envelope table (millions of rows, the console's indexes: where a new
index of the queue most likely goes) through a schema editor, as a migration would: the index exists
after the forward step and is gone after the backward one, on either database; on PostgreSQL
the SQL says CONCURRENTLY, an atomic migration is refused, and an invalid index left by an
interrupted build is replaced.
"""

import pytest
from django.db import NotSupportedError, connection, models
from django.db.migrations.loader import MigrationLoader

from messages.models import MessageEnvelope
from syncadmin.lib.migration_ops import AddIndexConcurrentlyOnPostgres, RemoveIndexConcurrentlyOnPostgres

pytestmark = pytest.mark.django_db(transaction=True)

APP = "queue_messages"
# Envelope columns: Message (the state row) inherits them, and an index must be on their own table.
MODEL = "messageenvelope"
INDEX = models.Index(fields=["message_type", "entity_key"], name="probe_type_key_idx")
TABLE = MessageEnvelope._meta.db_table


def _states(operation, from_state=None):
    before = from_state or MigrationLoader(connection).project_state()
    after = before.clone()
    operation.state_forwards(APP, after)
    return before, after


def _indexes() -> set[str]:
    with connection.cursor() as cursor:
        return set(connection.introspection.get_constraints(cursor, TABLE))


def _run(operation, before, after, backwards=False, atomic=False, collect_sql=False):
    with connection.schema_editor(atomic=atomic, collect_sql=collect_sql) as editor:
        if backwards:
            operation.database_backwards(APP, editor, after, before)
        else:
            operation.database_forwards(APP, editor, before, after)
    return editor.collected_sql if collect_sql else None


@pytest.fixture(autouse=True)
def _no_probe_index_left():
    yield
    with connection.cursor() as cursor:
        cursor.execute(f"DROP INDEX IF EXISTS {INDEX.name}")


def test_the_index_is_built_and_dropped_both_ways():
    add = AddIndexConcurrentlyOnPostgres(MODEL, INDEX)
    before, with_index = _states(add)
    _run(add, before, with_index)
    assert INDEX.name in _indexes()
    remove = RemoveIndexConcurrentlyOnPostgres(MODEL, INDEX.name)
    _, without = _states(remove, with_index)
    _run(remove, with_index, without)
    assert INDEX.name not in _indexes()
    _run(remove, with_index, without, backwards=True)
    assert INDEX.name in _indexes()
    _run(add, before, with_index, backwards=True)
    assert INDEX.name not in _indexes()


@pytest.mark.postgres
def test_on_postgresql_the_sql_is_concurrent_and_a_transaction_is_refused():
    add = AddIndexConcurrentlyOnPostgres(MODEL, INDEX)
    before, after = _states(add)
    sql = " ".join(_run(add, before, after, collect_sql=True))
    assert "CREATE INDEX CONCURRENTLY" in sql
    remove = RemoveIndexConcurrentlyOnPostgres(MODEL, "message_trace_idx")
    before, after = _states(remove)
    assert "DROP INDEX CONCURRENTLY" in " ".join(_run(remove, before, after, collect_sql=True))
    with pytest.raises(NotSupportedError, match="atomic = False"):
        _run(add, *_states(add), atomic=True)
    assert INDEX.name not in _indexes()


@pytest.mark.postgres
def test_on_postgresql_an_invalid_index_left_by_an_interrupted_build_is_built_again():
    add = AddIndexConcurrentlyOnPostgres(MODEL, INDEX)
    before, after = _states(add)
    with connection.cursor() as cursor:
        # What a cancelled CREATE INDEX CONCURRENTLY leaves behind: the index, marked invalid.
        cursor.execute(f"CREATE INDEX {INDEX.name} ON {TABLE} (message_type)")
        cursor.execute("UPDATE pg_index SET indisvalid = false WHERE indexrelid = %s::regclass", [INDEX.name])
    _run(add, before, after)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indisvalid, pg_get_indexdef(indexrelid) FROM pg_index WHERE indexrelid = %s::regclass", [INDEX.name]
        )
        valid, definition = cursor.fetchone()
    assert valid and "(message_type, entity_key)" in definition
