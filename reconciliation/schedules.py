"""The reconciliation schedule, (re)created after every migrate like messages/schedules.py."""

from django.conf import settings
from django_q.models import Schedule

SCHEDULE_NAME = "reconciliation-run"


def ensure_schedules(**kwargs) -> None:
    # update_or_create: a changed RECONCILIATION_INTERVAL_MINUTES takes effect at the next migrate.
    Schedule.objects.update_or_create(
        name=SCHEDULE_NAME,
        defaults={
            "func": "reconciliation.tasks.scheduled",
            "schedule_type": Schedule.MINUTES,
            "minutes": settings.RECONCILIATION_INTERVAL_MINUTES,
            "repeats": -1,
        },
    )
