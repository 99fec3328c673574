# Engine v2 (issue 18): the queue state moves out of the message table into a narrow row of its own.
#
# The message table keeps what a terminal sent (never updated after ingest) with the console's
# indexes; `queue_messages_messagestate` holds state, attempts, due time, lease, last error and the
# two times, with only the claim's and the state filter's indexes. A transition then rewrites a
# row with three index entries instead of the wide row with eleven (docs/performance.md).
#
# How it runs on a big table while terminals keep sending (docs/operations/upgrades.md, "0013"):
# the workers are stopped (two releases claiming from two tables could apply a message twice);
# the old release's SOAP ingest may keep running. The copy goes in id chunks, one short
# transaction each, so ingest is never held for long; a last pass under a table lock copies the
# rows that committed after their chunk, then drops the old columns in the same transaction.
# From that moment until the new release starts, the old release's ingest fails with a SOAP
# Server fault and the terminals send the batch again (terminal-api.md: a fault is not an ack).
# Reversible: the rollback copies the state back into restored columns (same chunks).

import django.db.models.deletion
from django.db import migrations, models, transaction
from django.db.migrations.operations.base import Operation

# The old table's state columns, and its indexes that name them (dropped before the copy: the new
# table's indexes take their names).
STATE_COLUMNS = (
    "state",
    "attempts",
    "next_attempt_at",
    "lease_owner",
    "lease_expires_at",
    "last_error",
    "updated_at",
    "processed_at",
)
OLD_INDEXES = ("message_due_idx", "message_lease_idx", "message_state_recv_idx", "message_state_updated_idx")
NOT_NULL = ("state", "attempts", "lease_owner", "last_error", "updated_at")
CHUNK = 5000

ENVELOPE = "queue_messages_message"
STATE = "queue_messages_messagestate"


class SetModelBases(Operation):
    """State only: the model's bases (Django has no operation for it; the tables are handled below)."""

    reduces_to_sql = False
    reversible = True

    def __init__(self, name, bases, old_bases):
        self.name, self.bases, self.old_bases = name, bases, old_bases

    def deconstruct(self):
        return self.__class__.__name__, [self.name, self.bases, self.old_bases], {}

    def state_forwards(self, app_label, state):
        state.models[app_label, self.name.lower()].bases = self.bases
        state.reload_model(app_label, self.name.lower(), delay=True)

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        pass

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        pass

    def describe(self):
        return f"Set the bases of {self.name}"


def _drop_old_indexes(apps, schema_editor):
    q = schema_editor.quote_name
    concurrently = "CONCURRENTLY " if schema_editor.connection.vendor == "postgresql" else ""
    for name in OLD_INDEXES:
        if schema_editor.connection.vendor == "oracle":
            schema_editor.execute(f"DROP INDEX {q(name)}")
        else:
            schema_editor.execute(f"DROP INDEX {concurrently}IF EXISTS {q(name)}")


def _restore_old_indexes(apps, schema_editor):
    """Rollback: the old table's NOT NULLs and indexes, from the old model (``apps`` is the old state here)."""
    old = apps.get_model("queue_messages", "Message")
    vendor = schema_editor.connection.vendor
    q = schema_editor.quote_name
    if vendor == "sqlite":
        # SQLite cannot add NOT NULL or CHECK to a column: the table is rebuilt from the old model,
        # its indexes included.
        schema_editor._remake_table(old)
        return
    for column in NOT_NULL:
        if vendor == "postgresql":
            schema_editor.execute(f"ALTER TABLE {q(ENVELOPE)} ALTER COLUMN {q(column)} SET NOT NULL")
        else:
            schema_editor.execute(f"ALTER TABLE {q(ENVELOPE)} MODIFY ({q(column)} NOT NULL)")
    for index in old._meta.indexes:
        if index.name in OLD_INDEXES:
            if vendor == "postgresql":
                schema_editor.add_index(old, index, concurrently=True)
            else:
                schema_editor.add_index(old, index)


def _copy_chunks(connection, sql_for_range, low: int, high: int) -> int:
    """Run ``sql_for_range(lo, hi)`` over [low, high] in CHUNK-wide id ranges, one transaction each."""
    copied = 0
    with connection.cursor() as cursor:
        for lo in range(low, high + 1, CHUNK):
            with transaction.atomic(using=connection.alias):
                sql, params = sql_for_range(lo, lo + CHUNK - 1)
                cursor.execute(sql, params)
                copied += max(cursor.rowcount, 0)
    return copied


