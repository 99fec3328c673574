"""The retention and bulk-job schedules, (re)created after every migrate like messages/schedules.py."""

from django.conf import settings
from django_q.models import Schedule


def ensure_schedules(**kwargs) -> None:
    # update_or_create: a changed SYNC_RETENTION_INTERVAL_MINUTES takes effect at the next migrate.
    for name, func, minutes in (
        ("sync-retention-purge", "messages.tasks_scale.purge", settings.SYNC_RETENTION_INTERVAL_MINUTES),
        ("sync-bulk-jobs-resume", "messages.tasks_scale.bulk_jobs_resume", 1),
    ):
        Schedule.objects.update_or_create(
            name=name, defaults={"func": func, "schedule_type": Schedule.MINUTES, "minutes": minutes, "repeats": -1}
        )
