"""The django-q2 schedules every app declares, (re)created after each migrate.

An app's config lists its schedules in ``schedules()`` as (name, task's dotted path, minutes),
read at call time so settings such as SYNC_RETENTION_INTERVAL_MINUTES apply at the next migrate,
and connects ``ensure_schedules`` to post_migrate with itself as sender.
"""

from __future__ import annotations

from django.apps import apps
from django_q.models import Schedule


def ensure_schedules(sender=None, **kwargs) -> None:
    """Create or update the schedules of the app config ``sender`` (of every app when None)."""
    configs = [sender] if sender is not None else apps.get_app_configs()
    for config in configs:
        declared = getattr(config, "schedules", None)
        for name, func, minutes in declared() if declared else ():
            Schedule.objects.update_or_create(
                name=name, defaults={"func": func, "schedule_type": Schedule.MINUTES, "minutes": minutes, "repeats": -1}
            )
