"""The retention purge's candidate index, (state, updated_at), on its own.

On PostgreSQL it is built CONCURRENTLY (so is the migration non-atomic): building an index on a
100-million-row message table must not block ingest. Other databases get a plain CREATE INDEX.
"""

from django.db import migrations, models


class AddIndexConcurrentlyIfPostgres(migrations.AddIndex):
    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        model = to_state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.add_index(model, self.index, concurrently=True)
        else:
            schema_editor.add_index(model, self.index)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        model = from_state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.remove_index(model, self.index, concurrently=True)
        else:
            schema_editor.remove_index(model, self.index)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("queue_messages", "0002_scale_bulkjob_purgerun")]

    operations = [
        AddIndexConcurrentlyIfPostgres(
            model_name="message",
            index=models.Index(fields=["state", "updated_at"], name="message_state_updated_idx"),
        ),
    ]
