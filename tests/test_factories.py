"""tests/factories.py: after a transactional test's flush, console_groups_ensure gives the groups every
permission `migrate` gives them, so the next test's users are not refused pages by accident."""

import re
from pathlib import Path

import pytest
from django.contrib.auth.models import Group

from tests.factories import ACCESS_MIGRATIONS, console_groups_ensure

ROOT = Path(__file__).resolve().parent.parent


def test_every_migration_that_grants_a_group_permission_is_rerun_after_a_flush():
    granting = set()
    for path in ROOT.glob("*/migrations/0*.py"):
        if re.search(r"\.permissions\.(add|set)\(", path.read_text()):
            granting.add(f"{path.parent.parent.name}.migrations.{path.stem}")
    assert granting == {module for module, _ in ACCESS_MIGRATIONS}


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_groups_get_back_what_migrate_gave_them():
    migrated = {g.name: set(g.permissions.values_list("codename", flat=True)) for g in Group.objects.all()}
    assert "view_bulkjob" in migrated["Support"]  # what the flake lacked (a 403 on a bulk job's progress)
    Group.objects.all().delete()  # what a transactional test's flush leaves
    console_groups_ensure()
    assert {g.name: set(g.permissions.values_list("codename", flat=True)) for g in Group.objects.all()} == migrated
