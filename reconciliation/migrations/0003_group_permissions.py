"""Give the console's groups their reconciliation permissions.

The groups are created in syncadmin's 0003_console_groups. Viewers read the matrix, the
discrepancies and the runs; Support also start runs, request resyncs and mark discrepancies as
explained; Terminal admins also rebuild counters from the central store (recount).
"""

from django.db import migrations

# (model, codename, name)
PERMISSIONS = [
    ("discrepancy", "view_discrepancy", "Can view discrepancy"),
    ("reconciliationrun", "view_reconciliationrun", "Can view reconciliation run"),
    ("reconciliationrun", "run_reconciliation", "Can start a reconciliation run"),
    ("discrepancy", "request_resync", "Can ask a terminal to resend an entity type"),
    ("discrepancy", "explain_discrepancy", "Can mark a discrepancy as explained"),
    ("reconciliationrun", "recount_counters", "Can rebuild entity counters from the central store"),
]
VIEW = {"view_discrepancy", "view_reconciliationrun"}
SUPPORT = VIEW | {"run_reconciliation", "request_resync", "explain_discrepancy"}
GROUPS = {"Viewers": VIEW, "Support": SUPPORT, "Terminal admins": SUPPORT | {"recount_counters"}}


def grant(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    perms = {}
    for model, codename, name in PERMISSIONS:
        ct, _ = ContentType.objects.get_or_create(app_label="reconciliation", model=model)
        perms[codename], _ = Permission.objects.get_or_create(
            content_type=ct, codename=codename, defaults={"name": name}
        )
    for group_name, codenames in GROUPS.items():
        group, _ = Group.objects.get_or_create(name=group_name)
        group.permissions.add(*(perms[c] for c in codenames))


def revoke(apps, schema_editor):
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    codenames = [c for _, c, _ in PERMISSIONS]
    for group in Group.objects.filter(name__in=list(GROUPS)):
        group.permissions.remove(
            *Permission.objects.filter(content_type__app_label="reconciliation", codename__in=codenames)
        )


class Migration(migrations.Migration):
    dependencies = [
        ("reconciliation", "0002_runs_discrepancies"),
        ("syncadmin", "0003_console_groups"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
