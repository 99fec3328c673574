"""PostgreSQL: vacuum and analyse the queue tables after 2 % of their rows change, not 20 %.

The message table is a queue: every message is updated twice within seconds of arriving. With
the default thresholds a table of millions of rows is vacuumed after hundreds of thousands of
dead rows, and the dead entries at the head of the claim index are what every claim walks past.
Other databases: nothing to do.
"""

from django.db import migrations

MODELS = ("Message", "MessageEvent")
SETTINGS = "autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02"
DEFAULTS = "autovacuum_vacuum_scale_factor, autovacuum_analyze_scale_factor"


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for model in MODELS:
            table = schema_editor.quote_name(apps.get_model("queue_messages", model)._meta.db_table)
            schema_editor.execute(f"ALTER TABLE {table} SET ({SETTINGS})")


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for model in MODELS:
            table = schema_editor.quote_name(apps.get_model("queue_messages", model)._meta.db_table)
            schema_editor.execute(f"ALTER TABLE {table} RESET ({DEFAULTS})")


class Migration(migrations.Migration):
    dependencies = [("queue_messages", "0004_event_without_db_fk")]

    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
