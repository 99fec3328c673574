# DeadLetterGroupNote now belongs to queue_messages (0007), TerminalHealthSnapshot to terminals
# (0003): they are removed from this app's state only. Their tables stay, with their rows. Their
# content types move with them, and so the permissions on them and every group's grants.

from django.db import migrations

MOVED = {"deadlettergroupnote": "queue_messages", "terminalhealthsnapshot": "terminals"}


def content_types_to_new_apps(apps, schema_editor):
    _move(apps, {model: ("syncadmin", new) for model, new in MOVED.items()})


def content_types_back(apps, schema_editor):
    _move(apps, {model: (new, "syncadmin") for model, new in MOVED.items()})


def _move(apps, moves):
    ContentType = apps.get_model("contenttypes", "ContentType")
    for model, (old, new) in moves.items():
        if not ContentType.objects.filter(app_label=new, model=model).exists():
            ContentType.objects.filter(app_label=old, model=model).update(app_label=new)


class Migration(migrations.Migration):

    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("syncadmin", "0004_merge_console_observability"),
        ("queue_messages", "0007_deadlettergroupnote_from_syncadmin"),
        ("terminals", "0003_terminalhealthsnapshot_from_syncadmin"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="DeadLetterGroupNote"),
                migrations.DeleteModel(name="TerminalHealthSnapshot"),
            ],
            database_operations=[],
        ),
        migrations.RunPython(content_types_to_new_apps, content_types_back),
    ]
