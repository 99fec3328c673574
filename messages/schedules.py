"""The django-q2 schedules the engine relies on, (re)created after every migrate."""

from django_q.models import Schedule

SCHEDULES = [
    # name, function, minutes
    ("sync-sweep", "messages.tasks.sweep", 1),
]


def ensure_schedules(**kwargs) -> None:
    for name, func, minutes in SCHEDULES:
        Schedule.objects.update_or_create(
            name=name, defaults={"func": func, "schedule_type": Schedule.MINUTES, "minutes": minutes, "repeats": -1}
        )
