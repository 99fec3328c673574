"""Migration operations that keep a large table writable: indexes built and dropped CONCURRENTLY on PostgreSQL.

A plain CREATE INDEX holds a lock that stops every INSERT and UPDATE of the table until the
index is built: minutes on a message table of millions of rows, with terminals' batches and
workers waiting. ``CONCURRENTLY`` builds it while writes go on. It cannot run inside a
transaction, so a migration using these sets ``atomic = False`` (and holds only these, so a
failure leaves nothing half done: an interrupted concurrent build leaves an INVALID index that
the operation drops before it tries again). Django's own AddIndexConcurrently is PostgreSQL-only;
these fall back to a plain CREATE/DROP INDEX elsewhere (SQLite for the demo, Oracle builds
online with its own options). docs/operations/upgrades.md, "Safe migrations", says when to use them.
"""

from django.db import NotSupportedError
from django.db.migrations import AddIndex, RemoveIndex


def _concurrently(schema_editor) -> bool:
    if schema_editor.connection.vendor != "postgresql":
        return False
    if schema_editor.connection.in_atomic_block:
        raise NotSupportedError(
            "An index is built CONCURRENTLY outside a transaction: set `atomic = False` on the migration."
        )
    return True


def _add(schema_editor, model, index) -> None:
    if _concurrently(schema_editor):
        if not schema_editor.collect_sql:  # sqlmigrate prints the SQL: nothing to look up
            _drop_invalid(schema_editor, index.name)
        schema_editor.add_index(model, index, concurrently=True)
    else:
        schema_editor.add_index(model, index)


def _remove(schema_editor, model, index) -> None:
    if _concurrently(schema_editor):
        schema_editor.remove_index(model, index, concurrently=True)
    else:
        schema_editor.remove_index(model, index)


def _drop_invalid(schema_editor, name: str) -> None:
    # A concurrent build that was interrupted (a lost connection, a cancelled migrate) leaves the
    # index in the catalogue, marked invalid: CREATE INDEX would then fail on the name.
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname = %s AND NOT i.indisvalid AND pg_catalog.pg_table_is_visible(c.oid)",
            [name],
        )
        invalid = cursor.fetchone() is not None
    if invalid:
        schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {schema_editor.quote_name(name)}")


class AddIndexConcurrentlyOnPostgres(AddIndex):
    """AddIndex, built CONCURRENTLY on PostgreSQL (the migration must be non-atomic); a plain one elsewhere."""

    def describe(self):
        return f"{super().describe()} (concurrently on PostgreSQL)"

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        model = to_state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return
        _add(schema_editor, model, self.index)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        model = from_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            _remove(schema_editor, model, self.index)


class RemoveIndexConcurrentlyOnPostgres(RemoveIndex):
    """RemoveIndex, dropped CONCURRENTLY on PostgreSQL (the migration must be non-atomic); a plain DROP elsewhere."""

    def describe(self):
        return f"{super().describe()} (concurrently on PostgreSQL)"

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        model = from_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            index = from_state.models[app_label, self.model_name_lower].get_index_by_name(self.name)
            _remove(schema_editor, model, index)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        model = to_state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return
        index = to_state.models[app_label, self.model_name_lower].get_index_by_name(self.name)
        _add(schema_editor, model, index)
