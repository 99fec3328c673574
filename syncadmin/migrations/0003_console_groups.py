"""The console's groups and custom permissions.

Custom permissions are created here rather than in the models' Meta so the console's access
model lives in one place. View permissions normally appear only after post_migrate, so they are
created here too (post_migrate then finds them and leaves them alone).
"""

from django.db import migrations

# (app_label, model, codename, name)
PERMISSIONS = [
    ("queue_messages", "message", "view_message", "Can view message"),
    ("queue_messages", "message", "retry_message", "Can retry messages"),
    ("queue_messages", "message", "discard_message", "Can discard messages"),
    ("queue_messages", "message", "edit_payload", "Can edit a dead-lettered payload and retry it"),
    ("queue_messages", "deadletter", "view_deadletter", "Can view dead letter"),
    ("queue_messages", "deadletter", "annotate_deadletter", "Can write notes on dead-letter groups"),
    ("queue_messages", "outboundupdate", "view_outboundupdate", "Can view outbound update"),
    ("terminals", "terminal", "view_terminal", "Can view terminal"),
    ("terminals", "terminal", "manage_terminal", "Can create, edit, enable and disable terminals"),
    ("terminals", "terminal", "rotate_key", "Can rotate a terminal's API key"),
    ("syncadmin", "auditentry", "view_auditentry", "Can view audit entry"),
    ("reconciliation", "reportedcount", "view_reportedcount", "Can view reported count"),
]

VIEW = {p[2] for p in PERMISSIONS if p[2].startswith("view_")}
SUPPORT = VIEW | {"retry_message", "discard_message", "annotate_deadletter"}
TERMINAL_ADMINS = SUPPORT | {"edit_payload", "manage_terminal", "rotate_key"}
GROUPS = {"Viewers": VIEW, "Support": SUPPORT, "Terminal admins": TERMINAL_ADMINS}


def create_groups(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    perms = {}
    for app_label, model, codename, name in PERMISSIONS:
        ct, _ = ContentType.objects.get_or_create(app_label=app_label, model=model)
        perm, _ = Permission.objects.get_or_create(content_type=ct, codename=codename, defaults={"name": name})
        perms[codename] = perm
    for group_name, codenames in GROUPS.items():
        group, _ = Group.objects.get_or_create(name=group_name)
        group.permissions.add(*(perms[c] for c in codenames))


def remove_groups(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=list(GROUPS)).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("syncadmin", "0002_deadletter_group_note"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("queue_messages", "0001_initial"),
        ("terminals", "0001_initial"),
        ("reconciliation", "0001_initial"),
    ]

    operations = [migrations.RunPython(create_groups, remove_groups)]
