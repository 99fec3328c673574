"""Fewer index writes per message and per new central entity, and fresh statistics on the central store.

- The claim (to Processing) no longer writes the retention index: it only holds finished rows.
- Events lose their single-column message index: (message, at) serves every lookup.
- The central store's unique key leads with the terminal and replaces the counting index.
- PostgreSQL: the central store is analysed after 2 % of its rows change (it starts empty and
  fills fast).
"""

import django.db.models.deletion
from django.db import migrations, models


CENTRAL_SETTINGS = "autovacuum_analyze_scale_factor = 0.02"


def central_forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        table = schema_editor.quote_name(apps.get_model("queue_messages", "CentralEntity")._meta.db_table)
        schema_editor.execute(f"ALTER TABLE {table} SET ({CENTRAL_SETTINGS})")


def central_backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        table = schema_editor.quote_name(apps.get_model("queue_messages", "CentralEntity")._meta.db_table)
        schema_editor.execute(f"ALTER TABLE {table} RESET (autovacuum_analyze_scale_factor)")


class Migration(migrations.Migration):

    dependencies = [
        ('queue_messages', '0005_queue_autovacuum'),
        ('terminals', '0001_initial'),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name='centralentity',
            name='central_entity_uniq',
        ),
        migrations.RemoveIndex(
            model_name='centralentity',
            name='central_count_idx',
        ),
        migrations.RemoveIndex(
            model_name='message',
            name='message_state_updated_idx',
        ),
        migrations.AlterField(
            model_name='messageevent',
            name='message',
            field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='events', to='queue_messages.message'),
        ),
        migrations.AddIndex(
            model_name='message',
            index=models.Index(condition=models.Q(('state__in', ['Processed', 'Discarded'])), fields=['state', 'updated_at'], name='message_state_updated_idx'),
        ),
        migrations.AddConstraint(
            model_name='centralentity',
            constraint=models.UniqueConstraint(fields=('terminal_code', 'entity_type', 'entity_key'), name='central_entity_uniq'),
        ),
        # Routed like the central model: runs on the central database when it is a separate one.
        migrations.RunPython(central_forwards, central_backwards, hints={"model_name": "centralentity"}),
    ]
