"""Pauses of one message type, entity type or terminal (issue 20), and the permission to set them.

``pause_queue`` goes to the groups that can retry (Support, Terminal admins); Viewers see pauses
(``view_message``) and change nothing. The groups come from syncadmin 0003.
"""

from datetime import UTC, datetime, timedelta

from django.db import migrations, models
from django.db.models import F

PARK_OFFSET = timedelta(days=365_000)  # messages/services/pauses.py at the time of this migration

PERMISSIONS = [
    # (model, codename, name, groups)
    ("message", "pause_queue", "Can pause and resume processing", ["Support", "Terminal admins"]),
]


def add_permissions(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    for model, codename, name, groups in PERMISSIONS:
        ct, _ = ContentType.objects.get_or_create(app_label="queue_messages", model=model)
        perm, _ = Permission.objects.get_or_create(content_type=ct, codename=codename, defaults={"name": name})
        for group in Group.objects.filter(name__in=groups):
            group.permissions.add(perm)


def remove_permissions(apps, schema_editor):
    Permission = apps.get_model("auth", "Permission")
    Permission.objects.filter(
        content_type__app_label="queue_messages", codename__in=[p[1] for p in PERMISSIONS]
    ).delete()


def unpark_all(apps, schema_editor):
    """Rolled back: a release without pauses would never claim a parked message; bring them all back."""
    Message = apps.get_model("queue_messages", "Message")
    parked = Message.objects.filter(
        state__in=["Received", "Failed"], next_attempt_at__gt=datetime.now(UTC) + PARK_OFFSET / 2
    )
    parked.update(next_attempt_at=F("next_attempt_at") - PARK_OFFSET)


class Migration(migrations.Migration):

    dependencies = [
        ("queue_messages", "0008_schedule_task_paths"),
        ("syncadmin", "0003_console_groups"),
    ]

    operations = [
        migrations.CreateModel(
            name="QueuePause",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "scope",
                    models.CharField(
                        choices=[
                            ("message_type", "message type"),
                            ("entity_type", "entity type"),
                            ("terminal", "terminal"),
                        ],
                        max_length=16,
                    ),
                ),
                ("value", models.CharField(max_length=64)),
                ("reason", models.TextField()),
                ("paused_by", models.CharField(max_length=150)),
                ("paused_at", models.DateTimeField()),
            ],
            options={
                "ordering": ["paused_at", "id"],
                "constraints": [models.UniqueConstraint(fields=("scope", "value"), name="queue_pause_uniq")],
            },
        ),
        migrations.RunPython(add_permissions, remove_permissions),
        migrations.RunPython(migrations.RunPython.noop, unpark_all),
    ]