def _id_bounds(connection, table: str) -> tuple[int, int]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT min(id), max(id) FROM {connection.ops.quote_name(table)}")
        low, high = cursor.fetchone()
    return (low or 0), (high or -1)


def _differs(connection, left: str, right: str) -> str:
    """SQL true where a state column differs between the two aliases (NULL-safe)."""
    q = connection.ops.quote_name
    op = "IS NOT" if connection.vendor == "sqlite" else "IS DISTINCT FROM"
    return " OR ".join(f"{left}.{q(c)} {op} {right}.{q(c)}" for c in STATE_COLUMNS)


def _lock(schema_editor, table: str, mode: str = "SHARE") -> None:
    # Holds the release still running (its ingest, its console's actions) for the last pass and
    # the drop (SHARE: reads go on).
    if schema_editor.connection.vendor in ("postgresql", "oracle"):
        schema_editor.execute(f"LOCK TABLE {schema_editor.quote_name(table)} IN {mode} MODE")


def _forwards(apps, schema_editor):
    """The narrow table, filled in chunks while ingest goes on, then the last pass and the drop, locked."""
    connection = schema_editor.connection
    q = schema_editor.quote_name
    queued = len(schema_editor.deferred_sql)
    schema_editor.create_model(apps.get_model("queue_messages", "Message"))
    # The schema editor defers the new table's foreign key and indexes to the end of the migration;
    # they are run here instead, each where it cannot deadlock (below).
    keys = schema_editor.deferred_sql[queued:]
    del schema_editor.deferred_sql[queued:]
    foreign_keys = [statement for statement in keys if "FOREIGN KEY" in str(statement)]
    indexes = [statement for statement in keys if statement not in foreign_keys]
    columns = ", ".join(q(c) for c in ("id", *STATE_COLUMNS))
    # The envelope's receipt time and terminal, copied into the state row (Message.queued_at).
    targets = f"{columns}, {q('queued_at')}, {q('queue_terminal_id')}"
    select = f"SELECT {columns}, {q('received_at')}, {q('terminal_id')} FROM {q(ENVELOPE)} m"
    missing = f"NOT EXISTS (SELECT 1 FROM {q(STATE)} s WHERE s.id = m.id)"
    low, high = _id_bounds(connection, ENVELOPE)
    _copy_chunks(
        connection,
        lambda lo, hi: (
            f"INSERT INTO {q(STATE)} ({targets}) {select} WHERE m.id BETWEEN %s AND %s AND {missing}",
            [lo, hi],
        ),
        low,
        high,
    )
    with transaction.atomic(using=connection.alias):
        _lock(schema_editor, ENVELOPE)
        # Rows inserted after the chunks passed their ids (a later id, or an earlier one committed late).
        schema_editor.execute(f"INSERT INTO {q(STATE)} ({targets}) {select} WHERE {missing}")
        if connection.vendor != "oracle":  # Oracle: the web is stopped (DDL commits; upgrades.md, "0013")
            # Rows the old console changed (a retry, a discard) after their chunk was copied.
            state_columns = ", ".join(q(c) for c in STATE_COLUMNS)
            schema_editor.execute(
                f"UPDATE {q(STATE)} SET ({state_columns}) = (SELECT {state_columns} FROM {q(ENVELOPE)} m"
                f" WHERE m.id = {q(STATE)}.id) WHERE EXISTS (SELECT 1 FROM {q(ENVELOPE)} m"
                f" WHERE m.id = {q(STATE)}.id AND ({_differs(connection, 'm', q(STATE))}))"
            )
        if connection.vendor == "sqlite":
            # SQLite refuses DROP COLUMN on a column in a CHECK (attempts): the table is rebuilt
            # from the envelope model, which has none of the state columns.
            schema_editor._remake_table(apps.get_model("queue_messages", "MessageEnvelope"))
        elif connection.vendor == "oracle":
            schema_editor.execute(f"ALTER TABLE {q(ENVELOPE)} DROP ({', '.join(q(c) for c in STATE_COLUMNS)})")
        else:
            drops = ", ".join(f"DROP COLUMN {q(c)}" for c in STATE_COLUMNS)
            schema_editor.execute(f"ALTER TABLE {q(ENVELOPE)} {drops}")
        # The state row's key to its envelope, while the message table is still held: adding it
        # locks both tables, the state table first. Once the drop has committed, a writer of the
        # new shape (the envelope, then its state row) could hold the message table and wait for
        # the state table while the key waited for the message table: a deadlock that failed the
        # migration half done. Here no writer holds the message table.
        # On PostgreSQL it is added NOT VALID (no scan, so the lock is not held longer for it) and
        # validated after the commit, which reads the two tables without stopping their writers.
        for statement in foreign_keys:
            schema_editor.execute(f"{statement} NOT VALID" if connection.vendor == "postgresql" else statement)
    if connection.vendor == "postgresql":
        for statement in foreign_keys:
            schema_editor.execute(f"ALTER TABLE {q(STATE)} VALIDATE CONSTRAINT {statement.parts['name']}")
    # The indexes lock the state table only, which a writer takes last: no cycle.
    for statement in indexes:
        schema_editor.execute(statement)
    if connection.vendor == "postgresql":
        # Statistics now, not at autovacuum's leisure: the dashboard's Processed estimate reads them.
        schema_editor.execute(f"ANALYZE {q(STATE)}")


