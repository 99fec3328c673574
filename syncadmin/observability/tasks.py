"""django-q2 task: thin wrapper around the sample service."""

from syncadmin.observability.sampling import metric_sample_write


def metrics_sample() -> int:
    """Scheduled every minute (syncadmin.observability.schedules)."""
    return metric_sample_write().backlog
