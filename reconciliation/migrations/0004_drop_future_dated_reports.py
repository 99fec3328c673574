"""Drop count reports dated in the future, which the hub now refuses (terminal-api.md, "Dates and times").

A report's ``AsOf`` more than SYNC_MAX_CLOCK_SKEW_SECONDS after the moment the hub received it
(a till whose clock said 2099, a 9999-12-31 placeholder) was accepted before and, being the
"latest" report of its cell for ever, hid every later report from reconciliation. Such a row
says nothing true about any moment; the terminal's next report replaces it.
"""

from datetime import timedelta

from django.conf import settings
from django.db import migrations
from django.db.models import F


def drop_future_dated_reports(apps, schema_editor):
    ReportedCount = apps.get_model("reconciliation", "ReportedCount")
    skew = timedelta(seconds=settings.SYNC_MAX_CLOCK_SKEW_SECONDS)
    ReportedCount.objects.filter(as_of__gt=F("received_at") + skew).delete()


class Migration(migrations.Migration):
    dependencies = [("reconciliation", "0003_group_permissions")]

    operations = [migrations.RunPython(drop_future_dated_reports, migrations.RunPython.noop)]