def _backwards(apps, schema_editor):
    """Rollback (workers stopped): the state columns back on the message table, filled from the narrow rows."""
    connection = schema_editor.connection
    q = schema_editor.quote_name
    envelope = apps.get_model("queue_messages", "MessageEnvelope")
    state_model = apps.get_model("queue_messages", "Message")
    for column in STATE_COLUMNS:
        field = state_model._meta.get_field(column).clone()
        field.null = True  # NOT NULL comes back once every row is filled (_restore_old_indexes)
        field.set_attributes_from_name(column)
        field.model = envelope
        if connection.vendor == "sqlite":
            # add_field would rebuild the table from the envelope model for a column with a default,
            # dropping the columns added before it; a plain nullable column keeps them, and
            # _restore_old_indexes rebuilds the table from the old model after the fill.
            definition, params = schema_editor.column_sql(envelope, field, include_default=False)
            schema_editor.execute(f"ALTER TABLE {q(ENVELOPE)} ADD COLUMN {q(column)} {definition}", params)
        else:
            schema_editor.add_field(envelope, field)
    targets = ", ".join(q(c) for c in STATE_COLUMNS)
    low, high = _id_bounds(connection, STATE)
    _copy_chunks(
        connection,
        lambda lo, hi: (
            f"UPDATE {q(ENVELOPE)} SET ({targets}) = (SELECT {targets} FROM {q(STATE)} s WHERE s.id = {q(ENVELOPE)}.id)"
            f" WHERE id BETWEEN %s AND %s AND EXISTS (SELECT 1 FROM {q(STATE)} s WHERE s.id = {q(ENVELOPE)}.id)",
            [lo, hi],
        ),
        low,
        high,
    )
    with transaction.atomic(using=connection.alias):
        # The new release's ingest writes the state row after its envelope, in one transaction, and
        # its console changes only state rows: with the state table locked, the last pass copies
        # every row written or changed after its chunk; a write waiting on the lock fails once the
        # table is gone, its envelope rolled back with it (a SOAP fault: the terminal resends).
        # The message table first: the new release's writer takes it before the state table, and
        # dropping the state table drops its key on the message table, which needs that lock too.
        # Taken the other way round, a writer holding the message table and waiting for the state
        # table would deadlock with the drop. SHARE ROW EXCLUSIVE holds the writers and lets this
        # transaction's own UPDATE of the message table through.
        _lock(schema_editor, ENVELOPE, mode="SHARE ROW EXCLUSIVE")
        _lock(schema_editor, STATE)
        if connection.vendor != "oracle":
            schema_editor.execute(
                f"UPDATE {q(ENVELOPE)} SET ({targets}) = (SELECT {targets} FROM {q(STATE)} s"
                f" WHERE s.id = {q(ENVELOPE)}.id) WHERE EXISTS (SELECT 1 FROM {q(STATE)} s"
                f" WHERE s.id = {q(ENVELOPE)}.id AND ({_differs(connection, 's', q(ENVELOPE))}))"
            )
        schema_editor.delete_model(state_model)


