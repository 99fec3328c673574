"""Saved views of the message list (issue 20), and who may share one with the team.

Any console user saves personal views; a team view (in everyone's navigation) takes the
permission ``share_savedview``, given here to Terminal admins (and by an admin to a support lead).
Like the console's other permissions it is created here rather than in the model's Meta, so the
access model stays in the migrations (syncadmin 0003_console_groups).
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

# (model, codename, name)
PERMISSIONS = [("savedview", "share_savedview", "Can save and delete the team's saved views")]
GROUPS = {"Terminal admins": {"share_savedview"}}


def grant(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    perms = {}
    for model, codename, name in PERMISSIONS:
        ct, _ = ContentType.objects.get_or_create(app_label="queue_messages", model=model)
        perms[codename], _ = Permission.objects.get_or_create(
            content_type=ct, codename=codename, defaults={"name": name}
        )
    for group_name, codenames in GROUPS.items():
        group, _ = Group.objects.get_or_create(name=group_name)
        group.permissions.add(*(perms[c] for c in codenames))


def revoke(apps, schema_editor):
    Permission = apps.get_model("auth", "Permission")
    Permission.objects.filter(
        content_type__app_label="queue_messages", codename__in=[c for _, c, _ in PERMISSIONS]
    ).delete()


class Migration(migrations.Migration):

    dependencies = [
        ("queue_messages", "0010_group_triage"),
        ("syncadmin", "0003_console_groups"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="SavedView",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=80)),
                ("shared", models.BooleanField(default=False)),
                ("query", models.CharField(blank=True, max_length=2000)),
                ("created_at", models.DateTimeField()),
                (
                    "owner",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="saved_views",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "ordering": ["name", "pk"],
                "constraints": [
                    models.UniqueConstraint(fields=("owner", "name"), name="savedview_owner_name_uniq"),
                    models.UniqueConstraint(
                        condition=models.Q(("shared", True)), fields=("name",), name="savedview_team_name_uniq"
                    ),
                ],
            },
        ),
        migrations.RunPython(grant, revoke),
    ]
