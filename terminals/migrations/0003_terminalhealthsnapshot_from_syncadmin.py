# TerminalHealthSnapshot moves from the syncadmin app to this one (issue 16). Its table stays as it
# is (syncadmin_terminalhealthsnapshot, created by syncadmin 0003): only Django's idea of which app
# owns the model changes. syncadmin 0005 removes it from that app's state once this has added it here.

import django.db.models.deletion
from django.db import migrations, models


def content_type_to(app_label):
    """Move the model's content type (and so its permissions and their group grants) between apps."""

    def move(apps, schema_editor):
        ContentType = apps.get_model("contenttypes", "ContentType")
        old = "syncadmin" if app_label == "terminals" else "terminals"
        if not ContentType.objects.filter(app_label=app_label, model="terminalhealthsnapshot").exists():
            ContentType.objects.filter(app_label=old, model="terminalhealthsnapshot").update(app_label=app_label)

    return move


class Migration(migrations.Migration):

    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
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
        migrations.RunPython(content_type_to("terminals"), content_type_to("syncadmin")),
    ]