class Migration(migrations.Migration):
    # The copy commits chunk by chunk and PostgreSQL drops the old indexes CONCURRENTLY.
    atomic = False

    dependencies = [
        ("queue_messages", "0012_bulkjob_rate"),
        ("terminals", "0004_store_hours"),
    ]

    operations = [
        migrations.RunPython(_drop_old_indexes, _restore_old_indexes, elidable=False),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="MessageEnvelope",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("message_id", models.CharField(max_length=64)),
                        ("message_type", models.CharField(max_length=64)),
                        ("entity_type", models.CharField(max_length=40)),
                        ("entity_key", models.CharField(max_length=128)),
                        ("sequence", models.BigIntegerField()),
                        ("created_at", models.DateTimeField()),
                        ("payload", models.TextField(blank=True)),
                        ("received_at", models.DateTimeField()),
                        ("trace_id", models.CharField(blank=True, max_length=32)),
                        (
                            "terminal",
                            models.ForeignKey(
                                db_index=False,
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="messages",
                                to="terminals.terminal",
                            ),
                        ),
                    ],
                    options={"db_table": "queue_messages_message"},
                ),
                migrations.RemoveConstraint(model_name="message", name="message_terminal_msgid_uniq"),
                *[
                    migrations.RemoveIndex(model_name="message", name=name)
                    for name in (
                        "message_state_recv_idx",
                        "message_term_recv_idx",
                        "message_recv_idx",
                        "message_entity_idx",
                        "message_type_recv_idx",
                        "message_trace_idx",
                        "message_state_updated_idx",
                    )
                ],
                *[
                    migrations.RemoveField(model_name="message", name=name)
                    for name in (
                        "created_at",
                        "entity_key",
                        "entity_type",
                        "message_id",
                        "message_type",
                        "payload",
                        "received_at",
                        "sequence",
                        "terminal",
                        "trace_id",
                    )
                ],
                migrations.AlterModelTable(name="message", table="queue_messages_messagestate"),
                migrations.RemoveField(model_name="message", name="id"),
                migrations.AddField(
                    model_name="message",
                    name="envelope",
                    field=models.OneToOneField(
                        db_column="id",
                        on_delete=django.db.models.deletion.CASCADE,
                        parent_link=True,
                        primary_key=True,
                        related_name="queue_state",
                        serialize=False,
                        to="queue_messages.messageenvelope",
                    ),
                    preserve_default=False,
                ),
                SetModelBases("Message", ("queue_messages.messageenvelope",), (models.Model,)),
                migrations.AddField(
                    model_name="message", name="queued_at", field=models.DateTimeField(), preserve_default=False
                ),
                migrations.AddField(
                    model_name="message",
                    name="queue_terminal_id",
                    field=models.BigIntegerField(),
                    preserve_default=False,
                ),
                migrations.AddIndex(
                    model_name="message",
                    index=models.Index(
                        condition=models.Q(("state__in", ["Received", "Failed", "DeadLettered", "Discarded"])),
                        fields=["state", "queued_at", "queue_terminal_id"],
                        name="message_state_queued_idx",
                    ),
                ),
                migrations.AddIndex(
                    model_name="message",
                    index=models.Index(
                        condition=models.Q(("state__in", ["Processed", "Discarded"])),
                        fields=["state", "updated_at"],
                        name="message_state_updated_idx",
                    ),
                ),
                migrations.AddIndex(
                    model_name="messageenvelope",
                    index=models.Index(fields=["terminal", "-received_at"], name="message_term_recv_idx"),
                ),
                migrations.AddIndex(
                    model_name="messageenvelope",
                    index=models.Index(fields=["-received_at"], name="message_recv_idx"),
                ),
                migrations.AddIndex(
                    model_name="messageenvelope",
                    index=models.Index(fields=["entity_type", "entity_key"], name="message_entity_idx"),
                ),
                migrations.AddIndex(
                    model_name="messageenvelope",
                    index=models.Index(fields=["message_type", "-received_at"], name="message_type_recv_idx"),
                ),
                migrations.AddIndex(
                    model_name="messageenvelope",
                    index=models.Index(fields=["trace_id"], name="message_trace_idx"),
                ),
                migrations.AddConstraint(
                    model_name="messageenvelope",
                    constraint=models.UniqueConstraint(
                        fields=("terminal", "message_id"), name="message_terminal_msgid_uniq"
                    ),
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(_forwards, _backwards, elidable=False),
    ]
