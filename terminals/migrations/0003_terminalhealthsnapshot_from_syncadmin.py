# TerminalHealthSnapshot moves from the syncadmin app to this one (issue 16). Its table stays as it
# is (syncadmin_terminalhealthsnapshot, created by syncadmin 0003): only Django's idea of which app
# owns the model changes. syncadmin 0005 removes it from that app's state and moves its content type.

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("terminals", "0002_used_nonce"),
        ("syncadmin", "0004_merge_console_observability"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="TerminalHealthSnapshot",
                    fields=[
                        (
                            "terminal",
                            models.OneToOneField(
                                on_delete=django.db.models.deletion.CASCADE,
                                primary_key=True,
                                related_name="+",
                                serialize=False,
                                to="terminals.terminal",
                            ),
                        ),
                        ("level", models.CharField(max_length=16)),
                        ("reasons", models.JSONField(blank=True, default=list)),
                        ("computed_at", models.DateTimeField()),
                    ],
                    options={"db_table": "syncadmin_terminalhealthsnapshot"},
                ),
            ],
            database_operations=[],
        ),
    ]
