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


@pytest.mark.django_db
def test_the_groups_get_back_a_grant_of_each_access_migration():
    Group.objects.all().delete()  # what a transactional test's flush leaves
    console_groups_ensure()
    perms = {g.name: set(g.permissions.values_list("codename", flat=True)) for g in Group.objects.all()}
    # view_bulkjob was the one missing (messages 0002): a Support user polling a bulk job got 403s.
    assert {"view_message", "view_bulkjob", "view_purgerun", "view_incident"} <= perms["Viewers"]
    assert {"retry_message", "pause_queue", "triage_deadletter"} <= perms["Support"]
    assert {"restore_message", "share_savedview", "change_alertrule", "view_reportedcount"} <= perms["Terminal admins"]
