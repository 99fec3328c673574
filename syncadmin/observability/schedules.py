"""The django-q2 schedules of the observability layer, (re)created after every migrate."""

from django_q.models import Schedule

SCHEDULES = [
    # name, function, minutes
    ("syncadmin-metrics-sample", "syncadmin.observability.tasks.metrics_sample", 1),
]


def ensure_schedules(**kwargs) -> None:
    for name, func, minutes in SCHEDULES:
        Schedule.objects.update_or_create(
            name=name, defaults={"func": func, "schedule_type": Schedule.MINUTES, "minutes": minutes, "repeats": -1}
        )
