# DeadLetterGroupNote moves from the syncadmin app to this one (issue 16). Its table stays as it is
# (syncadmin_deadlettergroupnote, created by syncadmin 0002): only Django's idea of which app owns
# the model changes. syncadmin 0005 removes it from that app's state and moves its content type.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("queue_messages", "0006_fewer_index_writes"),
        ("syncadmin", "0004_merge_console_observability"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="DeadLetterGroupNote",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("grouping", models.CharField(max_length=16)),
                        ("key", models.CharField(max_length=255)),
                        ("note", models.TextField(blank=True)),
                        ("updated_by", models.CharField(blank=True, max_length=150)),
                        ("updated_at", models.DateTimeField(auto_now=True)),
                    ],
                    options={
                        "db_table": "syncadmin_deadlettergroupnote",
                        "constraints": [
                            models.UniqueConstraint(fields=("grouping", "key"), name="deadletter_group_note_uniq")
                        ],
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
